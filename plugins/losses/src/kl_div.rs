//! `kl_div`: Kullback-Leibler divergence of the target from the input distribution
//! (PyTorch `nn.KLDivLoss`).

use candle_core::Tensor;
use ember_core::ops::composed::pick;
use ember_core::ops::pointwise::Real;
use ember_core::ops::ternary::{apply2, Ternary};
use ember_core::{Hyperparams, Loss, ParamEnum, Result};

use crate::inputs::elementwise_target;
use crate::reduction::Reduction;

/// Pointwise y (log y - x) for log-probabilities x and probabilities y (0 where y = 0),
/// or exp(y) (y - x) when `log_target` says y holds log-probabilities too. Gradient -y
/// (or -exp(y)). `reduction = "batchmean"` divides the sum by the batch size, which is
/// the true KL divergence; `mean` divides by the element count, as PyTorch does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Hyperparams)]
#[plugin(loss = "kl_div", summary = "KL divergence, input log-probabilities vs target probabilities (nn.KLDivLoss)")]
pub struct KlDiv {
    /// none; mean (over elements); sum; batchmean (sum / batch size, the true KL divergence)
    #[param(default = "mean")]
    pub reduction: KlDivReduction,
    /// the target holds log-probabilities
    #[param(default = false)]
    pub log_target: bool,
}

/// `kl_div`'s `reduction`: PyTorch's [`Reduction`] plus `batchmean`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ParamEnum)]
pub enum KlDivReduction {
    /// Per-element losses, the input's shape.
    None,
    /// The mean over elements.
    #[default]
    Mean,
    /// The sum over elements.
    Sum,
    /// The sum divided by the batch size (dim 0).
    #[param(name = "batchmean")]
    BatchMean,
}

impl KlDivReduction {
    /// Reduces per-element losses as [`Reduction::apply`]; BatchMean divides the sum by dim 0.
    pub fn apply(self, loss: Tensor) -> Result<Tensor> {
        match self {
            KlDivReduction::None => Reduction::None.apply(loss),
            KlDivReduction::Mean => Reduction::Mean.apply(loss),
            KlDivReduction::Sum => Reduction::Sum.apply(loss),
            KlDivReduction::BatchMean => {
                let n = if loss.rank() == 0 { 1 } else { loss.dim(0)? };
                Ok(loss.sum_all()?.affine(1.0 / n as f64, 0.0)?)
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Kernel {
    log_target: bool,
}

impl Ternary for Kernel {
    const NAME: &'static str = "kl_div";

    fn fwd<T: Real>(&self, x: T, y: T, _: T) -> T {
        if self.log_target {
            y.exp() * (y - x)
        } else {
            // xlogy(y, y): 0 where y is 0.
            let y_log_y = if y == T::zero() { T::zero() } else { y * y.ln() };
            y_log_y - y * x
        }
    }

    fn dfdx<T: Real>(&self, _x: T, y: T, _: T) -> T {
        if self.log_target {
            -y.exp()
        } else {
            -y
        }
    }

    fn fwd_composed(&self, x: &Tensor, y: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        if self.log_target {
            y.exp()?.mul(&y.sub(x)?)
        } else {
            let y_log_y = pick(&y.eq(0.0)?, &y.zeros_like()?, &y.mul(&y.log()?)?)?;
            y_log_y.sub(&y.mul(x)?)
        }
    }

    fn dfdx_composed(&self, _x: &Tensor, y: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        if self.log_target {
            y.exp()?.neg()
        } else {
            y.neg()
        }
    }
}

impl Loss for KlDiv {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        let target = elementwise_target("kl_div", input, target)?;
        self.reduction.apply(apply2(&Kernel { log_target: self.log_target }, input, &target)?)
    }
}
