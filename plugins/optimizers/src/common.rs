//! Pieces shared by the optimizers: PyTorch's tensor update primitives as composed candle
//! ops (the reference path, and the path for CUDA, Metal and half precision), state
//! helpers, and the checks PyTorch applies to hyperparameters.

use candle_core::{DType, Tensor};
use ember_core::ops::fused::fusable;
use ember_core::ops::pointwise::Real;
use ember_core::{Error, ParamSpec, Params, Result, State};

/// `self + alpha * other` (PyTorch `add(other, alpha=...)`).
pub fn add_scaled(a: &Tensor, b: &Tensor, alpha: f64) -> Result<Tensor> {
    Ok(a.add(&b.affine(alpha, 0.0)?)?)
}

/// `self + weight * (end - self)` for weight < 0.5, else `end - (end - self) * (1 - weight)`
/// (PyTorch `lerp`).
pub fn lerp(start: &Tensor, end: &Tensor, weight: f64) -> Result<Tensor> {
    let diff = end.sub(start)?;
    Ok(if weight < 0.5 { start.add(&diff.affine(weight, 0.0)?)? } else { end.sub(&diff.affine(1.0 - weight, 0.0)?)? })
}

/// `self + value * t1 * t2` (PyTorch `addcmul`).
pub fn addcmul(s: &Tensor, t1: &Tensor, t2: &Tensor, value: f64) -> Result<Tensor> {
    Ok(s.add(&t1.affine(value, 0.0)?.mul(t2)?)?)
}

/// `self + value * t1 / t2` (PyTorch `addcdiv`).
pub fn addcdiv(s: &Tensor, t1: &Tensor, t2: &Tensor, value: f64) -> Result<Tensor> {
    Ok(s.add(&t1.affine(value, 0.0)?.div(t2)?)?)
}

/// The same as [`lerp`] for one element.
#[inline(always)]
pub fn lerp1<T: Real>(start: T, end: T, weight: T, weight_lt_half: bool) -> T {
    let diff = end - start;
    if weight_lt_half {
        start + weight * diff
    } else {
        end - diff * (T::one() - weight)
    }
}

/// max that propagates NaN, as `torch.maximum`.
#[inline(always)]
pub fn nan_max<T: Real>(a: T, b: T) -> T {
    if a.is_nan() || a > b {
        a
    } else {
        b
    }
}

/// The gradient the update uses: negated when maximizing, plus `weight_decay * param`
/// when the decay is L2 (coupled).
pub fn effective_grad(param: &Tensor, grad: &Tensor, maximize: bool, weight_decay: f64) -> Result<Tensor> {
    let g = if maximize { grad.neg()? } else { grad.clone() };
    Ok(if weight_decay != 0.0 { add_scaled(&g, param, weight_decay)? } else { g })
}

/// The parameter after decoupled weight decay (p·(1 - lr·wd), AdamW-style) and the
/// gradient the update uses (negated when maximizing, plus wd·p for coupled decay).
pub fn decay_and_grad(
    param: &Tensor,
    grad: &Tensor,
    maximize: bool,
    weight_decay: f64,
    decoupled: bool,
    lr: f64,
) -> Result<(Tensor, Tensor)> {
    if decoupled && weight_decay != 0.0 {
        let p = param.affine(1.0 - lr * weight_decay, 0.0)?;
        let g = effective_grad(&p, grad, maximize, 0.0)?;
        Ok((p, g))
    } else {
        Ok((param.clone(), effective_grad(param, grad, maximize, weight_decay)?))
    }
}

/// Adam's moment updates: m ← lerp(m, g, 1-β1), v ← β2·v + (1-β2)·g², from the state
/// buffers `exp_avg` and `exp_avg_sq` (not yet stored back).
pub fn adam_moments(optimizer: &str, state: &State, g: &Tensor, (b1, b2): (f64, f64)) -> Result<(Tensor, Tensor)> {
    let m = lerp(buffer(optimizer, state, "exp_avg")?, g, 1.0 - b1)?;
    let v = addcmul(&buffer(optimizer, state, "exp_avg_sq")?.affine(b2, 0.0)?, g, g, 1.0 - b2)?;
    Ok((m, v))
}

/// Zero buffers named `names`, shaped like `param`, plus `step = 0`.
pub fn zero_state(param: &Tensor, names: &[&str]) -> Result<State> {
    let mut s = State::new();
    for n in names {
        s.tensors.insert(n.to_string(), param.zeros_like()?.contiguous()?);
    }
    s.scalars.insert("step".into(), 0.0);
    Ok(s)
}

/// Increments and returns the `step` count.
pub fn next_step(state: &mut State) -> f64 {
    let step = state.scalar("step").unwrap_or(0.0) + 1.0;
    state.scalars.insert("step".into(), step);
    step
}

/// The state tensor `name`, or an error naming it (a state from another optimizer or config).
pub fn buffer<'a>(optimizer: &str, state: &'a State, name: &str) -> Result<&'a Tensor> {
    state.tensor(name).ok_or_else(|| {
        Error::input(format!(
            "{optimizer}: the optimizer state has no '{name}' buffer (state saved by another optimizer or configuration?)"
        ))
    })
}

/// Which fused kernel applies to `param`, `grad` and `states`, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fused {
    F32,
    F64,
}

/// `Some` when the tensors are contiguous CPU f32 or f64 tensors of one size.
pub fn fused_kind(param: &Tensor, grad: &Tensor, states: &[&Tensor]) -> Option<Fused> {
    match param.dtype() {
        DType::F32 if fusable::<f32>(param, grad, states) => Some(Fused::F32),
        DType::F64 if fusable::<f64>(param, grad, states) => Some(Fused::F64),
        _ => None,
    }
}

pub const LR_DOC: &str = "learning rate; >= 0";
pub const WEIGHT_DECAY: ParamSpec = ParamSpec::float("weight_decay", 0.0, "L2 penalty added to the gradient; >= 0");
pub const MAXIMIZE: ParamSpec = ParamSpec::bool("maximize", false, "maximize the objective instead of minimizing");

/// A float key that must be >= 0 (PyTorch's "Invalid ... value" checks).
pub fn non_negative(p: &Params, key: &str) -> Result<f64> {
    p.float_where(key, |v| v >= 0.0, "must be >= 0")
}

/// `betas`: two numbers in [0, 1).
pub fn betas(p: &Params) -> Result<(f64, f64)> {
    let b = p.float_list("betas")?;
    match b.as_slice() {
        [b1, b2] if (0.0..1.0).contains(b1) && (0.0..1.0).contains(b2) => Ok((*b1, *b2)),
        _ => Err(p.invalid("betas", "expected two numbers in [0, 1)")),
    }
}
