//! Class-index targets, shared by `nll` and `cross_entropy`: checking them, picking the
//! input at each target class, and the per-element class weights.

use candle_core::{DType, Tensor};
use ember_core::ops::pointwise::check_float;
use ember_core::params::FloatTensor;
use ember_core::{Error, Result};

use crate::inputs::{class_weights, is_float, PerClass};

/// The class dimension of an input: 1, or 0 for an unbatched (C) input.
pub fn class_dim(name: &str, input: &Tensor) -> Result<usize> {
    match input.rank() {
        0 => Err(Error::input(format!("{name}: input must have a class dimension, got a 0-d tensor"))),
        1 => Ok(0),
        _ => Ok(1),
    }
}

/// The input's value at each element's target class, and what the reductions need.
pub struct Picked {
    /// input[n, target[n, ...], ...], the target's shape; differentiable. 0 where ignored.
    pub value: Tensor,
    /// The class weight of each element (0 where ignored), the target's shape, no grad.
    pub weight: Tensor,
    /// Elements whose target is not `ignore_index` (u8, the target's shape).
    pub keep: Tensor,
    /// Σ weight over kept elements.
    pub total_weight: f64,
    /// Number of kept elements.
    pub kept: usize,
    /// The C class weights, as checked against the input (None without a weight).
    pub class_weight: Option<Vec<f64>>,
}

/// Which shapes of class `weight` PyTorch's `nll_loss` takes for an input of `rank`
/// dimensions: one dimension of C entries for (C) and (N, C) inputs, C entries in any shape
/// for (N, C, d1, ...) inputs.
pub fn index_weight_rule(rank: usize) -> PerClass {
    if rank <= 2 {
        PerClass::Vector
    } else {
        PerClass::AnyShape
    }
}

/// Checks an integer class-index target against `input`, and the class `weight` by `rule`
/// ([`index_weight_rule`] for nll), and picks the target classes.
pub fn pick(
    name: &str,
    input: &Tensor,
    target: &Tensor,
    weight: Option<&FloatTensor>,
    rule: PerClass,
    ignore_index: i64,
) -> Result<Picked> {
    check_float(name, input)?;
    let dim = class_dim(name, input)?;
    if is_float(target.dtype()) {
        return Err(Error::input(format!(
            "{name}: target must hold class indices (an integer tensor), got {:?}{}",
            target.dtype(),
            if name == "cross_entropy" {
                format!(
                    " of shape {:?}; probability targets must have the input's shape {:?}",
                    target.dims(),
                    input.dims()
                )
            } else {
                "; convert it with `to_dtype(DType::I64)`".to_string()
            }
        )));
    }
    let mut expected: Vec<usize> = input.dims().to_vec();
    let classes = expected.remove(dim);
    if target.dims() != expected.as_slice() {
        return Err(Error::input(format!(
            "{name}: input shape {:?} needs a class-index target of shape {:?}, got {:?}",
            input.dims(),
            expected,
            target.dims()
        )));
    }
    let class_weight = match weight {
        Some(w) => Some(class_weights(name, w, input, dim, rule)?),
        None => None,
    };
    let targets = target.flatten_all()?.to_dtype(DType::I64)?.to_vec1::<i64>()?;
    let mut index = Vec::with_capacity(targets.len());
    let mut weights = Vec::with_capacity(targets.len());
    let mut keep = Vec::with_capacity(targets.len());
    for &t in &targets {
        if t == ignore_index {
            index.push(0u32);
            weights.push(0.0);
            keep.push(0u8);
        } else if t < 0 || t >= classes as i64 {
            return Err(Error::input(format!(
                "{name}: target class index {t} is out of range for {classes} classes; use 0..={} (or ignore_index = {ignore_index})",
                classes as i64 - 1
            )));
        } else {
            index.push(t as u32);
            weights.push(class_weight.as_ref().map_or(1.0, |w| w[t as usize]));
            keep.push(1u8);
        }
    }
    let device = input.device();
    let mut index_shape = expected.clone();
    index_shape.insert(dim, 1);
    let index = Tensor::from_vec(index, index_shape, device)?;
    let keep_mask = Tensor::from_vec(keep, expected.clone(), device)?;
    let gathered = input.contiguous()?.gather(&index, dim)?.squeeze(dim)?;
    // Ignored elements hold input[.., 0, ..], which may be -inf: select zero instead.
    let value = keep_mask.where_cond(&gathered, &gathered.zeros_like()?)?;
    Ok(Picked {
        value,
        total_weight: weights.iter().sum(),
        weight: Tensor::from_vec(weights, expected, device)?.to_dtype(input.dtype())?,
        kept: keep_mask.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()? as usize,
        keep: keep_mask,
        class_weight,
    })
}

/// Σ loss / `denominator`, or NaN when the denominator is 0 (everything ignored) with a
/// zero gradient, as PyTorch gives.
pub fn divide(sum: Tensor, denominator: f64) -> Result<Tensor> {
    Ok(if denominator == 0.0 { sum.affine(1.0, f64::NAN)? } else { sum.affine(1.0 / denominator, 0.0)? })
}
