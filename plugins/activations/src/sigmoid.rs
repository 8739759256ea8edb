//! `sigmoid`: σ(x) = 1 / (1 + exp(-x)) (PyTorch `nn.Sigmoid`).

use candle_core::Tensor;
use ember_core::{Activation, Hyperparams, Result};

use ember_core::ops::pointwise::{apply, Pointwise, Real};

/// The logistic sigmoid, σ(x) = 1 / (1 + exp(-x)); gradient σ(x)(1 - σ(x)), computed
/// from the output. Like `torch.sigmoid`: sigmoid(-100) is 3.7e-44, not NaN.
///
/// ```
/// # use candle_core::{Device, Tensor};
/// # use ember_core::Activation;
/// let y = ember_activations::Sigmoid.forward(&Tensor::new(&[0f64, 100.0], &Device::Cpu)?)?;
/// assert_eq!(y.to_vec1::<f64>()?, [0.5, 1.0]);
/// # Ok::<(), ember_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, Hyperparams)]
#[plugin(activation = "sigmoid", summary = "logistic sigmoid 1 / (1 + exp(-x)) (nn.Sigmoid)")]
pub struct Sigmoid;

impl Pointwise for Sigmoid {
    const NAME: &'static str = "sigmoid";

    fn fwd<T: Real>(&self, x: T) -> T {
        T::one() / (T::one() + (-x).exp())
    }

    fn bwd<T: Real>(&self, _x: T, y: T, g: T) -> T {
        g * (T::one() - y) * y
    }

    fn fwd_composed(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.neg()?.exp()?.affine(1.0, 1.0)?.recip()
    }

    fn bwd_composed(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        g.mul(&y.affine(-1.0, 1.0)?)?.mul(y)
    }
}

impl Activation for Sigmoid {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        apply(self, x)
    }
}
