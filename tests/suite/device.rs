//! `--device` on the CLI: devices this build lacks or this machine does not have are
//! clear errors at once (never a panic), `auto` falls back to the CPU, and
//! `EMBER_KERNELS` picks the device-generic path or is rejected by name.
//!
//! In CI these run twice: in the default build, and in the `--features cuda` build on a
//! machine without a GPU (with the stub libcuda.so.1 from `.ci/cuda-toolkit.sh`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const RUN: &str = r#"
seed = 1
[model]
sizes = [4, 8, 2]
[loss]
name = "cross_entropy"
[optimizer]
name = "sgd"
lr = 0.1
[data]
kind = "synthetic"
n_train = 64
n_eval = 16
features = 4
classes = 2
[train]
epochs = 1
batch_size = 16
"#;

fn ember(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String, Duration) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ember")).args(args).envs(env.iter().copied()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        start.elapsed(),
    )
}

fn train(dir: &Path, device: &str, env: &[(&str, &str)]) -> (i32, String, String, Duration) {
    let cfg = dir.join("run.toml");
    std::fs::write(&cfg, RUN).unwrap();
    let out = dir.join(format!("run-{}", device.replace(':', "-")));
    ember(&["train", cfg.to_str().unwrap(), "--device", device, "--quiet", "--out", out.to_str().unwrap()], env)
}

/// On a GPU machine (the smoke-test setting) `--device cuda` works: the no-GPU checks skip.
fn gpu_machine() -> bool {
    std::env::var("EMBER_TEST_CUDA").as_deref() == Ok("1")
}

#[test]
fn asking_for_cuda_without_it_fails_at_once_with_the_fix() {
    if gpu_machine() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err, took) = train(tmp.path(), "cuda", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    if cfg!(feature = "cuda") {
        // Built with CUDA, run without a GPU (CI: the stub driver library).
        assert!(err.contains("--device cuda: no usable CUDA device 0 (the CUDA driver says: "), "{err}");
        assert!(err.contains("R580") && err.contains("--device cpu"), "{err}");
        assert!(!err.contains("DriverError("), "the driver's code, not cudarc's Debug form: {err}");
    } else {
        assert!(
            err.contains("--device cuda: this ember was built without CUDA support; rebuild with `cargo build --release --features cuda`"),
            "{err}"
        );
        assert!(err.contains(".ci/cuda-toolkit.sh"), "{err}");
    }
    assert!(!err.contains("stack backtrace"), "{err}");
}

#[test]
fn asking_for_metal_without_it_fails_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err, _) = train(tmp.path(), "metal", &[]);
    assert_eq!(code, 1, "{err}");
    if cfg!(feature = "metal") {
        assert!(err.contains("--device metal: no usable Metal device 0"), "{err}");
    } else {
        assert!(err.contains("--device metal: this ember was built without Metal support; rebuild on macOS"), "{err}");
    }
}

#[test]
fn malformed_device_names_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err, _) = train(tmp.path(), "tpu", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("--device tpu: unknown device; use cpu, cuda[:N], metal[:N] or auto"), "{err}");
    let (code, _, err, _) = train(tmp.path(), "cuda:first", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("--device cuda:first: the index after ':' must be a number, e.g. cuda:0"), "{err}");
}

#[test]
fn auto_trains_on_the_best_device_there_is() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err, _) = train(tmp.path(), "auto", &[]);
    assert_eq!(code, 0, "{err}");
    if cfg!(feature = "cuda") && !gpu_machine() {
        // CI's CUDA build has no GPU: auto says why it fell back.
        assert!(err.contains("note: --device auto: no usable CUDA device ("), "{err}");
    }
    assert!(tmp.path().join("run-auto/metrics.csv").exists());
}

#[test]
fn the_predict_bench_and_parity_commands_take_device_too() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        vec!["predict", "w.safetensors", "--input", "x.safetensors", "--out", "y.safetensors", "--device", "tpu"],
        vec!["bench", "train", "--device", "tpu"],
        vec!["parity", "tests/parity/activations.json", "--device", "tpu"],
    ] {
        let (code, _, err, _) = ember(&args, &[]);
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains("--device tpu: unknown device"), "{args:?}: {err}");
    }
    drop(tmp);
}

#[test]
fn ember_kernels_selects_the_composed_path_or_is_rejected_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err, _) = train(tmp.path(), "cpu", &[("EMBER_KERNELS", "composed")]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err, _) = ember(
        &["parity", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/parity/losses.json")],
        &[("EMBER_KERNELS", "composed")],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    let (code, _, err, _) = train(tmp.path(), "cpu", &[("EMBER_KERNELS", "fast")]);
    assert_eq!(code, 2);
    assert!(err.contains("EMBER_KERNELS=\"fast\" is not a kernel choice; use auto"), "{err}");
}
