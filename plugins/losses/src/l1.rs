//! `l1`: |input - target| (PyTorch `nn.L1Loss`).

use candle_core::Tensor;
use ember_core::ops::composed::{full_like, pick};
use ember_core::ops::pointwise::Real;
use ember_core::ops::ternary::{apply2, Ternary};
use ember_core::{Hyperparams, Loss, Result};

use crate::inputs::elementwise_target;
use crate::reduction::Reduction;

/// Mean (or sum, or none) of |x - y|. The gradient is sign(x - y), 0 where x = y, as
/// PyTorch's.
///
/// ```
/// # use candle_core::{Device, Tensor};
/// # use ember_core::Loss;
/// use ember_losses::{L1, Reduction};
/// let x = Tensor::new(&[1f64, 2.0, 3.0], &Device::Cpu)?;
/// let y = Tensor::new(&[1f64, 0.0, 4.0], &Device::Cpu)?;
/// assert_eq!(L1 { reduction: Reduction::Sum }.forward(&x, &y)?.to_scalar::<f64>()?, 3.0);
/// # Ok::<(), ember_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Hyperparams)]
#[plugin(loss = "l1", summary = "mean absolute error |input - target| (nn.L1Loss)")]
pub struct L1 {
    /// none: per-element losses; mean; sum
    #[param(default = "mean")]
    pub reduction: Reduction,
}

/// |x - t| and its derivative; shared with `smooth_l1` at beta = 0.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AbsDiff;

impl Ternary for AbsDiff {
    const NAME: &'static str = "l1";

    fn fwd<T: Real>(&self, x: T, t: T, _: T) -> T {
        (x - t).abs()
    }

    fn dfdx<T: Real>(&self, x: T, t: T, _: T) -> T {
        let d = x - t;
        if d > T::zero() {
            T::one()
        } else if d < T::zero() {
            -T::one()
        } else {
            T::zero()
        }
    }

    fn fwd_composed(&self, x: &Tensor, t: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        x.sub(t)?.abs()
    }

    fn dfdx_composed(&self, x: &Tensor, t: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        let d = x.sub(t)?;
        let zero = d.zeros_like()?;
        pick(&d.gt(0.0)?, &full_like(&d, 1.0)?, &pick(&d.lt(0.0)?, &full_like(&d, -1.0)?, &zero)?)
    }
}

impl Loss for L1 {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        let target = elementwise_target("l1", input, target)?;
        self.reduction.apply(apply2(&AbsDiff, input, &target)?)
    }
}
