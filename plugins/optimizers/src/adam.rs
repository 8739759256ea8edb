//! `adam`: adaptive moment estimation (PyTorch `torch.optim.Adam`); `adamw` is the same
//! with decoupled weight decay.

use candle_core::{Tensor, Var};
use ember_core::ops::fused::{par_chunks, with_cpu_data, CpuFloat};
use ember_core::ops::pointwise::Real;
use ember_core::{Optimizer, OptimizerEntry, ParamSpec, Params, Result, State, StepContext};

use crate::common::{
    addcdiv, addcmul, betas, buffer, effective_grad, fused_kind, lerp, lerp1, nan_max, next_step,
    non_negative, zero_state, Fused, MAXIMIZE,
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
            decay: if self.decoupled_weight_decay {
                1.0 - lr * self.weight_decay
            } else {
                1.0
            },
        }
    }

    fn composed(&self, param: &Var, grad: &Tensor, state: &mut State, sc: &Scalars) -> Result<()> {
        let (b1, b2) = self.betas;
        let mut p = param.as_tensor().clone();
        if self.decoupled_weight_decay && self.weight_decay != 0.0 {
            p = p.affine(sc.decay, 0.0)?;
        }
        let coupled = if self.decoupled_weight_decay {
            0.0
        } else {
            self.weight_decay
        };
        let g = effective_grad(&p, grad, self.maximize, coupled)?;
        let m = lerp(buffer("adam", state, "exp_avg")?, &g, 1.0 - b1)?;
        let v = addcmul(
            &buffer("adam", state, "exp_avg_sq")?.affine(b2, 0.0)?,
            &g,
            &g,
            1.0 - b2,
        )?;
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
        let w = 1.0 - b1;
        let (w_lt_half, w, b2t, c2) = (w < 0.5, T::of(w), T::of(b2), T::of(1.0 - b2));
        let (bc2s, eps, neg_step) = (
            T::of(sc.bias_correction2_sqrt),
            T::of(self.eps),
            T::of(-sc.step_size),
        );
        let decay =
            (self.decoupled_weight_decay && self.weight_decay != 0.0).then(|| T::of(sc.decay));
        let wd = (!self.decoupled_weight_decay && self.weight_decay != 0.0)
            .then(|| T::of(self.weight_decay));
        let maximize = self.maximize;
        let kernel = move |p: &mut [T], g: &[T], s: &mut [&mut [T]]| {
            let (m, rest) = s.split_first_mut().expect("exp_avg");
            let (v, rest) = rest.split_first_mut().expect("exp_avg_sq");
            let mut vmax = rest.first_mut();
            for i in 0..p.len() {
                let mut pi = p[i];
                if let Some(d) = decay {
                    pi = pi * d;
                }
                let mut gi = if maximize { -g[i] } else { g[i] };
                if let Some(wd) = wd {
                    gi = gi + wd * pi;
                }
                let mi = lerp1(m[i], gi, w, w_lt_half);
                let vi = v[i] * b2t + c2 * gi * gi;
                m[i] = mi;
                v[i] = vi;
                let second = match vmax.as_deref_mut() {
                    Some(vm) => {
                        vm[i] = nan_max(vm[i], vi);
                        vm[i]
                    }
                    None => vi,
                };
                let denom = second.sqrt() / bc2s + eps;
                p[i] = pi + neg_step * mi / denom;
            }
        };
        with_cpu_data::<T>(param, grad, states, &mut |p, g, s| {
            par_chunks(p, g, s, &kernel)
        })
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
        let states = names
            .iter()
            .map(|n| buffer("adam", state, n))
            .collect::<Result<Vec<_>>>()?;
        let kind = if self.fused {
            fused_kind(param.as_tensor(), grad, &states)
        } else {
            None
        };
        match kind {
            Some(Fused::F32) => self.fused_step::<f32>(param.as_tensor(), grad, &states, &sc),
            Some(Fused::F64) => self.fused_step::<f64>(param.as_tensor(), grad, &states, &sc),
            None => self.composed(param, grad, state, &sc),
        }
    }
}

/// The keys of `adam`; `adamw` has the same with weight_decay = 0.01.
pub(crate) const fn params(weight_decay: f64, lr: f64) -> [ParamSpec; 6] {
    [
        ParamSpec::float("lr", lr, crate::common::LR_DOC),
        ParamSpec::float_list(
            "betas",
            &[0.9, 0.999],
            "decay rates of the first and second moment averages; in [0, 1)",
        ),
        ParamSpec::float("eps", 1e-8, "added to the denominator; >= 0"),
        ParamSpec::float("weight_decay", weight_decay, "weight decay; >= 0"),
        ParamSpec::bool(
            "amsgrad",
            false,
            "use the maximum of past second moments (AMSGrad)",
        ),
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
