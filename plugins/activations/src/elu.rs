//! `elu`: x if x > 0, else alpha * (exp(x) - 1) (PyTorch `nn.ELU`).

use candle_core::Tensor;
use ember_core::{Activation, Hyperparams, Result};

use ember_core::ops::composed::pick;
use ember_core::ops::pointwise::{apply, Pointwise, Real};

/// PyTorch's ELU family (`torch.nn.functional.elu`, also behind SELU):
/// `scale * x` for x > 0, else `scale * alpha * expm1(input_scale * x)`;
/// gradient at x <= 0 is `input_scale * scale * alpha * exp(input_scale * x)`
/// (so `alpha` at x = 0, PyTorch's choice).
#[derive(Clone, Copy, Debug, PartialEq, Hyperparams)]
#[plugin(activation = "elu", summary = "x if x > 0 else alpha * (exp(x) - 1) (nn.ELU)")]
pub struct Elu {
    /// value the negative side saturates to is -alpha
    #[param(default = 1.0)]
    pub alpha: f64,
    #[param(skip = 1.0)]
    pub scale: f64,
    #[param(skip = 1.0)]
    pub input_scale: f64,
}

impl Elu {
    /// Plain ELU with the given `alpha` (`nn.ELU(alpha)`).
    pub fn new(alpha: f64) -> Self {
        Self { alpha, scale: 1.0, input_scale: 1.0 }
    }
}

impl Default for Elu {
    fn default() -> Self {
        Self::new(1.0)
    }
}

impl Pointwise for Elu {
    const NAME: &'static str = "elu";

    fn fwd<T: Real>(&self, x: T) -> T {
        let negcoef = T::of(self.alpha) * T::of(self.scale);
        if x <= T::zero() {
            (x * T::of(self.input_scale)).exp_m1() * negcoef
        } else {
            x * T::of(self.scale)
        }
    }

    fn bwd<T: Real>(&self, x: T, _y: T, g: T) -> T {
        let negcoef = T::of(self.alpha) * T::of(self.scale);
        let negiptcoef = T::of(self.input_scale);
        if x <= T::zero() {
            g * negiptcoef * negcoef * (x * negiptcoef).exp()
        } else {
            g * T::of(self.scale)
        }
    }

    fn fwd_composed(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let neg = x.affine(self.input_scale, 0.0)?.exp()?.affine(1.0, -1.0)?.affine(self.alpha * self.scale, 0.0)?;
        pick(&x.le(0.0)?, &neg, &x.affine(self.scale, 0.0)?)
    }

    fn bwd_composed(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        let slope = x.affine(self.input_scale, 0.0)?.exp()?.affine(self.input_scale * self.alpha * self.scale, 0.0)?;
        pick(&x.le(0.0)?, &g.mul(&slope)?, &g.affine(self.scale, 0.0)?)
    }
}

impl Activation for Elu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        apply(self, x)
    }
}
