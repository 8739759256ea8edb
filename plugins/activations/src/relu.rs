//! `relu`: max(x, 0) (PyTorch `nn.ReLU`).

use candle_core::Tensor;
use ember_core::{Activation, Hyperparams, Result};

use ember_core::ops::composed::pick;
use ember_core::ops::pointwise::{apply, Pointwise, Real};

/// max(x, 0), with NaN passed through; gradient 1 where the output is > 0, else 0
/// (so 0 at x = 0, PyTorch's choice).
#[derive(Clone, Copy, Debug, Default, Hyperparams)]
#[plugin(activation = "relu", summary = "rectified linear unit max(x, 0) (nn.ReLU)")]
pub struct Relu;

impl Pointwise for Relu {
    const NAME: &'static str = "relu";

    fn fwd<T: Real>(&self, x: T) -> T {
        if x > T::zero() || x.is_nan() {
            x
        } else {
            T::zero()
        }
    }

    fn bwd<T: Real>(&self, _x: T, y: T, g: T) -> T {
        if y <= T::zero() {
            T::zero()
        } else {
            g
        }
    }

    fn fwd_composed(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        pick(&x.le(0.0)?, &x.zeros_like()?, x)
    }

    fn bwd_composed(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        pick(&y.le(0.0)?, &g.zeros_like()?, g)
    }
}

impl Activation for Relu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        apply(self, x)
    }
}
