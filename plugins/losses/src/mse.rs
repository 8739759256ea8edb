//! `mse`: (input - target)² (PyTorch `nn.MSELoss`).

use candle_core::Tensor;
use ember_core::ops::pointwise::Real;
use ember_core::ops::ternary::{apply2, Ternary};
use ember_core::{Hyperparams, Loss, Result};

use crate::inputs::elementwise_target;
use crate::reduction::Reduction;

/// Mean (or sum, or none) of (x - y)²; gradient 2 (x - y).
#[derive(Clone, Copy, Debug, Default, PartialEq, Hyperparams)]
#[plugin(loss = "mse", summary = "mean squared error (input - target)^2 (nn.MSELoss)")]
pub struct Mse {
    /// none: per-element losses; mean; sum
    #[param(default = "mean")]
    pub reduction: Reduction,
}

#[derive(Clone, Copy, Debug)]
struct SquaredDiff;

impl Ternary for SquaredDiff {
    const NAME: &'static str = "mse";

    fn fwd<T: Real>(&self, x: T, t: T, _: T) -> T {
        let d = x - t;
        d * d
    }

    fn dfdx<T: Real>(&self, x: T, t: T, _: T) -> T {
        T::of(2.0) * (x - t)
    }

    fn fwd_composed(&self, x: &Tensor, t: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        x.sub(t)?.sqr()
    }

    fn dfdx_composed(&self, x: &Tensor, t: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        x.sub(t)?.affine(2.0, 0.0)
    }
}

impl Loss for Mse {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        let target = elementwise_target("mse", input, target)?;
        self.reduction.apply(apply2(&SquaredDiff, input, &target)?)
    }
}
