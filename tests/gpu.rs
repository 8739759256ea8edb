//! GPU smoke tests, run only with `EMBER_TEST_CUDA=1` on a machine with a CUDA GPU and a
//! `--features cuda` build (elsewhere each test says it was skipped and passes):
//!
//! ```text
//! source .ci/cuda-toolkit.sh        # or a system CUDA 13 toolkit
//! EMBER_TEST_CUDA=1 cargo test --release --features cuda --test gpu -- --nocapture --test-threads 1
//! ```
//!
//! - every activation, loss, optimizer, regularizer and layer parity case runs on CUDA against
//!   the PyTorch fixture (tolerances x10 for f32: the GPU's exp, log and tanh are other
//!   implementations), wherever the same case passes on the CPU;
//! - one epoch of the main job (the Fashion-MNIST dropout MLP) and of the CNN
//!   (`fashion_mnist_cnn.toml`: convolutions, batch norm, pooling on the composed path)
//!   on CUDA and on the CPU, printing examples/s for both, with accuracies that agree;
//! - a checkpoint saved on CUDA resumes on the CPU and the reverse, ending where an
//!   all-CPU run ends.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::Device;
use ember_parity::{load, run_case_on, Outcome};
use serde_json::Value;

fn cuda() -> Option<Device> {
    if std::env::var("EMBER_TEST_CUDA").as_deref() != Ok("1") {
        eprintln!("skipped: set EMBER_TEST_CUDA=1 (with a GPU and a --features cuda build) to run the GPU smoke tests");
        return None;
    }
    Some(ember::device::parse("cuda").expect("EMBER_TEST_CUDA=1, but there is no usable CUDA device"))
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn parity_cases_pass_on_cuda_where_they_pass_on_the_cpu() {
    let Some(gpu) = cuda() else { return };
    let mut failures = Vec::new();
    let (mut ran, mut skipped) = (0, 0);
    for name in [
        "activations",
        "losses",
        "losses_more",
        "losses_multi",
        "losses_ctc",
        "optimizers",
        "optimizers_more",
        "optimizers_adafactor",
        "optimizers_ref",
        "optimizers_lion",
        "optimizers_schedule_free",
        "optimizers_lbfgs",
        "losses_broadcast",
        "average",
        "regularizers",
        "layers",
    ] {
        let file = load(&root().join(format!("tests/parity/{name}.json"))).unwrap();
        for (i, case) in file.cases.iter().enumerate() {
            if !run_case_on(case, i, &Device::Cpu).passed() {
                skipped += 1;
                continue;
            }
            let mut relaxed = case.clone();
            if relaxed.get("dtype").and_then(Value::as_str).unwrap_or("f32") == "f32" {
                let rtol = relaxed.get("rtol").and_then(Value::as_f64).unwrap_or(1e-5);
                let atol = relaxed.get("atol").and_then(Value::as_f64).unwrap_or(1e-6);
                relaxed["rtol"] = (rtol * 10.0).into();
                relaxed["atol"] = (atol * 10.0).into();
            }
            ran += 1;
            if let Outcome::Fail { reason } = run_case_on(&relaxed, i, &gpu).outcome {
                failures.push(format!("{name}: {} {reason}", case["id"]));
            }
        }
    }
    eprintln!("cuda parity: {ran} cases run, {} failed, {skipped} skipped (failing on the CPU)", failures.len());
    assert!(ran > 200, "only {ran} cases ran");
    assert!(failures.is_empty(), "{} cases failed on CUDA:\n{}", failures.len(), failures.join("\n"));
}

fn ember(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ember")).args(args).env("HF_HUB_OFFLINE", "1").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ember {args:?} failed:\n{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().expect("a summary line")).unwrap()
}

#[test]
fn one_epoch_of_the_main_job_on_cuda_agrees_with_the_cpu() {
    if cuda().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for job in ["fashion_mnist_dropout", "fashion_mnist_cnn"] {
        one_epoch(tmp.path(), job);
    }
}

fn one_epoch(tmp: &Path, job: &str) {
    let config = root().join(format!("examples/configs/{job}.toml"));
    let mut data_dir = Vec::new();
    if let Ok(dir) = std::env::var("EMBER_TEST_DATA_DIR") {
        data_dir = vec!["--data-dir".to_string(), dir];
    }
    let run = |device: &str| {
        let out = tmp.join(format!("{job}-{device}"));
        let mut args = vec!["train", config.to_str().unwrap(), "--epochs", "1", "--quiet", "--device", device];
        args.extend(["--out", out.to_str().unwrap()]);
        args.extend(data_dir.iter().map(String::as_str));
        ember(&args)
    };
    let gpu = run("cuda");
    let cpu = run("cpu");
    let examples = match gpu["data"].as_str().unwrap_or("") {
        d if d.contains("embedded") => 2000.0,
        _ => 60000.0,
    };
    for (name, s) in [("cuda", &gpu), ("cpu", &cpu)] {
        let secs = s["seconds_per_epoch"].as_f64().unwrap();
        eprintln!(
            "{job}, 1 epoch on {name}: {secs:.3} s, {:.0} examples/s, eval_acc {}, data {}",
            examples / secs,
            s["eval_acc"],
            s["data"]
        );
    }
    let (a, b) = (gpu["eval_acc"].as_f64().unwrap(), cpu["eval_acc"].as_f64().unwrap());
    assert!((a - b).abs() < 0.02, "eval accuracy on CUDA {a} vs CPU {b}");
}

const RUN: &str = r#"
seed = 5
[model]
sizes = [8, 32, 3]
dropout = [0.2]
[loss]
name = "cross_entropy"
[optimizer]
# SGD with momentum: the resumed run carries optimizer state across devices, and (unlike
# Adam, whose step size does not shrink with the gradient) rounding differences between
# devices stay as small as the gradients' own.
name = "sgd"
lr = 0.1
momentum = 0.9
[data]
kind = "synthetic"
n_train = 256
n_eval = 64
features = 8
classes = 3
[train]
epochs = 2
batch_size = 32
"#;

#[test]
fn checkpoints_move_between_cuda_and_the_cpu() {
    if cuda().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cfg: PathBuf = tmp.path().join("run.toml");
    std::fs::write(&cfg, RUN).unwrap();
    let path = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    // The reference: three epochs on the CPU.
    ember(&["train", cfg.to_str().unwrap(), "--epochs", "3", "--quiet", "--device", "cpu", "--out", &path("cpu")]);
    // Two epochs on one device, the third on the other.
    for (first, then) in [("cuda", "cpu"), ("cpu", "cuda")] {
        let dir = path(&format!("{first}-{then}"));
        ember(&["train", cfg.to_str().unwrap(), "--quiet", "--device", first, "--out", &dir]);
        let s = ember(&["train", "--resume", &dir, "--epochs", "3", "--quiet", "--device", then]);
        assert_eq!(s["epochs"], 3);
        let (got, want) =
            (common::checkpoint_weights(Path::new(&dir)), common::checkpoint_weights(&tmp.path().join("cpu")));
        assert_eq!(got.len(), want.len());
        for ((n, a), (_, b)) in got.iter().zip(&want) {
            let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-3, "{first} then {then}: {n} differs from the all-CPU run by {worst}");
        }
        eprintln!("{first} -> {then}: resumed to epoch 3, eval_loss {}", s["eval_loss"]);
    }
}
