//! `huber`: quadratic below `delta`, linear (slope delta) above (PyTorch `nn.HuberLoss`).

use candle_core::Tensor;
use ember_core::ops::composed::{full_like, pick};
use ember_core::ops::pointwise::Real;
use ember_core::ops::ternary::{apply2, Ternary};
use ember_core::{check, Hyperparams, Loss, Result};

use crate::inputs::elementwise_target;
use crate::reduction::Reduction;

/// With z = |x - y|: 0.5 z² if z < delta, else delta (z - 0.5 delta). Equals
/// delta * smooth_l1 with beta = delta. Gradient x - y inside, ±delta outside.
#[derive(Clone, Copy, Debug, PartialEq, Hyperparams)]
#[plugin(
    loss = "huber",
    summary = "0.5 d^2 for |d| < delta, else delta (|d| - 0.5 delta), d = input - target (nn.HuberLoss)"
)]
pub struct Huber {
    /// where the loss turns from quadratic to linear; > 0
    #[param(default = 1.0, check = check::positive)]
    pub delta: f64,
    /// none: per-element losses; mean; sum
    #[param(default = "mean")]
    pub reduction: Reduction,
}

#[derive(Clone, Copy, Debug)]
struct Kernel {
    delta: f64,
}

impl Ternary for Kernel {
    const NAME: &'static str = "huber";

    fn fwd<T: Real>(&self, x: T, t: T, _: T) -> T {
        let delta = T::of(self.delta);
        let z = (x - t).abs();
        if z < delta {
            T::of(0.5) * z * z
        } else {
            delta * (z - T::of(0.5) * delta)
        }
    }

    fn dfdx<T: Real>(&self, x: T, t: T, _: T) -> T {
        let delta = T::of(self.delta);
        let d = x - t;
        if d <= -delta {
            -delta
        } else if d >= delta {
            delta
        } else {
            d
        }
    }

    fn fwd_composed(&self, x: &Tensor, t: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        let delta = self.delta;
        let z = x.sub(t)?.abs()?;
        pick(&z.lt(delta)?, &z.sqr()?.affine(0.5, 0.0)?, &z.affine(1.0, -0.5 * delta)?.affine(delta, 0.0)?)
    }

    fn dfdx_composed(&self, x: &Tensor, t: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        let delta = self.delta;
        let d = x.sub(t)?;
        let inner = pick(&d.ge(delta)?, &full_like(&d, delta)?, &d)?;
        pick(&d.le(-delta)?, &full_like(&d, -delta)?, &inner)
    }
}

impl Loss for Huber {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        let target = elementwise_target("huber", input, target)?;
        self.reduction.apply(apply2(&Kernel { delta: self.delta }, input, &target)?)
    }
}
