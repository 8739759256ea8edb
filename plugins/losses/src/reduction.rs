//! The `reduction` option every loss takes: how per-element losses combine.

use candle_core::Tensor;
use ember_core::{Error, ParamSpec, Params, Result};

/// PyTorch's `reduction`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// Per-element losses, the input's shape (or the batch shape).
    None,
    /// The mean over elements (weighted mean for `nll` and `cross_entropy`).
    #[default]
    Mean,
    /// The sum over elements.
    Sum,
    /// The sum divided by the batch size (`kl_div` only).
    BatchMean,
}

/// The `reduction` key of every loss but `kl_div`.
pub const REDUCTION: ParamSpec =
    ParamSpec::choice("reduction", &["none", "mean", "sum"], "mean", "none: per-element losses; mean; sum");

impl Reduction {
    /// Reads the `reduction` key.
    pub fn from_params(p: &Params) -> Result<Self> {
        Ok(match p.str("reduction")? {
            "none" => Reduction::None,
            "mean" => Reduction::Mean,
            "sum" => Reduction::Sum,
            "batchmean" => Reduction::BatchMean,
            other => return Err(Error::input(format!("{}.reduction: unexpected {other:?}", p.plugin()))),
        })
    }

    /// Reduces per-element losses: none as they are, sum, or the mean over all elements
    /// (NaN for an empty input, as in PyTorch). BatchMean divides the sum by dim 0.
    pub fn apply(self, loss: Tensor) -> Result<Tensor> {
        Ok(match self {
            Reduction::None => loss,
            Reduction::Sum => loss.sum_all()?,
            Reduction::Mean => {
                let n = loss.elem_count() as f64;
                loss.sum_all()?.affine(1.0 / n, 0.0)?
            }
            Reduction::BatchMean => {
                let n = if loss.rank() == 0 { 1 } else { loss.dim(0)? };
                loss.sum_all()?.affine(1.0 / n as f64, 0.0)?
            }
        })
    }
}
