//! Gradient clipping, as PyTorch's `clip_grad_norm_` and `clip_grad_value_`.

use candle_core::backprop::GradStore;
use candle_core::{DType, Var};
use ember_core::{Error, Result};

/// The norm `clip_grad_norm` measures; in a run config `train.clip_norm_type`, written
/// `"2"` or `"inf"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, ember_core::ParamEnum)]
pub enum NormType {
    /// The Euclidean norm of all gradients taken together.
    #[default]
    #[param(name = "2")]
    L2,
    /// The largest absolute gradient entry.
    Inf,
}

/// Scales every gradient by min(1, max_norm / (total_norm + 1e-6)), where total_norm is
/// the norm of all gradients of `params` together; returns total_norm (before clipping).
/// Parameters without a gradient are skipped.
pub fn clip_grad_norm(grads: &mut GradStore, params: &[&Var], max_norm: f64, norm_type: NormType) -> Result<f64> {
    if max_norm.is_nan() || max_norm < 0.0 {
        return Err(Error::input(format!("clip_grad_norm: max_norm = {max_norm} is invalid: must be >= 0")));
    }
    let mut norms = Vec::new();
    for p in params {
        if let Some(g) = grads.get(p.as_tensor()) {
            let g = g.to_dtype(DType::F64)?;
            norms.push(match norm_type {
                NormType::L2 => g.sqr()?.sum_all()?.sqrt()?.to_scalar::<f64>()?,
                NormType::Inf => g.abs()?.max_all()?.to_scalar::<f64>()?,
            });
        }
    }
    let total = match norm_type {
        NormType::L2 => norms.iter().map(|n| n * n).sum::<f64>().sqrt(),
        NormType::Inf => norms.iter().copied().fold(0.0, f64::max),
    };
    let coef = (max_norm / (total + 1e-6)).min(1.0);
    for p in params {
        if let Some(g) = grads.get(p.as_tensor()) {
            let scaled = g.affine(coef, 0.0)?;
            grads.insert(p.as_tensor(), scaled);
        }
    }
    Ok(total)
}

/// Clamps every gradient entry of `params` to [-clip_value, clip_value].
pub fn clip_grad_value(grads: &mut GradStore, params: &[&Var], clip_value: f64) -> Result<()> {
    if clip_value.is_nan() || clip_value < 0.0 {
        return Err(Error::input(format!("clip_grad_value: clip_value = {clip_value} is invalid: must be >= 0")));
    }
    for p in params {
        if let Some(g) = grads.get(p.as_tensor()) {
            let clamped = g.clamp(-clip_value, clip_value)?;
            grads.insert(p.as_tensor(), clamped);
        }
    }
    Ok(())
}
