//! `leaky_relu`: x if x > 0, else negative_slope * x (PyTorch `nn.LeakyReLU`).

use candle_core::Tensor;
use ember_core::{Activation, Hyperparams, Result};

use ember_core::ops::composed::pick;
use ember_core::ops::pointwise::{apply, Pointwise, Real};

/// x if x > 0, else `negative_slope * x`; gradient 1 or `negative_slope` (the latter at
/// x = 0, as in PyTorch).
#[derive(Clone, Copy, Debug, PartialEq, Hyperparams)]
#[plugin(activation = "leaky_relu", summary = "x if x > 0 else negative_slope * x (nn.LeakyReLU)")]
pub struct LeakyRelu {
    /// slope for x <= 0
    #[param(default = 0.01)]
    pub negative_slope: f64,
}

impl Default for LeakyRelu {
    fn default() -> Self {
        Self { negative_slope: 0.01 }
    }
}

impl Pointwise for LeakyRelu {
    const NAME: &'static str = "leaky_relu";

    fn fwd<T: Real>(&self, x: T) -> T {
        if x > T::zero() {
            x
        } else {
            x * T::of(self.negative_slope)
        }
    }

    fn bwd<T: Real>(&self, x: T, _y: T, g: T) -> T {
        if x > T::zero() {
            g
        } else {
            g * T::of(self.negative_slope)
        }
    }

    fn fwd_composed(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        pick(&x.gt(0.0)?, x, &x.affine(self.negative_slope, 0.0)?)
    }

    fn bwd_composed(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        pick(&x.gt(0.0)?, g, &g.affine(self.negative_slope, 0.0)?)
    }
}

impl Activation for LeakyRelu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        apply(self, x)
    }
}
