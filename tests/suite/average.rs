//! Weight averaging (`[train.average]`, PyTorch's `AveragedModel`) in the Learner: the
//! average follows the trained weights step by step or epoch by epoch, evaluation uses
//! it, checkpoints hold it, a resumed run continues it bit for bit, and `ember export
//! --averaged` writes it. (Its numerics against `torch.optim.swa_utils` are the parity
//! file tests/parity/average.json.)

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use ember::nn::{AveragedWeights, Averaging};
use ember::train::{checkpoint, Learner, Reporter, RunConfig};

const BASE: &str = r#"
seed = 3
[model]
sizes = [6, 12, 3]
[loss]
name = "cross_entropy"
[optimizer]
name = "sgd"
lr = 0.2
momentum = 0.9
[data]
kind = "synthetic"
n_train = 120
n_eval = 40
features = 6
classes = 3
[train]
epochs = 3
batch_size = 30
keep_last = 10
"#;

fn config(average: &str) -> RunConfig {
    RunConfig::from_toml(&format!("{BASE}\n[train.average]\n{average}"), "test.toml").unwrap()
}

fn section(file: &Path, prefix: &str) -> Vec<(String, Vec<f32>)> {
    let ckpt = checkpoint::read(file).unwrap();
    let mut v: Vec<_> = ckpt
        .section(prefix)
        .into_iter()
        .map(|(k, t)| (k, t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn epoch_file(run: &Path, epoch: usize) -> std::path::PathBuf {
    run.join("checkpoints").join(format!("epoch-{epoch:04}.safetensors"))
}

fn train(cfg: RunConfig, run: &Path) {
    Learner::new(cfg, Device::Cpu, run, Reporter::Quiet).unwrap().fit().unwrap();
}

#[test]
fn an_epoch_average_is_the_average_of_the_epochs_weights_from_start_epoch_on() {
    let tmp = tempfile::tempdir().unwrap();
    for (avg, want) in [
        ("kind = \"swa\"\nstart_epoch = 1", Averaging::Swa),
        ("kind = \"ema\"\ndecay = 0.6\ninterval = \"epoch\"\nstart_epoch = 1", Averaging::Ema { decay: 0.6 }),
    ] {
        let run = tmp.path().join(want.name());
        train(config(avg), &run);
        // Epoch 1 trains without averaging: its checkpoint holds no average yet.
        assert!(section(&epoch_file(&run, 1), "average/").is_empty());
        let mut expected = AveragedWeights::new(want, false).unwrap();
        for epoch in [2, 3] {
            let ckpt = checkpoint::read(&epoch_file(&run, epoch)).unwrap();
            let weights: Vec<(String, Tensor)> = ckpt.section("model/").into_iter().collect();
            let mut weights = weights;
            weights.sort_by(|a, b| a.0.cmp(&b.0));
            expected.update_from(&weights, &[]).unwrap();
            let mut want: Vec<(String, Vec<f32>)> = expected
                .tensors()
                .iter()
                .map(|(k, t)| (k.clone(), t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
                .collect();
            want.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(section(&epoch_file(&run, epoch), "average/"), want, "{} at epoch {epoch}", want_name(&run));
            let meta = checkpoint::read_metadata(&epoch_file(&run, epoch)).unwrap();
            assert_eq!(meta.get("average").map(String::as_str), Some(expected.averaging().name()));
        }
        // SWA's mean of two: not either epoch's weights.
        assert_ne!(section(&epoch_file(&run, 3), "average/"), section(&epoch_file(&run, 3), "model/"));
    }
}

fn ember(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ember")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn want_name(run: &Path) -> String {
    run.file_name().unwrap().to_string_lossy().to_string()
}

#[test]
fn evaluation_uses_the_averaged_weights_unless_told_not_to() {
    let tmp = tempfile::tempdir().unwrap();
    // decay = 1: the average stays the weights after the first epoch, so every epoch
    // evaluates those weights while training goes on.
    let frozen = "kind = \"ema\"\ndecay = 1.0\ninterval = \"epoch\"";
    train(config(frozen), &tmp.path().join("a"));
    train(config(&format!("{frozen}\neval = false")), &tmp.path().join("b"));
    let rows = |run: &str| -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(tmp.path().join(run).join("metrics.csv")).unwrap();
        text.lines().skip(1).map(|l| l.split(',').map(String::from).collect()).collect()
    };
    let (a, b) = (rows("a"), rows("b"));
    // Columns: epoch, train_loss, train_acc, eval_loss, eval_acc, ...
    assert_eq!(a[0][3], b[0][3], "after epoch 1 the average is the trained weights");
    assert_eq!(a[1][3], a[0][3]);
    assert_eq!(a[2][3], a[0][3]);
    assert_ne!(b[2][3], b[0][3], "without eval = true, evaluation follows the trained weights");
    assert_eq!(a[2][1], b[2][1], "averaging does not change training");
}

#[test]
fn a_step_ema_run_resumes_bit_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let avg = "kind = \"ema\"\ndecay = 0.9";
    train(config(avg), &a);
    let mut first = config(avg);
    first.train.epochs = 1;
    train(first, &b);
    let mut resumed = Learner::resume(&b, Device::Cpu, None, Some(3), Reporter::Quiet).unwrap();
    resumed.fit().unwrap();
    let (fa, fb) = (epoch_file(&a, 3), epoch_file(&b, 3));
    assert!(!section(&fa, "average/").is_empty());
    assert_eq!(section(&fa, "average/"), section(&fb, "average/"));
    assert_eq!(section(&fa, "averaging/"), section(&fb, "averaging/"));
    assert_eq!(section(&fa, "averaging/")[0].1, [12.0], "one update per step: 4 batches x 3 epochs");
    assert_eq!(crate::common::metrics_without_seconds(&a), crate::common::metrics_without_seconds(&b));
}

#[test]
fn export_averaged_writes_the_average_and_says_when_there_is_none() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train(config("kind = \"swa\""), &run);
    let out = tmp.path().join("avg.safetensors");
    let (code, text, err) = ember(&["export", run.to_str().unwrap(), "--out", out.to_str().unwrap(), "--averaged"]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("(averaged: swa)"), "{text}");
    let exported: HashMap<String, Tensor> = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    let ckpt = checkpoint::read(&checkpoint::resolve(&run).unwrap()).unwrap();
    let average = ckpt.section("average/");
    assert_eq!(exported.len(), average.len());
    for (k, t) in &average {
        assert_eq!(
            exported[k].flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }
    // Without --averaged: the trained weights, and a hint.
    let (code, text, _) = ember(&["export", run.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(text.contains("pass --averaged"), "{text}");

    let plain = tmp.path().join("plain");
    train(RunConfig::from_toml(BASE, "test.toml").unwrap(), &plain);
    let (code, _, err) = ember(&["export", plain.to_str().unwrap(), "--out", out.to_str().unwrap(), "--averaged"]);
    assert_eq!(code, 1);
    assert!(err.contains("holds no averaged weights") && err.contains("without --averaged"), "{err}");
}

#[test]
fn averaging_settings_are_checked() {
    for (avg, want) in [
        ("kind = \"swa\"\ndecay = 0.9", "train.average.decay"),
        ("kind = \"ema\"\ndecay = 1.5", "must be in [0, 1]"),
        ("kind = \"mean\"", "\"mean\" is invalid"),
        ("kind = \"ema\"\ndecya = 0.9", "decya"),
        ("kind = \"ema\"\ninterval = \"batch\"", "batch"),
    ] {
        let e = RunConfig::from_toml(&format!("{BASE}\n[train.average]\n{avg}"), "test.toml").unwrap_err().to_string();
        assert!(e.contains(want), "{avg}: {e}");
    }
}

/// The run's last evaluation, and the evaluation of a fresh run that starts from the
/// weights `ember export --averaged` wrote: the same numbers.
fn evaluation_matches_the_exported_average(optimizer: &str, average: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let text = BASE.replace("name = \"sgd\"\nlr = 0.2\nmomentum = 0.9", optimizer);
    let cfg = RunConfig::from_toml(&format!("{text}\n{average}"), "test.toml").unwrap();
    let mut learner = Learner::new(cfg, Device::Cpu, &run, Reporter::Quiet).unwrap();
    learner.fit().unwrap();
    let last = learner.progress().history.last().unwrap().clone();
    drop(learner);
    let out = tmp.path().join("avg.safetensors");
    let (code, _, err) = ember(&["export", run.to_str().unwrap(), "--out", out.to_str().unwrap(), "--averaged"]);
    assert_eq!(code, 0, "{err}");
    let plain = BASE.replace("keep_last = 10", &format!("keep_last = 10\ninit_from = {:?}", out.to_str().unwrap()));
    // A fresh run from the exported weights (plain SGD: evaluated as they are).
    let fresh = Learner::new(
        RunConfig::from_toml(&plain, "test.toml").unwrap(),
        Device::Cpu,
        tmp.path().join("b"),
        Reporter::Quiet,
    )
    .unwrap();
    let ev = fresh.evaluate().unwrap();
    assert_eq!((ev.loss, ev.acc), (last.eval_loss, last.eval_acc), "{optimizer} {average}");
    // And not the trained weights' evaluation.
    let trained = section(&checkpoint::resolve(&run).unwrap(), "model/");
    assert_ne!(trained, section(&checkpoint::resolve(&run).unwrap(), "average/"));
}

#[test]
fn an_ema_run_evaluates_its_average() {
    evaluation_matches_the_exported_average(
        "name = \"sgd\"\nlr = 0.2\nmomentum = 0.9",
        "[train.average]\nkind = \"ema\"\ndecay = 0.8",
    );
}

#[test]
fn a_schedule_free_run_evaluates_at_its_averaged_point() {
    evaluation_matches_the_exported_average("name = \"schedule_free_adamw\"\nlr = 0.02", "");
    evaluation_matches_the_exported_average("name = \"schedule_free_sgd\"\nlr = 0.5", "");
}

/// `update_bn = true` against PyTorch's `torch.optim.swa_utils.update_bn` (fixture made by
/// tests/fixtures/update_bn/gen_update_bn.py): with lr = 0 the average is the initial
/// weights, and its batch norm statistics are recomputed over the training set in
/// batches of 4, 4 and 2, from reset statistics (the file's are not the defaults).
#[test]
fn update_bn_recomputes_the_averages_batch_norm_statistics_as_pytorch() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/update_bn");
    let file = |name: &str| format!("{:?}", dir.join(name).to_str().unwrap());
    let text = format!(
        r#"
seed = 1
[[model.layers]]
name = "linear"
out_features = 5
[[model.layers]]
name = "batch_norm1d"
[[model.layers]]
name = "relu"
[[model.layers]]
name = "linear"
out_features = 3
[loss]
name = "cross_entropy"
[optimizer]
name = "sgd"
lr = 0.0
[data]
kind = "safetensors"
train = {}
test = {}
[train]
epochs = 1
batch_size = 4
shuffle = false
init_from = {}
[train.average]
kind = "swa"
update_bn = true
"#,
        file("train.safetensors"),
        file("test.safetensors"),
        file("weights.safetensors")
    );
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train(RunConfig::from_toml(&text, "bn.toml").unwrap(), &run);
    let ckpt = checkpoint::read(&checkpoint::resolve(&run).unwrap()).unwrap();
    let expected = candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(expected.len(), 3);
    for (name, want) in &expected {
        let got = &ckpt.tensors[&format!("average/{name}")];
        let (got, want) = (
            got.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            want.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap(),
        );
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{name}: {got:?} vs PyTorch {want:?}");
        }
    }
    // The trained model keeps its own statistics (one epoch of momentum updates).
    let trained = ckpt.tensors["model/1.num_batches_tracked"].to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap();
    assert_eq!(trained, 45.0);

    let both = text.replace("update_bn = true", "update_bn = true\nuse_buffers = true");
    let e = RunConfig::from_toml(&both, "bn.toml").unwrap_err().to_string();
    assert!(e.contains("choose one"), "{e}");
}
