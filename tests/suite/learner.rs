//! The Learner and `ember train`: bit-exact resume (also after SIGKILL), metrics.csv and
//! plots, checkpoints, config errors with key paths, activation/loss pairing warnings,
//! NaN guard, early stopping, gradient accumulation, export / inspect / predict.

use crate::common;

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
    assert_eq!(common::metrics_without_seconds(&a), common::metrics_without_seconds(&b));
    assert_eq!(common::metrics_without_seconds(&a).len(), 4);
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
    assert_eq!(common::metrics_without_seconds(&a), common::metrics_without_seconds(&b));
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
    common::wait_for_checkpoints(&ckpts, 2);
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
    assert_eq!(common::metrics_without_seconds(&dir), common::metrics_without_seconds(&straight));
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
    assert_eq!(common::metrics_without_seconds(&dir), common::metrics_without_seconds(&straight));
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

    let learner_err = |text: &str| {
        let c = RunConfig::from_toml(text, "run.toml").unwrap();
        Learner::new(c, Device::Cpu, tempfile::tempdir().unwrap().path(), Reporter::Quiet).err().unwrap().to_string()
    };
    // A watched metric must be a column the run records.
    assert_eq!(
        learner_err(&edited("train", "early_stopping = { metric = \"val_acc\", patience = 2 }")),
        "train.early_stopping.metric = \"val_acc\" is invalid: must be one of train_loss, eval_loss, train_acc, eval_acc; list metrics in train.metrics (e.g. [\"f1:average=macro\"]) to watch them as eval_NAME"
    );
    assert_eq!(
        learner_err(&edited("train", "metrics = [\"f1:average=macro\", \"mae\"]\nbest_metric = \"eval_f1[average=micro]\"")),
        "train.best_metric = \"eval_f1[average=micro]\" is invalid: must be one of train_loss, eval_loss, train_acc, eval_acc, eval_f1[average=macro], eval_mae"
    );
    assert!(learner_err(&edited("train", "metrics = [\"f2\"]")).starts_with("train.metrics[0]: unknown metric 'f2'"));
    assert_eq!(
        learner_err(&BASE.replace("name = \"adam\"", "name = \"adamm\"")),
        "optimizer: unknown optimizer 'adamm'; did you mean 'adam'? Known optimizers: adadelta, adafactor, adagrad, adam, adamax, adamw, adan, asgd, lamb, lars, lbfgs, lion, muon, nadam, radam, rmsprop, rprop, schedule_free_adamw, schedule_free_sgd, sgd. An optimizer from a crate of its own is registered only in a program that names that crate: add `use the_plugin_crate as _;`"
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
        "the synthetic training set: the data has labels 0..=2 but the model outputs 2 classes; set the last model.sizes entry to 3 (or fix the labels)"
    );
    assert!(learner_err(&BASE.replace("name = \"step\"", "name = \"steplr\""))
        .starts_with("scheduler: unknown scheduler 'steplr'; did you mean 'step'?"));
    // The loss declares its targets (no loss names in the loop): mse takes floats.
    let mse = BASE.replace("name = \"cross_entropy\"", "name = \"mse\"");
    assert_eq!(
        learner_err(&mse),
        "loss 'mse' compares the output with float targets of its shape, but the synthetic training set holds class indices; use cross_entropy (or nll after log_softmax) for class labels"
    );
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
        mode: Some("min".into()),
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

/// `train.blocks`: each block's mean loss weighted by its rows, the penalty once, the
/// blocks' gradients summed: in f64 the run is the unblocked run up to rounding, with
/// dropout (masks drawn for the whole batch), an L2 penalty, accumulation and a last
/// batch of 8 rows (blocks of 2).
#[test]
fn blocks_compute_the_gradient_of_the_whole_batch() {
    let run = |blocks: Option<usize>, accumulate: usize| {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = config("[[regularizers]]\nname = \"l2\"\nlambda = 1e-3\n");
        c.train.dtype = ember::train::config::Precision::F64;
        c.train.blocks = blocks;
        c.train.accumulate = accumulate;
        Learner::new(c, Device::Cpu, tmp.path(), Reporter::Quiet).unwrap().fit().unwrap();
        (common::checkpoint_weights(tmp.path()), common::metrics_without_seconds(tmp.path()))
    };
    for accumulate in [1, 2] {
        let (whole, whole_metrics) = run(None, accumulate);
        for blocks in [1, 4] {
            let (blocked, metrics) = run(Some(blocks), accumulate);
            for ((n, a), (_, b)) in whole.iter().zip(&blocked) {
                for (x, y) in a.iter().zip(b) {
                    assert!(
                        (x - y).abs() <= 1e-9 * (1.0 + x.abs()),
                        "blocks {blocks}, accumulate {accumulate}: {n}: {x} vs {y}"
                    );
                }
            }
            assert_eq!(metrics.len(), whole_metrics.len());
            for (a, b) in whole_metrics.iter().zip(&metrics).skip(1) {
                for (x, y) in a.split(',').zip(b.split(',')) {
                    let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
                    assert!((x - y).abs() <= 1e-9 * (1.0 + x.abs()), "blocks {blocks}: metrics {a} vs {b}");
                }
            }
        }
    }
}

#[test]
fn blocks_must_be_a_power_of_two_within_the_batch() {
    let err = |text: &str| RunConfig::from_toml(text, "run.toml").map(|_| ()).unwrap_err().to_string();
    assert_eq!(
        err(&edited("train", "blocks = 3")),
        "run.toml: train.blocks = 3 is invalid: must be a power of two (1, 2, 4, 8, ...): blocks are summed pairwise, and every power-of-two number of ranks up to it takes whole subtrees"
    );
    let e = err(&edited("train", "blocks = 64"));
    assert!(e.contains("train.blocks = 64") && e.contains("train.batch_size = 32") && e.contains("at most 32"), "{e}");
    let mut c = config("");
    c.optimizer.name = "lbfgs".into();
    c.optimizer.config.clear();
    c.optimizer.groups.clear();
    c.scheduler = None;
    c.train.blocks = Some(2);
    let e =
        Learner::new(c, Device::Cpu, tempfile::tempdir().unwrap().path(), Reporter::Quiet).err().unwrap().to_string();
    assert!(e.contains("lbfgs") && e.contains("train.blocks > 1"), "{e}");
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
    for phase in ["data", "forward", "loss", "backward", "optimizer", "eval", "output", "logging"] {
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
        runs.push((common::checkpoint_weights(&dir), common::metrics_without_seconds(&dir)));
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

// ---- Run directories, locks, resume edge cases (RELIABILITY.md, "Run directories") ----

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| r.map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn epochs_of(run: &Path) -> Vec<usize> {
    ember::train::checkpoint::epoch_files(&run.join("checkpoints")).unwrap().into_iter().map(|(e, _)| e).collect()
}

fn ember_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ember")).args(args).current_dir(dir).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn a_new_run_never_overwrites_an_existing_one() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &edited("train", "keep_last = 10"));
    let run = tmp.path().join("run");
    let r = run.to_str().unwrap();
    let (code, _, err) = ember(&["train", cfg.to_str().unwrap(), "--out", r, "--epochs", "3", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let before = common::checkpoint_weights(&run);
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();

    // Same directory, edited run: refused, nothing touched.
    let (code, _, err) = ember(&["train", cfg.to_str().unwrap(), "--out", r, "--epochs", "1", "--quiet"]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("{r}: already holds a run (checkpoints up to epoch 3)")), "{err}");
    assert!(err.contains(&format!("ember train --resume {r}")) && err.contains("--overwrite"), "{err}");
    assert_eq!(epochs_of(&run), [1, 2, 3]);
    assert_eq!(std::fs::read_to_string(run.join("metrics.csv")).unwrap(), metrics);
    assert_eq!(common::checkpoint_weights(&run), before);

    // --overwrite: the old run's files are gone, the new run's are whole, the summary
    // names a file that exists; other files in the directory stay.
    std::fs::write(run.join("notes.txt"), "mine").unwrap();
    let (code, out, err) =
        ember(&["train", cfg.to_str().unwrap(), "--out", r, "--epochs", "1", "--overwrite", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(epochs_of(&run), [1]);
    assert_eq!(std::fs::read_to_string(run.join("metrics.csv")).unwrap().lines().count(), 2);
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(Path::new(summary["checkpoint"].as_str().unwrap()).is_file(), "{summary}");
    assert_eq!(std::fs::read_to_string(run.join("notes.txt")).unwrap(), "mine");

    // Without --out: runs/NAME, then runs/NAME-2, each run whole.
    let (code, out1, err) = ember_in(tmp.path(), &["train", "run.toml", "--epochs", "2", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let (code, out2, err) = ember_in(tmp.path(), &["train", "run.toml", "--epochs", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("note: runs/run holds an earlier run; this run goes to runs/run-2"), "{err}");
    let out_of = |o: &str| serde_json::from_str::<serde_json::Value>(o.lines().last().unwrap()).unwrap()["out"].clone();
    assert_eq!((out_of(&out1), out_of(&out2)), ("runs/run".into(), "runs/run-2".into()));
    assert_eq!(epochs_of(&tmp.path().join("runs/run")), [1, 2]);
    assert_eq!(epochs_of(&tmp.path().join("runs/run-2")), [1]);
}

#[test]
fn a_second_trainer_is_refused_and_a_killed_trainers_lock_is_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let text = edited("data", "n_train = 20000").replace("epochs = 3", "epochs = 400");
    let cfg = write_config(tmp.path(), &text);
    let dir = tmp.path().join("run");
    let d = dir.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["train", cfg.to_str().unwrap(), "--out", d, "--quiet"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while epochs_of(&dir).is_empty() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let holder = format!("in use by process {}", child.id());
    // A new run and a resume of the same directory are both refused while it trains.
    let (code, _, err) = ember(&["train", cfg.to_str().unwrap(), "--out", d, "--quiet"]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("{d}: {holder}")), "{err}");
    let (code, _, err) = ember(&["train", "--resume", d, "--epochs", "500", "--quiet"]);
    assert_eq!(code, 1);
    assert!(err.contains(&holder), "{err}");
    child.kill().unwrap(); // SIGKILL: the lock dies with the process
    child.wait().unwrap();
    let target = (epochs_of(&dir).last().unwrap() + 1).to_string();
    let (code, _, err) = ember(&["train", "--resume", d, "--epochs", &target]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("was last held by process {}, which ended without releasing it", child.id())),
        "{err}"
    );
    // A process that ended normally leaves nothing to take over.
    let (code, _, err) =
        ember(&["train", "--resume", d, "--epochs", &(target.parse::<usize>().unwrap() + 1).to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("was last held"), "{err}");
}

#[test]
fn an_empty_evaluation_set_warns_once_and_its_nan_metrics_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let text = edited("data", "n_eval = 0")
        .replace("name = \"step\"\nstep_size = 1\ngamma = 0.9", "name = \"reduce_on_plateau\"\npatience = 0");
    let cfg = write_config(tmp.path(), &text);
    let run = tmp.path().join("run");
    let r = run.to_str().unwrap();
    let (code, _, err) = ember(&["train", cfg.to_str().unwrap(), "--out", r, "--epochs", "2"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err.matches("warning: the evaluation set is empty: eval_loss and eval_acc are not computed; best.safetensors follows train_loss; a metric-driven scheduler watches train_loss").count(),
        1,
        "{err}"
    );
    assert!(run.join("checkpoints/best.safetensors").is_file());
    // NaN metrics round-trip through the checkpoint: the run resumes.
    let (code, out, err) = ember(&["train", "--resume", r, "--epochs", "3", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"epochs\":3") && out.contains("\"eval_loss\":null"), "{out}");
    let progress = ember::train::checkpoint::read(&ember::train::checkpoint::resolve(&run).unwrap()).unwrap();
    let p: ember::train::Progress = serde_json::from_str(progress.meta("progress").unwrap()).unwrap();
    assert!(p.history.iter().all(|h| h.eval_loss.is_nan() && h.train_loss.is_finite()));
    // An evaluation metric asked for by name is an error at start.
    let asks =
        write_config(tmp.path(), &format!("{text}\n").replace("[train]\n", "[train]\nbest_metric = \"eval_acc\"\n"));
    let (code, _, err) = ember(&["train", asks.to_str().unwrap(), "--out", tmp.path().join("x").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("train.best_metric = \"eval_acc\", but the evaluation set is empty"), "{err}");
}

#[test]
fn progress_keeps_non_finite_numbers_and_reads_older_nulls() {
    let rec = |x: f64| ember::train::EpochRecord {
        epoch: 1,
        train_loss: x,
        train_acc: f64::NAN,
        eval_loss: f64::NEG_INFINITY,
        eval_acc: 0.5,
        metrics: vec![("f1".into(), f64::NAN), ("r2".into(), f64::NEG_INFINITY), ("mae".into(), x)],
        lr: 0.1,
        seconds: 1.0,
    };
    let p =
        ember::train::Progress { history: vec![rec(f64::INFINITY)], best: Some(f64::INFINITY), ..Default::default() };
    let back: ember::train::Progress = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    let h = &back.history[0];
    assert!(h.train_loss == f64::INFINITY && h.train_acc.is_nan() && h.eval_loss == f64::NEG_INFINITY);
    // Metrics keep their order and their non-finite values.
    let labels: Vec<&str> = h.metrics.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["f1", "r2", "mae"]);
    assert!(h.metrics[0].1.is_nan() && h.metrics[1].1 == f64::NEG_INFINITY && h.metrics[2].1 == f64::INFINITY);
    assert_eq!(back.best, Some(f64::INFINITY));
    let old = r#"{"epoch":1,"step":7,"batches":7,"history":[{"epoch":1,"train_loss":1.0,"train_acc":null,"eval_loss":null,"eval_acc":null,"lr":0.1,"seconds":0.5}],"best":null,"bad_epochs":0,"stopped_early":false}"#;
    let back: ember::train::Progress = serde_json::from_str(old).unwrap();
    assert!(back.history[0].eval_loss.is_nan() && back.best.is_none() && back.best_epoch.is_none());
}

#[test]
fn export_never_replaces_a_checkpoint_unasked_and_resume_skips_one_that_was() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &edited("train", "keep_last = 5"));
    let (run, straight) = (tmp.path().join("run"), tmp.path().join("straight"));
    let r = run.to_str().unwrap();
    for (dir, epochs) in [(&run, "3"), (&straight, "4")] {
        let (code, _, err) =
            ember(&["train", cfg.to_str().unwrap(), "--out", dir.to_str().unwrap(), "--epochs", epochs, "--quiet"]);
        assert_eq!(code, 0, "{err}");
    }
    let e = |n: usize| run.join(format!("checkpoints/epoch-{n:04}.safetensors"));
    let (e1, e3) = (e(1), e(3));
    let original = std::fs::read(&e3).unwrap();
    let (code, _, err) = ember(&["export", r, "--out", e3.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("is the checkpoint being exported"), "{err}");
    let (code, _, err) = ember(&["export", e1.to_str().unwrap(), "--out", e3.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("--out {} is an Ember checkpoint (epoch 3)", e3.display())), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&e3).unwrap(), original);
    // Forced: epoch 3 becomes bare weights. A resume skips it, naming it, and continues
    // from epoch 2 to the weights of an uninterrupted 4-epoch run.
    let (code, _, err) = ember(&["export", e1.to_str().unwrap(), "--out", e3.to_str().unwrap(), "--force"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = ember(&["train", "--resume", r, "--epochs", "4"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("warning: skipped {}: not an Ember checkpoint", e3.display())), "{err}");
    assert!(err.contains(&format!("resuming from {}", e(2).display())), "{err}");
    assert!(err.contains("warning: resuming from epoch 2 while") && err.contains("epochs 3 to 3"), "{err}");
    assert_eq!(common::checkpoint_weights(&run), common::checkpoint_weights(&straight));
}

#[test]
fn a_crash_between_the_epoch_checkpoint_and_best_is_repaired_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &edited("train", "best_metric = \"train_loss\""));
    let run = tmp.path().join("run");
    let r = run.to_str().unwrap();
    let (code, _, err) = ember(&["train", cfg.to_str().unwrap(), "--out", r, "--epochs", "1", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    // Epoch 2 improves train_loss; writing best.safetensors fails after epoch-0002 is saved.
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["train", "--resume", r, "--epochs", "2", "--quiet"])
        .env("EMBER_FAILPOINT_CHECKPOINT_WRITE", "best.safetensors:enospc")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let best = run.join("checkpoints/best.safetensors");
    let epoch_of = |p: &Path| ember::train::checkpoint::read_metadata(p).unwrap()["epoch"].clone();
    assert_eq!(epoch_of(&best), "1", "best is one improvement behind");
    let (code, _, err) = ember(&["train", "--resume", r, "--epochs", "2"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("held epoch 1, but the best train_loss was reached at epoch 2; rewrote it from"), "{err}");
    assert!(err.contains("nothing to do: the run has already trained 2 of 2 epochs"), "{err}");
    assert_eq!(epoch_of(&best), "2");
    let second = ember::train::checkpoint::read(&run.join("checkpoints/epoch-0002.safetensors")).unwrap();
    let repaired = ember::train::checkpoint::read(&best).unwrap();
    assert_eq!(
        format!("{:?}", second.section("model/").keys().collect::<std::collections::BTreeSet<_>>()),
        format!("{:?}", repaired.section("model/").keys().collect::<std::collections::BTreeSet<_>>())
    );
    for (k, t) in second.section("model/") {
        let u = &repaired.section("model/")[&k];
        assert_eq!(
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            u.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }
}

#[test]
fn resume_checks_what_the_command_line_says_against_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), BASE);
    let run = tmp.path().join("run");
    let r = run.to_str().unwrap();
    let (code, _, err) = ember(&["train", cfg.to_str().unwrap(), "--out", r, "--epochs", "1", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    // The same CONFIG (its epochs may differ) and the same seed are accepted.
    let (code, out, err) =
        ember(&["train", cfg.to_str().unwrap(), "--resume", r, "--seed", "7", "--epochs", "2", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"epochs\":2"), "{out}");
    // A different CONFIG names each differing key; another seed and dataset are refused.
    let other = tmp.path().join("other.toml");
    std::fs::write(&other, BASE.replace("lr = 0.01", "lr = 0.02").replace("sizes = [8, 16, 3]", "sizes = [8, 32, 3]"))
        .unwrap();
    let (code, _, err) = ember(&["train", other.to_str().unwrap(), "--resume", r, "--epochs", "3", "--quiet"]);
    assert_eq!(code, 1);
    assert!(err.contains("model.sizes = [8,32,3] in the config, [8,16,3] in the checkpoint"), "{err}");
    assert!(err.contains("optimizer.lr = 0.02 in the config, 0.01 in the checkpoint"), "{err}");
    let (code, _, err) = ember(&["train", "--resume", r, "--seed", "8", "--epochs", "3", "--quiet"]);
    assert_eq!(code, 1);
    assert!(err.contains("--seed 8 differs from the seed of the run") && err.contains("(7)"), "{err}");
    let (code, _, err) = ember(&["train", "--resume", r, "--dataset", "mnist", "--epochs", "3", "--quiet"]);
    assert_eq!(code, 1);
    assert!(err.contains("trains on synthetic"), "{err}");
    // Nothing left to do is said, and the summary names the checkpoint.
    let (code, out, err) = ember(&["train", "--resume", r]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("nothing to do: the run has already trained 2 of 2 epochs"), "{err}");
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(summary["checkpoint"].as_str().unwrap().ends_with("epoch-0002.safetensors"), "{summary}");
}

#[test]
fn data_paths_are_stored_absolute_and_both_splits_are_checked_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: Vec<u8>| std::fs::write(tmp.path().join(name), bytes).unwrap();
    write("tr-x", common::idx_bytes(&[6, 2, 2], &[9; 24]));
    write("tr-y", common::idx_bytes(&[6], &[0, 1, 2, 0, 1, 2]));
    write("te-x", common::idx_bytes(&[2, 2, 2], &[9; 8]));
    write("te-y", common::idx_bytes(&[2], &[0, 1]));
    write("te-y-bad", common::idx_bytes(&[2], &[0, 200]));
    write("te-x-bad", common::idx_bytes(&[2, 3, 3], &[9; 18]));
    let run_cfg = |test_x: &str, test_y: &str| {
        let text = BASE.replace("sizes = [8, 16, 3]", "sizes = [4, 16, 3]").replace(
            "kind = \"synthetic\"\nn_train = 200\nn_eval = 60\nfeatures = 8\nclasses = 3",
            &format!("kind = \"idx\"\ntrain_images = \"tr-x\"\ntrain_labels = \"tr-y\"\ntest_images = \"{test_x}\"\ntest_labels = \"{test_y}\""),
        );
        write_config(tmp.path(), &text)
    };
    run_cfg("te-x", "te-y-bad");
    let (code, _, err) = ember_in(tmp.path(), &["train", "run.toml", "--out", "a", "--epochs", "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("te-y-bad: the data has labels 0..=200 but the model outputs 3 classes"), "{err}");
    assert!(!err.contains("epoch 1/1"), "checked before training: {err}");
    run_cfg("te-x-bad", "te-y");
    let (code, _, err) = ember_in(tmp.path(), &["train", "run.toml", "--out", "b", "--epochs", "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("te-x-bad: its examples have shape [1, 3, 3], but the training examples"), "{err}");
    run_cfg("te-x", "te-y");
    let (code, _, err) = ember_in(tmp.path(), &["train", "run.toml", "--out", "c", "--epochs", "1", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let ckpt = ember::train::checkpoint::read(&tmp.path().join("c/checkpoints/epoch-0001.safetensors")).unwrap();
    let stored = RunConfig::from_json(ckpt.meta("config").unwrap()).unwrap();
    let want = std::path::absolute(tmp.path().join("te-y")).unwrap().display().to_string();
    assert!(
        matches!(&stored.data, ember::train::config::DataConfig::Idx { test_labels, .. } if *test_labels == want),
        "{:?}",
        stored.data
    );
}

#[test]
fn settings_that_would_silently_do_nothing_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let err = |text: &str| RunConfig::from_toml(text, "run.toml").map(|_| ()).unwrap_err().to_string();
    assert!(
        err(&edited("loss", "reduction = \"none\"")).contains("loss.reduction = \"none\" gives one loss per example")
    );
    assert!(err(&BASE.replace("sizes = [8, 16, 3]", "sizes = []"))
        .contains("model.sizes = [] is invalid: give at least the input and output sizes"));
    assert!(err(&edited("train", "keep_last = 0")).contains("train.keep_last = 0 is invalid: must be >= 1"));
    let e = err(&edited("train", "early_stopping = { metric = \"eval_loss\", patience = 2, min_delta = nan }"));
    assert!(e.contains("train.early_stopping.min_delta = NaN is invalid"), "{e}");
    let c = RunConfig::from_toml(&edited("scheduler", "monitor = \"eval_acc\""), "run.toml").unwrap();
    let e = Learner::new(c, Device::Cpu, tmp.path().join("m"), Reporter::Quiet).err().unwrap().to_string();
    assert!(
        e.contains("scheduler.monitor = \"eval_acc\" has no effect: scheduler 'step' does not watch a metric"),
        "{e}"
    );
}

#[test]
fn sizes_that_cannot_fit_in_memory_are_errors_naming_the_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let big = write_config(tmp.path(), &BASE.replace("sizes = [8, 16, 3]", "sizes = [8, 100000000, 100000000, 3]"));
    let (code, _, err) = ember(&["train", big.to_str().unwrap(), "--out", tmp.path().join("a").to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("model.sizes = [8, 100000000, 100000000, 3] (10000001300000003 parameters as F32"), "{err}");
    assert!(err.contains("more than this machine's") && err.contains("use smaller layers"), "{err}");
    let many = write_config(tmp.path(), &edited("data", "n_train = 99999999999999"));
    let (code, _, err) = ember(&["train", many.to_str().unwrap(), "--out", tmp.path().join("b").to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("synthetic data with n_train = 99999999999999") && err.contains("use fewer examples"),
        "{err}"
    );
    let (code, _, err) = ember(&["bench", "optimizer", "adam", "--numel", "100000000000000"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--numel 100000000000000") && err.contains("more than this machine's"), "{err}");
    for (var, value) in
        [("RAYON_NUM_THREADS", "abc"), ("RAYON_NUM_THREADS", "0"), ("CANDLE_BARRIER_POOL_SPIN_LIMIT", "-5")]
    {
        let out = Command::new(env!("CARGO_BIN_EXE_ember")).args(["plugins"]).env(var, value).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&format!("{var}={value:?} is invalid")), "{err}");
    }
}

#[test]
fn a_full_disk_while_drawing_plots_is_a_plain_error_and_leaves_no_temporaries() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), BASE);
    let run = tmp.path().join("r");
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "--quiet"])
        .env("EMBER_FAILPOINT_CHECKPOINT_WRITE", "loss.png:enospc")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{}: cannot write: No space left on device (os error 28)",
            run.join("loss.png").display()
        )),
        "{err}"
    );
    assert!(!err.contains("ImageError") && !err.contains("Custom {"), "{err}");
    assert!(files_in(&run).iter().all(|f| !f.contains("tmp")), "{:?}", files_in(&run));
}

#[test]
fn a_resumed_run_finds_data_that_moved_with_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    common::write_mnist_dir(&data, 8, false);
    let text = BASE.replace("sizes = [8, 16, 3]", "sizes = [784, 16, 10]").replace(
        "kind = \"synthetic\"\nn_train = 200\nn_eval = 60\nfeatures = 8\nclasses = 3",
        "kind = \"fashion_mnist\"\ndir = \"data\"",
    );
    write_config(tmp.path(), &text);
    let (code, _, err) = ember_in(tmp.path(), &["train", "run.toml", "--out", "run", "--epochs", "1", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    std::fs::rename(&data, tmp.path().join("moved")).unwrap();
    let (code, _, err) = ember_in(tmp.path(), &["train", "--resume", "run", "--epochs", "2", "--quiet"]);
    assert_eq!(code, 1);
    assert!(err.contains(&data.display().to_string()), "the stored, absolute folder is named: {err}");
    let (code, out, err) =
        ember_in(tmp.path(), &["train", "--resume", "run", "--epochs", "2", "--data-dir", "moved", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"epochs\":2") && out.contains("moved"), "{out}");
}

const LBFGS: &str = r#"
seed = 5
[model]
sizes = [8, 16, 3]
dropout = [0.2]
[loss]
name = "cross_entropy"
[optimizer]
name = "lbfgs"
lr = 1.0
max_iter = 4
history_size = 8
line_search_fn = "strong_wolfe"
[[regularizers]]
name = "l2"
lambda = 0.001
[data]
kind = "synthetic"
n_train = 120
n_eval = 40
features = 8
classes = 3
[train]
epochs = 3
batch_size = 60
"#;

#[test]
fn lbfgs_re_evaluates_each_batch_through_its_closure_and_resumes_bit_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let cfg = || RunConfig::from_toml(LBFGS, "lbfgs.toml").unwrap();
    let mut straight = Learner::new(cfg(), Device::Cpu, &a, Reporter::Quiet).unwrap();
    let summary = straight.fit().unwrap();
    let h = &straight.progress().history;
    assert!(h[2].train_loss < h[0].train_loss * 0.9, "{h:?}");
    assert_eq!(summary.epochs, 3);
    let mut first = cfg();
    first.train.epochs = 1;
    Learner::new(first, Device::Cpu, &b, Reporter::Quiet).unwrap().fit().unwrap();
    Learner::resume(&b, Device::Cpu, None, Some(3), Reporter::Quiet).unwrap().fit().unwrap();
    assert_eq!(common::checkpoint_weights(&a), common::checkpoint_weights(&b));
    assert_eq!(common::metrics_without_seconds(&a), common::metrics_without_seconds(&b));
    let ckpt = ember::train::checkpoint::read(&ember::train::checkpoint::resolve(&a).unwrap()).unwrap();
    assert!(ckpt.tensors.contains_key("optimizer/closure/d"), "{:?}", ckpt.tensors.keys().collect::<Vec<_>>());

    for (extra, want) in [("accumulate = 2", "train.accumulate > 1"), ("clip_grad_norm = 1.0", "train.clip_grad_norm")]
    {
        let text = LBFGS.replace("batch_size = 60", &format!("batch_size = 60\n{extra}"));
        let e = Learner::new(
            RunConfig::from_toml(&text, "t.toml").unwrap(),
            Device::Cpu,
            tmp.path().join("c"),
            Reporter::Quiet,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("re-evaluates the loss") && e.contains(want), "{e}");
    }
    let grouped =
        LBFGS.replace("[[regularizers]]", "[[optimizer.groups]]\nparams = [\"*.bias\"]\nlr = 0.5\n[[regularizers]]");
    let e = Learner::new(
        RunConfig::from_toml(&grouped, "t.toml").unwrap(),
        Device::Cpu,
        tmp.path().join("d"),
        Reporter::Quiet,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("parameter groups"), "{e}");
}
