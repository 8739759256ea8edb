//! `nll`: negative log-likelihood of class indices given log-probabilities (PyTorch
//! `nn.NLLLoss`).

use candle_core::Tensor;
use ember_core::{Loss, LossEntry, ParamSpec, ParamType, Result};

use crate::class_index::{divide, pick, Picked};
use crate::reduction::{Reduction, REDUCTION};

/// For log-probabilities x of shape (N, C), (N, C, d1, ...) or (C) and integer targets of
/// shape (N), (N, d1, ...) or (): `l = -w[y] x[y]` per element, 0 where y = ignore_index.
/// `mean` is `Σ l / Σ w[y]` over the kept elements (NaN if every target is ignored).
/// Pair it with `log_softmax`; `cross_entropy` does both in one step.
#[derive(Clone, Debug, PartialEq)]
pub struct Nll {
    pub weight: Option<Vec<f64>>,
    pub ignore_index: i64,
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
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        let picked = pick("nll", input, target, self.weight.as_deref(), self.ignore_index)?;
        reduce_picked(&picked, self.reduction)
    }
}

/// The `weight` and `ignore_index` keys of `nll` and `cross_entropy`.
pub(crate) const WEIGHT: ParamSpec = ParamSpec::optional("weight", ParamType::FloatList, "rescaling weight per class");
pub(crate) const IGNORE_INDEX: ParamSpec =
    ParamSpec::int("ignore_index", -100, "target value that contributes nothing (class-index targets)");

ember_core::inventory::submit! {
    LossEntry {
        name: "nll",
        summary: "negative log-likelihood of class indices; input is log-probabilities (nn.NLLLoss)",
        params: &[WEIGHT, IGNORE_INDEX, REDUCTION],
        module: module_path!(),
        build: |p, _| {
            Ok(Box::new(Nll {
                weight: p.opt_float_list("weight")?,
                ignore_index: p.int("ignore_index")?,
                reduction: Reduction::from_params(p)?,
            }))
        },
    }
}
