//! `selu`: scale * elu(x, alpha) with the self-normalising constants (PyTorch `nn.SELU`).

use candle_core::Tensor;
use ember_core::{Activation, Hyperparams, Result};

use crate::elu::Elu;
use ember_core::ops::pointwise::{apply, Pointwise, Real};

/// PyTorch's SELU α.
pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_284_817_042_991_671_7;
/// PyTorch's SELU scale λ.
pub const SELU_SCALE: f64 = 1.050_700_987_355_480_493_419_334_985_294_6;

/// SELU(x) = λ·x for x > 0, else λ·α·(exp(x) - 1), with PyTorch's α and λ; computed, as in
/// PyTorch, as an ELU with `scale` = λ.
#[derive(Clone, Copy, Debug, Default, Hyperparams)]
#[plugin(
    activation = "selu",
    summary = "scale * (x if x > 0 else alpha * (exp(x) - 1)), self-normalising constants (nn.SELU)"
)]
pub struct Selu;

impl Selu {
    fn elu() -> Elu {
        Elu { alpha: SELU_ALPHA, scale: SELU_SCALE, input_scale: 1.0 }
    }
}

impl Pointwise for Selu {
    const NAME: &'static str = "selu";

    fn fwd<T: Real>(&self, x: T) -> T {
        Self::elu().fwd(x)
    }

    fn bwd<T: Real>(&self, x: T, y: T, g: T) -> T {
        Self::elu().bwd(x, y, g)
    }

    fn fwd_composed(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Self::elu().fwd_composed(x)
    }

    fn bwd_composed(&self, x: &Tensor, y: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        Self::elu().bwd_composed(x, y, g)
    }
}

impl Activation for Selu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        apply(self, x)
    }
}
