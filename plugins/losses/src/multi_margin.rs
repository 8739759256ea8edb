//! `multi_margin`: the multi-class hinge loss on class scores and class indices (PyTorch
//! `nn.MultiMarginLoss`).

use candle_core::{DType, Tensor};
use ember_core::ops::pointwise::check_float;
use ember_core::params::FloatTensor;
use ember_core::{check, Error, Hyperparams, Loss, LossTargets, Result};

use crate::inputs::{class_weights, frames_and_classes, is_float, PerClass};
use crate::reduction::Reduction;

/// For scores x of shape (N, C) or (C) and class indices y of shape (N) or (): per sample,
/// `Σ_{i ≠ y} w[y] max(0, margin - x[y] + x[i])^p / C`; then `reduction` over the N
/// samples (`none` gives the target's shape). A term counts only where
/// `margin - x[y] + x[i] > 0`, so its gradient is 0 at the kink, as PyTorch's. Pair it
/// with raw scores (no softmax); predictions are the arg-max class.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    loss = "multi_margin",
    summary = "multi-class hinge loss: sum over other classes of max(0, margin - x[y] + x[i])^p / C (nn.MultiMarginLoss)"
)]
pub struct MultiMargin {
    /// the exponent of each hinge term: 1 or 2
    #[param(default = 1, check = one_or_two)]
    pub p: i64,
    /// how far the target's score must exceed every other class's score
    #[param(default = 1.0, check = check::finite)]
    pub margin: f64,
    /// rescaling weight per class (a 1-D tensor of C entries), applied by each sample's target class
    pub weight: Option<FloatTensor>,
    /// none: per-sample losses; mean; sum
    #[param(default = "mean")]
    pub reduction: Reduction,
}

impl Default for MultiMargin {
    fn default() -> Self {
        Self { p: 1, margin: 1.0, weight: None, reduction: Reduction::Mean }
    }
}

/// PyTorch's rule: "only p == 1 and p == 2 supported".
fn one_or_two(v: &i64) -> check::Check {
    if *v == 1 || *v == 2 {
        Ok(())
    } else {
        Err("must be 1 or 2 (the only powers PyTorch supports)".into())
    }
}

impl Loss for MultiMargin {
    fn targets(&self) -> LossTargets {
        LossTargets::Classes
    }

    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        const NAME: &str = "multi_margin";
        check_float(NAME, input)?;
        let (frames, classes) = frames_and_classes(NAME, input)?;
        if is_float(target.dtype()) {
            return Err(Error::input(format!(
                "{NAME}: target must hold class indices (an integer tensor), got {:?}; convert it with `to_dtype(DType::I64)`",
                target.dtype()
            )));
        }
        // PyTorch: a target of at most one dimension with one index per sample.
        if target.rank() > 1 || target.elem_count() != frames {
            let needed = if input.rank() == 2 { format!("[{frames}]") } else { "[] or [1]".to_string() };
            return Err(Error::input(format!(
                "{NAME}: input shape {:?} needs a class-index target of shape {needed}, got {:?}",
                input.dims(),
                target.dims()
            )));
        }
        // PyTorch: a 1-D weight of C entries (one for a 0-d input).
        let class_weight = match &self.weight {
            Some(w) => Some(class_weights(NAME, w, input, input.rank().saturating_sub(1), PerClass::Vector)?),
            None => None,
        };
        let targets = target.flatten_all()?.to_dtype(DType::I64)?.to_vec1::<i64>()?;
        let mut index = Vec::with_capacity(frames);
        let mut others = Vec::with_capacity(frames * classes);
        let mut sample_weight = Vec::with_capacity(frames);
        for &t in &targets {
            if t < 0 || t >= classes as i64 {
                return Err(Error::input(format!(
                    "{NAME}: target class index {t} is out of range for {classes} classes; use 0..={}",
                    classes - 1
                )));
            }
            index.push(t as u32);
            others.extend((0..classes).map(|c| u8::from(c as i64 != t)));
            sample_weight.push(class_weight.as_ref().map_or(1.0, |w| w[t as usize]));
        }
        let device = input.device();
        let x = input.reshape((frames, classes))?.contiguous()?;
        let index = Tensor::from_vec(index, (frames, 1), device)?;
        let others = Tensor::from_vec(others, (frames, classes), device)?;
        // z = margin - x[y] + x[i], in PyTorch's order.
        let z = x.gather(&index, 1)?.affine(-1.0, self.margin)?.broadcast_add(&x)?;
        let zero = z.zeros_like()?;
        let term = if self.p == 2 { z.sqr()? } else { z.clone() };
        let term = z.gt(0.0)?.where_cond(&term, &zero)?;
        let term = others.where_cond(&term, &zero)?;
        let mut per_sample = term.sum(1)?.affine(1.0 / classes as f64, 0.0)?;
        if class_weight.is_some() {
            let w = Tensor::from_vec(sample_weight, frames, device)?.to_dtype(input.dtype())?;
            per_sample = per_sample.mul(&w)?;
        }
        self.reduction.apply(per_sample.reshape(target.dims())?)
    }
}
