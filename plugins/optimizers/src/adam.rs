//! `adam`: adaptive moment estimation (PyTorch `torch.optim.Adam`); `adamw` is the same
//! with decoupled weight decay.

use candle_core::{Tensor, Var};
use ember_core::ops::fused::{par_chunks, with_cpu_data, ChunkKernel, CpuFloat};
use ember_core::ops::pointwise::Real;
use ember_core::{Optimizer, OptimizerEntry, ParamSpec, Params, Result, State, StepContext};

use crate::common::{
    adam_moments, addcdiv, betas, buffer, decay_and_grad, fused_kind, nan_max, next_step, non_negative, zero_state,
    Fused, MAXIMIZE,
};

/// PyTorch's Adam (and AdamW when `decoupled_weight_decay`), step t:
/// m ← lerp(m, g, 1-β1); v ← β2·v + (1-β2)·g²; (amsgrad: v̂ ← max(v̂, v));
/// p ← p - (lr / (1-β1ᵗ)) · m / (√v / √(1-β2ᵗ) + eps).
/// Weight decay is added to the gradient (Adam), or applied as p ← p·(1 - lr·wd) before
/// the update (AdamW). State: `step`, `exp_avg`, `exp_avg_sq`, and `max_exp_avg_sq`
/// with amsgrad.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub amsgrad: bool,
    pub maximize: bool,
    /// AdamW's decoupled weight decay.
    pub decoupled_weight_decay: bool,
    /// Use the fused CPU kernel when it applies (the composed path otherwise).
    pub fused: bool,
}

/// Per-step scalars, computed in f64 as PyTorch computes them in Python.
struct Scalars {
    step_size: f64,
    bias_correction2_sqrt: f64,
    decay: f64,
}

impl Adam {
    pub fn from_params(p: &Params, decoupled_weight_decay: bool) -> Result<Self> {
        Ok(Adam {
            lr: non_negative(p, "lr")?,
            betas: betas(p)?,
            eps: non_negative(p, "eps")?,
            weight_decay: non_negative(p, "weight_decay")?,
            amsgrad: p.bool("amsgrad")?,
            maximize: p.bool("maximize")?,
            decoupled_weight_decay,
            fused: true,
        })
    }

    fn names(&self) -> &'static [&'static str] {
        if self.amsgrad {
            &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
        } else {
            &["exp_avg", "exp_avg_sq"]
        }
    }

    fn scalars(&self, step: f64, lr: f64) -> Scalars {
        let (b1, b2) = self.betas;
        Scalars {
            step_size: lr / (1.0 - b1.powf(step)),
            bias_correction2_sqrt: (1.0 - b2.powf(step)).sqrt(),
            decay: if self.decoupled_weight_decay { 1.0 - lr * self.weight_decay } else { 1.0 },
        }
    }

    fn composed(&self, param: &Var, grad: &Tensor, state: &mut State, sc: &Scalars, lr: f64) -> Result<()> {
        let (p, g) =
            decay_and_grad(param.as_tensor(), grad, self.maximize, self.weight_decay, self.decoupled_weight_decay, lr)?;
        let (m, v) = adam_moments("adam", state, &g, self.betas)?;
        let second = if self.amsgrad {
            let vmax = buffer("adam", state, "max_exp_avg_sq")?.maximum(&v)?;
            state.tensors.insert("max_exp_avg_sq".into(), vmax.clone());
            vmax
        } else {
            v.clone()
        };
        // (√v / √(1-β2ᵗ)) + eps, a true division as in PyTorch.
        let bc2s = Tensor::new(sc.bias_correction2_sqrt, p.device())?.to_dtype(p.dtype())?;
        let denom = second.sqrt()?.broadcast_div(&bc2s)?.affine(1.0, self.eps)?;
        param.set(&addcdiv(&p, &m, &denom, -sc.step_size)?)?;
        state.tensors.insert("exp_avg".into(), m);
        state.tensors.insert("exp_avg_sq".into(), v);
        Ok(())
    }

    fn fused_step<T: CpuFloat + Real>(
        &self,
        param: &Tensor,
        grad: &Tensor,
        states: &[&Tensor],
        sc: &Scalars,
    ) -> Result<()> {
        let (b1, b2) = self.betas;
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
    fn lr(&self) -> f64 {
        self.lr
    }

    fn init_state(&self, param: &Tensor) -> Result<State> {
        zero_state(param, self.names())
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut State, ctx: &StepContext) -> Result<()> {
        let step = next_step(state);
        let sc = self.scalars(step, ctx.lr);
        let names = self.names();
        let states = names.iter().map(|n| buffer("adam", state, n)).collect::<Result<Vec<_>>>()?;
        let kind = if self.fused { fused_kind(param.as_tensor(), grad, &states) } else { None };
        match kind {
            Some(Fused::F32) => self.fused_step::<f32>(param.as_tensor(), grad, &states, &sc),
            Some(Fused::F64) => self.fused_step::<f64>(param.as_tensor(), grad, &states, &sc),
            None => self.composed(param, grad, state, &sc, ctx.lr),
        }
    }
}

/// The keys of `adam`; `adamw` has the same with weight_decay = 0.01.
pub(crate) const fn params(weight_decay: f64, lr: f64) -> [ParamSpec; 6] {
    [
        ParamSpec::float("lr", lr, crate::common::LR_DOC),
        ParamSpec::float_list("betas", &[0.9, 0.999], "decay rates of the first and second moment averages; in [0, 1)"),
        ParamSpec::float("eps", 1e-8, "added to the denominator; >= 0"),
        ParamSpec::float("weight_decay", weight_decay, "weight decay; >= 0"),
        ParamSpec::bool("amsgrad", false, "use the maximum of past second moments (AMSGrad)"),
        MAXIMIZE,
    ]
}

pub(crate) const ADAM_PARAMS: [ParamSpec; 6] = params(0.0, 1e-3);

ember_core::inventory::submit! {
    OptimizerEntry {
        name: "adam",
        summary: "Adam, weight decay added to the gradient (torch.optim.Adam)",
        params: &ADAM_PARAMS,
        module: module_path!(),
        build: |p, _| Ok(Box::new(Adam::from_params(p, false)?)),
    }
}
