//! Regression metrics over float targets of the output's shape (`[N]`, `[N, 1]` or
//! `[N, K]`), per column, then averaged over the columns with equal weights
//! (scikit-learn's `multioutput="uniform_average"`).
//!
//! Each column keeps the count, `Σ|e|`, `Σe²` (e = prediction - target), and the mean
//! and sum of squared deviations of the targets, merged batch by batch with Chan et al.'s
//! pairwise update, so R²'s `Σ(y - ȳ)²` is as exact as scikit-learn's two-pass sum.

use candle_core::Tensor;
use ember_core::metric::{targets_of, values, Direction, Metric, MetricState, Targets};
use ember_core::{Error, Hyperparams, Result};

/// Mean absolute error, `mean |ŷ - y|` (`mean_absolute_error`).
#[derive(Clone, Debug, Default, Hyperparams)]
#[plugin(metric = "mae", summary = "mean absolute error mean |pred - target| (sklearn mean_absolute_error)")]
pub struct Mae;

/// Mean squared error, `mean (ŷ - y)²` (`mean_squared_error`).
#[derive(Clone, Debug, Default, Hyperparams)]
#[plugin(metric = "mse", summary = "mean squared error mean (pred - target)^2 (sklearn mean_squared_error)")]
pub struct Mse;

/// Root mean squared error, `sqrt(mean (ŷ - y)²)` per column, then averaged
/// (`root_mean_squared_error`).
#[derive(Clone, Debug, Default, Hyperparams)]
#[plugin(
    metric = "rmse",
    summary = "root mean squared error sqrt(mean (pred - target)^2) (sklearn root_mean_squared_error)"
)]
pub struct Rmse;

/// The coefficient of determination, `1 - Σ(y - ŷ)² / Σ(y - ȳ)²` (`r2_score`).
#[derive(Clone, Debug, Hyperparams)]
#[plugin(metric = "r2", summary = "coefficient of determination 1 - SS_res / SS_tot (sklearn r2_score)")]
pub struct R2 {
    /// a column whose targets never vary scores 1 if predicted exactly, else 0 (scikit-learn's default); false: NaN or -inf
    #[param(default = true)]
    pub force_finite: bool,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Mae,
    Mse,
    Rmse,
    R2 { force_finite: bool },
}

/// `impl Metric` for a regression metric: its direction, and its [`Kind`] read from the
/// metric's options (`|m| ...`, `m` being the metric).
macro_rules! regression {
    ($ty:ident, $direction:expr, |$m:ident| $kind:expr) => {
        impl Metric for $ty {
            fn direction(&self) -> Direction {
                $direction
            }

            fn start(&self) -> Box<dyn MetricState> {
                let $m = self;
                Box::new(Columns { kind: $kind, columns: vec![] })
            }
        }
    };
}

regression!(Mae, Direction::Min, |_m| Kind::Mae);
regression!(Mse, Direction::Min, |_m| Kind::Mse);
regression!(Rmse, Direction::Min, |_m| Kind::Rmse);
regression!(R2, Direction::Max, |m| Kind::R2 { force_finite: m.force_finite });

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Mae => "mae",
            Kind::Mse => "mse",
            Kind::Rmse => "rmse",
            Kind::R2 { .. } => "r2",
        }
    }
}

/// One output column's sums.
#[derive(Clone, Copy, Debug, Default)]
struct Column {
    n: f64,
    abs: f64,
    sq: f64,
    /// Mean of the targets, and Σ(y - mean)².
    mean: f64,
    m2: f64,
}

impl Column {
    /// Adds a batch of (prediction, target) pairs.
    fn add(&mut self, pairs: &[(f64, f64)]) {
        let n = pairs.len() as f64;
        if n == 0.0 {
            return;
        }
        let mean = pairs.iter().map(|p| p.1).sum::<f64>() / n;
        let m2: f64 = pairs.iter().map(|p| (p.1 - mean) * (p.1 - mean)).sum();
        for &(p, y) in pairs {
            self.abs += (p - y).abs();
            self.sq += (p - y) * (p - y);
        }
        let total = self.n + n;
        let delta = mean - self.mean;
        self.m2 += m2 + delta * delta * self.n * n / total;
        self.mean += delta * n / total;
        self.n = total;
    }

    fn value(&self, kind: Kind) -> f64 {
        match kind {
            Kind::Mae => self.abs / self.n,
            Kind::Mse => self.sq / self.n,
            Kind::Rmse => (self.sq / self.n).sqrt(),
            Kind::R2 { force_finite } => {
                if self.m2 != 0.0 {
                    1.0 - self.sq / self.m2
                } else if force_finite {
                    if self.sq == 0.0 {
                        1.0
                    } else {
                        0.0
                    }
                } else if self.sq == 0.0 {
                    f64::NAN
                } else {
                    f64::NEG_INFINITY
                }
            }
        }
    }
}

#[derive(Debug)]
struct Columns {
    kind: Kind,
    columns: Vec<Column>,
}

impl MetricState for Columns {
    fn update(&mut self, output: &Tensor, target: &Tensor) -> Result<()> {
        let name = self.kind.name();
        let width = match targets_of(name, output, target)? {
            Targets::Floats { columns } => columns,
            Targets::Classes { .. } => {
                return Err(Error::input(format!(
                    "{name}: a regression metric needs float targets of the output's shape, got class indices {:?}; for classification use accuracy or f1",
                    target.dims()
                )))
            }
        };
        if self.columns.is_empty() {
            self.columns = vec![Column::default(); width];
        } else if self.columns.len() != width {
            return Err(Error::input(format!(
                "{name}: a batch with {width} output columns after batches with {}",
                self.columns.len()
            )));
        }
        let (pred, truth) = (values(output)?, values(target)?);
        for (j, column) in self.columns.iter_mut().enumerate() {
            let pairs: Vec<(f64, f64)> =
                pred.iter().skip(j).step_by(width).copied().zip(truth.iter().skip(j).step_by(width).copied()).collect();
            column.add(&pairs);
        }
        Ok(())
    }

    fn value(&self) -> Result<f64> {
        if self.columns.is_empty() || self.columns[0].n == 0.0 {
            return Ok(f64::NAN);
        }
        let k = self.columns.len() as f64;
        Ok(self.columns.iter().map(|c| c.value(self.kind)).sum::<f64>() / k)
    }
}
