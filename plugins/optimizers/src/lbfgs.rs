//! `lbfgs`: L-BFGS over all parameters together, re-evaluating the loss within a step
//! (PyTorch `torch.optim.LBFGS`, with its optional strong-Wolfe line search).
//!
//! A port of PyTorch's `lbfgs.py`, operation by operation: the parameters are one flat
//! vector (every parameter flattened, concatenated in order); the step keeps PyTorch's
//! state (`func_evals`, `n_iter`, `d`, `t`, `old_dirs`, `old_stps`, `ro`, `al`, `H_diag`,
//! `prev_flat_grad`, `prev_loss`) and its numbers where PyTorch keeps them: Python floats
//! as f64, 0-d tensors (dot products, `ro`, `H_diag`, the line search's derivatives) in
//! the parameters' dtype, each operation rounded to it as PyTorch's are (`Num`).

use candle_core::{DType, Device, Tensor, Var};
use ember_core::{
    check, ClosureOptimizer, Error, Hyperparams, Optimizer, OptimizerState, ParamEnum, Result, State, StepContext,
};

/// PyTorch's LBFGS: each step (`optimizer.step(closure)`) runs up to `max_iter`
/// iterations: a direction from the two-loop recursion over the last `history_size`
/// curvature pairs (s, y) (the negative gradient at the very first iteration), a step
/// length (`lr`, the first iteration min(1, 1/‖g‖₁)·lr; or the strong-Wolfe line search
/// from it), the move, and the loss and gradient re-evaluated at the new point. It stops
/// early when the largest gradient magnitude is at most `tolerance_grad`, the directional
/// derivative is above -`tolerance_change`, the step or the loss changes by at most
/// `tolerance_change`, or the evaluations reach `max_eval`.
///
/// Differences from the reference: every parameter must have one dtype and one device
/// (PyTorch's `torch.cat` would promote mixed dtypes); `max_iter` and `history_size` must
/// be at least 1 (PyTorch runs no iteration with 0, and fails on its first curvature pair
/// with `history_size = 0`); complex and sparse parameters do not exist here. PyTorch's
/// CPU kernels fuse the multiply-add of `add_(other, alpha=...)` and sum in another order,
/// so f32 runs agree to rounding, not bit for bit.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "lbfgs",
    summary = "L-BFGS over all parameters together, re-evaluating the loss within a step; optional strong-Wolfe line search (torch.optim.LBFGS)",
    lr = 1.0
)]
pub struct Lbfgs {
    /// most iterations per optimizer step; >= 1
    #[param(default = 20, check = check::at_least(1))]
    pub max_iter: usize,
    /// most loss evaluations per optimizer step (PyTorch's default, when absent: max_iter * 5 / 4, rounded down)
    pub max_eval: Option<usize>,
    /// stop when the largest gradient magnitude is at most this (first-order optimality)
    #[param(default = 1e-7)]
    pub tolerance_grad: f64,
    /// stop when the loss, the step or the directional derivative changes by less than this
    #[param(default = 1e-9)]
    pub tolerance_change: f64,
    /// curvature pairs kept for the inverse Hessian approximation; >= 1
    #[param(default = 100, check = check::at_least(1))]
    pub history_size: usize,
    /// step length search: strong_wolfe, or absent for a fixed step of lr
    pub line_search_fn: Option<LineSearch>,
    /// maximize the objective instead of minimizing
    #[param(default = false)]
    pub maximize: bool,
}

/// PyTorch's `line_search_fn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ParamEnum)]
pub enum LineSearch {
    /// Bracket, then zoom by cubic interpolation, until the strong Wolfe conditions hold
    /// (c1 = 1e-4, c2 = 0.9), within the evaluations max_eval leaves.
    StrongWolfe,
}

/// The per-parameter state [`Optimizer`] asks for: none. L-BFGS keeps one state for all
/// parameters together, as a [`State`] (see [`ClosureOptimizer`] and the module docs).
#[derive(Clone, Debug, OptimizerState)]
pub struct LbfgsParamState {}

impl Optimizer for Lbfgs {
    type State = LbfgsParamState;

    fn init_state(&self, _param: &Tensor) -> Result<LbfgsParamState> {
        Ok(LbfgsParamState {})
    }

    fn step(&self, _param: &Var, _grad: &Tensor, _state: &mut LbfgsParamState, _ctx: &StepContext) -> Result<()> {
        Err(Error::input(
            "lbfgs updates all parameters together and needs the loss re-evaluated; the driver calls its closure step \
             (OptimizerDriver::step_closure, as the Learner does), not the per-parameter step",
        ))
    }

    fn closure_optimizer(&self) -> Option<&dyn ClosureOptimizer> {
        Some(self)
    }
}

// The line search's constants (PyTorch's `_strong_wolfe` defaults; LBFGS.step passes
// neither, so the line search's tolerance is 1e-9 whatever `tolerance_change` is).
const C1: f64 = 1e-4;
const C2: f64 = 0.9;
const LS_TOLERANCE_CHANGE: f64 = 1e-9;

/// Scalars in the saved state.
const SCALARS: &[&str] = &["func_evals", "n_iter", "t", "H_diag", "prev_loss"];

/// A number as PyTorch's L-BFGS holds it: a Python float (f64), or a 0-d tensor of the
/// parameters' dtype (`tensor`), whose arithmetic rounds to that dtype.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Num {
    v: f64,
    tensor: bool,
}

/// A Python float.
fn float(v: f64) -> Num {
    Num { v, tensor: false }
}

/// The arithmetic of [`Num`]s for parameters of one dtype, as PyTorch's: an operation
/// with a tensor operand is a tensor operation in the dtype (a float operand first
/// rounded to it), an operation of floats is f64; `float / tensor` is PyTorch's
/// `tensor.reciprocal() * float`; comparisons with a tensor compare in the dtype.
#[derive(Clone, Copy, Debug)]
struct Arith {
    dtype: DType,
}

impl Arith {
    /// `v` rounded to the dtype (f16 and bf16 through f32, as c10 converts a double).
    fn round(&self, v: f64) -> f64 {
        match self.dtype {
            DType::F32 => v as f32 as f64,
            DType::BF16 => round_bf16(v as f32) as f64,
            DType::F16 => round_f16(v as f32 as f64),
            _ => v,
        }
    }

    /// A 0-d tensor holding `v` (already in the dtype).
    fn tensor(&self, v: f64) -> Num {
        Num { v, tensor: true }
    }

    fn bin(&self, a: Num, b: Num, op: impl Fn(f64, f64) -> f64) -> Num {
        if a.tensor || b.tensor {
            self.tensor(self.round(op(self.round(a.v), self.round(b.v))))
        } else {
            float(op(a.v, b.v))
        }
    }

    fn add(&self, a: Num, b: Num) -> Num {
        self.bin(a, b, |x, y| x + y)
    }

    fn sub(&self, a: Num, b: Num) -> Num {
        self.bin(a, b, |x, y| x - y)
    }

    fn mul(&self, a: Num, b: Num) -> Num {
        self.bin(a, b, |x, y| x * y)
    }

    fn div(&self, a: Num, b: Num) -> Num {
        if !a.tensor && b.tensor {
            // Tensor.__rtruediv__: self.reciprocal() * other.
            let r = self.round(1.0 / b.v);
            self.tensor(self.round(r * self.round(a.v)))
        } else {
            self.bin(a, b, |x, y| x / y)
        }
    }

    fn neg(&self, a: Num) -> Num {
        Num { v: -a.v, ..a }
    }

    fn abs(&self, a: Num) -> Num {
        Num { v: a.v.abs(), ..a }
    }

    fn sqrt(&self, a: Num) -> Num {
        if a.tensor {
            self.tensor(self.round(a.v.sqrt()))
        } else {
            float(a.v.sqrt())
        }
    }

    fn pair(&self, a: Num, b: Num) -> (f64, f64) {
        if a.tensor || b.tensor {
            (self.round(a.v), self.round(b.v))
        } else {
            (a.v, b.v)
        }
    }

    fn lt(&self, a: Num, b: Num) -> bool {
        let (x, y) = self.pair(a, b);
        x < y
    }

    fn le(&self, a: Num, b: Num) -> bool {
        let (x, y) = self.pair(a, b);
        x <= y
    }

    fn gt(&self, a: Num, b: Num) -> bool {
        let (x, y) = self.pair(a, b);
        x > y
    }

    fn ge(&self, a: Num, b: Num) -> bool {
        let (x, y) = self.pair(a, b);
        x >= y
    }

    /// Python's `max(a, b)`: `b` if `b > a`, else `a`.
    fn max(&self, a: Num, b: Num) -> Num {
        if self.gt(b, a) {
            b
        } else {
            a
        }
    }

    /// Python's `min(a, b)`: `b` if `b < a`, else `a`.
    fn min(&self, a: Num, b: Num) -> Num {
        if self.lt(b, a) {
            b
        } else {
            a
        }
    }
}

/// f32 to bf16, round to nearest even.
fn round_bf16(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let b = x.to_bits();
    f32::from_bits(b.wrapping_add(0x7fff + ((b >> 16) & 1)) & 0xffff_0000)
}

/// `v` to f16, round to nearest even (overflow to infinity, subnormals below 2⁻¹⁴).
fn round_f16(v: f64) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return v;
    }
    let a = v.abs();
    if a >= 65520.0 {
        return f64::INFINITY.copysign(v);
    }
    let e = (((a.to_bits() >> 52) & 0x7ff) as i64 - 1023).max(-14);
    let quantum = f64::from_bits(((e - 10 + 1023) as u64) << 52);
    ((a / quantum).round_ties_even() * quantum).copysign(v)
}

/// A 0-d tensor's value.
fn value(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// `a.dot(b)`, a 0-d tensor.
fn dot(ar: Arith, a: &Tensor, b: &Tensor) -> Result<Num> {
    Ok(ar.tensor(value(&a.mul(b)?.sum_all()?)?))
}

/// `v.abs().max()`, NaN when `v` holds one (torch's max propagates NaN).
fn max_abs(ar: Arith, v: &Tensor) -> Result<Num> {
    let a = v.abs()?;
    let m = value(&a.max_all()?)?;
    // A NaN anywhere makes the sum of magnitudes NaN (nothing else does).
    let m = if m.is_nan() || value(&a.sum_all()?)?.is_nan() { f64::NAN } else { m };
    Ok(ar.tensor(m))
}

/// `v.abs().sum()`.
fn abs_sum(ar: Arith, v: &Tensor) -> Result<Num> {
    Ok(ar.tensor(value(&v.abs()?.sum_all()?)?))
}

/// `v.mul(n)`: each element times `n` in the dtype.
fn scale(v: &Tensor, n: Num) -> Result<Tensor> {
    let n = Tensor::new(n.v, v.device())?.to_dtype(v.dtype())?;
    Ok(v.broadcast_mul(&n)?)
}

/// `q.add(y, alpha=n)`: q + n·y.
fn axpy(q: &Tensor, y: &Tensor, n: Num) -> Result<Tensor> {
    Ok(q.add(&scale(y, n)?)?)
}

/// The dtype, device and total size the parameters share (PyTorch keeps them as one
/// flat vector).
fn layout(params: &[&Var]) -> Result<(DType, Device, usize)> {
    let first = params[0].as_tensor();
    for (i, p) in params.iter().enumerate() {
        if p.dtype() != first.dtype() || !p.device().same_device(first.device()) {
            return Err(Error::input(format!(
                "lbfgs treats all parameters as one vector, so they must share one dtype and device: parameter 0 is {:?} on {:?}, parameter {i} is {:?} on {:?}; convert the model to one dtype and device",
                first.dtype(),
                first.device().location(),
                p.dtype(),
                p.device().location()
            )));
        }
    }
    let numel = params.iter().map(|p| p.elem_count()).sum();
    Ok((first.dtype(), first.device().clone(), numel))
}

/// `_add_grad(t, d)`: every parameter moved by t·(its slice of d).
fn add_grad(params: &[&Var], t: Num, d: &Tensor) -> Result<()> {
    let mut offset = 0;
    for p in params {
        let n = p.elem_count();
        let update = d.narrow(0, offset, n)?.reshape(p.dims())?;
        p.set(&axpy(p.as_tensor(), &update, t)?)?;
        offset += n;
    }
    Ok(())
}

/// `_set_param(x)`: every parameter set back to its saved value.
fn set_params(params: &[&Var], x: &[Tensor]) -> Result<()> {
    for (p, x) in params.iter().zip(x) {
        p.set(x)?;
    }
    Ok(())
}

/// PyTorch's `_cubic_interpolate`: the minimizer of the cubic through (x1, f1) and
/// (x2, f2) with slopes g1 and g2, clamped to `bounds` (default: between x1 and x2); the
/// middle of the bounds when the cubic has no minimum.
#[allow(clippy::too_many_arguments)]
fn cubic_interpolate(
    ar: Arith,
    x1: Num,
    f1: f64,
    g1: Num,
    x2: Num,
    f2: f64,
    g2: Num,
    bounds: Option<(Num, Num)>,
) -> Num {
    let (xmin, xmax) = bounds.unwrap_or(if ar.le(x1, x2) { (x1, x2) } else { (x2, x1) });
    let d1 = ar.sub(ar.add(g1, g2), ar.div(ar.mul(float(3.0), float(f1 - f2)), ar.sub(x1, x2)));
    // d1**2: torch's pow(2) is d1 * d1.
    let d2_square = ar.sub(ar.mul(d1, d1), ar.mul(g1, g2));
    if ar.ge(d2_square, float(0.0)) {
        let d2 = ar.sqrt(d2_square);
        let min_pos = if ar.le(x1, x2) {
            let ratio = ar.div(ar.sub(ar.add(g2, d2), d1), ar.add(ar.sub(g2, g1), ar.mul(float(2.0), d2)));
            ar.sub(x2, ar.mul(ar.sub(x2, x1), ratio))
        } else {
            let ratio = ar.div(ar.sub(ar.add(g1, d2), d1), ar.add(ar.sub(g1, g2), ar.mul(float(2.0), d2)));
            ar.sub(x1, ar.mul(ar.sub(x1, x2), ratio))
        };
        ar.min(ar.max(min_pos, xmin), xmax)
    } else {
        ar.div(ar.add(xmin, xmax), float(2.0))
    }
}

/// What the line search returns: the loss, the gradient, the step length and the
/// evaluations it made.
type LineSearchResult = (f64, Tensor, Num, i64);

/// PyTorch's `_strong_wolfe`: from the step length `t` along `d` (loss `f`, gradient `g`,
/// directional derivative `gtd` at 0), bracket a step satisfying the strong Wolfe
/// conditions, then zoom in on it, within `max_ls` evaluations of `obj`.
#[allow(clippy::too_many_arguments)]
fn strong_wolfe(
    ar: Arith,
    obj: &mut dyn FnMut(Num) -> Result<(f64, Tensor)>,
    mut t: Num,
    d: &Tensor,
    f: f64,
    g: &Tensor,
    gtd: Num,
    max_ls: i64,
) -> Result<LineSearchResult> {
    let d_norm = max_abs(ar, d)?;
    let g = g.clone();
    let (mut f_new, mut g_new) = obj(t)?;
    let mut ls_func_evals = 1;
    let mut gtd_new = dot(ar, &g_new, d)?;
    // Armijo's sufficient decrease fails at step t with loss f_new.
    let armijo_fails = |t: Num, f_new: f64| ar.gt(float(f_new), ar.add(float(f), ar.mul(ar.mul(float(C1), t), gtd)));
    let curvature_holds = |gtd_new: Num| ar.le(ar.abs(gtd_new), ar.mul(float(-C2), gtd));

    // Bracket an interval containing a point satisfying the Wolfe criteria.
    let (mut t_prev, mut f_prev, mut g_prev, mut gtd_prev) = (float(0.0), f, g.clone(), gtd);
    let mut done = false;
    let mut ls_iter = 0;
    let mut bracket: Vec<Num> = Vec::new();
    let mut bracket_f: Vec<f64> = Vec::new();
    let mut bracket_g: Vec<Tensor> = Vec::new();
    let mut bracket_gtd: Vec<Num> = Vec::new();
    while ls_iter < max_ls {
        if armijo_fails(t, f_new) || (ls_iter > 1 && f_new >= f_prev) {
            bracket = vec![t_prev, t];
            bracket_f = vec![f_prev, f_new];
            bracket_g = vec![g_prev.clone(), g_new.clone()];
            bracket_gtd = vec![gtd_prev, gtd_new];
            break;
        }
        if curvature_holds(gtd_new) {
            bracket = vec![t];
            bracket_f = vec![f_new];
            bracket_g = vec![g_new.clone()];
            done = true;
            break;
        }
        if ar.ge(gtd_new, float(0.0)) {
            bracket = vec![t_prev, t];
            bracket_f = vec![f_prev, f_new];
            bracket_g = vec![g_prev.clone(), g_new.clone()];
            bracket_gtd = vec![gtd_prev, gtd_new];
            break;
        }
        // Interpolate.
        let min_step = ar.add(t, ar.mul(float(0.01), ar.sub(t, t_prev)));
        let max_step = ar.mul(t, float(10.0));
        let tmp = t;
        t = cubic_interpolate(ar, t_prev, f_prev, gtd_prev, t, f_new, gtd_new, Some((min_step, max_step)));
        // Next step.
        t_prev = tmp;
        f_prev = f_new;
        g_prev = g_new.clone();
        gtd_prev = gtd_new;
        (f_new, g_new) = obj(t)?;
        ls_func_evals += 1;
        gtd_new = dot(ar, &g_new, d)?;
        ls_iter += 1;
    }
    // Reached max number of iterations? (bracket_gtd stays as it was, as in PyTorch.)
    if ls_iter == max_ls {
        bracket = vec![float(0.0), t];
        bracket_f = vec![f, f_new];
        bracket_g = vec![g.clone(), g_new.clone()];
    }
    if bracket.is_empty() {
        // PyTorch fails here too (its bracket is never assigned).
        return Err(Error::input(format!(
            "lbfgs: the line search has no evaluation left (max_eval leaves {max_ls}); raise max_eval to at least 1"
        )));
    }

    // Zoom phase: we now have a point satisfying the criteria, or a bracket around it.
    // Refine the bracket until we find the exact point satisfying the criteria.
    let mut insuf_progress = false;
    let last = bracket_f.len() - 1;
    let (mut low_pos, mut high_pos) = if bracket_f[0] <= bracket_f[last] { (0, 1) } else { (1, 0) };
    while !done && ls_iter < max_ls {
        // Not done and iterations left: the bracket has two points and their derivatives.
        // Line-search bracket is so small.
        if ar.lt(ar.mul(ar.abs(ar.sub(bracket[1], bracket[0])), d_norm), float(LS_TOLERANCE_CHANGE)) {
            break;
        }
        // Compute new trial value.
        t = cubic_interpolate(
            ar,
            bracket[0],
            bracket_f[0],
            bracket_gtd[0],
            bracket[1],
            bracket_f[1],
            bracket_gtd[1],
            None,
        );
        // Test that we are making sufficient progress: if `t` is so close to the
        // boundary, mark insufficient progress, and if we made insufficient progress
        // last time, or `t` is at one of the boundaries, move `t` to 0.1·len(bracket)
        // away from the nearest boundary point.
        let (b_max, b_min) = (ar.max(bracket[0], bracket[1]), ar.min(bracket[0], bracket[1]));
        let eps = ar.mul(float(0.1), ar.sub(b_max, b_min));
        if ar.lt(ar.min(ar.sub(b_max, t), ar.sub(t, b_min)), eps) {
            // Interpolation close to the boundary.
            if insuf_progress || ar.ge(t, b_max) || ar.le(t, b_min) {
                // Evaluate at 0.1 away from the boundary.
                t = if ar.lt(ar.abs(ar.sub(t, b_max)), ar.abs(ar.sub(t, b_min))) {
                    ar.sub(b_max, eps)
                } else {
                    ar.add(b_min, eps)
                };
                insuf_progress = false;
            } else {
                insuf_progress = true;
            }
        } else {
            insuf_progress = false;
        }
        // Evaluate the new point.
        (f_new, g_new) = obj(t)?;
        ls_func_evals += 1;
        gtd_new = dot(ar, &g_new, d)?;
        ls_iter += 1;
        if armijo_fails(t, f_new) || f_new >= bracket_f[low_pos] {
            // Armijo condition not satisfied or not lower than the lowest point.
            bracket[high_pos] = t;
            bracket_f[high_pos] = f_new;
            bracket_g[high_pos] = g_new.clone();
            bracket_gtd[high_pos] = gtd_new;
            (low_pos, high_pos) = if bracket_f[0] <= bracket_f[1] { (0, 1) } else { (1, 0) };
        } else {
            if curvature_holds(gtd_new) {
                // Wolfe conditions satisfied.
                done = true;
            } else if ar.ge(ar.mul(gtd_new, ar.sub(bracket[high_pos], bracket[low_pos])), float(0.0)) {
                // Old high becomes new low.
                bracket[high_pos] = bracket[low_pos];
                bracket_f[high_pos] = bracket_f[low_pos];
                bracket_g[high_pos] = bracket_g[low_pos].clone();
                bracket_gtd[high_pos] = bracket_gtd[low_pos];
            }
            // New point becomes new low.
            bracket[low_pos] = t;
            bracket_f[low_pos] = f_new;
            bracket_g[low_pos] = g_new.clone();
            bracket_gtd[low_pos] = gtd_new;
        }
    }
    // A one-point bracket whose loss is NaN puts the low point at index 1 (PyTorch's
    // IndexError).
    let (Some(&t), Some(&f_new), Some(g_new)) = (bracket.get(low_pos), bracket_f.get(low_pos), bracket_g.get(low_pos))
    else {
        return Err(Error::input(
            "lbfgs: the loss is NaN during the line search; lower lr or check the model and data for NaN",
        ));
    };
    Ok((f_new, g_new.clone(), t, ls_func_evals))
}

/// The whole state during a step (PyTorch's `state` dict of the first parameter).
#[derive(Debug)]
struct Memory {
    func_evals: u64,
    n_iter: u64,
    d: Option<Tensor>,
    t: Option<Num>,
    old_dirs: Vec<Tensor>,
    old_stps: Vec<Tensor>,
    ro: Vec<Num>,
    /// PyTorch's `al`, a scratch list the two-loop recursion fills (kept, as PyTorch
    /// keeps it; its values are always written before they are read).
    al: Vec<Num>,
    h_diag: Option<Num>,
    prev_flat_grad: Option<Tensor>,
    prev_loss: Option<f64>,
}

/// The index `i` of a history entry `{prefix}{i}`.
fn history_index(key: &str, prefix: &str) -> Option<usize> {
    key.strip_prefix(prefix)?.parse().ok()
}

impl Memory {
    /// The state [`Memory::save`] wrote, checked against the parameters and the
    /// configuration; an entry that is missing, unknown or of the wrong size is an error
    /// naming it.
    fn load(state: &State, lbfgs: &Lbfgs, ar: Arith, (dtype, device, numel): &(DType, Device, usize)) -> Result<Self> {
        let mut problems = Vec::new();
        for k in state.scalars.keys() {
            if !SCALARS.contains(&k.as_str()) {
                problems.push(format!("unexpected scalar '{k}'"));
            }
        }
        for k in state.tensors.keys() {
            let known = matches!(k.as_str(), "d" | "prev_flat_grad" | "ro" | "al")
                || history_index(k, "old_dirs.").is_some()
                || history_index(k, "old_stps.").is_some();
            if !known {
                problems.push(format!("unexpected tensor '{k}'"));
            }
        }
        let scalar = |k: &str, problems: &mut Vec<String>| {
            let v = state.scalar(k);
            if v.is_none() {
                problems.push(format!("missing scalar '{k}'"));
            }
            v
        };
        let func_evals = scalar("func_evals", &mut problems).unwrap_or(0.0);
        let n_iter = scalar("n_iter", &mut problems).unwrap_or(0.0);
        for (k, v) in [("func_evals", func_evals), ("n_iter", n_iter)] {
            if !(v >= 0.0 && v.fract() == 0.0) {
                problems.push(format!("scalar '{k}' = {v} is not a count"));
            }
        }
        // A flat vector of all parameters, in their dtype and on their device.
        let vector = |k: &str, problems: &mut Vec<String>| -> Result<Option<Tensor>> {
            let Some(t) = state.tensor(k) else { return Ok(None) };
            if t.dims() != [*numel].as_slice() {
                problems
                    .push(format!("tensor '{k}' has shape {:?}, but the parameters hold {numel} numbers", t.dims()));
                return Ok(None);
            }
            Ok(Some(t.to_device(device)?.to_dtype(*dtype)?))
        };
        let count = |prefix: &str| state.tensors.keys().filter(|k| history_index(k, prefix).is_some()).count();
        let history = count("old_dirs.");
        if count("old_stps.") != history {
            problems.push(format!(
                "{history} 'old_dirs.N' tensors but {} 'old_stps.N' (one of each per curvature pair)",
                count("old_stps.")
            ));
        }
        if history > lbfgs.history_size {
            problems.push(format!(
                "the history holds {history} curvature pairs, more than history_size = {}; resume with history_size >= {history}",
                lbfgs.history_size
            ));
        }
        let mut old_dirs = Vec::with_capacity(history);
        let mut old_stps = Vec::with_capacity(history);
        for i in 0..history {
            for (prefix, out) in [("old_dirs.", &mut old_dirs), ("old_stps.", &mut old_stps)] {
                let k = format!("{prefix}{i}");
                if !state.tensors.contains_key(&k) {
                    problems.push(format!("missing tensor '{k}' (history entries are numbered 0..{history})"));
                } else if let Some(t) = vector(&k, &mut problems)? {
                    out.push(t);
                }
            }
        }
        // ro and al: 1-D lists of numbers (0-d tensors in PyTorch).
        let list = |k: &str| -> Result<Vec<Num>> {
            Ok(match state.tensor(k) {
                None => Vec::new(),
                Some(t) => t
                    .to_dtype(DType::F64)?
                    .flatten_all()?
                    .to_vec1::<f64>()?
                    .into_iter()
                    .map(|v| ar.tensor(ar.round(v)))
                    .collect(),
            })
        };
        let ro = list("ro")?;
        let al = list("al")?;
        if ro.len() != history {
            problems.push(format!("tensor 'ro' holds {} numbers, but the history holds {history} pairs", ro.len()));
        }
        let d = vector("d", &mut problems)?;
        let prev_flat_grad = vector("prev_flat_grad", &mut problems)?;
        let t = state.scalar("t").map(float);
        let h_diag = state.scalar("H_diag").map(|v| ar.tensor(ar.round(v)));
        let prev_loss = state.scalar("prev_loss");
        if n_iter > 0.0 {
            // After the first iteration, PyTorch's step reads all of these.
            for (k, present) in [
                ("tensor 'd'", d.is_some() || state.tensor("d").is_some()),
                ("tensor 'prev_flat_grad'", prev_flat_grad.is_some() || state.tensor("prev_flat_grad").is_some()),
                ("scalar 't'", t.is_some()),
                ("scalar 'H_diag'", h_diag.is_some()),
                ("scalar 'prev_loss'", prev_loss.is_some()),
            ] {
                if !present {
                    problems.push(format!("missing {k} (n_iter = {n_iter} > 0)"));
                }
            }
        }
        if !problems.is_empty() {
            return Err(Error::input(format!(
                "lbfgs: the optimizer state does not fit: {} (lbfgs keeps tensors d, prev_flat_grad, old_dirs.N, old_stps.N, ro, al and scalars {}; a state saved for other parameters or by another optimizer does not fit)",
                problems.join(", "),
                SCALARS.join(", ")
            )));
        }
        Ok(Memory {
            func_evals: func_evals as u64,
            n_iter: n_iter as u64,
            d,
            t,
            old_dirs,
            old_stps,
            ro,
            al,
            h_diag,
            prev_flat_grad,
            prev_loss,
        })
    }

    /// The state as named tensors and scalars: the flat vectors in the parameters' dtype,
    /// `ro` and `al` as 1-D f64 tensors, the numbers as f64 scalars (exact: each is an f64
    /// or a value of the parameters' dtype).
    fn save(&self) -> Result<State> {
        let mut state = State::new();
        state.scalars.insert("func_evals".to_string(), self.func_evals as f64);
        state.scalars.insert("n_iter".to_string(), self.n_iter as f64);
        for (k, v) in [("t", self.t.map(|t| t.v)), ("H_diag", self.h_diag.map(|h| h.v)), ("prev_loss", self.prev_loss)]
        {
            if let Some(v) = v {
                state.scalars.insert(k.to_string(), v);
            }
        }
        for (k, t) in [("d", &self.d), ("prev_flat_grad", &self.prev_flat_grad)] {
            if let Some(t) = t {
                state.tensors.insert(k.to_string(), t.clone());
            }
        }
        for (i, (y, s)) in self.old_dirs.iter().zip(&self.old_stps).enumerate() {
            state.tensors.insert(format!("old_dirs.{i}"), y.clone());
            state.tensors.insert(format!("old_stps.{i}"), s.clone());
        }
        for (k, list) in [("ro", &self.ro), ("al", &self.al)] {
            if !list.is_empty() {
                let values: Vec<f64> = list.iter().map(|n| n.v).collect();
                state.tensors.insert(k.to_string(), Tensor::new(values, &Device::Cpu)?);
            }
        }
        Ok(state)
    }
}

impl Lbfgs {
    /// `_gather_flat_grad`: the gradients flattened and concatenated in parameter order
    /// (negated when maximizing).
    fn flat_grad(&self, params: &[&Var], grads: Vec<Tensor>, dtype: DType) -> Result<Tensor> {
        if grads.len() != params.len() {
            return Err(Error::input(format!(
                "lbfgs: the closure returned {} gradients for {} parameters (a driver bug: one per parameter, zeros where there is none)",
                grads.len(),
                params.len()
            )));
        }
        let mut views = Vec::with_capacity(grads.len());
        for (i, (p, g)) in params.iter().zip(grads).enumerate() {
            if g.dims() != p.dims() {
                return Err(Error::input(format!(
                    "lbfgs: the gradient of parameter {i} has shape {:?}, but the parameter has shape {:?}",
                    g.dims(),
                    p.dims()
                )));
            }
            views.push(g.to_dtype(dtype)?.flatten_all()?);
        }
        let flat = Tensor::cat(&views, 0)?;
        Ok(if self.maximize { flat.neg()? } else { flat })
    }

    /// `_directional_evaluate`: the loss and flat gradient at x + t·d, the parameters set
    /// back to `x` afterwards (also when the closure fails).
    fn directional_evaluate(
        &self,
        params: &[&Var],
        closure: &mut ember_core::Closure<'_>,
        x: &[Tensor],
        t: Num,
        d: &Tensor,
        dtype: DType,
    ) -> Result<(f64, Tensor)> {
        add_grad(params, t, d)?;
        let evaluated = closure();
        set_params(params, x)?;
        let (loss, grads) = evaluated?;
        let loss = if self.maximize { -loss } else { loss };
        Ok((loss, self.flat_grad(params, grads, dtype)?))
    }

    /// The body of PyTorch's `LBFGS.step`, after its first closure call.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        params: &[&Var],
        loss: f64,
        grads: Vec<Tensor>,
        closure: &mut ember_core::Closure<'_>,
        mem: &mut Memory,
        ar: Arith,
        lr: f64,
    ) -> Result<()> {
        let dtype = ar.dtype;
        let max_iter = self.max_iter as u64;
        let max_eval = self.max_eval.unwrap_or(self.max_iter * 5 / 4) as i64;
        let (tolerance_grad, tolerance_change) = (float(self.tolerance_grad), float(self.tolerance_change));

        // Evaluate initial f(x) and df/dx (the caller did).
        let mut loss = if self.maximize { -loss } else { loss };
        let mut current_evals: i64 = 1;
        mem.func_evals += 1;
        let mut flat_grad = self.flat_grad(params, grads, dtype)?;
        let mut opt_cond = ar.le(max_abs(ar, &flat_grad)?, tolerance_grad);
        // Optimal condition.
        if opt_cond {
            return Ok(());
        }

        let mut n_iter = 0;
        // Optimize for a max of max_iter iterations.
        while n_iter < max_iter {
            n_iter += 1;
            mem.n_iter += 1;

            // Compute the gradient descent direction.
            let d = if mem.n_iter == 1 {
                mem.old_dirs.clear();
                mem.old_stps.clear();
                mem.ro.clear();
                mem.h_diag = Some(float(1.0));
                flat_grad.neg()?
            } else {
                let (Some(d), Some(t), Some(prev_flat_grad), Some(h_diag)) =
                    (&mem.d, mem.t, &mem.prev_flat_grad, mem.h_diag)
                else {
                    return Err(Error::input(
                        "lbfgs: the optimizer state lacks d, t, prev_flat_grad or H_diag after its first iteration (a corrupt state)",
                    ));
                };
                // Do the L-BFGS update (update memory).
                let y = flat_grad.sub(prev_flat_grad)?;
                let s = scale(d, t)?;
                let ys = dot(ar, &y, &s)?;
                let mut h_diag = h_diag;
                if ar.gt(ys, float(1e-10)) {
                    // Updating memory.
                    if mem.old_dirs.len() == self.history_size {
                        // Shift the history by one (limited memory).
                        mem.old_dirs.remove(0);
                        mem.old_stps.remove(0);
                        mem.ro.remove(0);
                    }
                    // Store the new direction and step.
                    let yy = dot(ar, &y, &y)?;
                    mem.old_dirs.push(y);
                    mem.old_stps.push(s);
                    mem.ro.push(ar.div(float(1.0), ys));
                    // Update the scale of the initial Hessian approximation.
                    h_diag = ar.div(ys, yy);
                    mem.h_diag = Some(h_diag);
                }
                // Compute the approximate (L-BFGS) inverse Hessian multiplied by the
                // gradient.
                let num_old = mem.old_dirs.len();
                if mem.al.len() < num_old {
                    mem.al.resize(num_old, float(f64::NAN));
                }
                // The iteration of the L-BFGS loop collapsed to use just one buffer.
                let mut q = flat_grad.neg()?;
                for i in (0..num_old).rev() {
                    mem.al[i] = ar.mul(dot(ar, &mem.old_stps[i], &q)?, mem.ro[i]);
                    q = axpy(&q, &mem.old_dirs[i], ar.neg(mem.al[i]))?;
                }
                // Multiply by the initial Hessian; r/d is the final direction.
                let mut r = scale(&q, h_diag)?;
                let pairs = mem.old_dirs.iter().zip(&mem.old_stps);
                for ((y, s), (&ro, &al)) in pairs.zip(mem.ro.iter().zip(&mem.al)) {
                    let be_i = ar.mul(dot(ar, y, &r)?, ro);
                    r = axpy(&r, s, ar.sub(al, be_i))?;
                }
                r
            };
            mem.d = Some(d.clone());
            mem.prev_flat_grad = Some(flat_grad.clone());
            let prev_loss = loss;
            mem.prev_loss = Some(prev_loss);

            // Compute the step length; reset the initial guess for the step size.
            let mut t = if mem.n_iter == 1 {
                ar.mul(ar.min(float(1.0), ar.div(float(1.0), abs_sum(ar, &flat_grad)?)), float(lr))
            } else {
                float(lr)
            };
            mem.t = Some(t);

            // Directional derivative.
            let gtd = dot(ar, &flat_grad, &d)?;
            // Directional derivative is below tolerance.
            if ar.gt(gtd, ar.neg(tolerance_change)) {
                break;
            }

            let mut ls_func_evals = 0;
            match self.line_search_fn {
                Some(LineSearch::StrongWolfe) => {
                    let x_init =
                        params.iter().map(|p| p.as_tensor().copy()).collect::<candle_core::Result<Vec<_>>>()?;
                    let mut obj = |t: Num| self.directional_evaluate(params, &mut *closure, &x_init, t, &d, dtype);
                    let (new_loss, new_grad, new_t, evals) =
                        strong_wolfe(ar, &mut obj, t, &d, loss, &flat_grad, gtd, max_eval - current_evals)?;
                    loss = new_loss;
                    flat_grad = new_grad;
                    t = new_t;
                    mem.t = Some(t);
                    ls_func_evals = evals;
                    add_grad(params, t, &d)?;
                    opt_cond = ar.le(max_abs(ar, &flat_grad)?, tolerance_grad);
                }
                None => {
                    // No line search: simply move with the fixed step.
                    add_grad(params, t, &d)?;
                    if n_iter != max_iter {
                        // Re-evaluate the function only if not in the last iteration (in a
                        // stochastic setting there is no use re-evaluating it).
                        let (new_loss, new_grads) = closure()?;
                        loss = if self.maximize { -new_loss } else { new_loss };
                        flat_grad = self.flat_grad(params, new_grads, dtype)?;
                        opt_cond = ar.le(max_abs(ar, &flat_grad)?, tolerance_grad);
                        ls_func_evals = 1;
                    }
                }
            }
            // Update the evaluation counts.
            current_evals += ls_func_evals;
            mem.func_evals += ls_func_evals as u64;

            // Check the conditions.
            if n_iter == max_iter || current_evals >= max_eval || opt_cond {
                break;
            }
            // Lack of progress.
            if ar.le(max_abs(ar, &scale(&d, t)?)?, tolerance_change) {
                break;
            }
            if (loss - prev_loss).abs() < self.tolerance_change {
                break;
            }
        }
        Ok(())
    }
}

impl ClosureOptimizer for Lbfgs {
    fn init_state(&self, params: &[&Var]) -> Result<State> {
        if !params.is_empty() {
            layout(params)?;
        }
        let mut state = State::new();
        state.scalars.insert("func_evals".to_string(), 0.0);
        state.scalars.insert("n_iter".to_string(), 0.0);
        Ok(state)
    }

    fn step(
        &self,
        params: &[&Var],
        loss: f64,
        grads: Vec<Tensor>,
        closure: &mut ember_core::Closure<'_>,
        state: &mut State,
        ctx: &StepContext,
    ) -> Result<()> {
        // Nothing to optimize (PyTorch only evaluates the closure, which the caller did).
        if params.is_empty() {
            return Ok(());
        }
        let layout = layout(params)?;
        let ar = Arith { dtype: layout.0 };
        let mut mem = Memory::load(state, self, ar, &layout)?;
        self.run(params, loss, grads, closure, &mut mem, ar, ctx.lr)?;
        *state = mem.save()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_core::{registry, BuildContext, Config, DynOptimizer, Value};

    fn lbfgs(pairs: &[(&str, Value)]) -> Box<dyn DynOptimizer> {
        let config: Config = pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        registry::optimizer("lbfgs", &config, &BuildContext::default()).unwrap()
    }

    fn vector(v: &[f64], dtype: DType) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
    }

    /// f(x) = sum(a x²) + sum(b x) over the parameters as one vector (in order), and its
    /// gradient 2 a x + b split back per parameter.
    struct Quadratic {
        a: Tensor,
        b: Tensor,
        evals: usize,
    }

    impl Quadratic {
        fn eval(&mut self, params: &[&Var]) -> Result<(f64, Vec<Tensor>)> {
            self.evals += 1;
            let flat: Vec<Tensor> =
                params.iter().map(|p| p.as_tensor().flatten_all()).collect::<candle_core::Result<_>>()?;
            let x = Tensor::cat(&flat, 0)?;
            let f = self.a.mul(&x.sqr()?)?.sum_all()?.add(&self.b.mul(&x)?.sum_all()?)?;
            let g = self.a.affine(2.0, 0.0)?.mul(&x)?.add(&self.b)?;
            let mut grads = Vec::new();
            let mut offset = 0;
            for p in params {
                grads.push(g.narrow(0, offset, p.elem_count())?.reshape(p.dims())?);
                offset += p.elem_count();
            }
            Ok((value(&f)?, grads))
        }
    }

    fn problem(dtype: DType) -> (Vec<f64>, Quadratic) {
        let x0 = vec![1.5, -2.0, 0.3, 4.0, -0.7, 2.2, -3.1];
        let a = vector(&[0.2, 1.5, 0.9, 0.05, 2.0, 0.6, 1.1], dtype);
        let b = vector(&[-1.0, 0.4, 2.0, -0.3, 0.8, -1.2, 0.1], dtype);
        (x0, Quadratic { a, b, evals: 0 })
    }

    /// `steps` steps of `opt` over `params` from `state`; the state after them.
    fn run(opt: &dyn DynOptimizer, params: &[&Var], f: &mut Quadratic, mut state: State, steps: usize) -> State {
        let closure_opt = opt.closure_optimizer().expect("lbfgs is a closure optimizer");
        for _ in 0..steps {
            let (loss, grads) = f.eval(params).unwrap();
            let mut closure = || f.eval(params);
            closure_opt.step(params, loss, grads, &mut closure, &mut state, &StepContext::new(1.0)).unwrap();
        }
        state
    }

    fn bits(params: &[&Var]) -> Vec<u64> {
        params
            .iter()
            .flat_map(|p| p.as_tensor().to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap())
            .map(f64::to_bits)
            .collect()
    }

    #[test]
    fn it_converges_to_the_minimizer_of_a_convex_quadratic() {
        for line_search in [false, true] {
            // Tolerances below the defaults, which stop at |x - x*| ~ 1e-5 here.
            let mut config = vec![("tolerance_grad", Value::Float(1e-12)), ("tolerance_change", Value::Float(1e-15))];
            if line_search {
                config.push(("line_search_fn", Value::Str("strong_wolfe".into())));
            }
            let opt = lbfgs(&config);
            let (x0, mut f) = problem(DType::F64);
            let x = Var::from_tensor(&vector(&x0, DType::F64)).unwrap();
            let state = opt.closure_optimizer().unwrap().init_state(&[&x]).unwrap();
            let state = run(opt.as_ref(), &[&x], &mut f, state, 3);
            let got = x.as_tensor().to_vec1::<f64>().unwrap();
            let (a, b) = (f.a.to_vec1::<f64>().unwrap(), f.b.to_vec1::<f64>().unwrap());
            for (i, ((x, a), b)) in got.iter().zip(&a).zip(&b).enumerate() {
                let want = -b / (2.0 * a);
                assert!((x - want).abs() < 1e-7, "line search {line_search}: x[{i}] = {x} != {want}");
            }
            // The counters PyTorch keeps: one evaluation per step at least, and more
            // iterations than steps.
            assert_eq!(state.scalar("func_evals"), Some(f.evals as f64), "line search {line_search}");
            assert!(state.scalar("n_iter").unwrap() > 3.0, "line search {line_search}");
        }
    }

    /// Several parameters are one flat vector: two parameters step exactly as their
    /// concatenation does.
    #[test]
    fn parameters_are_one_flat_vector() {
        for dtype in [DType::F32, DType::F64] {
            for line_search in [false, true] {
                let mut config = vec![("max_iter", Value::Int(3)), ("history_size", Value::Int(2))];
                if line_search {
                    config.push(("line_search_fn", Value::Str("strong_wolfe".into())));
                }
                let opt = lbfgs(&config);
                let (x0, mut f) = problem(dtype);
                let whole = Var::from_tensor(&vector(&x0, dtype)).unwrap();
                let state = opt.closure_optimizer().unwrap().init_state(&[&whole]).unwrap();
                run(opt.as_ref(), &[&whole], &mut f, state, 4);
                let (x0, mut f) = problem(dtype);
                let m = Var::from_tensor(&vector(&x0[..4], dtype).reshape((2, 2)).unwrap()).unwrap();
                let v = Var::from_tensor(&vector(&x0[4..], dtype)).unwrap();
                let state = opt.closure_optimizer().unwrap().init_state(&[&m, &v]).unwrap();
                run(opt.as_ref(), &[&m, &v], &mut f, state, 4);
                assert_eq!(bits(&[&whole]), bits(&[&m, &v]), "{dtype:?} line search {line_search}");
            }
        }
    }

    /// A state saved mid-run (copied, as a checkpoint does) continues exactly as the run
    /// that kept it, with a history that has wrapped (history_size 2).
    #[test]
    fn a_saved_state_continues_bit_exactly() {
        for dtype in [DType::F32, DType::F64] {
            for line_search in [false, true] {
                let mut config = vec![("max_iter", Value::Int(2)), ("history_size", Value::Int(2))];
                if line_search {
                    config.push(("line_search_fn", Value::Str("strong_wolfe".into())));
                }
                let opt = lbfgs(&config);
                let (x0, mut f) = problem(dtype);
                let x = Var::from_tensor(&vector(&x0, dtype)).unwrap();
                let state = opt.closure_optimizer().unwrap().init_state(&[&x]).unwrap();
                let state = run(opt.as_ref(), &[&x], &mut f, state, 3);
                assert!(state.tensor("old_dirs.1").is_some() && state.tensor("ro").is_some(), "{state:?}");
                // The checkpoint: every tensor copied, the parameter too.
                let saved = State {
                    tensors: state.tensors.iter().map(|(k, t)| (k.clone(), t.copy().unwrap())).collect(),
                    scalars: state.scalars.clone(),
                };
                let resumed = Var::from_tensor(&x.as_tensor().copy().unwrap()).unwrap();
                let kept = run(opt.as_ref(), &[&x], &mut f, state, 3);
                let fresh = lbfgs(&config);
                let restored = run(fresh.as_ref(), &[&resumed], &mut f, saved, 3);
                assert_eq!(bits(&[&x]), bits(&[&resumed]), "{dtype:?} line search {line_search}");
                assert_eq!(kept.scalars, restored.scalars, "{dtype:?} line search {line_search}");
            }
        }
    }

    #[test]
    fn the_per_parameter_step_is_refused_with_the_way_out() {
        let opt = lbfgs(&[]);
        let x = Var::from_tensor(&vector(&[1.0, 2.0], DType::F64)).unwrap();
        let mut state = opt.init_state(x.as_tensor()).unwrap();
        let err = opt.step(&x, x.as_tensor(), &mut state, &StepContext::new(1.0)).unwrap_err().to_string();
        assert!(err.contains("closure step") && err.contains("step_closure"), "{err}");
    }

    #[test]
    fn a_state_that_does_not_fit_is_refused_naming_the_entry() {
        let opt = lbfgs(&[("max_iter", Value::Int(2))]);
        let (x0, mut f) = problem(DType::F64);
        let x = Var::from_tensor(&vector(&x0, DType::F64)).unwrap();
        let state = opt.closure_optimizer().unwrap().init_state(&[&x]).unwrap();
        let state = run(opt.as_ref(), &[&x], &mut f, state, 2);
        let short = Var::from_tensor(&vector(&x0[..3], DType::F64)).unwrap();
        let mut bad_states = Vec::new();
        let mut unknown = state.clone();
        unknown.scalars.insert("momentum".into(), 0.9);
        bad_states.push((unknown, "unexpected scalar 'momentum'", &x));
        let mut missing = state.clone();
        missing.tensors.remove("old_stps.0");
        bad_states.push((missing, "old_stps", &x));
        bad_states.push((state.clone(), "tensor 'd' has shape [7], but the parameters hold 3 numbers", &short));
        for (mut bad, want, param) in bad_states {
            let closure_opt = opt.closure_optimizer().unwrap();
            // The state is checked before anything else: the closure is never called.
            let grads = vec![param.as_tensor().ones_like().unwrap()];
            let mut closure = || -> Result<(f64, Vec<Tensor>)> { Err(Error::input("the closure was called")) };
            let err = closure_opt
                .step(&[param], 1.0, grads, &mut closure, &mut bad, &StepContext::new(1.0))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn bad_hyperparameters_are_rejected() {
        let config =
            |pairs: &[(&str, Value)]| -> Config { pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect() };
        for (key, bad) in [
            ("max_iter", Value::Int(0)),
            ("history_size", Value::Int(0)),
            ("line_search_fn", Value::Str("armijo".into())),
            ("lr", Value::Float(-1.0)),
        ] {
            let err = registry::optimizer("lbfgs", &config(&[(key, bad)]), &BuildContext::default()).unwrap_err();
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
    }

    /// The rounding of PyTorch's 0-d tensors: bf16 and f16 round to nearest even.
    #[test]
    fn reduced_precision_rounding_is_to_nearest_even() {
        // bf16 keeps 8 significant bits: 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷.
        assert_eq!(round_bf16(1.0 + 2f32.powi(-8)), 1.0);
        assert_eq!(round_bf16(1.0 + 3.0 * 2f32.powi(-8)), 1.0 + 2f32.powi(-6));
        // f16: 11 significant bits, largest finite 65504, subnormal quantum 2⁻²⁴.
        assert_eq!(round_f16(1.0 + 2f64.powi(-11)), 1.0);
        assert_eq!(round_f16(1.0 + 3.0 * 2f64.powi(-11)), 1.0 + 2f64.powi(-9));
        assert_eq!(round_f16(65519.0), 65504.0);
        assert_eq!(round_f16(65520.0), f64::INFINITY);
        assert_eq!(round_f16(-1.5 * 2f64.powi(-24)), -2.0 * 2f64.powi(-24));
        assert_eq!(round_f16(0.1), 0.0999755859375);
    }
}
