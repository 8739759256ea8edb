//! Data-parallel training over MPI, through the `ember` binary under `mpirun` (builds
//! with `--features mpi`; needs Open MPI's or MPICH's `mpirun` on the PATH: `.ci/run`
//! installs Open MPI). What it proves:
//!
//! - `mpirun -np N ember train CONFIG` (N = 2, and 3 for shards of unequal size) trains
//!   the same run as one process: final weights within 1e-5 of the largest weight of
//!   each tensor, metrics.csv equal up to the same tolerance (the seconds column aside);
//!   the summands of the gradient all-reduce are added in another order, so bit
//!   equality is not expected;
//! - rank 0 alone writes: the run directory holds the same files as one process's (one
//!   set of checkpoints), the summary JSON is printed once, and the other ranks' scratch
//!   directories are gone;
//! - a run resumes with another number of ranks (2 ranks for 1 epoch, then 1 process to
//!   3; and the reverse) and ends where the straight run ends;
//! - ranks started with different seeds are refused before training, and write nothing.
//! - with `train.blocks` the gradient sums go in one fixed order: 1, 2 and 4 ranks give
//!   the same bits (weights, batch norm statistics, metrics.csv), and 3 ranks, which
//!   cannot share 4 blocks, are refused.
//! - batch norm's statistics span every rank's rows (SyncBatchNorm): a model with batch
//!   norm on 2 and 3 ranks trains the one-process run (weights and running statistics
//!   within 1e-5), and a batch too small to give every rank a row is refused by name.
//! - with the `nccl` feature, `EMBER_TEST_CUDA=1` and two or more GPUs: 2 ranks on
//!   `--device cuda` (cuda:0 and cuda:1, NCCL's all-reduce) train the one-GPU run; the
//!   test says it was skipped elsewhere.
//! - a rank killed with SIGKILL mid-run stops the job within 30 s with an error naming
//!   it; the checkpoints written stay whole, and the run resumes with 1 rank and with 2
//!   ranks to where the uninterrupted run ends.
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The run: synthetic data, an MLP with dropout, SGD with momentum. 200 samples in
/// batches of 32: the last batch has 8, so 3 ranks get shards of 2, 3 and 3.
const CONFIG: &str = r#"
seed = 11
[model]
sizes = [8, 16, 3]
dropout = [0.3]
[loss]
name = "cross_entropy"
[optimizer]
name = "sgd"
lr = 0.1
momentum = 0.9
[data]
kind = "synthetic"
n_train = 200
n_eval = 60
features = 8
classes = 3
[train]
epochs = 3
batch_size = 32
"#;

/// A run with fixed blocks (`train.blocks = 4`, blocks of 8 rows; the last batch's 8 rows
/// make blocks of 2) and a batch norm layer, whose running statistics follow the first
/// block.
const BLOCKS_CONFIG: &str = r#"
seed = 5
[[model.layers]]
name = "linear"
out_features = 16
[[model.layers]]
name = "batch_norm1d"
[[model.layers]]
name = "relu"
[[model.layers]]
name = "dropout"
p = 0.3
[[model.layers]]
name = "linear"
out_features = 3
[loss]
name = "cross_entropy"
[optimizer]
name = "sgd"
lr = 0.5
momentum = 0.9
weight_decay = 1e-3
[data]
kind = "synthetic"
n_train = 200
n_eval = 60
features = 8
classes = 3
[train]
epochs = 3
batch_size = 32
blocks = 4
"#;

/// Relative tolerance: of each weight tensor's largest magnitude, of each metric.
const RTOL: f64 = 1e-5;

/// The environment of every child: no network, and Open MPI allowed to run as root,
/// more ranks than cores, and without the cross-memory-attach copy that containers
/// often forbid (MPICH ignores these).
fn child_env<'a>(cmd: &'a mut Command, tmp: &Path) -> &'a mut Command {
    cmd.env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("TMPDIR", tmp)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
}

/// `ember ARGS` as one process.
fn one_process(tmp: &Path, args: &[&str]) -> Output {
    child_env(&mut Command::new(env!("CARGO_BIN_EXE_ember")), tmp).args(args).output().unwrap()
}

/// `mpirun -np 1 ember ARGS_0 : -np 1 ember ARGS_1 : ...`: one rank per entry.
fn mpirun(tmp: &Path, ranks: &[Vec<String>]) -> Output {
    let mut cmd = Command::new("mpirun");
    for (i, args) in ranks.iter().enumerate() {
        if i > 0 {
            cmd.arg(":");
        }
        cmd.args(["-np", "1", env!("CARGO_BIN_EXE_ember")]).args(args);
    }
    match child_env(&mut cmd, tmp).output() {
        Ok(out) => out,
        Err(e) => panic!("cannot run mpirun ({e}): install an MPI (apt-get install openmpi-bin libopenmpi-dev)"),
    }
}

/// `n` ranks of `ember ARGS`.
fn mpirun_n(tmp: &Path, n: usize, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    mpirun(tmp, &vec![args; n])
}

fn check(out: &Output, what: &str) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    stdout.into_owned()
}

/// `ember train CONFIG --out DIR` arguments, with `extra`.
fn train_args<'a>(config: &'a Path, dir: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train", config.to_str().unwrap(), "--out", dir.to_str().unwrap(), "--quiet", "--threads", "1"];
    args.extend_from_slice(extra);
    args
}

/// The files of a run directory, relative and sorted.
/// The files under `dir`, TensorBoard event files (named by time, host and process, one
/// per process that wrote to the run) as one `events.out.tfevents.*` entry.
fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    for f in out.iter_mut() {
        if f.starts_with("events.out.tfevents.") {
            *f = "events.out.tfevents.*".into();
        }
    }
    out.sort();
    out.dedup();
    out
}

/// How many TensorBoard event files `dir` holds.
fn event_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("events.out.tfevents."))
        .count()
}

fn close(a: f64, b: f64, scale: f64) -> bool {
    a == b || (a - b).abs() <= RTOL * scale
}

/// The final weights of two runs agree within [`RTOL`] of each tensor's largest weight.
fn assert_same_weights(a: &Path, b: &Path) {
    let (wa, wb) = (common::checkpoint_weights(a), common::checkpoint_weights(b));
    assert_eq!(wa.iter().map(|w| &w.0).collect::<Vec<_>>(), wb.iter().map(|w| &w.0).collect::<Vec<_>>());
    for ((name, x), (_, y)) in wa.iter().zip(&wb) {
        assert_eq!(x.len(), y.len(), "{name}");
        let scale = x.iter().chain(y).fold(0f64, |m, v| m.max(v.abs() as f64));
        for (i, (&p, &q)) in x.iter().zip(y).enumerate() {
            assert!(
                close(p as f64, q as f64, scale),
                "{name}[{i}]: {p} in {} but {q} in {} (tolerance {RTOL} x {scale})",
                a.display(),
                b.display()
            );
        }
    }
}

/// metrics.csv of two runs: the same header and epochs, every value but the seconds
/// within [`RTOL`] (relative).
fn assert_same_metrics(a: &Path, b: &Path) {
    let (ma, mb) = (common::metrics_without_seconds(a), common::metrics_without_seconds(b));
    assert_eq!(ma.len(), mb.len(), "metrics.csv rows:\n{ma:#?}\n{mb:#?}");
    assert_eq!(ma[0], mb[0], "metrics.csv header");
    for (ra, rb) in ma.iter().zip(&mb).skip(1) {
        let (fa, fb): (Vec<&str>, Vec<&str>) = (ra.split(',').collect(), rb.split(',').collect());
        assert_eq!(fa.len(), fb.len(), "{ra} vs {rb}");
        assert_eq!(fa[0], fb[0], "epoch: {ra} vs {rb}");
        for (x, y) in fa.iter().zip(&fb).filter(|(x, y)| x != y) {
            let (p, q): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!(
                close(p, q, p.abs().max(q.abs())),
                "metrics.csv: {ra} in {} but {rb} in {}",
                a.display(),
                b.display()
            );
        }
    }
}

/// A test's folder, with CONFIG in `run.toml` and the children's TMPDIR `tmp/`.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let scratch = tmp.path().join("tmp");
    std::fs::create_dir(&scratch).unwrap();
    let config = tmp.path().join("run.toml");
    std::fs::write(&config, CONFIG).unwrap();
    (tmp, scratch, config)
}

/// The straight one-process run of CONFIG, in `straight/`.
fn straight_run(tmp: &Path, scratch: &Path, config: &Path) -> PathBuf {
    let dir = tmp.join("straight");
    check(&one_process(scratch, &train_args(config, &dir, &[])), "the one-process run");
    dir
}

#[test]
fn ranks_train_the_run_of_one_process_and_rank_0_alone_writes() {
    let (tmp, scratch, config) = setup();
    let straight = straight_run(tmp.path(), &scratch, &config);
    for n in [2, 3] {
        let dir = tmp.path().join(format!("ranks-{n}"));
        let stdout = check(&mpirun_n(&scratch, n, &train_args(&config, &dir, &[])), &format!("the {n}-rank run"));
        let summaries: Vec<&str> = stdout.lines().filter(|l| l.starts_with('{')).collect();
        assert_eq!(summaries.len(), 1, "one summary line (rank 0's), got:\n{stdout}");
        assert_same_weights(&straight, &dir);
        assert_same_metrics(&straight, &dir);
        assert_eq!(files(&dir), files(&straight), "{n} ranks wrote other files than one process");
        assert_eq!(event_files(&dir), 1, "rank 0 alone writes TensorBoard events");
        let left: Vec<String> = std::fs::read_dir(&scratch)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("ember-rank"))
            .collect();
        assert!(left.is_empty(), "scratch directories left behind: {left:?}");
    }
}

#[test]
fn a_run_resumes_with_another_number_of_ranks() {
    let (tmp, scratch, config) = setup();
    let straight = straight_run(tmp.path(), &scratch, &config);
    // 2 ranks for epoch 1, then one process to epoch 3.
    let dir = tmp.path().join("two-then-one");
    check(&mpirun_n(&scratch, 2, &train_args(&config, &dir, &["--epochs", "1"])), "the 2-rank first epoch");
    let resume = ["train", "--resume", dir.to_str().unwrap(), "--epochs", "3", "--quiet", "--threads", "1"];
    check(&one_process(&scratch, &resume), "the one-process resume");
    assert_same_weights(&straight, &dir);
    assert_same_metrics(&straight, &dir);
    // One process for epoch 1, then 2 ranks to epoch 3.
    let dir = tmp.path().join("one-then-two");
    check(&one_process(&scratch, &train_args(&config, &dir, &["--epochs", "1"])), "the one-process first epoch");
    let resume = ["train", "--resume", dir.to_str().unwrap(), "--epochs", "3", "--quiet", "--threads", "1"];
    check(&mpirun_n(&scratch, 2, &resume), "the 2-rank resume");
    assert_same_weights(&straight, &dir);
    assert_same_metrics(&straight, &dir);
    assert_eq!(files(&dir), files(&straight));
}

#[test]
fn ranks_with_different_seeds_are_refused() {
    let (tmp, scratch, config) = setup();
    let dir = tmp.path().join("mixed");
    let rank0: Vec<String> = train_args(&config, &dir, &[]).iter().map(|a| a.to_string()).collect();
    let mut rank1 = rank0.clone();
    rank1.extend(["--seed".to_string(), "12".to_string()]);
    let out = mpirun(&scratch, &[rank0, rank1]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ranks with seeds 11 and 12 trained:\n{stderr}");
    assert!(stderr.contains("rank(s) 1 of MPI"), "{stderr}");
    assert!(stderr.contains("another config, seed or checkpoint"), "{stderr}");
    assert!(ember::train::rundir::existing_run(&dir).is_none(), "the refused run wrote into {}", dir.display());
}

#[test]
fn blocks_give_the_same_bits_on_1_2_and_4_ranks() {
    let (tmp, scratch, _) = setup();
    let config = tmp.path().join("blocks.toml");
    std::fs::write(&config, BLOCKS_CONFIG).unwrap();
    let one = tmp.path().join("one");
    check(&one_process(&scratch, &train_args(&config, &one, &[])), "the one-process run");
    let bits = |dir: &Path| -> Vec<(String, Vec<u32>)> {
        common::checkpoint_weights(dir).into_iter().map(|(k, v)| (k, v.iter().map(|x| x.to_bits()).collect())).collect()
    };
    let expected = bits(&one);
    assert!(expected.iter().any(|(k, _)| k.ends_with("running_var")), "the model keeps batch norm statistics");
    for n in [2, 4] {
        let dir = tmp.path().join(format!("ranks-{n}"));
        check(&mpirun_n(&scratch, n, &train_args(&config, &dir, &[])), &format!("the {n}-rank run"));
        for ((name, a), (_, b)) in expected.iter().zip(&bits(&dir)) {
            let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
            assert_eq!(differ, 0, "{name}: {differ} of {} values differ between 1 process and {n} ranks", a.len());
        }
        assert_eq!(
            common::metrics_without_seconds(&one),
            common::metrics_without_seconds(&dir),
            "metrics.csv of 1 process and {n} ranks"
        );
    }
    let dir = tmp.path().join("ranks-3");
    let out = mpirun_n(&scratch, 3, &train_args(&config, &dir, &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "3 ranks shared 4 blocks:\n{stderr}");
    assert!(stderr.contains("train.blocks = 4") && stderr.contains("cannot share evenly"), "{stderr}");
}

#[test]
fn batch_norm_statistics_span_every_ranks_rows() {
    let (tmp, scratch, _) = setup();
    let config = tmp.path().join("bn.toml");
    let text = BLOCKS_CONFIG.replace("blocks = 4\n", "").replace("lr = 0.5", "lr = 0.1");
    std::fs::write(&config, &text).unwrap();
    let one = straight_run(tmp.path(), &scratch, &config);
    assert!(
        common::checkpoint_weights(&one).iter().any(|(k, _)| k.ends_with("running_mean")),
        "the model keeps batch norm statistics"
    );
    for n in [2, 3] {
        let dir = tmp.path().join(format!("ranks-{n}"));
        check(&mpirun_n(&scratch, n, &train_args(&config, &dir, &[])), &format!("the {n}-rank run"));
        assert_same_weights(&one, &dir);
        assert_same_metrics(&one, &dir);
    }
    // 200 examples in batches of 66: the last batch has 2 rows, one short for 3 ranks.
    std::fs::write(&config, text.replace("batch_size = 32", "batch_size = 66")).unwrap();
    let dir = tmp.path().join("too-few-rows");
    let out = mpirun_n(&scratch, 3, &train_args(&config, &dir, &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "3 ranks trained a batch of 2 rows with batch norm:\n{stderr}");
    assert!(stderr.contains("a batch of 2 rows") && stderr.contains("train.drop_last = true"), "{stderr}");
}

#[cfg(feature = "nccl")]
#[test]
fn nccl_ranks_on_two_gpus_train_the_run_of_one_gpu() {
    if std::env::var("EMBER_TEST_CUDA").as_deref() != Ok("1") {
        eprintln!("skipped: set EMBER_TEST_CUDA=1 (a machine with two GPUs and libnccl.so.2) to run the NCCL test");
        return;
    }
    let gpus = candle_core::cuda_backend::cudarc::driver::CudaContext::device_count().unwrap_or(0);
    if gpus < 2 {
        eprintln!("skipped: NCCL's data-parallel test needs two GPUs (one per rank); this machine has {gpus}");
        return;
    }
    let (tmp, scratch, config) = setup();
    let one = tmp.path().join("one-gpu");
    check(&one_process(&scratch, &train_args(&config, &one, &["--device", "cuda"])), "the one-GPU run");
    let two = tmp.path().join("two-gpus");
    check(&mpirun_n(&scratch, 2, &train_args(&config, &two, &["--device", "cuda"])), "the 2-rank NCCL run");
    assert_same_weights(&one, &two);
    assert_same_metrics(&one, &two);
    assert_eq!(files(&two), files(&one));
}

/// The pid of rank `rank` among `mpirun`'s processes (read from each process's
/// environment: Open MPI's OMPI_COMM_WORLD_RANK, MPICH's PMI_RANK).
fn rank_pid(rank: usize) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()? {
        let Ok(pid) = e.ok()?.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        if !String::from_utf8_lossy(&cmd).contains(env!("CARGO_BIN_EXE_ember")) {
            continue;
        }
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
        let env = String::from_utf8_lossy(&env);
        let is = |key: &str| env.split('\0').any(|kv| kv == format!("{key}={rank}"));
        if is("OMPI_COMM_WORLD_RANK") || is("PMI_RANK") {
            return Some(pid);
        }
    }
    None
}

/// A 2-rank run with rank 1 killed (SIGKILL) mid-run stops within 30 s with an error
/// naming the rank, leaves whole checkpoints, and resumes with 1 rank and with 2 ranks
/// to where the uninterrupted run ends.
#[test]
fn a_killed_rank_stops_the_run_and_it_resumes_with_one_or_two_ranks() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("long.toml");
    let long = CONFIG.replace("n_train = 200", "n_train = 6000").replace("epochs = 3", "epochs = 8");
    std::fs::write(&config, long).unwrap();
    let (killed, straight) = (tmp.path().join("killed"), tmp.path().join("straight"));
    let args: Vec<String> = train_args(&config, &killed, &[]).iter().map(|a| a.to_string()).collect();
    let mut cmd = Command::new("mpirun");
    cmd.args(["-np", "2", env!("CARGO_BIN_EXE_ember")]).args(&args);
    let mut child = child_env(&mut cmd, tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill rank 1 once the second epoch's checkpoint is written.
    let start = std::time::Instant::now();
    while !killed.join("checkpoints/epoch-0002.safetensors").exists() {
        assert!(start.elapsed().as_secs() < 120, "the run wrote no second checkpoint");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it was killed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = rank_pid(1).expect("rank 1's process");
    kill_9(pid);
    let killed_at = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(killed_at.elapsed().as_secs() < 30, "rank 0 still runs 30 s after rank 1 was killed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success());
    assert!(stderr.contains("rank 1"), "the error names the rank: {stderr}");
    let done: Vec<String> = files(&killed).into_iter().filter(|f| f.starts_with("checkpoints/epoch-")).collect();
    assert!(!done.is_empty() && done.len() < 8, "{done:?}");

    check(&mpirun_n(tmp.path(), 2, &train_args(&config, &straight, &[])), "the uninterrupted run");
    let again = tmp.path().join("again");
    copy_dir(&killed, &again);
    let resume = |dir: &Path| {
        vec![
            "train".to_string(),
            "--resume".into(),
            dir.display().to_string(),
            "--quiet".into(),
            "--threads".into(),
            "1".into(),
        ]
    };
    check(
        &one_process(tmp.path(), &resume(&killed).iter().map(String::as_str).collect::<Vec<_>>()),
        "resume with 1 rank",
    );
    check(&mpirun(tmp.path(), &[resume(&again), resume(&again)]), "resume with 2 ranks");
    assert_same_weights(&straight, &killed);
    assert_same_weights(&straight, &again);
}

fn kill_9(pid: u32) {
    let status = Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -9 {pid}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}
