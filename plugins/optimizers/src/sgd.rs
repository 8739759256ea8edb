//! `sgd`: stochastic gradient descent with momentum, dampening, Nesterov momentum and
//! weight decay (PyTorch `torch.optim.SGD`).

use candle_core::{Tensor, Var};
use ember_core::ops::fused::{par_chunks, with_cpu_data, ChunkKernel, CpuFloat};
use ember_core::ops::pointwise::Real;
use ember_core::optim::{add_scaled, effective_grad, fused_kind, Fused};
use ember_core::{check, BuildContext, Error, Hyperparams, Optimizer, OptimizerState, Result, StepContext, Value};

/// PyTorch's SGD: g ← ±grad + weight_decay·p; with momentum, b ← g on the first step, then
/// b ← momentum·b + (1 - dampening)·g, and g ← g + momentum·b (Nesterov) or g ← b;
/// finally p ← p - lr·g. The momentum is the scheduled one when a scheduler cycles it.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "sgd",
    summary = "stochastic gradient descent with momentum / Nesterov (torch.optim.SGD)",
    lr = 1e-3,
    build = Sgd::validate
)]
pub struct Sgd {
    /// momentum factor; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub momentum: f64,
    /// dampening for momentum
    #[param(default = 0.0)]
    pub dampening: f64,
    /// L2 penalty added to the gradient; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub weight_decay: f64,
    /// Nesterov momentum (needs momentum > 0, dampening = 0)
    #[param(default = false)]
    pub nesterov: bool,
    /// maximize the objective instead of minimizing
    #[param(default = false)]
    pub maximize: bool,
}

/// SGD's state: the momentum buffer, created at the first step with momentum (none
/// without momentum). SGD keeps no step count.
#[derive(Clone, Debug, OptimizerState)]
pub struct SgdState {
    pub momentum_buffer: Option<Tensor>,
}

impl Sgd {
    /// PyTorch's check: Nesterov momentum needs momentum > 0 and no dampening.
    fn validate(self, _: &BuildContext) -> Result<Self> {
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::InvalidValue {
                path: "sgd.nesterov".into(),
                value: Value::Bool(self.nesterov).to_string(),
                rule: "Nesterov momentum requires momentum > 0 and dampening = 0".into(),
            });
        }
        Ok(self)
    }

    fn composed(&self, param: &Var, grad: &Tensor, state: &mut SgdState, momentum: f64, lr: f64) -> Result<()> {
        let p = param.as_tensor();
        let mut g = effective_grad(p, grad, self.maximize, self.weight_decay)?;
        if momentum != 0.0 {
            let buf = match &state.momentum_buffer {
                None => g.copy()?,
                Some(b) => add_scaled(&b.affine(momentum, 0.0)?, &g, 1.0 - self.dampening)?,
            };
            g = if self.nesterov { add_scaled(&g, &buf, momentum)? } else { buf.clone() };
            state.momentum_buffer = Some(buf);
        }
        param.set(&add_scaled(p, &g, -lr)?)?;
        Ok(())
    }

    fn fused_step<T: CpuFloat + Real>(
        &self,
        param: &Tensor,
        grad: &Tensor,
        buf: &Tensor,
        momentum: f64,
        lr: f64,
    ) -> Result<()> {
        let k = SgdKernel {
            sign: if self.maximize { -T::one() } else { T::one() },
            wd: (self.weight_decay != 0.0).then(|| T::of(self.weight_decay)),
            momentum: T::of(momentum),
            damp: T::of(1.0 - self.dampening),
            nesterov: self.nesterov,
            neg_lr: T::of(-lr),
        };
        with_cpu_data::<T>(param, grad, &[buf], &mut |p, g, s| par_chunks(p, g, s, &k))
    }
}

/// SGD with momentum over one chunk (the momentum buffer already exists).
struct SgdKernel<T> {
    sign: T,
    wd: Option<T>,
    momentum: T,
    damp: T,
    nesterov: bool,
    neg_lr: T,
}

impl<T: Real> ChunkKernel<T> for SgdKernel<T> {
    #[inline(always)]
    fn run(&self, p: &mut [T], g: &[T], s: &mut [&mut [T]]) {
        let [b] = s else { unreachable!("one state buffer") };
        match (self.wd, self.nesterov) {
            (None, false) => self.each::<false, false>(p, g, b),
            (None, true) => self.each::<false, true>(p, g, b),
            (Some(_), false) => self.each::<true, false>(p, g, b),
            (Some(_), true) => self.each::<true, true>(p, g, b),
        }
    }
}

impl<T: Real> SgdKernel<T> {
    #[inline(always)]
    fn each<const WD: bool, const NESTEROV: bool>(&self, p: &mut [T], g: &[T], b: &mut [T]) {
        let n = p.len();
        let (g, b) = (&g[..n], &mut b[..n]);
        let wd = self.wd.unwrap_or(T::zero());
        for ((p, &g), b) in p.iter_mut().zip(g).zip(b.iter_mut()) {
            let mut g = g * self.sign;
            if WD {
                g = g + wd * *p;
            }
            *b = *b * self.momentum + self.damp * g;
            let d = if NESTEROV { g + self.momentum * *b } else { *b };
            *p = *p + self.neg_lr * d;
        }
    }
}

impl Optimizer for Sgd {
    type State = SgdState;

    fn init_state(&self, _param: &Tensor) -> Result<SgdState> {
        Ok(SgdState { momentum_buffer: None })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut SgdState, ctx: &StepContext) -> Result<()> {
        // PyTorch reads the group's momentum at each step: a scheduled momentum > 0 uses
        // (and creates) the buffer even when the configured momentum is 0.
        let momentum = ctx.momentum_or(self.momentum);
        // Plain SGD and the first momentum step (which copies the gradient) are composed.
        let buf = match &state.momentum_buffer {
            Some(b) if momentum != 0.0 => b,
            _ => return self.composed(param, grad, state, momentum, ctx.lr),
        };
        match fused_kind(param.as_tensor(), grad, &[buf]) {
            Some(Fused::F32) => self.fused_step::<f32>(param.as_tensor(), grad, buf, momentum, ctx.lr),
            Some(Fused::F64) => self.fused_step::<f64>(param.as_tensor(), grad, buf, momentum, ctx.lr),
            None => self.composed(param, grad, state, momentum, ctx.lr),
        }
    }
}
