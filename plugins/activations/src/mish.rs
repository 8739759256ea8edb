//! `mish`: x * tanh(softplus(x)) (PyTorch `nn.Mish`).

use candle_core::Tensor;
use ember_core::{Activation, Hyperparams, Result};

use ember_core::ops::pointwise::{apply, Pointwise, Real};

/// x * tanh(log1p(exp(x))); gradient tanh(sp) + x * σ(x) * (1 - tanh(sp)²), PyTorch's
/// formulas.
#[derive(Clone, Copy, Debug, Default, Hyperparams)]
#[plugin(activation = "mish", summary = "x * tanh(softplus(x)) (nn.Mish)")]
pub struct Mish;

impl Pointwise for Mish {
    const NAME: &'static str = "mish";

    fn fwd<T: Real>(&self, x: T) -> T {
        x * x.exp().ln_1p().tanh()
    }

    fn bwd<T: Real>(&self, x: T, _y: T, g: T) -> T {
        let tanh_softplus = x.exp().ln_1p().tanh();
        let sigmoid = T::one() / (T::one() + (-x).exp());
        g * (tanh_softplus + x * sigmoid * (T::one() - tanh_softplus * tanh_softplus))
    }

    fn fwd_composed(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.mul(&x.exp()?.affine(1.0, 1.0)?.log()?.tanh()?)
    }

    fn bwd_composed(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        let tanh_softplus = x.exp()?.affine(1.0, 1.0)?.log()?.tanh()?;
        let sigmoid = x.neg()?.exp()?.affine(1.0, 1.0)?.recip()?;
        let slope = x.mul(&sigmoid)?.mul(&tanh_softplus.sqr()?.affine(-1.0, 1.0)?)?;
        g.mul(&tanh_softplus.add(&slope)?)
    }
}

impl Activation for Mish {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        apply(self, x)
    }
}
