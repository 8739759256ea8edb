//! `silu`: x * σ(x), also called swish (PyTorch `nn.SiLU`).

use candle_core::Tensor;
use ember_core::{Activation, Hyperparams, Result};

use ember_core::ops::pointwise::{apply, Pointwise, Real};

/// x / (1 + exp(-x)); gradient σ(x) * (1 + x * (1 - σ(x))), PyTorch's formulas.
#[derive(Clone, Copy, Debug, Default, Hyperparams)]
#[plugin(activation = "silu", summary = "sigmoid linear unit x * sigmoid(x), a.k.a. swish (nn.SiLU)")]
pub struct Silu;

impl Pointwise for Silu {
    const NAME: &'static str = "silu";

    fn fwd<T: Real>(&self, x: T) -> T {
        x / (T::one() + (-x).exp())
    }

    fn bwd<T: Real>(&self, x: T, _y: T, g: T) -> T {
        let sigmoid = T::one() / (T::one() + (-x).exp());
        g * sigmoid * (T::one() + x * (T::one() - sigmoid))
    }

    fn fwd_composed(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.div(&x.neg()?.exp()?.affine(1.0, 1.0)?)
    }

    fn bwd_composed(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        let sigmoid = x.neg()?.exp()?.affine(1.0, 1.0)?.recip()?;
        g.mul(&sigmoid)?.mul(&x.mul(&sigmoid.affine(-1.0, 1.0)?)?.affine(1.0, 1.0)?)
    }
}

impl Activation for Silu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        apply(self, x)
    }
}
