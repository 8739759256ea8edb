//! `softmax`: exp(x) / sum(exp(x)) along `dim` (PyTorch `nn.Softmax`).

use candle_core::Tensor;
use ember_core::{Activation, Hyperparams, Result};

use ember_core::ops::normalize::{apply, Norm};

/// exp(x - max) / sum(exp(x - max)) along `dim`, so inputs of ±1000 give exact results;
/// gradient y * (g - sum(g * y)). With `dim` None, PyTorch's legacy implicit choice: dim
/// 0 for inputs of 0, 1 or 3 dimensions, else dim 1. Pass `dim` explicitly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hyperparams)]
#[plugin(activation = "softmax", summary = "exp(x) / sum(exp(x)) along dim (nn.Softmax)")]
pub struct Softmax {
    /// dimension to normalise; None: 0 for 0-, 1- and 3-d input, else 1
    pub dim: Option<i64>,
}

impl Activation for Softmax {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        apply(Norm::Softmax, self.dim, x)
    }
}
