//! The `reduction` option every loss takes: how per-element losses combine.

use candle_core::Tensor;
use ember_core::{ParamEnum, Result};

/// PyTorch's `reduction` (`kl_div` takes [`KlDivReduction`](crate::KlDivReduction),
/// which adds `batchmean`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ParamEnum)]
pub enum Reduction {
    /// Per-element losses, the input's shape (or the batch shape).
    None,
    /// The mean over elements (weighted mean for `nll` and `cross_entropy`).
    #[default]
    Mean,
    /// The sum over elements.
    Sum,
}

impl Reduction {
    /// Reduces per-element losses: none as they are, sum, or the mean over all elements
    /// (NaN for an empty input, as in PyTorch).
    pub fn apply(self, loss: Tensor) -> Result<Tensor> {
        Ok(match self {
            Reduction::None => loss,
            Reduction::Sum => loss.sum_all()?,
            Reduction::Mean => {
                let n = loss.elem_count() as f64;
                loss.sum_all()?.affine(1.0 / n, 0.0)?
            }
        })
    }
}
