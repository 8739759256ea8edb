//! The shared pieces of the penalties: |w| with PyTorch's gradient (0 at 0).

use candle_core::Tensor;
use ember_core::ops::composed::pick;
use ember_core::ops::pointwise::{apply, Pointwise, Real};
use ember_core::Result;

/// |w|, gradient sign(w) with sign(0) = 0, as `torch.abs`.
#[derive(Clone, Copy, Debug)]
struct Abs;

impl Pointwise for Abs {
    const NAME: &'static str = "l1";

    fn fwd<T: Real>(&self, x: T) -> T {
        x.abs()
    }

    fn bwd<T: Real>(&self, x: T, _y: T, g: T) -> T {
        if x > T::zero() {
            g
        } else if x < T::zero() {
            -g
        } else {
            T::zero()
        }
    }

    fn fwd_composed(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.abs()
    }

    fn bwd_composed(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        pick(&x.gt(0.0)?, g, &pick(&x.lt(0.0)?, &g.neg()?, &g.zeros_like()?)?)
    }
}

/// Σ|w|, differentiable.
pub fn sum_abs(w: &Tensor) -> Result<Tensor> {
    Ok(apply(&Abs, w)?.sum_all()?)
}

/// Σw², differentiable.
pub fn sum_sq(w: &Tensor) -> Result<Tensor> {
    Ok(w.sqr()?.sum_all()?)
}
