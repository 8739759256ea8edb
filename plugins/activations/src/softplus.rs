//! `softplus`: log(1 + exp(beta * x)) / beta (PyTorch `nn.Softplus`).

use candle_core::Tensor;
use ember_core::{Activation, ActivationEntry, ParamSpec, Result};

use ember_core::ops::composed::pick;
use ember_core::ops::pointwise::{apply, Pointwise, Real};

/// log1p(exp(beta * x)) / beta, and x itself where beta * x > threshold (so softplus(1000)
/// is 1000, not inf); gradient exp(beta x) / (exp(beta x) + 1), or 1 past the threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Softplus {
    /// Sharpness, > 0.
    pub beta: f64,
    /// Above `beta * x > threshold` the function is linear.
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

ember_core::inventory::submit! {
    ActivationEntry {
        name: "softplus",
        summary: "smooth ReLU log(1 + exp(beta * x)) / beta, linear above threshold (nn.Softplus)",
        params: &[
            ParamSpec::float("beta", 1.0, "sharpness; must be > 0"),
            ParamSpec::float("threshold", 20.0, "above beta * x > threshold the output is x"),
        ],
        module: module_path!(),
        build: |p, _| {
            Ok(Box::new(Softplus {
                beta: p.float_where("beta", |b| b > 0.0, "must be > 0")?,
                threshold: p.float("threshold")?,
            }))
        },
    }
}
