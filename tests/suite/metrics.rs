//! Metrics, the seventh plugin kind: registration and listing, specs with options, the
//! value over a data set whatever the batching, and clear errors for targets a metric
//! cannot read. Their formulas are checked against scikit-learn by
//! `tests/parity/metrics.json` (`gen_metrics.py`).

use std::process::Command;

use candle_core::{Device, Tensor};
use ember::core::metric::parse_spec;
use ember::core::registry::{plugins, Kind};
use ember::core::{BuildContext, Direction, Metric};

fn metric(spec: &str) -> Box<dyn Metric> {
    let (name, config) = parse_spec(spec).unwrap();
    ember::core::metric(&name, &config, &BuildContext::default()).unwrap()
}

fn value(spec: &str, batches: &[(Tensor, Tensor)]) -> ember::core::Result<f64> {
    let mut state = metric(spec).start();
    for (o, t) in batches {
        state.update(o, t)?;
    }
    state.value()
}

fn scores(rows: &[[f32; 3]]) -> Tensor {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (rows.len(), 3), &Device::Cpu).unwrap()
}

fn classes(ys: &[i64]) -> Tensor {
    Tensor::new(ys, &Device::Cpu).unwrap()
}

fn floats(ys: &[f32]) -> Tensor {
    Tensor::new(ys, &Device::Cpu).unwrap()
}

#[test]
fn metrics_are_registered_listed_and_built_from_specs() {
    let names: Vec<&str> = plugins(Kind::Metric).iter().map(|p| p.name).collect();
    assert_eq!(names, ["accuracy", "f1", "mae", "mse", "precision", "r2", "recall", "rmse", "top_k_accuracy"]);
    let out = Command::new(env!("CARGO_BIN_EXE_ember")).args(["plugins", "--kind", "metric"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("metrics (9)\n"), "{text}");
    assert!(text.contains("average: binary|micro|macro|weighted = \"binary\""), "{text}");
    assert!(text.contains("k: int = 2"), "{text}");
    for (spec, direction) in [("accuracy", Direction::Max), ("r2", Direction::Max), ("rmse", Direction::Min)] {
        assert_eq!(metric(spec).direction(), direction, "{spec}");
    }
    let (name, config) = parse_spec("top_k_accuracy:k=0").unwrap();
    let e = ember::core::metric(&name, &config, &BuildContext::default()).unwrap_err().to_string();
    assert_eq!(e, "top_k_accuracy.k = 0 is invalid: must be >= 1");
    let (name, config) = parse_spec("f1:average=mean").unwrap();
    let e = ember::core::metric(&name, &config, &BuildContext::default()).unwrap_err().to_string();
    assert!(e.starts_with("f1.average = \"mean\" is invalid"), "{e}");
    let e = ember::core::metric("f2", &Default::default(), &BuildContext::default()).unwrap_err().to_string();
    assert!(e.starts_with("unknown metric 'f2'") && e.contains("did you mean 'f1'"), "{e}");
}

#[test]
fn a_value_covers_the_whole_data_set_whatever_the_batches() {
    // Per-batch macro F1 averaged would differ: the first batch has no class 2 at all.
    let (o1, t1) = (scores(&[[3., 1., 0.], [0., 2., 1.], [2., 0., 1.]]), classes(&[0, 1, 1]));
    let (o2, t2) = (scores(&[[0., 1., 4.], [1., 0., 3.]]), classes(&[2, 0]));
    let whole = (Tensor::cat(&[&o1, &o2], 0).unwrap(), Tensor::cat(&[&t1, &t2], 0).unwrap());
    for spec in ["accuracy", "f1:average=macro", "precision:average=weighted", "recall:average=micro", "top_k_accuracy"]
    {
        let split = value(spec, &[(o1.clone(), t1.clone()), (o2.clone(), t2.clone())]).unwrap();
        let once = value(spec, std::slice::from_ref(&whole)).unwrap();
        assert_eq!(split, once, "{spec}");
    }
    // Predictions 0, 1, 0, 2, 2 against 0, 1, 1, 2, 0: per class F1 1/2, 2/3, 2/3.
    let f1 = value("f1:average=macro", std::slice::from_ref(&whole)).unwrap();
    assert!((f1 - (0.5 + 2.0 / 3.0 + 2.0 / 3.0) / 3.0).abs() < 1e-12, "{f1}");
    assert_eq!(value("accuracy", &[whole]).unwrap(), 0.6);
    // R² over batches merges the targets' spread exactly.
    let (p, y) = (floats(&[1.0, 2.5, 2.0, 4.5]), floats(&[1.0, 2.0, 3.0, 4.0]));
    let split = value(
        "r2",
        &[
            (p.narrow(0, 0, 1).unwrap(), y.narrow(0, 0, 1).unwrap()),
            (p.narrow(0, 1, 3).unwrap(), y.narrow(0, 1, 3).unwrap()),
        ],
    )
    .unwrap();
    assert!((split - (1.0 - 1.5 / 5.0)).abs() < 1e-12, "{split}");
}

#[test]
fn an_empty_data_set_gives_nan() {
    for spec in ["accuracy", "f1:average=macro", "mae", "r2", "top_k_accuracy"] {
        assert!(value(spec, &[]).unwrap().is_nan(), "{spec}");
    }
}

#[test]
fn targets_a_metric_cannot_read_are_clear_errors() {
    let o = scores(&[[3., 1., 0.], [0., 2., 1.]]);
    let err = |spec: &str, t: &Tensor| value(spec, &[(o.clone(), t.clone())]).unwrap_err().to_string();
    assert_eq!(
        err("f1", &classes(&[0, 2])),
        "f1: average = \"binary\" (scikit-learn's default) scores class 1 of a two-class problem, but the data has class 2; use average = \"macro\", \"micro\" or \"weighted\", or label = N for one class"
    );
    assert_eq!(
        err("accuracy", &classes(&[0, 3])),
        "accuracy: target 1 is class 3, outside 0..3 (the output's scores per example); check the labels or the last layer's size"
    );
    assert!(err("mae", &classes(&[0, 1])).starts_with("mae: a regression metric needs float targets"));
    assert!(err("top_k_accuracy", &Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap())
        .starts_with("top_k_accuracy: needs class-index targets"));
    let labels = Tensor::new(&[[1f32, 0., 2.], [0., 1., 0.]], &Device::Cpu).unwrap();
    assert_eq!(
        err("f1:average=macro", &labels),
        "f1: multi-label targets are 0 or 1; row 0, label 2 is 2 (for regression use mae, mse, rmse or r2)"
    );
    assert!(err("f1:label=5", &classes(&[0, 1])).starts_with("f1: label = 5, but the output has 3 scores per example"));
    assert!(err("accuracy", &floats(&[0., 1., 2.])).contains("must both start with the batch size"));
}
