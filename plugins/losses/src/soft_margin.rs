//! `soft_margin`: log(1 + exp(-y x)) for labels y = ±1 (PyTorch `nn.SoftMarginLoss`).

use candle_core::Tensor;
use ember_core::ops::pointwise::Real;
use ember_core::ops::ternary::{apply2, Ternary};
use ember_core::{Hyperparams, Loss, Result};

use crate::inputs::elementwise_target;
use crate::reduction::Reduction;

/// Two-class logistic loss log1p(exp(-y x)) with targets ±1; gradient
/// -y exp(-y x) / (1 + exp(-y x)). PyTorch's formulas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Hyperparams)]
#[plugin(
    loss = "soft_margin",
    summary = "two-class logistic loss log(1 + exp(-target * input)), targets +1/-1 (nn.SoftMarginLoss)"
)]
pub struct SoftMargin {
    /// none: per-element losses; mean; sum
    #[param(default = "mean")]
    pub reduction: Reduction,
}

#[derive(Clone, Copy, Debug)]
struct Kernel;

impl Ternary for Kernel {
    const NAME: &'static str = "soft_margin";

    fn fwd<T: Real>(&self, x: T, y: T, _: T) -> T {
        (-x * y).exp().ln_1p()
    }

    fn dfdx<T: Real>(&self, x: T, y: T, _: T) -> T {
        let z = (-y * x).exp();
        -y * z / (T::one() + z)
    }

    fn fwd_composed(&self, x: &Tensor, y: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        x.neg()?.mul(y)?.exp()?.affine(1.0, 1.0)?.log()
    }

    fn dfdx_composed(&self, x: &Tensor, y: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        let z = y.neg()?.mul(x)?.exp()?;
        y.neg()?.mul(&z)?.div(&z.affine(1.0, 1.0)?)
    }
}

impl Loss for SoftMargin {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        let target = elementwise_target("soft_margin", input, target)?;
        self.reduction.apply(apply2(&Kernel, input, &target)?)
    }
}
