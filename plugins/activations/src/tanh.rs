//! `tanh`: the hyperbolic tangent (PyTorch `nn.Tanh`).

use candle_core::Tensor;
use ember_core::{Activation, Hyperparams, Result};

use ember_core::ops::pointwise::{apply, Pointwise, Real};

/// tanh(x); gradient 1 - tanh(x)², computed from the output as `torch.tanh` does.
#[derive(Clone, Copy, Debug, Default, Hyperparams)]
#[plugin(activation = "tanh", summary = "hyperbolic tangent (nn.Tanh)")]
pub struct Tanh;

impl Pointwise for Tanh {
    const NAME: &'static str = "tanh";

    fn fwd<T: Real>(&self, x: T) -> T {
        x.tanh()
    }

    fn bwd<T: Real>(&self, _x: T, y: T, g: T) -> T {
        g * (T::one() - y * y)
    }

    fn fwd_composed(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.tanh()
    }

    fn bwd_composed(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        g.mul(&y.sqr()?.affine(-1.0, 1.0)?)
    }
}

impl Activation for Tanh {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        apply(self, x)
    }
}
