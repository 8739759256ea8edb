//! `softplus`: log(1 + exp(beta * x)) / beta (PyTorch `nn.Softplus`).

use candle_core::Tensor;
use ember_core::{check, Activation, Hyperparams, Result};

use ember_core::ops::composed::pick;
use ember_core::ops::pointwise::{apply, Pointwise, Real};

/// log1p(exp(beta * x)) / beta, and x itself where beta * x > threshold (so softplus(1000)
/// is 1000, not inf); gradient exp(beta x) / (exp(beta x) + 1), or 1 past the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Hyperparams)]
#[plugin(
    activation = "softplus",
    summary = "smooth ReLU log(1 + exp(beta * x)) / beta, linear above threshold (nn.Softplus)"
)]
pub struct Softplus {
    /// sharpness; must be > 0
    #[param(default = 1.0, check = check::positive)]
    pub beta: f64,
    /// above beta * x > threshold the output is x
    #[param(default = 20.0)]
    pub threshold: f64,
}

impl Default for Softplus {
    fn default() -> Self {
        Self { beta: 1.0, threshold: 20.0 }
    }
}

impl Pointwise for Softplus {
    const NAME: &'static str = "softplus";

    fn fwd<T: Real>(&self, x: T) -> T {
        let beta = T::of(self.beta);
        if x * beta > T::of(self.threshold) {
            x
        } else {
            (x * beta).exp().ln_1p() / beta
        }
    }

    fn bwd<T: Real>(&self, x: T, _y: T, g: T) -> T {
        let beta = T::of(self.beta);
        let z = (x * beta).exp();
        if x * beta > T::of(self.threshold) {
            g
        } else {
            g * z / (z + T::one())
        }
    }

    fn fwd_composed(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let z = x.affine(self.beta, 0.0)?;
        let soft = z.exp()?.affine(1.0, 1.0)?.log()?.affine(1.0 / self.beta, 0.0)?;
        pick(&z.gt(self.threshold)?, x, &soft)
    }

    fn bwd_composed(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        let bx = x.affine(self.beta, 0.0)?;
        let z = bx.exp()?;
        pick(&bx.gt(self.threshold)?, g, &g.mul(&z)?.div(&z.affine(1.0, 1.0)?)?)
    }
}

impl Activation for Softplus {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        apply(self, x)
    }
}
