//! `smooth_l1`: quadratic below `beta`, linear above (PyTorch `nn.SmoothL1Loss`).

use candle_core::Tensor;
use ember_core::ops::composed::{full_like, pick};
use ember_core::ops::pointwise::Real;
use ember_core::ops::ternary::{apply2, Ternary};
use ember_core::{check, Hyperparams, Loss, Result};

use crate::inputs::elementwise_target;
use crate::l1::AbsDiff;
use crate::reduction::Reduction;

/// With z = |x - y|: 0.5 z² / beta if z < beta, else z - 0.5 beta. beta = 0 is the L1
/// loss (as in PyTorch). Gradient (x - y) / beta inside, ±1 outside, 0 at x = y.
#[derive(Clone, Copy, Debug, PartialEq, Hyperparams)]
#[plugin(
    loss = "smooth_l1",
    summary = "0.5 d^2 / beta for |d| < beta, else |d| - 0.5 beta, d = input - target (nn.SmoothL1Loss)"
)]
pub struct SmoothL1 {
    /// where the loss turns from quadratic to linear; >= 0
    #[param(default = 1.0, check = check::non_negative)]
    pub beta: f64,
    /// none: per-element losses; mean; sum
    #[param(default = "mean")]
    pub reduction: Reduction,
}

#[derive(Clone, Copy, Debug)]
struct Kernel {
    beta: f64,
}

impl Ternary for Kernel {
    const NAME: &'static str = "smooth_l1";

    fn fwd<T: Real>(&self, x: T, t: T, _: T) -> T {
        let beta = T::of(self.beta);
        let z = (x - t).abs();
        if z < beta {
            T::of(0.5) * z * z / beta
        } else {
            z - T::of(0.5) * beta
        }
    }

    fn dfdx<T: Real>(&self, x: T, t: T, _: T) -> T {
        let beta = T::of(self.beta);
        let d = x - t;
        if d <= -beta {
            -T::one()
        } else if d >= beta {
            T::one()
        } else {
            d / beta
        }
    }

    fn fwd_composed(&self, x: &Tensor, t: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        let z = x.sub(t)?.abs()?;
        let quadratic = z.sqr()?.affine(0.5, 0.0)?.affine(1.0 / self.beta, 0.0)?;
        pick(&z.lt(self.beta)?, &quadratic, &z.affine(1.0, -0.5 * self.beta)?)
    }

    fn dfdx_composed(&self, x: &Tensor, t: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        let d = x.sub(t)?;
        let inner = pick(&d.ge(self.beta)?, &full_like(&d, 1.0)?, &d.affine(1.0 / self.beta, 0.0)?)?;
        pick(&d.le(-self.beta)?, &full_like(&d, -1.0)?, &inner)
    }
}

impl Loss for SmoothL1 {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        let target = elementwise_target("smooth_l1", input, target)?;
        let loss = if self.beta == 0.0 {
            apply2(&AbsDiff, input, &target)?
        } else {
            apply2(&Kernel { beta: self.beta }, input, &target)?
        };
        self.reduction.apply(loss)
    }
}
