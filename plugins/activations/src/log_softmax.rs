//! `log_softmax`: log(softmax(x)) along `dim` (PyTorch `nn.LogSoftmax`).

use candle_core::Tensor;
use ember_core::{Activation, Hyperparams, Result};

use ember_core::ops::normalize::{apply, Norm};

/// x - max - log(sum(exp(x - max))) along `dim`, finite for inputs of ±1000; gradient
/// g - exp(y) * sum(g). `dim` None follows PyTorch's legacy implicit choice (see
/// [`crate::Softmax`]). Pair it with the `nll` loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hyperparams)]
#[plugin(activation = "log_softmax", summary = "log(softmax(x)) along dim, computed stably (nn.LogSoftmax)")]
pub struct LogSoftmax {
    /// dimension to normalise; None: 0 for 0-, 1- and 3-d input, else 1
    pub dim: Option<i64>,
}

impl Activation for LogSoftmax {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        apply(Norm::LogSoftmax, self.dim, x)
    }
}
