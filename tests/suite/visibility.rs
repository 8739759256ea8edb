//! Seeing a run: TensorBoard event files (every metric per epoch, loss and learning rate
//! per step, the config as hyperparameters; a resumed run appends without repeating a
//! step) and report.html (self-contained, with curves and a confusion matrix).

use std::collections::BTreeMap;

use candle_core::Device;
use ember::train::tensorboard::read_scalars;
use ember::train::{Learner, Reporter, RunConfig};

const BASE: &str = r#"
seed = 5
[model]
sizes = [6, 12, 3]
[loss]
name = "cross_entropy"
[optimizer]
name = "sgd"
lr = 0.1
[scheduler]
name = "step"
step_size = 1
gamma = 0.5
[data]
kind = "synthetic"
n_train = 90
n_eval = 30
features = 6
classes = 3
[train]
epochs = 4
batch_size = 30
"#;

fn config(extra: &str) -> RunConfig {
    RunConfig::from_toml(&format!("{BASE}{extra}"), "v.toml").unwrap()
}

/// Each tag's steps, in file order.
fn steps(dir: &std::path::Path) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (tag, step, _) in read_scalars(dir).unwrap() {
        out.entry(tag).or_default().push(step);
    }
    out
}

#[test]
fn tensorboard_events_hold_every_step_once_across_a_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut first = config("");
    first.train.epochs = 2;
    Learner::new(first, Device::Cpu, &run, Reporter::Quiet).unwrap().fit().unwrap();
    Learner::resume(&run, Device::Cpu, None, Some(4), Reporter::Quiet).unwrap().fit().unwrap();
    let files: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("events.out.tfevents."))
        .collect();
    assert_eq!(files.len(), 2, "one event file per process");
    let steps = steps(&run);
    for tag in ["epoch/train_loss", "epoch/train_acc", "epoch/eval_loss", "epoch/eval_acc", "epoch/lr", "epoch/seconds"]
    {
        assert_eq!(steps[tag], [1, 2, 3, 4], "{tag}");
    }
    // 3 batches an epoch, 4 epochs: optimizer steps 1..=12, each once.
    assert_eq!(steps["step/train_loss"], (1..=12).collect::<Vec<u64>>());
    assert_eq!(steps["step/lr"], (1..=12).collect::<Vec<u64>>());
    // The values are the run's: metrics.csv's eval_loss (as f32) and the step schedule.
    let scalars = read_scalars(&run).unwrap();
    let lr: Vec<f64> = scalars.iter().filter(|(t, _, _)| t == "epoch/lr").map(|(_, _, v)| *v).collect();
    assert_eq!(lr, [0.1f32 as f64, 0.05f32 as f64, 0.025f32 as f64, 0.0125f32 as f64]);
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let last: Vec<&str> = csv.lines().last().unwrap().split(',').collect();
    let eval_loss: f64 = last[3].parse().unwrap();
    let logged = scalars.iter().rfind(|(t, _, _)| t == "epoch/eval_loss").unwrap().2;
    assert_eq!(logged, eval_loss as f32 as f64);

    // Off: no event file.
    let quiet = tmp.path().join("quiet");
    let mut off = config("tensorboard = false\nreport = false\n");
    off.train.epochs = 1;
    Learner::new(off, Device::Cpu, &quiet, Reporter::Quiet).unwrap().fit().unwrap();
    let names: Vec<String> =
        std::fs::read_dir(&quiet).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    assert!(!names.iter().any(|n| n.starts_with("events.") || n == "report.html"), "{names:?}");
}

#[test]
fn histograms_are_written_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut cfg = config("histograms = true\n");
    cfg.train.epochs = 1;
    Learner::new(cfg, Device::Cpu, &run, Reporter::Quiet).unwrap().fit().unwrap();
    let file = std::fs::read_dir(&run)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("events.out.tfevents."))
        .unwrap()
        .path();
    let bytes = std::fs::read(file).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    for name in [
        "weights/1.weight",
        "weights/1.bias",
        "weights/3.weight",
        "weights/3.bias",
        "grads/1.weight",
        "grads/1.bias",
        "grads/3.weight",
        "grads/3.bias",
    ] {
        assert!(text.contains(name), "{name}");
    }
}

#[test]
fn report_html_is_self_contained_with_curves_and_a_confusion_matrix() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut cfg = config("");
    cfg.train.epochs = 50;
    Learner::new(cfg, Device::Cpu, &run, Reporter::Quiet).unwrap().fit().unwrap();
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.len() < 1 << 20, "a 50-epoch report is {} bytes", html.len());
    for want in ["Confusion matrix", "<polyline", "epoch-0050.safetensors", "eval_acc", "&quot;optimizer&quot;"] {
        assert!(html.contains(want), "{want}");
    }
    for external in ["http://", "https://", "<script", "<link", "<img"] {
        assert!(!html.contains(external), "{external}");
    }
    // The confusion matrix counts every evaluation example once: 30.
    assert!(html.contains(">30<"), "the total of the confusion matrix");
}
