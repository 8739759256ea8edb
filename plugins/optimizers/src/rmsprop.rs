//! `rmsprop`: gradients divided by a running root-mean-square (PyTorch `torch.optim.RMSprop`).

use candle_core::{Tensor, Var};
use ember_core::ops::fused::{par_chunks, with_cpu_data, ChunkKernel, CpuFloat};
use ember_core::ops::pointwise::Real;
use ember_core::{Optimizer, OptimizerEntry, ParamSpec, Params, Result, State, StepContext};

use crate::common::{
    add_scaled, addcdiv, addcmul, buffer, effective_grad, fused_kind, lerp, lerp1, next_step, non_negative, zero_state,
    Fused, MAXIMIZE, WEIGHT_DECAY,
};

/// PyTorch's RMSprop: s ← α·s + (1-α)·g²; centered: ḡ ← lerp(ḡ, g, 1-α) and
/// a = √(s - ḡ²) + eps, else a = √s + eps; with momentum b ← μ·b + g/a and p ← p - lr·b,
/// else p ← p - lr·g/a. State: `step`, `square_avg`, `momentum_buffer` (momentum > 0),
/// `grad_avg` (centered).
#[derive(Clone, Debug, PartialEq)]
pub struct Rmsprop {
    pub lr: f64,
    pub alpha: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub centered: bool,
    pub maximize: bool,
    /// Use the fused CPU kernel when it applies.
    pub fused: bool,
}

impl Rmsprop {
    pub fn from_params(p: &Params) -> Result<Self> {
        Ok(Rmsprop {
            lr: non_negative(p, "lr")?,
            alpha: non_negative(p, "alpha")?,
            eps: non_negative(p, "eps")?,
            weight_decay: non_negative(p, "weight_decay")?,
            momentum: non_negative(p, "momentum")?,
            centered: p.bool("centered")?,
            maximize: p.bool("maximize")?,
            fused: true,
        })
    }

    fn names(&self) -> Vec<&'static str> {
        let mut names = vec!["square_avg"];
        if self.momentum > 0.0 {
            names.push("momentum_buffer");
        }
        if self.centered {
            names.push("grad_avg");
        }
        names
    }

    fn composed(&self, param: &Var, grad: &Tensor, state: &mut State, lr: f64) -> Result<()> {
        let p = param.as_tensor();
        let g = effective_grad(p, grad, self.maximize, self.weight_decay)?;
        let sq = addcmul(&buffer("rmsprop", state, "square_avg")?.affine(self.alpha, 0.0)?, &g, &g, 1.0 - self.alpha)?;
        let avg = if self.centered {
            let ga = lerp(buffer("rmsprop", state, "grad_avg")?, &g, 1.0 - self.alpha)?;
            let avg = addcmul(&sq, &ga, &ga, -1.0)?.sqrt()?;
            state.tensors.insert("grad_avg".into(), ga);
            avg
        } else {
            sq.sqrt()?
        };
        let avg = avg.affine(1.0, self.eps)?;
        let new_p = if self.momentum > 0.0 {
            let buf =
                addcdiv(&buffer("rmsprop", state, "momentum_buffer")?.affine(self.momentum, 0.0)?, &g, &avg, 1.0)?;
            let new_p = add_scaled(p, &buf, -lr)?;
            state.tensors.insert("momentum_buffer".into(), buf);
            new_p
        } else {
            addcdiv(p, &g, &avg, -lr)?
        };
        param.set(&new_p)?;
        state.tensors.insert("square_avg".into(), sq);
        Ok(())
    }

    fn fused_step<T: CpuFloat + Real>(&self, param: &Tensor, grad: &Tensor, states: &[&Tensor], lr: f64) -> Result<()> {
        let w = 1.0 - self.alpha;
        let k = RmspropKernel {
            sign: if self.maximize { -T::one() } else { T::one() },
            wd: (self.weight_decay != 0.0).then(|| T::of(self.weight_decay)),
            alpha: T::of(self.alpha),
            c: T::of(1.0 - self.alpha),
            w: T::of(w),
            w_lt_half: w < 0.5,
            eps: T::of(self.eps),
            momentum: (self.momentum > 0.0).then(|| T::of(self.momentum)),
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
    fn lr(&self) -> f64 {
        self.lr
    }

    fn init_state(&self, param: &Tensor) -> Result<State> {
        zero_state(param, &self.names())
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut State, ctx: &StepContext) -> Result<()> {
        next_step(state);
        let names = self.names();
        let states = names.iter().map(|n| buffer("rmsprop", state, n)).collect::<Result<Vec<_>>>()?;
        let kind = if self.fused { fused_kind(param.as_tensor(), grad, &states) } else { None };
        match kind {
            Some(Fused::F32) => self.fused_step::<f32>(param.as_tensor(), grad, &states, ctx.lr),
            Some(Fused::F64) => self.fused_step::<f64>(param.as_tensor(), grad, &states, ctx.lr),
            None => self.composed(param, grad, state, ctx.lr),
        }
    }
}

ember_core::inventory::submit! {
    OptimizerEntry {
        name: "rmsprop",
        summary: "RMSprop: gradient divided by a running RMS, optional momentum and centering (torch.optim.RMSprop)",
        params: &[
            ParamSpec::float("lr", 0.01, crate::common::LR_DOC),
            ParamSpec::float("alpha", 0.99, "smoothing constant of the squared-gradient average; >= 0"),
            ParamSpec::float("eps", 1e-8, "added to the denominator; >= 0"),
            WEIGHT_DECAY,
            ParamSpec::float("momentum", 0.0, "momentum factor; >= 0"),
            ParamSpec::bool("centered", false, "divide by the centered RMS (variance estimate)"),
            MAXIMIZE,
        ],
        module: module_path!(),
        build: |p, _| Ok(Box::new(Rmsprop::from_params(p)?)),
    }
}
