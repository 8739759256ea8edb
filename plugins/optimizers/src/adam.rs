//! `adam`: adaptive moment estimation (PyTorch `torch.optim.Adam`); `adamw` is the same
//! with decoupled weight decay (`torch.optim.AdamW`).

use candle_core::{Tensor, Var};
use ember_core::ops::fused::{par_chunks, with_cpu_data, ChunkKernel, CpuFloat};
use ember_core::ops::pointwise::Real;
use ember_core::optim::{addcdiv, decay_and_grad, div_scalar, fused_kind, nan_max, zeros, Fused};
use ember_core::{check, Hyperparams, Optimizer, OptimizerState, Result, StepContext};

use crate::common::{adam_moments, missing, Betas};

/// PyTorch's Adam (and AdamW when `decoupled_weight_decay`), step t:
/// m ← lerp(m, g, 1-β1); v ← β2·v + (1-β2)·g²; (amsgrad: v̂ ← max(v̂, v));
/// p ← p - (lr / (1-β1ᵗ)) · m / (√v / √(1-β2ᵗ) + eps).
/// Weight decay is added to the gradient (Adam), or applied as p ← p·(1 - lr·wd) before
/// the update (AdamW). β1 is the scheduled momentum when a scheduler cycles it.
// Both registrations say `lr = 1e-3`, which clippy takes for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(optimizer = "adam", summary = "Adam, weight decay added to the gradient (torch.optim.Adam)", lr = 1e-3)]
#[plugin(
    optimizer = "adamw",
    summary = "Adam with decoupled weight decay p <- p (1 - lr wd) (torch.optim.AdamW)",
    lr = 1e-3,
    default(weight_decay = 0.01),
    set(decoupled_weight_decay = true)
)]
pub struct Adam {
    /// decay rates of the first and second moment averages; in [0, 1)
    #[param(default = [0.9, 0.999])]
    pub betas: Betas,
    /// added to the denominator; >= 0
    #[param(default = 1e-8, check = check::non_negative)]
    pub eps: f64,
    /// weight decay; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub weight_decay: f64,
    /// use the maximum of past second moments (AMSGrad)
    #[param(default = false)]
    pub amsgrad: bool,
    /// maximize the objective instead of minimizing
    #[param(default = false)]
    pub maximize: bool,
    /// AdamW's decoupled weight decay (set by the `adamw` registration).
    #[param(skip)]
    pub decoupled_weight_decay: bool,
}

/// Adam's state (PyTorch's names): the step count, the moment averages, and the
/// running maximum of `exp_avg_sq` with amsgrad.
#[derive(Clone, Debug, OptimizerState)]
pub struct AdamState {
    pub step: u64,
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
    pub max_exp_avg_sq: Option<Tensor>,
}

/// Per-step scalars, computed in f64 as PyTorch computes them in Python.
struct Scalars {
    b1: f64,
    step_size: f64,
    bias_correction2_sqrt: f64,
    decay: f64,
}

impl Adam {
    fn scalars(&self, step: f64, b1: f64, lr: f64) -> Scalars {
        let b2 = self.betas.1;
        Scalars {
            b1,
            step_size: lr / (1.0 - b1.powf(step)),
            bias_correction2_sqrt: (1.0 - b2.powf(step)).sqrt(),
            decay: if self.decoupled_weight_decay { 1.0 - lr * self.weight_decay } else { 1.0 },
        }
    }

    fn composed(&self, param: &Var, grad: &Tensor, state: &mut AdamState, sc: &Scalars, lr: f64) -> Result<()> {
        let (p, g) =
            decay_and_grad(param.as_tensor(), grad, self.maximize, self.weight_decay, self.decoupled_weight_decay, lr)?;
        let (m, v) = adam_moments(&state.exp_avg, &state.exp_avg_sq, &g, (sc.b1, self.betas.1))?;
        let second = if self.amsgrad {
            let vmax = state.max_exp_avg_sq.as_ref().ok_or_else(|| missing("adam", "max_exp_avg_sq"))?.maximum(&v)?;
            state.max_exp_avg_sq = Some(vmax.clone());
            vmax
        } else {
            v.clone()
        };
        // (√v / √(1-β2ᵗ)) + eps, a true division as in PyTorch.
        let denom = div_scalar(&second.sqrt()?, sc.bias_correction2_sqrt)?.affine(1.0, self.eps)?;
        param.set(&addcdiv(&p, &m, &denom, -sc.step_size)?)?;
        state.exp_avg = m;
        state.exp_avg_sq = v;
        Ok(())
    }

    fn fused_step<T: CpuFloat + Real>(
        &self,
        param: &Tensor,
        grad: &Tensor,
        states: &[&Tensor],
        sc: &Scalars,
    ) -> Result<()> {
        let (b1, b2) = (sc.b1, self.betas.1);
        let k = Kernel {
            w: T::of(1.0 - b1),
            w_lt_half: 1.0 - b1 < 0.5,
            beta2: T::of(b2),
            c2: T::of(1.0 - b2),
            bc2s: T::of(sc.bias_correction2_sqrt),
            eps: T::of(self.eps),
            neg_step: T::of(-sc.step_size),
            decay: (self.decoupled_weight_decay && self.weight_decay != 0.0).then(|| T::of(sc.decay)),
            wd: (!self.decoupled_weight_decay && self.weight_decay != 0.0).then(|| T::of(self.weight_decay)),
            maximize: self.maximize,
        };
        with_cpu_data::<T>(param, grad, states, &mut |p, g, s| par_chunks(p, g, s, &k))
    }
}

/// The fused Adam update of one chunk, in PyTorch's order of operations.
#[derive(Clone, Copy)]
struct Kernel<T> {
    w: T,
    w_lt_half: bool,
    beta2: T,
    c2: T,
    bc2s: T,
    eps: T,
    neg_step: T,
    decay: Option<T>,
    wd: Option<T>,
    maximize: bool,
}

impl<T: Real> ChunkKernel<T> for Kernel<T> {
    /// Dispatches to a loop specialised for this step's options, so the loop body has no
    /// branches and vectorizes.
    #[inline(always)]
    fn run(&self, p: &mut [T], g: &[T], s: &mut [&mut [T]]) {
        match (s, self.wd.is_some(), self.w_lt_half) {
            ([m, v], false, true) => self.each::<false, true>(p, g, m, v, None),
            ([m, v], false, false) => self.each::<false, false>(p, g, m, v, None),
            ([m, v], true, true) => self.each::<true, true>(p, g, m, v, None),
            ([m, v], true, false) => self.each::<true, false>(p, g, m, v, None),
            ([m, v, vmax], false, true) => self.each::<false, true>(p, g, m, v, Some(vmax)),
            ([m, v, vmax], false, false) => self.each::<false, false>(p, g, m, v, Some(vmax)),
            ([m, v, vmax], true, true) => self.each::<true, true>(p, g, m, v, Some(vmax)),
            ([m, v, vmax], true, false) => self.each::<true, false>(p, g, m, v, Some(vmax)),
            _ => unreachable!("adam has two or three state buffers"),
        }
    }
}

impl<T: Real> Kernel<T> {
    #[inline(always)]
    fn each<const WD: bool, const LT_HALF: bool>(
        &self,
        p: &mut [T],
        g: &[T],
        m: &mut [T],
        v: &mut [T],
        vmax: Option<&mut [T]>,
    ) {
        let n = p.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        // Negating by a multiplication by -1 and decaying by a factor of 1 are exact, so
        // these stay branch-free without changing any result.
        let sign = if self.maximize { -T::one() } else { T::one() };
        let decay = self.decay.unwrap_or(T::one());
        let wd = self.wd.unwrap_or(T::zero());
        let update = |pi: &mut T, gi: T, mi: &mut T, vi: &mut T| -> (T, T) {
            let p0 = *pi * decay;
            let mut gi = gi * sign;
            if WD {
                gi = gi + wd * p0;
            }
            let d = gi - *mi;
            *mi = if LT_HALF { *mi + self.w * d } else { gi - d * (T::one() - self.w) };
            *vi = *vi * self.beta2 + self.c2 * gi * gi;
            (p0, *vi)
        };
        match vmax {
            None => {
                for (((pi, &gi), mi), vi) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                    let (p0, second) = update(pi, gi, mi, vi);
                    *pi = p0 + self.neg_step * *mi / (second.sqrt() / self.bc2s + self.eps);
                }
            }
            Some(vmax) => {
                let vmax = &mut vmax[..n];
                for ((((pi, &gi), mi), vi), vm) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()).zip(vmax) {
                    let (p0, vnew) = update(pi, gi, mi, vi);
                    *vm = nan_max(*vm, vnew);
                    *pi = p0 + self.neg_step * *mi / (vm.sqrt() / self.bc2s + self.eps);
                }
            }
        }
    }
}

impl Optimizer for Adam {
    type State = AdamState;

    fn init_state(&self, param: &Tensor) -> Result<AdamState> {
        Ok(AdamState {
            step: 0,
            exp_avg: zeros(param)?,
            exp_avg_sq: zeros(param)?,
            max_exp_avg_sq: if self.amsgrad { Some(zeros(param)?) } else { None },
        })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut AdamState, ctx: &StepContext) -> Result<()> {
        state.step += 1;
        let sc = self.scalars(state.step as f64, ctx.momentum_or(self.betas.0), ctx.lr);
        let mut states = vec![&state.exp_avg, &state.exp_avg_sq];
        if self.amsgrad {
            states.push(state.max_exp_avg_sq.as_ref().ok_or_else(|| missing("adam", "max_exp_avg_sq"))?);
        }
        match fused_kind(param.as_tensor(), grad, &states) {
            Some(Fused::F32) => self.fused_step::<f32>(param.as_tensor(), grad, &states, &sc),
            Some(Fused::F64) => self.fused_step::<f64>(param.as_tensor(), grad, &states, &sc),
            None => self.composed(param, grad, state, &sc, ctx.lr),
        }
    }
}
