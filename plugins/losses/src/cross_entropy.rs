//! `cross_entropy`: log-softmax and negative log-likelihood in one step, for class
//! indices or class probabilities (PyTorch `nn.CrossEntropyLoss`).

use candle_core::Tensor;
use ember_core::ops::normalize::{self, Norm};
use ember_core::params::FloatTensor;
use ember_core::{check, Hyperparams, Loss, LossTargets, Result};

use crate::class_index::{class_dim, divide, index_weight_rule, pick};
use crate::inputs::{along, class_weights, is_float, same_shape, PerClass};
use crate::nll::reduce_picked;
use crate::reduction::Reduction;

/// Cross-entropy of raw scores (logits) x of shape (N, C), (N, C, d1, ...) or (C):
///
/// - integer targets (class indices, the input's shape without C): nll(log_softmax(x)),
///   with `weight` and `ignore_index` as in `nll`. With label smoothing ε the loss is
///   (1 - ε) nll + (ε / C) Σ_c -w_c log p_c, the smooth term normalised like the nll
///   term, as PyTorch combines them.
/// - float targets of the input's shape (probabilities or one-hot rows):
///   -Σ_c w_c y_c log p_c per element, with y smoothed to y (1 - ε) + ε / C; `mean`
///   divides by the number of elements (N · d1 · ...).
///
/// `weight` is a 1-D tensor of C entries, as PyTorch takes it; for class-index targets and
/// inputs of 3 or more dimensions PyTorch also takes C entries in any shape (with label
/// smoothing, a shape whose first size is C, and 1-D under `mean`), and so does Ember.
///
/// Do not put `softmax` before it: it applies log-softmax itself.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    loss = "cross_entropy",
    summary = "log_softmax + nll over logits; class-index or probability targets (nn.CrossEntropyLoss)"
)]
pub struct CrossEntropy {
    /// rescaling weight per class, a 1-D tensor of C entries
    pub weight: Option<FloatTensor>,
    /// target value that contributes nothing (class-index targets)
    #[param(default = -100)]
    pub ignore_index: i64,
    /// mix each target with the uniform distribution; in [0, 1]
    #[param(default = 0.0, check = check::probability)]
    pub label_smoothing: f64,
    /// none: per-element losses; mean; sum
    #[param(default = "mean")]
    pub reduction: Reduction,
}

impl Default for CrossEntropy {
    fn default() -> Self {
        Self { weight: None, ignore_index: -100, label_smoothing: 0.0, reduction: Reduction::Mean }
    }
}

impl CrossEntropy {
    fn class_indices(&self, logp: &Tensor, target: &Tensor, dim: usize) -> Result<Tensor> {
        let eps = self.label_smoothing;
        // PyTorch's label smoothing views the weight along its first dimension, and its
        // mean gathers from it as a 1-D tensor.
        let rule = match index_weight_rule(logp.rank()) {
            PerClass::AnyShape if eps > 0.0 && self.reduction == Reduction::Mean => PerClass::Vector,
            PerClass::AnyShape if eps > 0.0 => PerClass::Leading,
            rule => rule,
        };
        let picked = pick("cross_entropy", logp, target, self.weight.as_ref(), rule, self.ignore_index)?;
        let nll_loss = reduce_picked(&picked, self.reduction)?;
        if eps == 0.0 {
            return Ok(nll_loss);
        }
        let classes = logp.dim(dim)?;
        let weighted = match &picked.class_weight {
            Some(w) => logp.broadcast_mul(&per_class(w, logp, dim)?)?,
            None => logp.clone(),
        };
        let smooth = weighted.sum(dim)?.neg()?;
        let smooth = picked.keep.where_cond(&smooth, &smooth.zeros_like()?)?;
        let smooth = match self.reduction {
            Reduction::Mean => {
                let denominator = if self.weight.is_some() { picked.total_weight } else { picked.kept as f64 };
                divide(smooth.sum_all()?, denominator)?
            }
            r => r.apply(smooth)?,
        };
        Ok(nll_loss.affine(1.0 - eps, 0.0)?.add(&smooth.affine(eps / classes as f64, 0.0)?)?)
    }

    fn probabilities(&self, logp: &Tensor, target: &Tensor, dim: usize) -> Result<Tensor> {
        same_shape("cross_entropy", logp, target)?;
        let classes = logp.dim(dim)?;
        let mut target = target.to_dtype(logp.dtype())?;
        if self.label_smoothing > 0.0 {
            target = target.affine(1.0 - self.label_smoothing, self.label_smoothing / classes as f64)?;
        }
        let mut prod = logp.mul(&target)?;
        if let Some(w) = &self.weight {
            // PyTorch: probability targets take a 1-D weight of C entries at every rank.
            let w = class_weights("cross_entropy", w, logp, dim, PerClass::Vector)?;
            prod = prod.broadcast_mul(&per_class(&w, logp, dim)?)?;
        }
        Ok(match self.reduction {
            Reduction::None => prod.sum(dim)?.neg()?,
            Reduction::Mean => {
                let n = logp.elem_count() / classes.max(1);
                let sum = prod.sum_all()?.neg()?;
                if n == 0 {
                    sum.affine(1.0, f64::NAN)?
                } else {
                    sum.affine(1.0 / n as f64, 0.0)?
                }
            }
            r => r.apply(prod.neg()?)?,
        })
    }
}

/// C class weights as a tensor of `logp`'s dtype and device shaped to broadcast along `dim`.
fn per_class(w: &[f64], logp: &Tensor, dim: usize) -> Result<Tensor> {
    let w = Tensor::from_slice(w, w.len(), logp.device())?.to_dtype(logp.dtype())?;
    along(&w, dim, logp.rank())
}

impl Loss for CrossEntropy {
    fn targets(&self) -> LossTargets {
        LossTargets::ClassesOrProbabilities
    }

    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        let dim = class_dim("cross_entropy", input)?;
        let logp = normalize::apply(Norm::LogSoftmax, Some(dim as i64), input)?;
        if is_float(target.dtype()) && target.dims() == input.dims() {
            self.probabilities(&logp, target, dim)
        } else {
            self.class_indices(&logp, target, dim)
        }
    }
}
