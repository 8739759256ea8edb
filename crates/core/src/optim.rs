//! Writing an optimizer: the [`Optimizer`] trait with typed state, the
//! [`OptimizerState`] derive's trait, and the PyTorch-matching tensor helpers an update
//! is made of (`lerp`, `addcmul`, `addcdiv`, a true division by a scalar, NaN-propagating
//! max, weight decay and `maximize`).
//!
//! A driver (`ember_train::OptimizerDriver`) keeps one state per parameter, builds one
//! optimizer per parameter group and hands each step the learning rate in effect (and
//! the momentum, when a scheduler cycles it); the optimizer keeps no copy of either.

use std::any::Any;
use std::fmt::Debug;

use candle_core::{DType, Tensor, Var};

use crate::error::{Error, Result};
use crate::ops::fused::fusable;
use crate::ops::pointwise::Real;
use crate::params::{ParamType, ParamValue, Params};
use crate::state::State;

/// What the driver tells an optimizer at each step.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct StepContext {
    /// The learning rate in effect (the scheduler's, or the configured one).
    pub lr: f64,
    /// The momentum a scheduler sets for this step (`one_cycle` with
    /// `cycle_momentum`): PyTorch's `momentum`, or `betas[0]` for optimizers with betas.
    /// `None` when nothing schedules it: use the configured value.
    pub momentum: Option<f64>,
}

impl StepContext {
    /// A step at learning rate `lr`, momentum as configured.
    pub fn new(lr: f64) -> Self {
        Self { lr, momentum: None }
    }

    /// The same step with a scheduled momentum.
    pub fn with_momentum(self, momentum: Option<f64>) -> Self {
        Self { momentum, ..self }
    }

    /// The momentum (or `betas[0]`) for this step: the scheduled one, else `configured`.
    pub fn momentum_or(&self, configured: f64) -> f64 {
        self.momentum.unwrap_or(configured)
    }
}

/// An optimizer's state for one parameter, as a struct: `#[derive(OptimizerState)]` on
/// a struct of buffers (`Tensor`), optional buffers (`Option<Tensor>`) and scalars
/// (`f64`, `u64`, ...). Checkpoints store each field under its name, so name fields as
/// PyTorch does (`exp_avg`, `exp_avg_sq`, `momentum_buffer`, `step`); a saved state with
/// a missing or an unknown entry is refused when it is loaded.
pub trait OptimizerState: Clone + Debug + Send + Sync + 'static {
    /// Buffers every state has.
    const BUFFERS: &'static [&'static str];
    /// Buffers a state may have (created lazily, or only with some options).
    const OPTIONAL_BUFFERS: &'static [&'static str];
    /// Scalars (saved as f64).
    const SCALARS: &'static [&'static str];

    /// The state as named tensors and scalars.
    fn save(&self) -> State;

    /// The state from what [`OptimizerState::save`] wrote; missing or unknown entries
    /// are an error naming them.
    fn load(state: &State) -> Result<Self>;
}

/// The math of one optimizer, applied to one parameter at a time, with typed state.
///
/// Register it with `#[derive(Hyperparams)]` and `#[plugin(optimizer = "name", lr = ...)]`;
/// the registry hands it out as a [`DynOptimizer`].
pub trait Optimizer: Send + Sync + Debug + 'static {
    /// The per-parameter state.
    type State: OptimizerState;

    /// Fresh state for `param` (zero buffers, step 0).
    fn init_state(&self, param: &Tensor) -> Result<Self::State>;

    /// One update of `param` from `grad`, at `ctx.lr`, reading and updating `state`.
    fn step(&self, param: &Var, grad: &Tensor, state: &mut Self::State, ctx: &StepContext) -> Result<()>;

    /// The point at which the model is evaluated, when it is not the parameter itself:
    /// schedule-free optimizers train at an interpolation `y` and evaluate at their
    /// average `x` (what the `schedulefree` package's `optimizer.eval()` swaps in).
    /// `None` (the default): evaluate at the parameter.
    fn eval_point(&self, param: &Tensor, state: &Self::State) -> Result<Option<Tensor>> {
        let _ = (param, state);
        Ok(None)
    }

    /// `Some` for optimizers that update every parameter at once and re-evaluate the
    /// loss during a step (L-BFGS, PyTorch's `step(closure)`); the driver then calls
    /// [`ClosureOptimizer::step`] instead of [`Optimizer::step`]. `None` by default.
    fn closure_optimizer(&self) -> Option<&dyn ClosureOptimizer> {
        None
    }
}

/// Re-evaluates the loss and the gradient of every parameter at the parameters' current
/// values (PyTorch's `closure`): the loss, and one gradient per parameter, in the order
/// the parameters were given (zeros where a parameter got none).
pub type Closure<'a> = dyn FnMut() -> Result<(f64, Vec<Tensor>)> + 'a;

/// An optimizer that sees all parameters together and may evaluate the loss several
/// times per step (L-BFGS). Its state is one [`State`] for the whole parameter set.
pub trait ClosureOptimizer: Send + Sync + Debug {
    /// Fresh state (before the first step).
    fn init_state(&self, params: &[&Var]) -> Result<State>;

    /// One step (PyTorch's `optimizer.step(closure)`). `loss` and `grads` are the
    /// closure's value at the current parameters, already computed by the caller (PyTorch's
    /// first `closure()` call inside `step`); `closure` evaluates again after the
    /// parameters move.
    fn step(
        &self,
        params: &[&Var],
        loss: f64,
        grads: Vec<Tensor>,
        closure: &mut Closure<'_>,
        state: &mut State,
        ctx: &StepContext,
    ) -> Result<()>;
}

/// Any optimizer's state, as the driver keeps it (an [`OptimizerState`] behind a box).
#[derive(Debug)]
pub struct AnyState(Box<dyn ErasedState>);

trait ErasedState: Any + Debug + Send + Sync {
    fn save(&self) -> State;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn boxed(&self) -> Box<dyn ErasedState>;
}

impl<S: OptimizerState> ErasedState for S {
    fn save(&self) -> State {
        OptimizerState::save(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn boxed(&self) -> Box<dyn ErasedState> {
        Box::new(self.clone())
    }
}

impl Clone for AnyState {
    fn clone(&self) -> Self {
        AnyState(self.0.boxed())
    }
}

impl AnyState {
    pub fn new<S: OptimizerState>(state: S) -> Self {
        AnyState(Box::new(state))
    }

    /// The state as named tensors and scalars (what checkpoints store).
    pub fn save(&self) -> State {
        self.0.save()
    }

    /// The typed state, if it is an `S`.
    pub fn downcast_ref<S: OptimizerState>(&self) -> Option<&S> {
        self.0.as_any().downcast_ref()
    }

    /// The typed state, if it is an `S`.
    pub fn downcast_mut<S: OptimizerState>(&mut self) -> Option<&mut S> {
        self.0.as_any_mut().downcast_mut()
    }
}

/// The object-safe form of [`Optimizer`] that the registry and drivers use; every
/// `Optimizer` is one.
pub trait DynOptimizer: Send + Sync + Debug {
    /// Fresh state for `param`.
    fn init_state(&self, param: &Tensor) -> Result<AnyState>;

    /// One update; `state` must come from this optimizer's `init_state` or `load_state`.
    fn step(&self, param: &Var, grad: &Tensor, state: &mut AnyState, ctx: &StepContext) -> Result<()>;

    /// A saved state read back (refused when entries are missing or unknown).
    fn load_state(&self, saved: &State) -> Result<AnyState>;

    /// See [`Optimizer::eval_point`].
    fn eval_point(&self, param: &Tensor, state: &AnyState) -> Result<Option<Tensor>>;

    /// See [`Optimizer::closure_optimizer`].
    fn closure_optimizer(&self) -> Option<&dyn ClosureOptimizer>;
}

impl<O: Optimizer> DynOptimizer for O {
    fn init_state(&self, param: &Tensor) -> Result<AnyState> {
        Ok(AnyState::new(Optimizer::init_state(self, param)?))
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut AnyState, ctx: &StepContext) -> Result<()> {
        let state = state.downcast_mut::<O::State>().ok_or_else(|| {
            Error::input(format!("{self:?}: the state passed to step belongs to another optimizer (a driver bug)"))
        })?;
        Optimizer::step(self, param, grad, state, ctx)
    }

    fn load_state(&self, saved: &State) -> Result<AnyState> {
        Ok(AnyState::new(O::State::load(saved)?))
    }

    fn eval_point(&self, param: &Tensor, state: &AnyState) -> Result<Option<Tensor>> {
        let state = state.downcast_ref::<O::State>().ok_or_else(|| {
            Error::input(format!(
                "{self:?}: the state passed to eval_point belongs to another optimizer (a driver bug)"
            ))
        })?;
        Optimizer::eval_point(self, param, state)
    }

    fn closure_optimizer(&self) -> Option<&dyn ClosureOptimizer> {
        Optimizer::closure_optimizer(self)
    }
}

/// Refuses a saved state whose entries do not match `S`'s fields (what
/// `#[derive(OptimizerState)]` calls in `load`).
pub fn check_state_keys<S: OptimizerState>(state: &State) -> Result<()> {
    let mut problems = Vec::new();
    for b in S::BUFFERS {
        if !state.tensors.contains_key(*b) {
            problems.push(format!("missing buffer '{b}'"));
        }
    }
    for s in S::SCALARS {
        if !state.scalars.contains_key(*s) {
            problems.push(format!("missing scalar '{s}'"));
        }
    }
    for k in state.tensors.keys() {
        if !S::BUFFERS.contains(&k.as_str()) && !S::OPTIONAL_BUFFERS.contains(&k.as_str()) {
            problems.push(format!("unexpected buffer '{k}'"));
        }
    }
    for k in state.scalars.keys() {
        if !S::SCALARS.contains(&k.as_str()) {
            problems.push(format!("unexpected scalar '{k}'"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let mut buffers: Vec<&str> = S::BUFFERS.to_vec();
    buffers.extend(S::OPTIONAL_BUFFERS.iter().copied());
    Err(Error::input(format!(
        "optimizer state does not fit: {} (this optimizer keeps buffers {} and scalars {})",
        problems.join(", "),
        if buffers.is_empty() { "(none)".to_string() } else { buffers.join(", ") },
        if S::SCALARS.is_empty() { "(none)".to_string() } else { S::SCALARS.join(", ") },
    )))
}

/// PyTorch's `betas` `(β1, β2)`: two numbers, each in [0, 1), checked when the key is
/// read. (A type of its own, rather than `(f64, f64)`, so that a list of the wrong
/// length gets the same message as a value out of range.)
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Betas(pub f64, pub f64);

impl ParamValue for Betas {
    const TYPE: ParamType = ParamType::FloatList;

    fn read(params: &Params, key: &str) -> Result<Self> {
        match *params.float_list(key)?.as_slice() {
            [b1, b2] => {
                crate::check::betas(&(b1, b2)).map(|()| Betas(b1, b2)).map_err(|rule| params.invalid(key, rule))
            }
            // `crate::check::betas`'s rule.
            _ => Err(params.invalid(key, "expected two numbers in [0, 1)")),
        }
    }
}

/// The doc line of every optimizer's `lr` key.
pub const LR_DOC: &str = "learning rate; >= 0";

/// Checks the `lr` key (>= 0), as PyTorch's optimizers do when they are built.
pub fn learning_rate(params: &Params) -> Result<f64> {
    params.float_where("lr", |v| v >= 0.0, "must be >= 0")
}

/// Zeros shaped like `param`, contiguous (a fresh state buffer).
pub fn zeros(param: &Tensor) -> Result<Tensor> {
    Ok(param.zeros_like()?.contiguous()?)
}

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

/// `t / x`, a true division as PyTorch's `tensor / python_float` (not a multiplication
/// by `1 / x`, which rounds differently).
pub fn div_scalar(t: &Tensor, x: f64) -> Result<Tensor> {
    let x = Tensor::new(x, t.device())?.to_dtype(t.dtype())?;
    Ok(t.broadcast_div(&x)?)
}

/// [`lerp`] for one element, for fused kernels (`weight_lt_half` is `weight < 0.5`).
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

/// Which fused CPU kernel applies to a step, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fused {
    F32,
    F64,
}

/// `Some` when `param`, `grad` and `states` are contiguous CPU f32 or f64 tensors of one
/// size and the kernels in effect are [`crate::ops::Kernels::Auto`] (the one switch:
/// `EMBER_KERNELS=composed`, `ember --kernels composed` or [`crate::ops::with_kernels`]
/// send every optimizer down its composed path).
pub fn fused_kind(param: &Tensor, grad: &Tensor, states: &[&Tensor]) -> Option<Fused> {
    match param.dtype() {
        DType::F32 if fusable::<f32>(param, grad, states) => Some(Fused::F32),
        DType::F64 if fusable::<f64>(param, grad, states) => Some(Fused::F64),
        _ => None,
    }
}
