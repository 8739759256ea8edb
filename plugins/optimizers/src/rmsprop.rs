//! `rmsprop`: gradients divided by a running root-mean-square (PyTorch `torch.optim.RMSprop`).

use candle_core::{Tensor, Var};
use ember_core::ops::fused::{par_chunks, with_cpu_data, ChunkKernel, CpuFloat};
use ember_core::ops::pointwise::Real;
use ember_core::optim::{add_scaled, addcdiv, addcmul, effective_grad, fused_kind, lerp, lerp1, zeros, Fused};
use ember_core::{check, Hyperparams, Optimizer, OptimizerState, Result, StepContext};

use crate::common::missing;

/// PyTorch's RMSprop: s ← α·s + (1-α)·g²; centered: ḡ ← lerp(ḡ, g, 1-α) and
/// a = √(s - ḡ²) + eps, else a = √s + eps; with momentum μ > 0, b ← μ·b + g/a and
/// p ← p - lr·b, else p ← p - lr·g/a. μ is the scheduled momentum when a scheduler
/// cycles it.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "rmsprop",
    summary = "RMSprop: gradient divided by a running RMS, optional momentum and centering (torch.optim.RMSprop)",
    lr = 0.01
)]
pub struct Rmsprop {
    /// smoothing constant of the squared-gradient average; >= 0
    #[param(default = 0.99, check = check::non_negative)]
    pub alpha: f64,
    /// added to the denominator; >= 0
    #[param(default = 1e-8, check = check::non_negative)]
    pub eps: f64,
    /// L2 penalty added to the gradient; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub weight_decay: f64,
    /// momentum factor; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub momentum: f64,
    /// divide by the centered RMS (variance estimate)
    #[param(default = false)]
    pub centered: bool,
    /// maximize the objective instead of minimizing
    #[param(default = false)]
    pub maximize: bool,
}

/// RMSprop's state (PyTorch's names): the step count, the squared-gradient average,
/// the momentum buffer (with momentum > 0: from the start when configured, at the
/// first step with a scheduled momentum > 0 otherwise) and the gradient average
/// (centered).
#[derive(Clone, Debug, OptimizerState)]
pub struct RmspropState {
    pub step: u64,
    pub square_avg: Tensor,
    pub momentum_buffer: Option<Tensor>,
    pub grad_avg: Option<Tensor>,
}

impl Rmsprop {
    fn composed(&self, param: &Var, grad: &Tensor, state: &mut RmspropState, momentum: f64, lr: f64) -> Result<()> {
        let p = param.as_tensor();
        let g = effective_grad(p, grad, self.maximize, self.weight_decay)?;
        let sq = addcmul(&state.square_avg.affine(self.alpha, 0.0)?, &g, &g, 1.0 - self.alpha)?;
        let avg = if self.centered {
            let ga =
                lerp(state.grad_avg.as_ref().ok_or_else(|| missing("rmsprop", "grad_avg"))?, &g, 1.0 - self.alpha)?;
            let avg = addcmul(&sq, &ga, &ga, -1.0)?.sqrt()?;
            state.grad_avg = Some(ga);
            avg
        } else {
            sq.sqrt()?
        };
        let avg = avg.affine(1.0, self.eps)?;
        let new_p = if momentum > 0.0 {
            let buf = state.momentum_buffer.as_ref().ok_or_else(|| missing("rmsprop", "momentum_buffer"))?;
            let buf = addcdiv(&buf.affine(momentum, 0.0)?, &g, &avg, 1.0)?;
            let new_p = add_scaled(p, &buf, -lr)?;
            state.momentum_buffer = Some(buf);
            new_p
        } else {
            addcdiv(p, &g, &avg, -lr)?
        };
        param.set(&new_p)?;
        state.square_avg = sq;
        Ok(())
    }

    fn fused_step<T: CpuFloat + Real>(
        &self,
        param: &Tensor,
        grad: &Tensor,
        states: &[&Tensor],
        momentum: f64,
        lr: f64,
    ) -> Result<()> {
        let w = 1.0 - self.alpha;
        let k = RmspropKernel {
            sign: if self.maximize { -T::one() } else { T::one() },
            wd: (self.weight_decay != 0.0).then(|| T::of(self.weight_decay)),
            alpha: T::of(self.alpha),
            c: T::of(1.0 - self.alpha),
            w: T::of(w),
            w_lt_half: w < 0.5,
            eps: T::of(self.eps),
            momentum: (momentum > 0.0).then(|| T::of(momentum)),
            centered: self.centered,
            neg_lr: T::of(-lr),
        };
        with_cpu_data::<T>(param, grad, states, &mut |p, g, s| par_chunks(p, g, s, &k))
    }
}

/// RMSprop over one chunk; state order: square_avg, [momentum_buffer], [grad_avg].
struct RmspropKernel<T> {
    sign: T,
    wd: Option<T>,
    alpha: T,
    c: T,
    w: T,
    w_lt_half: bool,
    eps: T,
    momentum: Option<T>,
    centered: bool,
    neg_lr: T,
}

impl<T: Real> ChunkKernel<T> for RmspropKernel<T> {
    #[inline(always)]
    fn run(&self, p: &mut [T], g: &[T], s: &mut [&mut [T]]) {
        let wd = self.wd.is_some();
        match (s, self.momentum.is_some(), self.centered) {
            ([sq], false, false) => {
                if wd {
                    self.plain::<true>(p, g, sq)
                } else {
                    self.plain::<false>(p, g, sq)
                }
            }
            (s, _, _) => self.general(p, g, s),
        }
    }
}

impl<T: Real> RmspropKernel<T> {
    /// No momentum, not centered: the common case, branch-free.
    #[inline(always)]
    fn plain<const WD: bool>(&self, p: &mut [T], g: &[T], sq: &mut [T]) {
        let n = p.len();
        let (g, sq) = (&g[..n], &mut sq[..n]);
        let wd = self.wd.unwrap_or(T::zero());
        for ((p, &g), s) in p.iter_mut().zip(g).zip(sq.iter_mut()) {
            let mut g = g * self.sign;
            if WD {
                g = g + wd * *p;
            }
            *s = *s * self.alpha + self.c * g * g;
            *p = *p + self.neg_lr * g / (s.sqrt() + self.eps);
        }
    }

    /// Momentum and/or centering.
    #[inline(always)]
    fn general(&self, p: &mut [T], g: &[T], s: &mut [&mut [T]]) {
        let (sq, rest) = s.split_first_mut().expect("square_avg");
        let (mut buf, rest) = match self.momentum {
            Some(_) => {
                let (b, r) = rest.split_first_mut().expect("momentum_buffer");
                (Some(b), r)
            }
            None => (None, rest),
        };
        let mut ga = if self.centered { rest.first_mut() } else { None };
        let wd = self.wd.unwrap_or(T::zero());
        for i in 0..p.len() {
            let mut gi = g[i] * self.sign;
            if self.wd.is_some() {
                gi = gi + wd * p[i];
            }
            let s = sq[i] * self.alpha + self.c * gi * gi;
            sq[i] = s;
            let avg = match ga.as_deref_mut() {
                Some(ga) => {
                    let a = lerp1(ga[i], gi, self.w, self.w_lt_half);
                    ga[i] = a;
                    (s + -T::one() * a * a).sqrt()
                }
                None => s.sqrt(),
            } + self.eps;
            match (buf.as_deref_mut(), self.momentum) {
                (Some(b), Some(m)) => {
                    b[i] = b[i] * m + T::one() * gi / avg;
                    p[i] = p[i] + self.neg_lr * b[i];
                }
                _ => p[i] = p[i] + self.neg_lr * gi / avg,
            }
        }
    }
}

impl Optimizer for Rmsprop {
    type State = RmspropState;

    fn init_state(&self, param: &Tensor) -> Result<RmspropState> {
        Ok(RmspropState {
            step: 0,
            square_avg: zeros(param)?,
            momentum_buffer: if self.momentum > 0.0 { Some(zeros(param)?) } else { None },
            grad_avg: if self.centered { Some(zeros(param)?) } else { None },
        })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut RmspropState, ctx: &StepContext) -> Result<()> {
        state.step += 1;
        let momentum = ctx.momentum_or(self.momentum);
        // A scheduled momentum > 0 without a configured one: PyTorch's state (made at the
        // first step, from the group's momentum then) has the buffer, zeros.
        if momentum > 0.0 && state.momentum_buffer.is_none() {
            state.momentum_buffer = Some(zeros(param.as_tensor())?);
        }
        let mut states = vec![&state.square_avg];
        if momentum > 0.0 {
            states.push(state.momentum_buffer.as_ref().ok_or_else(|| missing("rmsprop", "momentum_buffer"))?);
        }
        if self.centered {
            states.push(state.grad_avg.as_ref().ok_or_else(|| missing("rmsprop", "grad_avg"))?);
        }
        match fused_kind(param.as_tensor(), grad, &states) {
            Some(Fused::F32) => self.fused_step::<f32>(param.as_tensor(), grad, &states, momentum, ctx.lr),
            Some(Fused::F64) => self.fused_step::<f64>(param.as_tensor(), grad, &states, momentum, ctx.lr),
            None => self.composed(param, grad, state, momentum, ctx.lr),
        }
    }
}
