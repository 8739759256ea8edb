//! The Learner as a library (issue 19): a model written in Rust trained by
//! `Learner::builder`, custom steps and callbacks, metrics as metrics.csv columns that
//! early stopping and the best checkpoint watch, regression and multi-label tasks on CSV
//! tables, `freeze` and `init_from`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use ember::core::rng::Rng;
use ember::core::{Config, Value};
use ember::data::TensorDataset;
use ember::nn::{Context, Linear, Module};
use ember::train::hooks::{on_epoch_end, on_step_end};
use ember::train::{Learner, Reporter, RunConfig, StepArgs, StepOutput};

/// Two branches concatenated, as a user would write it.
#[derive(Debug)]
struct Branches {
    a: Linear,
    b: Linear,
    head: Linear,
}

impl Branches {
    fn new(features: usize, classes: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut l = |i, o| Linear::init(i, o, true, &mut rng, DType::F32, &Device::Cpu).unwrap();
        Branches { a: l(features, 8), b: l(features, 4), head: l(12, classes) }
    }
}

impl Module for Branches {
    fn forward(&self, x: &Tensor, ctx: &mut Context) -> ember::core::Result<Tensor> {
        let a = self.a.forward(x, ctx)?.relu()?;
        let b = self.b.forward(x, ctx)?.tanh()?;
        self.head.forward(&Tensor::cat(&[&a, &b], 1)?, ctx)
    }

    fn named_parameters(&self) -> Vec<(String, Var)> {
        [("a", &self.a), ("b", &self.b), ("head", &self.head)]
            .into_iter()
            .flat_map(|(p, l)| l.named_parameters().into_iter().map(move |(n, v)| (format!("{p}.{n}"), v)))
            .collect()
    }
}

/// Gaussian blobs: `n` examples of `features` floats around fixed class centers, labels
/// `i % classes`; `seed` draws the noise.
fn blobs(n: usize, features: usize, classes: usize, seed: u64) -> TensorDataset {
    let mut centers_rng = Rng::new(99);
    let centers: Vec<f64> = (0..classes * features).map(|_| centers_rng.uniform_in(-2.0, 2.0)).collect();
    let mut rng = Rng::new(seed);
    let mut x = Vec::new();
    for i in 0..n {
        for f in 0..features {
            x.push((centers[(i % classes) * features + f] + rng.uniform_in(-1.5, 1.5)) as f32);
        }
    }
    let y: Vec<i64> = (0..n).map(|i| (i % classes) as i64).collect();
    TensorDataset::new(
        Tensor::from_vec(x, (n, features), &Device::Cpu).unwrap(),
        Tensor::from_vec(y, n, &Device::Cpu).unwrap(),
    )
    .unwrap()
}

fn weights(path: &Path) -> HashMap<String, Vec<f32>> {
    let ckpt = ember::train::checkpoint::read(path).unwrap();
    ckpt.tensors
        .iter()
        .filter_map(|(k, t)| {
            Some((k.strip_prefix("model/")?.to_string(), t.flatten_all().ok()?.to_vec1::<f32>().ok()?))
        })
        .collect()
}

fn bits_equal(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn csv_rows(dir: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(str::to_string).collect();
    (header, lines.map(|l| l.split(',').map(str::to_string).collect()).collect())
}

fn column(dir: &Path, name: &str) -> Vec<f64> {
    let (header, rows) = csv_rows(dir);
    let i = header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    rows.iter().map(|r| r[i].parse().unwrap_or(f64::NAN)).collect()
}

fn builder(dir: &Path) -> ember::train::LearnerBuilder<Branches> {
    Learner::builder(Branches::new(6, 3, 1))
        .train_data(blobs(150, 6, 3, 2))
        .eval_data(blobs(60, 6, 3, 3))
        .seed(5)
        .loss("cross_entropy")
        .optimizer("adam:lr=0.02")
        .param_group(&["*.bias"], Config::from([("weight_decay".to_string(), Value::Float(0.0))]))
        .scheduler("step:step_size=1,gamma=0.8")
        .metrics(["accuracy", "f1:average=macro", "top_k_accuracy:k=2"])
        .epochs(3)
        .batch_size(32)
        .out(dir)
        .quiet()
}

#[test]
fn a_rust_model_trains_with_the_run_directory_of_ember_train_and_resumes_bit_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let s = builder(&a).fit().unwrap();
    assert_eq!(s.epochs, 3);
    let last = s.last.clone().unwrap();
    let labels: Vec<&str> = last.metrics.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["accuracy", "f1[average=macro]", "top_k_accuracy[k=2]"]);
    // The accuracy metric and the built-in eval_acc are the same number.
    assert_eq!(last.metrics[0].1, last.eval_acc);
    assert!(last.eval_acc > 0.6, "{last:?}");
    let (header, rows) = csv_rows(&a);
    assert_eq!(
        header,
        [
            "epoch",
            "train_loss",
            "train_acc",
            "eval_loss",
            "eval_acc",
            "eval_accuracy",
            "eval_f1[average=macro]",
            "eval_top_k_accuracy[k=2]",
            "lr",
            "seconds"
        ]
    );
    assert_eq!(rows.len(), 3);
    for stem in ["loss", "accuracy", "metric-f1-average-macro", "metric-top_k_accuracy-k-2"] {
        assert!(a.join(format!("{stem}.png")).is_file() && a.join(format!("{stem}.svg")).is_file(), "{stem}");
    }
    assert_eq!(s.parameters, 6 * 8 + 8 + 6 * 4 + 4 + 12 * 3 + 3);
    assert_eq!(s.trainable, s.parameters);
    // One epoch, then a resume to three: the same weights, bit for bit.
    builder(&b).epochs(1).fit().unwrap();
    let mut resumed = builder(&b).resume(&b).unwrap();
    resumed.fit().unwrap();
    drop(resumed);
    let (wa, wb) = (
        weights(&a.join("checkpoints/epoch-0003.safetensors")),
        weights(&b.join("checkpoints/epoch-0003.safetensors")),
    );
    assert_eq!(wa.len(), 6);
    for (k, v) in &wa {
        assert!(bits_equal(v, &wb[k]), "{k} differs after the resume");
    }
    assert_eq!(column(&a, "eval_f1[average=macro]"), column(&b, "eval_f1[average=macro]"));
    // A builder run's checkpoint cannot be resumed by `ember train --resume` (no model
    // description), and says how to resume it.
    let e = Learner::resume(&a, Device::Cpu, Some(tmp.path().join("c")), None, Reporter::Quiet).err().unwrap();
    assert!(e.to_string().contains("LearnerBuilder::resume"), "{e}");
    // A resume with another seed is refused.
    let e = builder(&b).seed(6).epochs(4).resume(&b).err().unwrap().to_string();
    assert!(e.contains("seed 5, this builder 6"), "{e}");
}

#[test]
fn early_stopping_and_the_best_checkpoint_follow_a_metric_and_its_direction() {
    let tmp = tempfile::tempdir().unwrap();
    // f1 improves upwards: best_metric by the metric's short name picks the epoch with the
    // highest macro F1.
    let mut l =
        builder(tmp.path()).epochs(4).best_metric("eval_f1").early_stopping("eval_top_k_accuracy", 0).build().unwrap();
    assert_eq!(l.best_metric(), ("eval_f1[average=macro]", ember::core::Direction::Max));
    let s = l.fit().unwrap();
    let f1 = column(tmp.path(), "eval_f1[average=macro]");
    let best = f1.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let best_epoch = f1.iter().position(|v| *v == best).unwrap() + 1;
    assert_eq!(l.progress().best_epoch, Some(best_epoch));
    let meta = ember::train::checkpoint::read_metadata(&tmp.path().join("checkpoints/best.safetensors")).unwrap();
    assert_eq!(meta["epoch"], best_epoch.to_string());
    // patience 0 on top-2 accuracy (max): stops at the first epoch that does not raise it.
    let top2 = column(tmp.path(), "eval_top_k_accuracy[k=2]");
    let stop = (1..top2.len()).find(|&i| top2[i] <= top2[..i].iter().cloned().fold(f64::NEG_INFINITY, f64::max));
    match stop {
        Some(i) => assert!(s.stopped_early && s.epochs == i + 1, "{top2:?} {s:?}"),
        None => assert!(!s.stopped_early && s.epochs == 4, "{top2:?} {s:?}"),
    }
}

#[test]
fn a_custom_step_and_callbacks_run_inside_the_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let steps = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = steps.clone();
    let s = builder(tmp.path())
        .epochs(5)
        // The loss plus a penalty on the head's output, computed by the user.
        .train_step(|m: &Branches, s: StepArgs<'_>| {
            let out = m.forward(s.inputs, s.ctx)?;
            let extra = out.sqr()?.mean_all()?.affine(0.01, 0.0)?;
            Ok(StepOutput::loss((s.loss.forward(&out, s.targets)? + extra)?))
        })
        .callback(on_step_end(move |step, control| {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            assert_eq!(step.batches, 5);
            if step.epoch == 2 {
                control.set_lr(0, 0.001)?;
            }
            Ok(())
        }))
        .callback(on_epoch_end(|record, control| {
            if record.epoch == 3 {
                control.stop();
            }
            Ok(())
        }))
        .fit()
        .unwrap();
    assert_eq!((s.epochs, s.stopped_early), (3, true));
    assert_eq!(steps.load(std::sync::atomic::Ordering::SeqCst), 15);
    // The step returned no output: train_acc is not computed; evaluation still is.
    let last = s.last.unwrap();
    assert!(last.train_acc.is_nan() && last.eval_acc.is_finite());
    // The lr set at epoch 2's steps is the one recorded for epoch 2.
    let lr = column(tmp.path(), "lr");
    assert!((lr[0] - 0.02).abs() < 1e-15 && lr[1] == 0.001, "{lr:?}");
    // A loss that is not one number is an error naming the step.
    let e = builder(&tmp.path().join("x"))
        .train_step(|m: &Branches, s: StepArgs<'_>| Ok(StepOutput::loss(m.forward(s.inputs, s.ctx)?)))
        .fit()
        .unwrap_err()
        .to_string();
    assert!(e.contains("custom training step returned a loss of shape [32, 3]"), "{e}");
}

const MLP: &str = r#"
seed = 3
[model]
sizes = [6, 8, 3]
[loss]
name = "cross_entropy"
[optimizer]
name = "adamw"
lr = 0.05
weight_decay = 0.1
[[regularizers]]
name = "l2"
lambda = 0.01
[data]
kind = "synthetic"
n_train = 96
n_eval = 32
features = 6
classes = 3
[train]
epochs = 2
batch_size = 16
"#;

#[test]
fn frozen_parameters_stay_bit_identical_and_get_no_optimizer_state() {
    let tmp = tempfile::tempdir().unwrap();
    let config = RunConfig::from_toml(&format!("{MLP}freeze = [\"1.*\"]\n"), "t.toml").unwrap();
    let (init, _) = ember::train::build_model(&config, &[6], DType::F32, &Device::Cpu).unwrap();
    let before: HashMap<String, Vec<f32>> = ember::nn::state_dict(&init)
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect();
    let s = Learner::new(config, Device::Cpu, tmp.path(), Reporter::Quiet).unwrap().fit().unwrap();
    assert_eq!((s.parameters, s.trainable), (6 * 8 + 8 + 8 * 3 + 3, 8 * 3 + 3));
    let ckpt = tmp.path().join("checkpoints/epoch-0002.safetensors");
    let after = weights(&ckpt);
    assert!(bits_equal(&before["1.weight"], &after["1.weight"]) && bits_equal(&before["1.bias"], &after["1.bias"]));
    assert!(!bits_equal(&before["3.weight"], &after["3.weight"]), "the unfrozen layer trained");
    let names: Vec<String> = ember::train::checkpoint::read(&ckpt).unwrap().tensors.into_keys().collect();
    assert!(names.iter().any(|n| n.starts_with("optimizer/") && n.contains("3.weight")), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("optimizer/") && n.contains("1.")), "{names:?}");
    // A glob that matches nothing names the parameters.
    let bad = RunConfig::from_toml(&format!("{MLP}freeze = [\"0.*\"]\n"), "t.toml").unwrap();
    let e = Learner::new(bad, Device::Cpu, tmp.path().join("x"), Reporter::Quiet).err().unwrap().to_string();
    assert!(e.contains("train.freeze[0] = \"0.*\" matches no parameter; the model's parameters are 1.weight, 1.bias, 3.weight, 3.bias"), "{e}");
}

#[test]
fn init_from_starts_from_exactly_the_files_values() {
    let tmp = tempfile::tempdir().unwrap();
    // PyTorch-named weights, as safetensors.torch.save_file(model.state_dict()) writes them.
    let mut rng = Rng::new(11);
    let mut t = |shape: &[usize]| {
        let n: usize = shape.iter().product();
        Tensor::from_vec((0..n).map(|_| rng.uniform_in(-1.0, 1.0) as f32).collect::<Vec<_>>(), shape, &Device::Cpu)
            .unwrap()
    };
    let file = HashMap::from([
        ("1.weight".to_string(), t(&[8, 6])),
        ("1.bias".to_string(), t(&[8])),
        ("3.weight".to_string(), t(&[3, 8])),
        ("3.bias".to_string(), t(&[3])),
    ]);
    let path = tmp.path().join("w.safetensors");
    candle_core::safetensors::save(&file, &path).unwrap();
    // lr 0 and no penalties: the weights after training are the file's.
    let text = MLP.replace("lr = 0.05", "lr = 0.0").replace("lambda = 0.01", "lambda = 0.0");
    let config =
        RunConfig::from_toml(&format!("{text}init_from = {:?}\n", path.display().to_string()), "t.toml").unwrap();
    Learner::new(config, Device::Cpu, tmp.path().join("a"), Reporter::Quiet).unwrap().fit().unwrap();
    let after = weights(&tmp.path().join("a/checkpoints/epoch-0002.safetensors"));
    for (k, v) in &file {
        assert!(bits_equal(&v.flatten_all().unwrap().to_vec1::<f32>().unwrap(), &after[k]), "{k}");
    }
    // strict: a file without 3.bias and with an extra tensor is refused, listing both.
    let mut partial = file.clone();
    partial.remove("3.bias");
    partial.insert("extra.weight".into(), t(&[2]));
    candle_core::safetensors::save(&partial, &path).unwrap();
    let strict =
        RunConfig::from_toml(&format!("{text}init_from = {:?}\n", path.display().to_string()), "t.toml").unwrap();
    let e = Learner::new(strict, Device::Cpu, tmp.path().join("b"), Reporter::Quiet).err().unwrap().to_string();
    assert!(
        e.contains("missing: 3.bias") && e.contains("unexpected: extra.weight") && e.contains("strict = false"),
        "{e}"
    );
    // strict = false loads the rest; 3.bias keeps its initialisation.
    let loose = RunConfig::from_toml(
        &format!("{text}init_from = {:?}\nstrict = false\n", path.display().to_string()),
        "t.toml",
    )
    .unwrap();
    let (init, _) = ember::train::build_model(&loose, &[6], DType::F32, &Device::Cpu).unwrap();
    let init_bias = ember::nn::state_dict(&init)["3.bias"].to_vec1::<f32>().unwrap();
    Learner::new(loose, Device::Cpu, tmp.path().join("c"), Reporter::Quiet).unwrap().fit().unwrap();
    let after = weights(&tmp.path().join("c/checkpoints/epoch-0002.safetensors"));
    assert!(bits_equal(&file["1.weight"].flatten_all().unwrap().to_vec1::<f32>().unwrap(), &after["1.weight"]));
    assert!(bits_equal(&init_bias, &after["3.bias"]));
}

/// A CSV table: `n` rows of 3 features and targets from `f`.
fn table(path: &Path, n: usize, seed: u64, targets: &[&str], f: impl Fn(&[f64], &mut Rng) -> Vec<f64>) {
    let mut rng = Rng::new(seed);
    let mut text = format!("x1,x2,x3,{}\n", targets.join(","));
    for _ in 0..n {
        let x: Vec<f64> = (0..3).map(|_| rng.uniform_in(-2.0, 2.0)).collect();
        let y = f(&x, &mut rng);
        let cells: Vec<String> = x.iter().chain(&y).map(|v| format!("{v}")).collect();
        text += &(cells.join(",") + "\n");
    }
    std::fs::write(path, text).unwrap();
}

/// The model's outputs on the test table's features, as f64 rows.
fn predictions(run: &Path, test: &Path, targets: &[&str]) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let config = RunConfig::from_toml(&std::fs::read_to_string(run.join("run.toml")).unwrap(), "run.toml").unwrap();
    let (model, _) = ember::train::build_model(&config, &[3], DType::F32, &Device::Cpu).unwrap();
    let w = ember::train::checkpoint::read(
        &ember::train::checkpoint::epoch_files(&run.join("run/checkpoints")).unwrap().last().unwrap().1,
    )
    .unwrap();
    ember::nn::load_state_dict(&model, &w.section("model/")).unwrap();
    let spec =
        ember::data::csv::TableSpec { target: targets.iter().map(|s| s.to_string()).collect(), ..Default::default() };
    let t = ember::data::csv::read_table(test, &spec).unwrap();
    // The run's input scaling (standardize = true), as `ember predict` applies it.
    let x = ember::train::data::scale_inputs(&config.data, &t.inputs).unwrap();
    let out = model.forward(&x, &mut Context::eval()).unwrap().to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap();
    (out, t.target_values.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap())
}

fn run_csv(dir: &Path, toml: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("run.toml"), toml).unwrap();
    let config = RunConfig::from_toml(toml, "run.toml").unwrap();
    Learner::new(config, Device::Cpu, dir.join("run"), Reporter::Quiet).unwrap().fit().unwrap();
}

#[test]
fn regression_on_a_csv_table_reports_mae_rmse_and_r2_of_its_predictions() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, test) = (tmp.path().join("train.csv"), tmp.path().join("test.csv"));
    let f = |x: &[f64], r: &mut Rng| vec![1.5 * x[0] - 2.0 * x[1] + 0.5 * x[2] * x[2] + 3.0 + r.uniform_in(-0.3, 0.3)];
    table(&train, 200, 1, &["y"], f);
    table(&test, 57, 2, &["y"], f);
    let toml = format!(
        r#"seed = 1
[model]
sizes = [3, 16, 1]
[loss]
name = "mse"
[optimizer]
name = "adam"
lr = 0.03
[data]
kind = "csv"
train = {:?}
test = {:?}
target = "y"
standardize = true
[train]
epochs = 12
batch_size = 20
metrics = ["mae", "rmse", "r2"]
"#,
        train.display().to_string(),
        test.display().to_string()
    );
    let dir = tmp.path().join("r");
    run_csv(&dir, &toml);
    let run = dir.join("run");
    let (out, y) = predictions(&dir, &test, &["y"]);
    let n = y.len() as f64;
    let err: Vec<f64> = out.iter().zip(&y).map(|(p, t)| p[0] - t[0]).collect();
    let mae = err.iter().map(|e| e.abs()).sum::<f64>() / n;
    let mse = err.iter().map(|e| e * e).sum::<f64>() / n;
    let mean = y.iter().map(|t| t[0]).sum::<f64>() / n;
    let r2 = 1.0 - err.iter().map(|e| e * e).sum::<f64>() / y.iter().map(|t| (t[0] - mean).powi(2)).sum::<f64>();
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b.abs().max(1e-12);
    let last = |c: &str| *column(&run, c).last().unwrap();
    assert!(close(last("eval_mae"), mae), "{} vs {mae}", last("eval_mae"));
    assert!(close(last("eval_rmse"), mse.sqrt()), "{} vs {}", last("eval_rmse"), mse.sqrt());
    assert!(close(last("eval_r2"), r2), "{} vs {r2}", last("eval_r2"));
    assert!(close(last("eval_loss"), mse), "{} vs {mse}", last("eval_loss"));
    assert!(r2 > 0.8, "the model learned the function: r2 {r2}");
    // No accuracy for float targets: the columns stay empty.
    assert!(column(&run, "eval_acc").iter().all(|v| v.is_nan()));
    // The best checkpoint follows the first metric (mae, lower is better).
    let maes = column(&run, "eval_mae");
    let best = maes.iter().cloned().fold(f64::INFINITY, f64::min);
    let meta = ember::train::checkpoint::read_metadata(&run.join("checkpoints/best.safetensors")).unwrap();
    assert_eq!(meta["epoch"], (maes.iter().position(|v| *v == best).unwrap() + 1).to_string());
}

#[test]
fn multi_label_runs_report_per_label_and_macro_f1() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, test) = (tmp.path().join("train.csv"), tmp.path().join("test.csv"));
    let f = |x: &[f64], r: &mut Rng| {
        vec![(x[0] + 0.2 * r.uniform_in(-1.0, 1.0) > 0.0) as u8 as f64, (x[1] - x[2] > 0.5) as u8 as f64]
    };
    table(&train, 240, 3, &["a", "b"], f);
    table(&test, 80, 4, &["a", "b"], f);
    let toml = format!(
        r#"seed = 2
[model]
sizes = [3, 16, 2]
[loss]
name = "bce_with_logits"
[optimizer]
name = "adam"
lr = 0.05
[data]
kind = "csv"
train = {:?}
test = {:?}
target = ["a", "b"]
[train]
epochs = 8
batch_size = 24
metrics = ["f1:average=macro", "f1:label=0", "f1:label=1", "accuracy"]
"#,
        train.display().to_string(),
        test.display().to_string()
    );
    let dir = tmp.path().join("m");
    run_csv(&dir, &toml);
    let run = dir.join("run");
    let (out, y) = predictions(&dir, &test, &["a", "b"]);
    // F1 per label from the logits (> 0 is a positive prediction).
    let f1 = |j: usize| {
        let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
        for (p, t) in out.iter().zip(&y) {
            match (p[j] > 0.0, t[j] == 1.0) {
                (true, true) => tp += 1.0,
                (true, false) => fp += 1.0,
                (false, true) => fn_ += 1.0,
                _ => {}
            }
        }
        2.0 * tp / (2.0 * tp + fp + fn_)
    };
    let exact = out.iter().zip(&y).filter(|(p, t)| (0..2).all(|j| (p[j] > 0.0) == (t[j] == 1.0))).count() as f64;
    let last = |c: &str| *column(&run, c).last().unwrap();
    assert!((last("eval_f1[label=0]") - f1(0)).abs() < 1e-12);
    assert!((last("eval_f1[label=1]") - f1(1)).abs() < 1e-12);
    assert!((last("eval_f1[average=macro]") - (f1(0) + f1(1)) / 2.0).abs() < 1e-12);
    assert!((last("eval_accuracy") - exact / y.len() as f64).abs() < 1e-12);
    assert!(f1(0) > 0.7, "{}", f1(0));
    // A float-target loss with class-index data is refused, naming the loss and the fix.
    let e = RunConfig::from_toml(&toml.replace("target = [\"a\", \"b\"]", "target = \"a\"\nclasses = true"), "t.toml")
        .map(|c| Learner::new(c, Device::Cpu, tmp.path().join("x"), Reporter::Quiet).err().unwrap().to_string())
        .unwrap();
    assert!(
        e.contains("loss 'bce_with_logits' compares the output with float targets") && e.contains("cross_entropy"),
        "{e}"
    );
}

/// The regression example config on a real table (scikit-learn's diabetes data): the
/// split, the standardisation and the metrics.
#[test]
fn the_diabetes_regression_example_learns() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = RunConfig::from_file("examples/configs/diabetes_regression.toml").unwrap();
    config.train.epochs = 40;
    let loaded = ember::train::data::load(&config.data).unwrap();
    assert_eq!((loaded.train.len(), loaded.eval.len()), (354, 88));
    // Standardised with the training rows' statistics: mean 0, (population) std 1.
    let all: Vec<u32> = (0..loaded.train.len() as u32).collect();
    let x = loaded.train.batch(&all).unwrap().0.to_dtype(DType::F64).unwrap();
    let mean = x.mean(0).unwrap().to_vec1::<f64>().unwrap();
    let std = x.sqr().unwrap().mean(0).unwrap().sqrt().unwrap().to_vec1::<f64>().unwrap();
    assert!(mean.iter().all(|m| m.abs() < 1e-5) && std.iter().all(|s| (s - 1.0).abs() < 1e-5), "{mean:?} {std:?}");
    let s = Learner::new(config, Device::Cpu, tmp.path(), Reporter::Quiet).unwrap().fit().unwrap();
    let last = s.last.unwrap();
    let get = |l: &str| last.metrics.iter().find(|(k, _)| k == l).unwrap().1;
    assert!(get("r2") > 0.3 && get("mae") < 55.0, "{last:?}");
    assert!((get("rmse") - last.eval_loss.sqrt()).abs() < 1e-6 * get("rmse"));
}

/// Undefined metrics (no evaluation set here) are NaN: empty in metrics.csv, "NaN" in the
/// checkpoint's progress, and a resume reads them back.
#[test]
fn nan_metrics_are_written_and_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let b = || {
        Learner::builder(Branches::new(6, 3, 1))
            .train_data(blobs(64, 6, 3, 2))
            .loss("cross_entropy")
            .optimizer("sgd:lr=0.1")
            .metrics(["accuracy", "f1:average=macro"])
            .batch_size(16)
            .out(tmp.path())
            .quiet()
    };
    b().epochs(1).fit().unwrap();
    let (header, rows) = csv_rows(tmp.path());
    let i = header.iter().position(|h| h == "eval_f1[average=macro]").unwrap();
    assert_eq!(rows[0][i], "");
    let meta = ember::train::checkpoint::read_metadata(&tmp.path().join("checkpoints/epoch-0001.safetensors")).unwrap();
    assert!(meta["progress"].contains(r#""f1[average=macro]":"NaN""#), "{}", meta["progress"]);
    let mut l = b().epochs(2).resume(tmp.path()).unwrap();
    let s = l.fit().unwrap();
    assert_eq!(s.epochs, 2);
    assert!(l.progress().history[0].metrics.iter().all(|(_, v)| v.is_nan()));
    // With no evaluation set the best checkpoint follows train_loss.
    assert_eq!(l.best_metric().0, "train_loss");
}

/// The training tables of a run config drive a builder run, with the same names.
#[test]
fn a_train_spec_from_toml_configures_the_builder() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ember::train::TrainSpec::from_toml(
        "seed = 4\n[loss]\nname = \"cross_entropy\"\n[optimizer]\nname = \"sgd\"\nlr = 0.1\nmomentum = 0.9\n[train]\nepochs = 2\nbatch_size = 50\nmetrics = [\"recall:average=micro\"]\n",
        "spec.toml",
    )
    .unwrap();
    let s = Learner::builder(Branches::new(6, 3, 1))
        .spec(spec)
        .train_data(blobs(100, 6, 3, 2))
        .eval_data(blobs(30, 6, 3, 3))
        .out(tmp.path())
        .quiet()
        .fit()
        .unwrap();
    let last = s.last.unwrap();
    assert_eq!(s.epochs, 2);
    // Micro-averaged recall over single-label classes is the accuracy.
    assert_eq!(last.metrics, vec![("recall[average=micro]".to_string(), last.eval_acc)]);
    let e = ember::train::TrainSpec::from_toml(
        "[loss]\nname = \"mse\"\n[optimizer]\nname = \"sgd\"\n[model]\nsizes = [1]\n",
        "spec.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("unknown field `model`"), "{e}");
}

/// Every run writes its JSON summary to `summary.json`, a builder run included.
#[test]
fn a_builder_run_writes_the_json_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let s = builder(tmp.path()).epochs(1).freeze(["a.*"]).fit().unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(json, s.to_json());
    assert_eq!(json["epochs"], 1);
    assert_eq!(json["parameters"], 6 * 8 + 8 + 6 * 4 + 4 + 12 * 3 + 3);
    assert_eq!(json["trainable_parameters"], 6 * 4 + 4 + 12 * 3 + 3);
    assert_eq!(json["metrics"]["eval_f1[average=macro]"], s.last.as_ref().unwrap().metrics[1].1);
    assert_eq!(json["data"], "in-memory data");
}

/// `kind = "safetensors"`: named tensors of one file, split by eval_split with the run's
/// seed; a missing name lists what the file holds.
#[test]
fn a_safetensors_file_is_a_data_set() {
    let tmp = tempfile::tempdir().unwrap();
    let data = blobs(120, 6, 3, 2);
    let path = tmp.path().join("d.safetensors");
    let tensors = HashMap::from([
        ("x".to_string(), data.inputs().clone()),
        ("label".to_string(), data.targets().to_dtype(DType::U8).unwrap()),
    ]);
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let toml = |inputs: &str| {
        format!(
            "seed = 3\n[model]\nsizes = [6, 8, 3]\n[loss]\nname = \"cross_entropy\"\n[optimizer]\nname = \"adam\"\nlr = 0.05\n[data]\nkind = \"safetensors\"\npath = {:?}\ninputs = \"{inputs}\"\ntargets = \"label\"\neval_split = 0.25\n[train]\nepochs = 3\nbatch_size = 30\n",
            path.display().to_string()
        )
    };
    let config = RunConfig::from_toml(&toml("x"), "t.toml").unwrap();
    let mut l = Learner::new(config, Device::Cpu, tmp.path().join("a"), Reporter::Quiet).unwrap();
    let s = l.fit().unwrap();
    let stored = l.run_config().unwrap();
    assert!(matches!(stored.data, ember::train::config::DataConfig::Safetensors { seed: Some(3), .. }));
    assert!(s.last.unwrap().eval_acc > 0.5);
    let loaded = ember::train::data::load(&stored.data).unwrap();
    assert_eq!((loaded.train.len(), loaded.eval.len()), (90, 30));
    assert_eq!(loaded.train.all_targets().unwrap().dtype(), DType::I64);
    let e = Learner::new(
        RunConfig::from_toml(&toml("inputs"), "t.toml").unwrap(),
        Device::Cpu,
        tmp.path().join("b"),
        Reporter::Quiet,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("no tensor \"inputs\" (data.inputs); it holds \"label\", \"x\""), "{e}");
}

/// `data.missing` for tables: an error by default, `drop` leaves rows out with a note.
#[test]
fn missing_values_in_a_table_follow_data_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.csv");
    let mut text = String::from("a,b,y\n");
    for i in 0..40 {
        let a = if i % 10 == 3 { "NA".to_string() } else { format!("{}", i as f64 / 10.0) };
        text += &format!("{a},{},{}\n", (i % 7) as f64, (i % 5) as f64);
    }
    std::fs::write(&path, text).unwrap();
    let toml = |policy: &str| {
        format!(
            "[model]\nsizes = [2, 1]\n[loss]\nname = \"mse\"\n[optimizer]\nname = \"sgd\"\nlr = 0.01\n[data]\nkind = \"csv\"\npath = {:?}\ntarget = \"y\"\neval_split = 0.25\n{policy}\n[train]\nepochs = 1\n",
            path.display().to_string()
        )
    };
    let e = Learner::new(
        RunConfig::from_toml(&toml(""), "t.toml").unwrap(),
        Device::Cpu,
        tmp.path().join("a"),
        Reporter::Quiet,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("line 5, column \"a\" is missing (\"NA\")") && e.contains("missing = \"drop\""), "{e}");
    let config = RunConfig::from_toml(&toml("missing = \"drop\""), "t.toml").unwrap();
    let loaded = ember::train::data::load(&config.data).unwrap();
    assert_eq!(loaded.train.len() + loaded.eval.len(), 36);
    assert!(loaded.notice.unwrap().contains("left out 4 rows with missing values"));
    let e = RunConfig::from_toml(&toml("missing = \"zero\""), "t.toml").unwrap_err().to_string();
    assert!(e.contains("data.missing = \"zero\" is invalid: must be one of error, drop, mean"), "{e}");
}

/// Writes an RGB PNG of `w` x `h` pixels.
fn png(path: &Path, w: u32, h: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) {
    let mut data = Vec::new();
    for y in 0..h {
        for x in 0..w {
            data.extend(pixel(x, y));
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header().unwrap().write_image_data(&data).unwrap();
    }
    std::fs::write(path, out).unwrap();
}

/// `kind = "image_folder"`: classes from sub-folders, an eval split, augmented training
/// batches that a resume replays exactly.
#[test]
fn an_image_folder_trains_with_augmentation_and_resumes_bit_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("images");
    let mut rng = Rng::new(5);
    for (class, base) in [("cat", 40u8), ("dog", 200u8)] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..12 {
            let noise: Vec<u8> = (0..64).map(|_| (rng.uniform() * 40.0) as u8).collect();
            png(&root.join(class).join(format!("{i}.png")), 8, 8, |x, y| {
                let v = base.saturating_add(noise[(y * 8 + x) as usize]);
                [v, v / 2, 255 - v]
            });
        }
    }
    std::fs::write(root.join("cat/notes.txt"), "not an image").unwrap();
    let toml = |epochs: usize| {
        format!(
            "seed = 9\n[model]\nsizes = [192, 2]\n[loss]\nname = \"cross_entropy\"\n[optimizer]\nname = \"sgd\"\nlr = 0.05\n[data]\nkind = \"image_folder\"\npath = {:?}\nmean = [0.5]\nstd = [0.25]\ncrop_padding = 2\nflip = true\neval_split = 0.25\n[train]\nepochs = {epochs}\nbatch_size = 6\n",
            root.display().to_string()
        )
    };
    let config = RunConfig::from_toml(&toml(3), "t.toml").unwrap();
    let loaded = ember::train::data::load(&config.data).unwrap();
    assert_eq!((loaded.train.len(), loaded.eval.len()), (18, 6));
    let (x, y) = loaded.eval.batch(&[0, 1]).unwrap();
    assert_eq!(x.dims(), [2, 3, 8, 8]);
    assert_eq!(y.dtype(), DType::I64);
    // Training batches are augmented (crops and flips, the same for the same epoch),
    // plain batches (evaluation) never.
    let a = loaded.train.train_batch(&[0, 1, 2, 3], 0).unwrap().0.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = loaded.train.train_batch(&[0, 1, 2, 3], 0).unwrap().0.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let c = loaded.train.train_batch(&[0, 1, 2, 3], 1).unwrap().0.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let plain = loaded.train.batch(&[0, 1, 2, 3]).unwrap().0.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(bits_equal(&a, &b) && !bits_equal(&a, &c) && !bits_equal(&a, &plain));
    // Three epochs straight, and one then a resume to three: the same weights.
    let (one, two) = (tmp.path().join("a"), tmp.path().join("b"));
    let s = Learner::new(config, Device::Cpu, &one, Reporter::Quiet).unwrap().fit().unwrap();
    assert!(s.last.unwrap().eval_acc >= 0.5);
    Learner::new(RunConfig::from_toml(&toml(1), "t.toml").unwrap(), Device::Cpu, &two, Reporter::Quiet)
        .unwrap()
        .fit()
        .unwrap();
    Learner::resume(&two, Device::Cpu, None, Some(3), Reporter::Quiet).unwrap().fit().unwrap();
    let (wa, wb) = (
        weights(&one.join("checkpoints/epoch-0003.safetensors")),
        weights(&two.join("checkpoints/epoch-0003.safetensors")),
    );
    for (k, v) in &wa {
        assert!(bits_equal(v, &wb[k]), "{k}");
    }
}

fn ember_cli(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(args)
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// `ember predict` on a CSV table writes a CSV of predictions: class names and
/// probabilities for a classifier (labels mapped as in training), the values for a
/// regression with its scaling applied.
#[test]
fn predict_reads_a_table_and_writes_predictions_as_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, new) = (tmp.path().join("train.csv"), tmp.path().join("new.csv"));
    let mut rng = Rng::new(4);
    let mut text = String::from("x1,x2,species\n");
    let mut unlabeled = String::from("x2,x1\n");
    for i in 0..90 {
        let c = ["setosa", "versicolor", "virginica"][i % 3];
        let (a, b) = ((i % 3) as f64 * 2.0 + rng.uniform_in(-0.5, 0.5), rng.uniform_in(-1.0, 1.0));
        text += &format!("{a},{b},{c}\n");
        if i < 6 {
            unlabeled += &format!("{b},{a}\n");
        }
    }
    std::fs::write(&train, text).unwrap();
    std::fs::write(&new, unlabeled).unwrap();
    let toml = format!(
        "seed = 1\n[model]\nsizes = [2, 16, 3]\n[loss]\nname = \"cross_entropy\"\n[optimizer]\nname = \"adam\"\nlr = 0.05\n[data]\nkind = \"csv\"\npath = {:?}\ntarget = \"species\"\nclasses = true\nstandardize = true\neval_split = 0.2\n[train]\nepochs = 15\nbatch_size = 16\n",
        train.display().to_string()
    );
    let cfg = tmp.path().join("run.toml");
    std::fs::write(&cfg, toml).unwrap();
    let run = tmp.path().join("run");
    let (ok, _, err) = ember_cli(&["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "--quiet"]);
    assert!(ok, "{err}");
    let meta = ember::train::checkpoint::read_metadata(&run.join("checkpoints/best.safetensors")).unwrap();
    assert_eq!(meta["class_names"], r#"["setosa","versicolor","virginica"]"#);
    let dest = tmp.path().join("pred.csv");
    let (ok, out, err) = ember_cli(&[
        "predict",
        run.to_str().unwrap(),
        "--input",
        new.to_str().unwrap(),
        "--out",
        dest.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("wrote 6 predictions"), "{out}");
    let text = std::fs::read_to_string(&dest).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), "id,prediction,p_setosa,p_versicolor,p_virginica");
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[0], (i + 1).to_string());
        // The columns are read by name (x2 before x1 in this file) and scaled as in training.
        assert_eq!(f[1], ["setosa", "versicolor", "virginica"][i % 3], "{text}");
        let p: Vec<f64> = f[2..].iter().map(|v| v.parse().unwrap()).collect();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
    // A table without the run's feature columns is an error naming the column.
    std::fs::write(&new, "x1,x3\n1,2\n").unwrap();
    let (ok, _, err) = ember_cli(&[
        "predict",
        run.to_str().unwrap(),
        "--input",
        new.to_str().unwrap(),
        "--out",
        dest.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("no column \"x2\""), "{err}");
}

/// `kind = "parquet"`: a table written by pyarrow (tests/fixtures/tables/gen_tables.py),
/// string labels as classes, a null filled by `missing = "mean"`.
#[test]
fn a_parquet_table_trains() {
    let tmp = tempfile::tempdir().unwrap();
    let path = std::path::absolute("tests/fixtures/tables/penguins-like.parquet").unwrap();
    let toml = |missing: &str| {
        format!(
            "[model]\nsizes = [3, 8, 3]\n[loss]\nname = \"cross_entropy\"\n[optimizer]\nname = \"adam\"\nlr = 0.05\n[data]\nkind = \"parquet\"\npath = {:?}\ntarget = \"species\"\nclasses = true\nstandardize = true\neval_split = 0.2\n{missing}\n[train]\nepochs = 10\nbatch_size = 8\nmetrics = [\"f1:average=macro\"]\n",
            path.display().to_string()
        )
    };
    let e = Learner::new(
        RunConfig::from_toml(&toml(""), "t.toml").unwrap(),
        Device::Cpu,
        tmp.path().join("a"),
        Reporter::Quiet,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("row 5, column \"flipper\" is missing (null)"), "{e}");
    let config = RunConfig::from_toml(&toml("missing = \"mean\""), "t.toml").unwrap();
    let loaded = ember::train::data::load(&config.data).unwrap();
    assert_eq!((loaded.train.len(), loaded.eval.len()), (24, 6));
    assert_eq!(loaded.class_names, ["Adelie", "Chinstrap", "Gentoo"]);
    assert_eq!(loaded.feature_names, ["bill", "flipper", "year"]);
    let s = Learner::new(config, Device::Cpu, tmp.path().join("b"), Reporter::Quiet).unwrap().fit().unwrap();
    assert!(s.last.unwrap().eval_acc > 0.5);
}

/// A table run resumed with its CONFIG beside `--resume`: the config is settled as the
/// stored one was (absolute paths, the split seed from the run's), so it matches.
#[test]
fn a_table_run_resumes_with_its_config_given() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("t.csv");
    let mut text = String::from("a,b,y\n");
    for i in 0..40 {
        text += &format!("{},{},{}\n", i as f64 / 10.0, (i % 7) as f64, (i % 5) as f64);
    }
    std::fs::write(&data, text).unwrap();
    let cfg = tmp.path().join("run.toml");
    std::fs::write(
        &cfg,
        "seed = 3\n[model]\nsizes = [2, 1]\n[loss]\nname = \"mse\"\n[optimizer]\nname = \"sgd\"\nlr = 0.01\n[data]\nkind = \"csv\"\npath = \"t.csv\"\ntarget = \"y\"\neval_split = 0.25\n[train]\nepochs = 1\n",
    )
    .unwrap();
    let run = tmp.path().join("run");
    let ember = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
            .args(args)
            .current_dir(tmp.path())
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8(out.stderr).unwrap())
    };
    let (ok, err) = ember(&["train", "run.toml", "--out", run.to_str().unwrap(), "--quiet"]);
    assert!(ok, "{err}");
    let (ok, err) = ember(&["train", "run.toml", "--resume", run.to_str().unwrap(), "--epochs", "2", "--quiet"]);
    assert!(ok, "{err}");
    assert!(run.join("checkpoints/epoch-0002.safetensors").is_file());
}

/// `ember predict RUN --input IN --out DEST`.
fn predict_cli(run: &Path, input: &Path, dest: &Path) -> (bool, String, String) {
    ember_cli(&["predict", run.to_str().unwrap(), "--input", input.to_str().unwrap(), "--out", dest.to_str().unwrap()])
}

/// `standardize = true`: every checkpoint stores the training split's mean and standard
/// deviation (`input_scaling`), a resumed run stores the same, and `ember predict` scales
/// by them, so it predicts the same after the data files are gone.
#[test]
fn predict_scales_by_the_statistics_stored_in_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, test, new) = (tmp.path().join("train.csv"), tmp.path().join("test.csv"), tmp.path().join("new.csv"));
    let f = |x: &[f64], _: &mut Rng| vec![2.0 * x[0] - x[1] + 0.5 * x[2]];
    table(&train, 60, 21, &["y"], f);
    table(&new, 7, 22, &["y"], f);
    // Evaluation rows far from the training rows: statistics over both splits would differ.
    let mut text = String::from("x1,x2,x3,y\n");
    for i in 0..20 {
        let v = 50.0 + i as f64;
        text += &format!("{v},{},{},{v}\n", -v, 2.0 * v);
    }
    std::fs::write(&test, text).unwrap();
    let toml = format!(
        "seed = 3\n[model]\nsizes = [3, 8, 1]\n[loss]\nname = \"mse\"\n[optimizer]\nname = \"adam\"\nlr = 0.01\n[data]\nkind = \"csv\"\ntrain = {:?}\ntest = {:?}\ntarget = \"y\"\nstandardize = true\n[train]\nepochs = 2\nbatch_size = 16\n",
        train.display().to_string(),
        test.display().to_string()
    );
    let dir = tmp.path().join("r");
    run_csv(&dir, &toml);
    let run = dir.join("run");
    // The training rows' mean and population standard deviation, per feature.
    let spec = ember::data::csv::TableSpec { target: vec!["y".into()], ..Default::default() };
    let rows = ember::data::csv::read_table(&train, &spec).unwrap().inputs;
    let rows = rows.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap();
    let n = rows.len() as f64;
    let mean: Vec<f64> = (0..3).map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n).collect();
    let std: Vec<f64> =
        (0..3).map(|j| (rows.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n).sqrt()).collect();
    let scaling = |file: &Path| -> ember::train::data::Scaling {
        let meta = ember::train::checkpoint::read_metadata(file).unwrap();
        let text = meta.get(ember::train::data::SCALING_KEY).unwrap_or_else(|| panic!("{}: {meta:?}", file.display()));
        ember::train::data::Scaling::from_json(text, file).unwrap()
    };
    let close = |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-9);
    let best = run.join("checkpoints/best.safetensors");
    let stored = scaling(best.as_path());
    assert!(close(stored.mean.as_slice(), mean.as_slice()), "{:?} vs {mean:?}", stored.mean);
    assert!(close(stored.std.as_slice(), std.as_slice()), "{:?} vs {std:?}", stored.std);
    // A resumed run recomputes them from the same data: its checkpoints store the same.
    Learner::resume(&run, Device::Cpu, None, Some(3), Reporter::Quiet).unwrap().fit().unwrap();
    let files = ember::train::checkpoint::epoch_files(&run.join("checkpoints")).unwrap();
    assert_eq!(files.last().unwrap().0, 3);
    for (_, file) in &files {
        assert_eq!(scaling(file.as_path()), stored, "{}", file.display());
    }
    let (before, after) = (tmp.path().join("before.csv"), tmp.path().join("after.csv"));
    let (ok, _, err) = predict_cli(&run, &new, &before);
    assert!(ok, "{err}");
    std::fs::remove_file(&train).unwrap();
    std::fs::remove_file(&test).unwrap();
    // Recomputing the statistics needs the training file; predict does not.
    let config = RunConfig::from_json(&ember::train::checkpoint::read_metadata(&best).unwrap()["config"]).unwrap();
    let x = Tensor::zeros((1, 3), DType::F32, &Device::Cpu).unwrap();
    assert!(ember::train::data::scale_inputs(&config.data, &x).is_err());
    let (ok, _, err) = predict_cli(&run, &new, &after);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&before).unwrap();
    assert_eq!(text.lines().count(), 8, "{text}");
    assert!(text.starts_with("id,y\n"), "{text}");
    assert_eq!(std::fs::read_to_string(&after).unwrap(), text);
    // Inputs of another width are an error naming both counts.
    let bad = tmp.path().join("bad.safetensors");
    let input = Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap();
    candle_core::safetensors::save(&HashMap::from([("input".to_string(), input)]), &bad).unwrap();
    let (ok, _, err) = predict_cli(&run, &bad, &after);
    assert!(!ok && err.contains("2 features per example") && err.contains("trained on 3 features"), "{err}");
}

/// `ember predict --input X.parquet` reads the run's feature columns from a Parquet file by
/// name (the target column and unused columns are not read) and writes the same
/// predictions as for the same rows in a CSV file.
#[cfg(feature = "hub")]
#[test]
fn predict_reads_a_parquet_table_as_it_reads_a_csv_table() {
    let tmp = tempfile::tempdir().unwrap();
    let parquet = std::path::absolute("tests/fixtures/tables/penguins-like.parquet").unwrap();
    // The fixture's rows as the Parquet reader gives them (f32), written as CSV tables:
    // one to train on, and the features alone (in another column order) to predict.
    let spec = ember::data::csv::TableSpec {
        target: vec!["species".into()],
        features: vec!["bill".into(), "year".into()],
        classes: true,
        ..Default::default()
    };
    let t = ember::data::parquet_table::read_parquet_table(&parquet, &spec).unwrap();
    let x = t.inputs.to_vec2::<f32>().unwrap();
    let y = t.target_values.to_vec1::<i64>().unwrap();
    let (train, new) = (tmp.path().join("train.csv"), tmp.path().join("new.csv"));
    let mut text = String::from("bill,year,species\n");
    let mut rows = String::from("year,bill\n");
    for (r, c) in x.iter().zip(&y) {
        text += &format!("{},{},{}\n", r[0], r[1], t.class_names[*c as usize]);
        rows += &format!("{},{}\n", r[1], r[0]);
    }
    std::fs::write(&train, text).unwrap();
    std::fs::write(&new, rows).unwrap();
    let toml = format!(
        "seed = 1\n[model]\nsizes = [2, 8, 3]\n[loss]\nname = \"cross_entropy\"\n[optimizer]\nname = \"adam\"\nlr = 0.05\n[data]\nkind = \"csv\"\npath = {:?}\ntarget = \"species\"\nclasses = true\nstandardize = true\neval_split = 0.2\n[train]\nepochs = 3\nbatch_size = 8\n",
        train.display().to_string()
    );
    let dir = tmp.path().join("r");
    run_csv(&dir, &toml);
    let run = dir.join("run");
    let (from_parquet, from_csv) = (tmp.path().join("p.csv"), tmp.path().join("c.csv"));
    let (ok, out, err) = predict_cli(&run, &parquet, &from_parquet);
    assert!(ok, "{err}");
    assert!(out.contains("wrote 30 predictions"), "{out}");
    let (ok, _, err) = predict_cli(&run, &new, &from_csv);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&from_parquet).unwrap();
    assert!(text.starts_with("id,prediction,p_Adelie,p_Chinstrap,p_Gentoo\n"), "{text}");
    assert_eq!(text.lines().count(), 31, "{text}");
    assert_eq!(std::fs::read_to_string(&from_csv).unwrap(), text);
}

/// Every file data kind through the CLI: trained, resumed with its CONFIG, and predicted
/// on with new inputs of its own kind written as CSV (a Parquet table, a safetensors
/// `input`, an image folder), from small fixtures.
#[test]
fn parquet_safetensors_and_image_folder_runs_train_resume_and_predict_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let penguins = std::path::absolute("tests/fixtures/tables/penguins-like.parquet").unwrap();
    let data = blobs(60, 4, 3, 8);
    let tensors = HashMap::from([
        ("x".to_string(), data.inputs().clone()),
        ("y".to_string(), data.targets().to_dtype(DType::U8).unwrap()),
    ]);
    candle_core::safetensors::save(&tensors, dir.join("d.safetensors")).unwrap();
    let new_inputs = HashMap::from([("input".to_string(), data.inputs().narrow(0, 0, 5).unwrap())]);
    candle_core::safetensors::save(&new_inputs, dir.join("new.safetensors")).unwrap();
    for (class, base) in [("cat", 30u8), ("dog", 220u8)] {
        std::fs::create_dir_all(dir.join("images").join(class)).unwrap();
        for i in 0..6 {
            png(&dir.join("images").join(class).join(format!("{i}.png")), 4, 4, |x, y| {
                let v = base.saturating_add(((x + y + i) % 5) as u8 * 4);
                [v, v, v]
            });
        }
    }
    let head = "seed = 2\n[loss]\nname = \"cross_entropy\"\n[optimizer]\nname = \"adam\"\nlr = 0.05\n[train]\nepochs = 1\nbatch_size = 8\n";
    let kinds = [
        (
            "parquet",
            format!(
                "[model]\nsizes = [2, 8, 3]\n[data]\nkind = \"parquet\"\npath = {:?}\ntarget = \"species\"\nfeatures = [\"bill\", \"year\"]\nclasses = true\nstandardize = true\neval_split = 0.2\n",
                penguins.display().to_string()
            ),
            penguins.clone(),
            "id,prediction,p_Adelie,p_Chinstrap,p_Gentoo",
            30,
        ),
        (
            "safetensors",
            "[model]\nsizes = [4, 8, 3]\n[data]\nkind = \"safetensors\"\npath = \"d.safetensors\"\ninputs = \"x\"\ntargets = \"y\"\neval_split = 0.25\n".to_string(),
            dir.join("new.safetensors"),
            "id,prediction,p_0,p_1,p_2",
            5,
        ),
        (
            "image_folder",
            "[model]\nsizes = [48, 2]\n[data]\nkind = \"image_folder\"\npath = \"images\"\nflip = true\neval_split = 0.25\n".to_string(),
            dir.join("images"),
            "id,prediction,p_cat,p_dog",
            12,
        ),
    ];
    for (kind, data, input, header, rows) in kinds {
        std::fs::write(dir.join(format!("{kind}.toml")), format!("{head}{data}")).unwrap();
        let run = dir.join(format!("run-{kind}"));
        let ember = |args: &[&str]| {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
                .args(args)
                .current_dir(dir)
                .env("HF_ENDPOINT", "http://127.0.0.1:9")
                .output()
                .unwrap();
            assert!(out.status.success(), "{kind}: {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let (config, run_arg) = (format!("{kind}.toml"), run.to_str().unwrap());
        ember(&["train", &config, "--out", run_arg, "--quiet"]);
        ember(&["train", &config, "--resume", run_arg, "--epochs", "2", "--quiet"]);
        assert!(run.join("checkpoints/epoch-0002.safetensors").is_file(), "{kind}");
        let dest = dir.join(format!("{kind}-predictions.csv"));
        ember(&["predict", run_arg, "--input", input.to_str().unwrap(), "--out", dest.to_str().unwrap()]);
        let text = std::fs::read_to_string(&dest).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], header, "{kind}: {text}");
        assert_eq!(lines.len(), rows + 1, "{kind}: {text}");
    }
}
