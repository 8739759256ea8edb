//! Checks of loss inputs shared by several losses, each failing with a message that
//! names the loss, what was given and what is needed.

use candle_core::{DType, Tensor};
use ember_core::ops::pointwise::check_float;
use ember_core::params::FloatTensor;
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

/// A tensor hyperparameter as a tensor of `input`'s dtype and device, in its own shape.
pub fn hyper_tensor(t: &FloatTensor, input: &Tensor) -> Result<Tensor> {
    Ok(Tensor::from_slice(t.data.as_slice(), t.shape.as_slice(), input.device())?.to_dtype(input.dtype())?)
}

/// One example of a shape that broadcasts to `input`: one value per entry of its last
/// dimension, or a single number for a 0-d input.
fn broadcast_example(input: &Tensor) -> String {
    match input.dims().last() {
        Some(c) => format!("[{c}] for one value per entry of the last dimension, [1] for one value for all"),
        None => "a single number".to_string(),
    }
}

/// A tensor hyperparameter that scales the loss elementwise (`bce` and `bce_with_logits`
/// `weight`, `pos_weight`), as a tensor of `input`'s dtype and device in its own shape,
/// checked as PyTorch checks it: it must broadcast to the input's shape, as an in-place
/// product does (aligned from the last dimension, each of its sizes 1 or the input's size
/// there, and no more dimensions than the input). `what` names the key.
pub fn broadcast_to_input(name: &str, what: &str, t: &FloatTensor, input: &Tensor) -> Result<Tensor> {
    let (shape, dims) = (t.shape.as_slice(), input.dims());
    let fits = shape.len() <= dims.len() && shape.iter().rev().zip(dims.iter().rev()).all(|(&w, &x)| w == 1 || w == x);
    if !fits {
        return Err(Error::input(format!(
            "{name}.{what} of shape {shape:?} does not broadcast to the input's shape {dims:?}: aligned from the last dimension, each of its sizes must be 1 or the input's size there, with at most {} dimensions; give e.g. {}",
            dims.len(),
            broadcast_example(input)
        )));
    }
    hyper_tensor(t, input)
}

/// A tensor hyperparameter that multiplies the loss with PyTorch's full broadcasting
/// (`multilabel_soft_margin` `weight`: the product may be larger than the input), as a
/// tensor of `input`'s dtype and device in its own shape: aligned from the last
/// dimension, each pair of sizes must be equal or one of them 1.
pub fn broadcast_with_input(name: &str, what: &str, t: &FloatTensor, input: &Tensor) -> Result<Tensor> {
    let (shape, dims) = (t.shape.as_slice(), input.dims());
    if !shape.iter().rev().zip(dims.iter().rev()).all(|(&w, &x)| w == 1 || x == 1 || w == x) {
        return Err(Error::input(format!(
            "{name}.{what} of shape {shape:?} does not broadcast with the input's shape {dims:?}: aligned from the last dimension, each pair of sizes must be equal or one of them 1; give e.g. {}",
            broadcast_example(input)
        )));
    }
    hyper_tensor(t, input)
}

/// Which shapes of a per-class `weight` a loss takes (PyTorch's rules, which differ by
/// loss and input rank).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PerClass {
    /// Exactly one dimension of C entries.
    Vector,
    /// C entries in any shape, read in order (`nll` and `cross_entropy` on inputs of 3 or
    /// more dimensions).
    AnyShape,
    /// C entries in a shape whose first size is C (`[C]`, `[C, 1]`, ...): `cross_entropy`
    /// with label smoothing on inputs of 3 or more dimensions, reduction none or sum.
    Leading,
}

/// A per-class `weight` checked as PyTorch checks it against the C classes along `dim` of
/// `input` (C = 1 for a 0-d input): its C values in order.
pub fn class_weights(name: &str, t: &FloatTensor, input: &Tensor, dim: usize, rule: PerClass) -> Result<Vec<f64>> {
    let classes = if input.rank() == 0 { 1 } else { input.dim(dim)? };
    let fits = match rule {
        PerClass::Vector => t.shape == [classes],
        PerClass::AnyShape => t.data.len() == classes,
        PerClass::Leading => t.data.len() == classes && t.shape.first() == Some(&classes),
    };
    if !fits {
        let at = if input.rank() == 0 { String::new() } else { format!(" (dim {dim})") };
        let also = match rule {
            PerClass::Vector => String::new(),
            PerClass::AnyShape => format!(" (or any shape of {classes} entries)"),
            PerClass::Leading => format!(" (or a shape [{classes}, 1, ...])"),
        };
        return Err(Error::input(format!(
            "{name}.weight has shape {:?} but the input of shape {:?} has {classes} classes{at}; give a 1-D weight of {classes} entries{also}, one per class",
            t.shape,
            input.dims()
        )));
    }
    Ok(t.data.clone())
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
