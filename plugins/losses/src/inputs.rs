//! Checks of loss inputs shared by several losses, each failing with a message that
//! names the loss, what was given and what is needed.

use candle_core::{DType, Tensor};
use ember_core::ops::pointwise::check_float;
use ember_core::{Error, LossArg, Result};

/// Whether `dtype` is a float type.
pub fn is_float(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
}

/// For elementwise losses: a float input and a float target of the same shape; returns
/// the target in the input's dtype.
pub fn elementwise_target(name: &str, input: &Tensor, target: &Tensor) -> Result<Tensor> {
    check_float(name, input)?;
    if !is_float(target.dtype()) {
        return Err(Error::input(format!(
            "{name}: target must be a float tensor, got {:?}; class indices go with cross_entropy or nll",
            target.dtype()
        )));
    }
    same_shape(name, input, target)?;
    Ok(target.to_dtype(input.dtype())?)
}

/// Input and target shapes must match (PyTorch would broadcast, usually by mistake).
pub fn same_shape(name: &str, input: &Tensor, target: &Tensor) -> Result<()> {
    if input.dims() != target.dims() {
        return Err(Error::input(format!(
            "{name}: input shape {:?} and target shape {:?} differ; they must be the same",
            input.dims(),
            target.dims()
        )));
    }
    Ok(())
}

/// A per-class weight vector as a tensor of `input`'s dtype and device, checked against
/// the size of `dim` (the class dimension); `what` names the key (`weight`, `pos_weight`).
pub fn class_vector(name: &str, what: &str, values: &[f64], input: &Tensor, dim: usize) -> Result<Tensor> {
    let n = if input.rank() == 0 { 1 } else { input.dim(dim)? };
    if values.len() != n {
        return Err(Error::input(format!(
            "{name}.{what} has {} entries but the input has {n} classes (dim {dim} of shape {:?}); give one per class",
            values.len(),
            input.dims()
        )));
    }
    Ok(Tensor::from_slice(values, values.len(), input.device())?.to_dtype(input.dtype())?)
}

/// `v` shaped to broadcast along `dim` of a tensor of rank `rank` ([1, .., C, .., 1]).
pub fn along(v: &Tensor, dim: usize, rank: usize) -> Result<Tensor> {
    let mut shape = vec![1; rank.max(1)];
    shape[dim] = v.elem_count();
    Ok(v.reshape(shape)?)
}

/// For the margin losses over classes (`multi_margin`, `multilabel_margin`): the number of
/// samples N and classes C of a (C) or (N, C) input, or (1, 1) for a 0-d input, as PyTorch
/// takes them. C must be at least 1.
pub fn frames_and_classes(name: &str, input: &Tensor) -> Result<(usize, usize)> {
    match *input.dims() {
        [] => Ok((1, 1)),
        [c] if c > 0 => Ok((1, c)),
        [n, c] if c > 0 => Ok((n, c)),
        _ => Err(Error::input(format!(
            "{name}: input must hold class scores of shape (C) or (N, C) with C >= 1, got shape {:?}",
            input.dims()
        ))),
    }
}

/// The target's values as f64 (integer or float targets), for checks on the host.
pub fn host_values(target: &Tensor) -> Result<Vec<f64>> {
    Ok(target.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?)
}

/// The tensors given to a loss of several arguments (`args`, in order), checked against
/// their number.
pub fn take<'a, const N: usize>(name: &str, args: &[LossArg], given: &[&'a Tensor]) -> Result<[&'a Tensor; N]> {
    <[&'a Tensor; N]>::try_from(given).map_err(|_| {
        Error::input(format!("{name} takes {} tensors ({}), got {}", args.len(), LossArg::names(args), given.len()))
    })
}

/// What [`Loss::forward`](ember_core::Loss::forward) answers for a loss of other arguments
/// than a model output and a target.
pub fn not_input_target(name: &str, args: &[LossArg]) -> Error {
    let names = LossArg::names(args);
    Error::input(format!(
        "{name} takes {names}, not a model output and a target: call forward_args(&[{names}]); in a Learner, compute it in a custom training step (LearnerBuilder::train_step), whose StepArgs carry the loss"
    ))
}

/// The dtype a loss computes in for inputs of `dtype`: f32 for f16 and bf16 (PyTorch's
/// math type for half floats), else `dtype` itself.
pub fn compute_dtype(dtype: DType) -> DType {
    match dtype {
        DType::F16 | DType::BF16 => DType::F32,
        d => d,
    }
}

/// Every target is 1 or -1 (PyTorch would read any other value as neither kind of pair).
pub fn plus_minus_one(name: &str, target: &Tensor) -> Result<()> {
    if let Some((i, v)) = host_values(target)?.into_iter().enumerate().find(|(_, v)| *v != 1.0 && *v != -1.0) {
        return Err(Error::input(format!(
            "{name}: every target must be 1 or -1, got {v} at flat index {i}; map 0/1 labels to -1/1 with 2y - 1"
        )));
    }
    Ok(())
}

/// max(z, 0) as PyTorch's `clamp_min(z, 0)` differentiates it: gradient 1 where z > 0,
/// else 0 (so 0 at z = 0); NaN stays NaN.
pub fn clamp_min_zero(z: &Tensor) -> candle_core::Result<Tensor> {
    z.le(0.0)?.where_cond(&z.zeros_like()?, z)
}
