//! `relu`: max(x, 0) (PyTorch `nn.ReLU`).

use candle_core::Tensor;
use ember_core::{Activation, Hyperparams, Result};

use ember_core::ops::pointwise::{self, apply};

/// max(x, 0), with NaN passed through; gradient 1 where the output is > 0, else 0
/// (so 0 at x = 0, PyTorch's choice). The formula is [`pointwise::Relu`], which batch
/// normalisation also applies when a `relu` layer follows it.
#[derive(Clone, Copy, Debug, Default, Hyperparams)]
#[plugin(activation = "relu", summary = "rectified linear unit max(x, 0) (nn.ReLU)")]
pub struct Relu;

impl Activation for Relu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        apply(&pointwise::Relu, x)
    }
}
