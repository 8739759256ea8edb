//! The Learner and `ember train`: bit-exact resume (also after SIGKILL), metrics.csv and
//! plots, checkpoints, config errors with key paths, activation/loss pairing warnings,
//! NaN guard, early stopping, gradient accumulation, export / inspect / predict.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use ember::train::{Learner, Reporter, RunConfig};

const BASE: &str = r#"
seed = 7
[model]
sizes = [8, 16, 3]
dropout = [0.3]
[loss]
name = "cross_entropy"
[optimizer]
name = "adam"
lr = 0.01
[[optimizer.groups]]
params = ["*.bias"]
weight_decay = 0.0
[scheduler]
name = "step"
step_size = 1
gamma = 0.9
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

fn config(extra: &str) -> RunConfig {
    RunConfig::from_toml(&format!("{BASE}\n{extra}"), "test.toml").unwrap()
}

/// BASE with the `key = value` lines of `lines` set inside `[section]`.
fn edited(section: &str, lines: &str) -> String {
    let mut table: toml::Table = BASE.parse().unwrap();
    let add: toml::Table = lines.parse().unwrap();
    let sec = table.get_mut(section).and_then(|s| s.as_table_mut()).expect("section exists");
    sec.extend(add);
    toml::to_string(&table).unwrap()
}

fn metrics_without_seconds(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

#[test]
fn resume_is_bit_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut straight = Learner::new(config(""), Device::Cpu, &a, Reporter::Quiet).unwrap();
    straight.fit().unwrap();
    let mut first = config("");
    first.train.epochs = 1;
    Learner::new(first, Device::Cpu, &b, Reporter::Quiet).unwrap().fit().unwrap();
    let mut resumed = Learner::resume(&b, Device::Cpu, None, Some(3), Reporter::Quiet).unwrap();
    assert_eq!(resumed.progress().epoch, 1);
    resumed.fit().unwrap();
    assert_eq!(common::checkpoint_weights(&a), common::checkpoint_weights(&b));
    assert_eq!(metrics_without_seconds(&a), metrics_without_seconds(&b));
    assert_eq!(metrics_without_seconds(&a).len(), 4);
}

fn ember(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ember")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("run.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn the_cli_trains_resumes_and_summarises_in_json() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), BASE);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (code, out, err) =
        ember(&["train", cfg.to_str().unwrap(), "--out", a.to_str().unwrap(), "--epochs", "2", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "--quiet prints nothing on stderr: {err}");
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    for key in ["epochs", "train_loss", "train_acc", "eval_loss", "eval_acc", "seconds_per_epoch", "out"] {
        assert!(summary.get(key).is_some_and(|v| !v.is_null()), "{key} in {summary}");
    }
    assert_eq!(summary["epochs"], 2);
    let (code, _, err) = ember(&["train", cfg.to_str().unwrap(), "--out", b.to_str().unwrap(), "--epochs", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("epoch 1/1  train_loss"), "a summary line per epoch: {err}");
    let (code, _, err) = ember(&["train", "--resume", b.to_str().unwrap(), "--epochs", "2", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(common::checkpoint_weights(&a), common::checkpoint_weights(&b));
    assert_eq!(metrics_without_seconds(&a), metrics_without_seconds(&b));
}

#[test]
fn a_run_killed_mid_training_resumes_to_the_same_weights_as_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let text = edited("data", "n_train = 20000").replace("epochs = 3", "epochs = 400");
    let cfg = write_config(tmp.path(), &text);
    let dir = tmp.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["train", cfg.to_str().unwrap(), "--out", dir.to_str().unwrap(), "--quiet"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ckpts = dir.join("checkpoints");
    let start = Instant::now();
    while ember::train::checkpoint::epoch_files(&ckpts).unwrap().len() < 2 && start.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL, somewhere in an epoch (or a checkpoint write)
    child.wait().unwrap();
    let files = ember::train::checkpoint::epoch_files(&ckpts).unwrap();
    assert!(!files.is_empty(), "no checkpoint was written");
    // Whatever was being written when the process died, every checkpoint on disk reads.
    for (_, f) in &files {
        ember::train::checkpoint::read(f).unwrap();
    }
    let target = (files.last().unwrap().0 + 1).to_string();
    let (code, out, err) = ember(&["train", "--resume", dir.to_str().unwrap(), "--epochs", &target, "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("\"epochs\":{target}")), "{out}");
    let straight = tmp.path().join("straight");
    let (code, _, err) =
        ember(&["train", cfg.to_str().unwrap(), "--out", straight.to_str().unwrap(), "--epochs", &target, "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        common::checkpoint_weights(&dir),
        common::checkpoint_weights(&straight),
        "killed + resumed == uninterrupted"
    );
    assert_eq!(metrics_without_seconds(&dir), metrics_without_seconds(&straight));
}

#[test]
fn a_run_killed_during_a_checkpoint_write_keeps_the_previous_one_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &BASE.replace("epochs = 3", "epochs = 4"));
    let straight = tmp.path().join("straight");
    let (code, _, err) = ember(&["train", cfg.to_str().unwrap(), "--out", straight.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{err}");

    let dir = tmp.path().join("run");
    let ckpts = dir.join("checkpoints");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["train", cfg.to_str().unwrap(), "--out", dir.to_str().unwrap(), "--quiet"])
        .env("EMBER_FAILPOINT_CHECKPOINT_WRITE", "epoch-0003.safetensors")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let paused = ckpts.join("epoch-0003.safetensors.paused");
    let start = Instant::now();
    while !paused.exists() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(paused.exists(), "the run never reached the third checkpoint");
    child.kill().unwrap(); // SIGKILL halfway through writing epoch 3's checkpoint
    child.wait().unwrap();
    std::fs::remove_file(&paused).unwrap();

    // The half-written temporary is all there is of epoch 3; epoch 2's checkpoint is whole.
    let files = ember::train::checkpoint::epoch_files(&ckpts).unwrap();
    assert_eq!(files.iter().map(|(e, _)| *e).collect::<Vec<_>>(), [1, 2]);
    let temporaries = || {
        std::fs::read_dir(&ckpts)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".epoch-0003.safetensors.tmp-"))
            .count()
    };
    assert_eq!(temporaries(), 1);
    let kept = ember::train::checkpoint::read(&files[1].1).unwrap().section("model/");
    let reference =
        ember::train::checkpoint::read(&straight.join("checkpoints/epoch-0002.safetensors")).unwrap().section("model/");
    for (name, t) in &reference {
        assert_eq!(
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            kept[name].flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            "{name}"
        );
    }

    let (code, _, err) = ember(&["train", "--resume", dir.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(temporaries(), 0, "resume clears the dead write's temporary");
    assert_eq!(
        common::checkpoint_weights(&dir),
        common::checkpoint_weights(&straight),
        "killed mid-write + resumed == uninterrupted"
    );
    assert_eq!(metrics_without_seconds(&dir), metrics_without_seconds(&straight));
}

#[test]
fn metrics_csv_and_plots_are_written() {
    let tmp = tempfile::tempdir().unwrap();
    Learner::new(config(""), Device::Cpu, tmp.path(), Reporter::Quiet).unwrap().fit().unwrap();
    let csv = std::fs::read_to_string(tmp.path().join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), "epoch,train_loss,train_acc,eval_loss,eval_acc,lr,seconds");
    for (i, line) in lines.enumerate() {
        let v: Vec<f64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        assert_eq!(v.len(), 7);
        assert_eq!(v[0] as usize, i + 1);
        assert!((0.0..=1.0).contains(&v[2]) && (0.0..=1.0).contains(&v[4]));
    }
    // The step schedule: lr 0.01, then x0.9 per epoch.
    let lrs: Vec<f64> = csv.lines().skip(1).map(|l| l.split(',').nth(5).unwrap().parse().unwrap()).collect();
    assert!((lrs[1] / lrs[0] - 0.9).abs() < 1e-12 && (lrs[2] / lrs[1] - 0.9).abs() < 1e-12, "{lrs:?}");
    for name in ["loss", "accuracy"] {
        let png = std::fs::read(tmp.path().join(format!("{name}.png"))).unwrap();
        assert!(png.len() > 1000 && png.starts_with(b"\x89PNG"), "{name}.png");
        let svg = std::fs::read_to_string(tmp.path().join(format!("{name}.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.contains("epoch"), "{name}.svg");
    }
    let ckpts = ember::train::checkpoint::epoch_files(&tmp.path().join("checkpoints")).unwrap();
    assert_eq!(ckpts.iter().map(|c| c.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(tmp.path().join("checkpoints/best.safetensors").is_file());
}

#[test]
fn config_errors_name_the_key_and_the_choices() {
    let err = |text: &str| RunConfig::from_toml(text, "run.toml").map(|_| ()).unwrap_err().to_string();
    let e = err(&edited("train", "epochz = 3"));
    assert!(e.contains("unknown field `epochz`") && e.contains("`epochs`") && e.contains("line"), "{e}");
    assert_eq!(err(&edited("train", "epochs = 0")), "run.toml: train.epochs = 0 is invalid: must be >= 1");
    assert_eq!(err(&edited("train", "batch_size = 0")), "run.toml: train.batch_size = 0 is invalid: must be >= 1");
    assert!(err(&edited("train", "dtype = \"f16\"")).contains("train.dtype = \"f16\" is invalid"));
    let e = err(&edited("train", "early_stopping = { metric = \"val_acc\", patience = 2 }"));
    assert!(e.contains("train.early_stopping.metric = \"val_acc\" is invalid: must be one of train_loss"), "{e}");

    let learner_err = |text: &str| {
        let c = RunConfig::from_toml(text, "run.toml").unwrap();
        Learner::new(c, Device::Cpu, tempfile::tempdir().unwrap().path(), Reporter::Quiet).err().unwrap().to_string()
    };
    assert_eq!(
        learner_err(&BASE.replace("name = \"adam\"", "name = \"adamm\"")),
        "optimizer: unknown optimizer 'adamm'; did you mean 'adam'? Known optimizers: adadelta, adagrad, adam, adamax, adamw, nadam, radam, rmsprop, sgd"
    );
    assert_eq!(
        learner_err(&edited("optimizer", "betas = [0.9, 1.5]")),
        "optimizer: adam.betas = [0.9, 1.5] is invalid: expected two numbers in [0, 1)"
    );
    assert!(learner_err(&edited("loss", "label_smoothing = 2.0"))
        .starts_with("loss: cross_entropy.label_smoothing = 2.0 is invalid"));
    assert_eq!(
        learner_err(&BASE.replace("sizes = [8, 16, 3]", "sizes = [10, 16, 3]")),
        "model.sizes[0] = 10 but each example has 8 features (shape [8]); set model.sizes[0] = 8"
    );
    assert_eq!(
        learner_err(&BASE.replace("sizes = [8, 16, 3]", "sizes = [8, 16, 2]")),
        "the data has labels 0..=2 but the model outputs 2 classes; set the last model.sizes entry to 3"
    );
    assert!(learner_err(&BASE.replace("name = \"step\"", "name = \"steplr\""))
        .starts_with("scheduler: unknown scheduler 'steplr'; did you mean 'step'?"));
}

#[test]
fn mismatched_final_activation_and_loss_give_warnings_naming_the_right_pairing() {
    let warn = |act: Option<&str>, loss: &str| {
        let mut c = config("");
        c.model.output_activation = act.map(str::to_string);
        c.loss.name = loss.into();
        c.pairing_warnings()
    };
    assert!(warn(Some("softmax"), "cross_entropy")[0].contains("applies softmax twice"));
    assert!(warn(None, "nll")[0].contains("set model.output_activation = \"log_softmax\""));
    assert!(warn(None, "bce")[0].contains("set model.output_activation = \"sigmoid\", or use \"bce_with_logits\""));
    assert!(warn(Some("sigmoid"), "bce_with_logits")[0].contains("applies the sigmoid twice"));
    assert!(warn(None, "cross_entropy").is_empty());
    assert!(warn(Some("log_softmax"), "nll").is_empty());
    // The CLI prints them.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &edited("model", "output_activation = \"softmax\""));
    let (code, _, err) =
        ember(&["train", cfg.to_str().unwrap(), "--out", tmp.path().join("r").to_str().unwrap(), "--epochs", "1"]);
    assert_eq!(code, 0);
    assert!(err.contains("warning: model.output_activation = \"softmax\" before loss \"cross_entropy\""), "{err}");
}

#[test]
fn a_nan_loss_stops_the_run_naming_epoch_and_step() {
    let tmp = tempfile::tempdir().unwrap();
    let text = BASE.replace("name = \"adam\"\nlr = 0.01", "name = \"sgd\"\nlr = 1e30");
    let cfg = write_config(tmp.path(), &text);
    let (code, _, err) = ember(&[
        "train",
        cfg.to_str().unwrap(),
        "--out",
        tmp.path().join("r").to_str().unwrap(),
        "--epochs",
        "3",
        "--quiet",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("at epoch 1, step") && err.contains("training stopped"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

#[test]
fn a_penalty_that_overflows_stops_the_run_naming_it() {
    // lambda 3e38 makes lambda / 2 * sum(w^2) overflow f32 while the loss stays finite.
    let tmp = tempfile::tempdir().unwrap();
    let text = format!("{BASE}\n[[regularizers]]\nname = \"l2\"\nlambda = 3e38\n");
    let cfg = write_config(tmp.path(), &text);
    let (code, _, err) =
        ember(&["train", cfg.to_str().unwrap(), "--out", tmp.path().join("r").to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the regularizers' penalty is inf (the loss is "), "{err}");
    assert!(err.contains("at epoch 1, step 1 (batch 1 of 7); training stopped. No checkpoint was written"), "{err}");
}

#[test]
fn early_stopping_ends_the_run_after_patience() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config("");
    c.optimizer.config.insert("lr".into(), ember::core::Value::Float(0.0));
    c.train.epochs = 10;
    c.train.early_stopping = Some(ember::train::config::EarlyStopping {
        metric: "eval_loss".into(),
        patience: 1,
        mode: "min".into(),
        min_delta: 0.0,
    });
    let s = Learner::new(c, Device::Cpu, tmp.path(), Reporter::Quiet).unwrap().fit().unwrap();
    assert!(s.stopped_early);
    assert_eq!(s.epochs, 3, "epoch 1 sets the best, epochs 2 and 3 do not improve, patience 1");
}

#[test]
fn accumulating_two_half_batches_equals_one_full_batch() {
    let run = |batch: usize, accumulate: usize| {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = config("");
        c.model.dropout.clear();
        c.train.batch_size = batch;
        c.train.accumulate = accumulate;
        c.train.epochs = 2;
        c.data =
            ember::train::config::DataConfig::Synthetic { n_train: 256, n_eval: 32, features: 8, classes: 3, seed: 0 };
        Learner::new(c, Device::Cpu, tmp.path(), Reporter::Quiet).unwrap().fit().unwrap();
        common::checkpoint_weights(tmp.path())
    };
    let (full, halves) = (run(64, 1), run(32, 2));
    for ((n, a), (_, b)) in full.iter().zip(&halves) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{n}: {x} vs {y}");
        }
    }
}

#[test]
fn export_inspect_and_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    Learner::new(config(""), Device::Cpu, &run, Reporter::Quiet).unwrap().fit().unwrap();
    let w = tmp.path().join("w.safetensors");
    let (code, out, err) = ember(&["export", run.to_str().unwrap(), "--out", w.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("wrote 4 tensors"), "{out}");
    let (code, out, _) = ember(&["inspect", w.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("1.weight\tF32\t[16, 8]") && out.contains("4.bias\tF32\t[3]"), "{out}");
    let ckpt = ember::train::checkpoint::resolve(&run).unwrap();
    let (_, out, _) = ember(&["inspect", ckpt.to_str().unwrap()]);
    assert!(
        out.contains("metadata format = ember-checkpoint/1") && out.contains("optimizer/state/1.weight/exp_avg"),
        "{out}"
    );

    let input = tmp.path().join("in.safetensors");
    let x = Tensor::randn(0f32, 1.0, (5, 8), &Device::Cpu).unwrap();
    candle_core::safetensors::save(&std::collections::HashMap::from([("input".to_string(), x.clone())]), &input)
        .unwrap();
    let cfg = write_config(tmp.path(), BASE);
    let pred = tmp.path().join("out.safetensors");
    let (code, _, err) = ember(&[
        "predict",
        w.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--out",
        pred.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let got = candle_core::safetensors::load(&pred, &Device::Cpu).unwrap()["output"].clone();
    let learner = Learner::resume(&run, Device::Cpu, Some(tmp.path().join("x")), None, Reporter::Quiet).unwrap();
    let want = ember::nn::Module::forward(learner.model(), &x, &mut ember::nn::Context::eval()).unwrap();
    assert_eq!(got.to_vec2::<f32>().unwrap(), want.to_vec2::<f32>().unwrap());

    // Another architecture: every mismatched tensor is listed.
    let other = write_config(tmp.path(), &BASE.replace("sizes = [8, 16, 3]", "sizes = [8, 12, 3]"));
    let (code, _, err) = ember(&[
        "predict",
        w.to_str().unwrap(),
        "--config",
        other.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--out",
        pred.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("wrong shape: 1.weight is [16, 8] in the file, [12, 8] in the model")
            && err.contains("wrong shape: 4.weight"),
        "{err}"
    );
}

#[test]
fn truncated_or_corrupted_checkpoints_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    Learner::new(config(""), Device::Cpu, &run, Reporter::Quiet).unwrap().fit().unwrap();
    let good = std::fs::read(ember::train::checkpoint::resolve(&run).unwrap()).unwrap();
    let bad = tmp.path().join("bad.safetensors");
    std::fs::write(&bad, &good[..good.len() / 2]).unwrap();
    let (code, _, err) = ember(&["train", "--resume", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.safetensors: not a readable safetensors file"), "{err}");
    let mut corrupt = good.clone();
    corrupt[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&bad, &corrupt).unwrap();
    let (code, _, err) = ember(&["inspect", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.safetensors: not a readable safetensors file") && !err.contains("panicked"), "{err}");
}

#[test]
fn bench_train_reports_the_time_split() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), BASE);
    let (code, out, err) = ember(&["bench", "train", cfg.to_str().unwrap(), "--epochs", "2"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(v["seconds_per_epoch"].as_f64().unwrap() > 0.0 && v["steps_per_second"].as_f64().unwrap() > 0.0, "{v}");
    for phase in ["data", "forward", "loss", "backward", "optimizer", "eval", "output"] {
        assert!(v["phases"][phase].as_f64().unwrap() >= 0.0, "{phase} in {v}");
    }
    assert!(v["eval_acc"].as_f64().is_some());
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), BASE);
    let mut runs = Vec::new();
    for threads in ["1", "2"] {
        let dir = tmp.path().join(format!("t{threads}"));
        let (code, _, err) =
            ember(&["train", cfg.to_str().unwrap(), "--out", dir.to_str().unwrap(), "--threads", threads, "--quiet"]);
        assert_eq!(code, 0, "{err}");
        runs.push((common::checkpoint_weights(&dir), metrics_without_seconds(&dir)));
    }
    assert_eq!(runs[0], runs[1]);
}

#[test]
fn an_unwritable_run_directory_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), BASE);
    // A path below a regular file cannot be created, even by root.
    let blocker = tmp.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let out = blocker.join("run");
    let (code, _, err) = ember(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("{}: cannot create the run directory", out.display())), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn tensor_operations_use_every_core_unless_told_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), BASE);
    let threads = |extra: &[&str]| -> u64 {
        let dir = tmp.path().join(format!("r{}", extra.len()));
        let mut args = vec!["train", cfg.to_str().unwrap(), "--out", dir.to_str().unwrap(), "--epochs", "1", "--quiet"];
        args.extend_from_slice(extra);
        let out =
            Command::new(env!("CARGO_BIN_EXE_ember")).args(&args).env_remove("RAYON_NUM_THREADS").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value =
            serde_json::from_str(String::from_utf8(out.stdout).unwrap().lines().last().unwrap()).unwrap();
        v["threads"].as_u64().unwrap()
    };
    let cores = std::thread::available_parallelism().unwrap().get() as u64;
    assert_eq!(threads(&[]), cores);
    assert_eq!(threads(&["--threads", "1"]), 1);
}

#[test]
fn a_loss_that_blows_up_later_names_the_last_good_checkpoint_and_keeps_it() {
    let tmp = tempfile::tempdir().unwrap();
    // Epoch 1 trains normally (lr 0.01); the step schedule then multiplies lr by 1e30.
    let text =
        BASE.replace("name = \"adam\"\nlr = 0.01", "name = \"sgd\"\nlr = 0.01").replace("gamma = 0.9", "gamma = 1e30");
    let cfg = write_config(tmp.path(), &text);
    let run = tmp.path().join("r");
    let (code, _, err) = ember(&["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 1, "{err}");
    let first = run.join("checkpoints/epoch-0001.safetensors");
    assert!(err.contains("at epoch 2, step") && err.contains("training stopped"), "{err}");
    assert!(err.contains(&format!("The last good checkpoint is {}", first.display())), "{err}");
    assert_eq!(ember::train::checkpoint::epoch_files(&run.join("checkpoints")).unwrap().len(), 1);
    ember::train::checkpoint::read(&first).unwrap();
}

#[test]
fn malformed_toml_and_wrong_types_name_the_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &BASE.replace("[train]\nepochs = 3", "[train\nepochs = 3"));
    let (code, _, err) = ember(&["train", cfg.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 1);
    assert!(err.contains("run.toml: TOML parse error at line 24, column 7"), "{err}");
    let cfg = write_config(tmp.path(), &BASE.replace("batch_size = 32", "batch_size = \"32\""));
    let (code, _, err) = ember(&["train", cfg.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 1);
    assert!(err.contains("run.toml: TOML parse error at line 26, column 14"), "{err}");
    assert!(err.contains("invalid type: string \"32\", expected usize"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_full_disk_at_save_is_an_error_and_the_previous_checkpoint_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), BASE);
    let run = tmp.path().join("r");
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "--quiet"])
        .env("EMBER_FAILPOINT_CHECKPOINT_WRITE", "epoch-0002.safetensors:enospc")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let second = run.join("checkpoints/epoch-0002.safetensors");
    assert!(
        err.contains(&format!(
            "{}: cannot write: No space left on device (os error 28); the previous checkpoint is unchanged",
            second.display()
        )),
        "{err}"
    );
    let ckpts = run.join("checkpoints");
    assert_eq!(ember::train::checkpoint::epoch_files(&ckpts).unwrap().len(), 1);
    ember::train::checkpoint::read(&ckpts.join("epoch-0001.safetensors")).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&ckpts)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The run goes on from there once there is space.
    let (code, _, err) = ember(&["train", "--resume", run.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn damaged_checkpoints_say_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    Learner::new(config(""), Device::Cpu, &run, Reporter::Quiet).unwrap().fit().unwrap();
    let good = std::fs::read(ember::train::checkpoint::resolve(&run).unwrap()).unwrap();
    let bad = tmp.path().join("bad.safetensors");
    let inspect = |bytes: &[u8]| {
        std::fs::write(&bad, bytes).unwrap();
        let (code, _, err) = ember(&["inspect", bad.to_str().unwrap()]);
        assert_eq!(code, 1, "{err}");
        assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
        err
    };
    // A header longer than the file.
    let header = u64::from_le_bytes(good[..8].try_into().unwrap());
    let err = inspect(&good[..(8 + header as usize - 10)]);
    assert!(err.contains(&format!("the header claims {header} bytes but the file has {}", header - 10)), "{err}");
    // A flipped bit in the tensor data: the checksum catches it.
    let mut flipped = good.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x10;
    let err = inspect(&flipped);
    assert!(err.contains("bad.safetensors: corrupted: the tensor data's CRC-32 is"), "{err}");
    assert!(err.contains("use an earlier checkpoint"), "{err}");
    // A safetensors file that is not an Ember checkpoint cannot be resumed.
    let plain = tmp.path().join("plain.safetensors");
    let t = candle_core::Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap();
    candle_core::safetensors::save(&std::collections::HashMap::from([("w".to_string(), t)]), &plain).unwrap();
    let (code, _, err) = ember(&["train", "--resume", plain.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 1);
    assert!(err.contains("plain.safetensors: not an Ember checkpoint (no 'format' in its metadata)"), "{err}");
}
