//! The seventh plugin kind: metrics. A registered metric holds its options (`k` of
//! top-k accuracy, `average` of F1); [`Metric::start`] gives an accumulator that takes a
//! data set batch by batch and returns one number over all of it, with the formula of
//! the scikit-learn function the metric names (counts and sums are accumulated, so the
//! value over a data set never depends on how it was split into batches).
//!
//! Metrics read a model's output and the targets as the loss does. The task follows from
//! the targets: integer class indices `[N]` (classification: the prediction is the
//! output's argmax over dimension 1), floats of the output's shape (multi-label with 0/1
//! targets, or regression), or `[N]` floats beside an `[N, 1]` or `[N]` output.
//!
//! In configs a metric is a name with optional `key=value` options:
//! `"top_k_accuracy:k=5"`, `"f1:average=macro"` ([`parse_spec`]).

use std::fmt::Debug;

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::value::{Config, Value};

/// Which way a metric improves: early stopping and the best checkpoint follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Larger is better (accuracy, F1, R²).
    Max,
    /// Smaller is better (MAE, RMSE).
    Min,
}

impl Direction {
    /// Whether `a` is better than `b` (NaN is never better).
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Max => a > b,
            Direction::Min => a < b,
        }
    }

    /// `max` or `min`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Max => "max",
            Direction::Min => "min",
        }
    }
}

/// A metric plugin: its options, and accumulators over data sets.
pub trait Metric: Send + Sync + Debug {
    /// Which way the metric improves.
    fn direction(&self) -> Direction;

    /// A fresh accumulator for one pass over a data set.
    fn start(&self) -> Box<dyn MetricState>;
}

/// One pass of a [`Metric`] over a data set.
pub trait MetricState: Send + Debug {
    /// Adds a batch: the model's `output` and the batch's `target`.
    fn update(&mut self, output: &Tensor, target: &Tensor) -> Result<()>;

    /// The value over every batch added: NaN when it is undefined (no examples, or a
    /// regression target that never varies for R² without `force_finite`).
    fn value(&self) -> Result<f64>;
}

/// What a batch's targets say about the task.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// Class indices, one per example, with the number of classes (the output's
    /// dimension 1).
    Classes { classes: usize },
    /// Floats of the output's shape, read per column (`[N, K]`: K columns).
    Floats { columns: usize },
}

/// Reads what task the `target` of an `output` belongs to, with a clear error for shapes
/// that fit no task. `metric` names the metric in errors.
pub fn targets_of(metric: &str, output: &Tensor, target: &Tensor) -> Result<Targets> {
    let (od, td) = (output.dims(), target.dims());
    if td.is_empty() || od.is_empty() || od[0] != td[0] {
        return Err(Error::input(format!(
            "{metric}: the output {od:?} and the target {td:?} must both start with the batch size"
        )));
    }
    if target.dtype().is_int() {
        if td.len() != 1 || od.len() != 2 {
            return Err(Error::input(format!(
                "{metric}: class-index targets {td:?} need an output of scores [N, classes], got {od:?}"
            )));
        }
        return Ok(Targets::Classes { classes: od[1] });
    }
    let columns = match (od.len(), td.len()) {
        (1, 1) => 1,
        (2, 1) if od[1] == 1 => 1,
        (2, 2) if od[1] == td[1] => od[1],
        _ => {
            return Err(Error::input(format!(
                "{metric}: float targets {td:?} need an output of the same shape, got {od:?} (for classification, give class indices as integers)"
            )))
        }
    };
    Ok(Targets::Floats { columns })
}

/// A tensor's values as f64, row-major.
pub fn values(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}

/// Splits a metric spec `name:key=value,key=value` into the name and its options
/// (numbers, `true`/`false`, `null`, or strings). `"f1:average=macro"` gives `f1` and
/// `{average: "macro"}`.
pub fn parse_spec(spec: &str) -> Result<(String, Config)> {
    let (name, rest) = match spec.split_once(':') {
        Some((n, r)) => (n.trim(), r.trim()),
        None => (spec.trim(), ""),
    };
    if name.is_empty() {
        return Err(Error::input(format!(
            "metric '{spec}': no name; write a registered metric, e.g. \"accuracy\" or \"f1:average=macro\""
        )));
    }
    let mut config = Config::new();
    for pair in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(Error::input(format!(
                "metric '{spec}': option '{pair}' is not key=value; write e.g. \"{name}:k=5\""
            )));
        };
        let value = value.trim();
        let parsed = if let Ok(i) = value.parse::<i64>() {
            Value::Int(i)
        } else if let Ok(f) = value.parse::<f64>() {
            Value::Float(f)
        } else {
            match value {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" | "none" | "None" => Value::Null,
                s => Value::Str(s.trim_matches('"').to_string()),
            }
        };
        config.insert(key.trim().to_string(), parsed);
    }
    Ok((name.to_string(), config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_split_into_a_name_and_typed_options() {
        let (n, c) = parse_spec("top_k_accuracy:k=5").unwrap();
        assert_eq!((n.as_str(), c.get("k")), ("top_k_accuracy", Some(&Value::Int(5))));
        let (n, c) = parse_spec(" f1 : average=macro, zero_division=1.0 ").unwrap();
        assert_eq!(n, "f1");
        assert_eq!(c.get("average"), Some(&Value::Str("macro".into())));
        assert_eq!(c.get("zero_division"), Some(&Value::Float(1.0)));
        assert!(parse_spec("mae").unwrap().1.is_empty());
        assert!(parse_spec("f1:macro").unwrap_err().to_string().contains("not key=value"));
        assert!(parse_spec(":k=1").is_err());
    }
}
