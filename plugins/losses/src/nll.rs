//! `nll`: negative log-likelihood of class indices given log-probabilities (PyTorch
//! `nn.NLLLoss`).

use candle_core::Tensor;
use ember_core::params::FloatTensor;
use ember_core::{Hyperparams, Loss, LossTargets, Result};

use crate::class_index::{divide, index_weight_rule, pick, Picked};
use crate::reduction::Reduction;

/// For log-probabilities x of shape (N, C), (N, C, d1, ...) or (C) and integer targets of
/// shape (N), (N, d1, ...) or (): `l = -w[y] x[y]` per element, 0 where y = ignore_index.
/// `mean` is `Σ l / Σ w[y]` over the kept elements (NaN if every target is ignored).
/// `weight` is a 1-D tensor of C entries, as PyTorch takes it (for inputs of 3 or more
/// dimensions PyTorch takes C entries in any shape, and so does Ember).
/// Pair it with `log_softmax`; `cross_entropy` does both in one step.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(loss = "nll", summary = "negative log-likelihood of class indices; input is log-probabilities (nn.NLLLoss)")]
pub struct Nll {
    /// rescaling weight per class, a 1-D tensor of C entries
    pub weight: Option<FloatTensor>,
    /// target value that contributes nothing (class-index targets)
    #[param(default = -100)]
    pub ignore_index: i64,
    /// none: per-element losses; mean; sum
    #[param(default = "mean")]
    pub reduction: Reduction,
}

impl Default for Nll {
    fn default() -> Self {
        Self { weight: None, ignore_index: -100, reduction: Reduction::Mean }
    }
}

/// The NLL of already-picked log-probabilities, reduced.
pub(crate) fn reduce_picked(p: &Picked, reduction: Reduction) -> Result<Tensor> {
    let loss = p.value.mul(&p.weight)?.neg()?;
    match reduction {
        Reduction::Mean => divide(loss.sum_all()?, p.total_weight),
        r => r.apply(loss),
    }
}

impl Loss for Nll {
    fn targets(&self) -> LossTargets {
        LossTargets::Classes
    }

    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        let rule = index_weight_rule(input.rank());
        let picked = pick("nll", input, target, self.weight.as_ref(), rule, self.ignore_index)?;
        reduce_picked(&picked, self.reduction)
    }
}
