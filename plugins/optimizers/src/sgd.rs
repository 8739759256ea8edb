//! `sgd`: stochastic gradient descent with momentum, dampening, Nesterov momentum and
//! weight decay (PyTorch `torch.optim.SGD`).

use candle_core::{Tensor, Var};
use ember_core::ops::fused::{par_chunks, with_cpu_data, ChunkKernel, CpuFloat};
use ember_core::ops::pointwise::Real;
use ember_core::{Optimizer, OptimizerEntry, ParamSpec, Params, Result, State, StepContext};

use crate::common::{add_scaled, effective_grad, fused_kind, non_negative, Fused, MAXIMIZE, WEIGHT_DECAY};

/// PyTorch's SGD: g ← ±grad + weight_decay·p; with momentum, b ← g on the first step, then
/// b ← momentum·b + (1 - dampening)·g, and g ← g + momentum·b (Nesterov) or g ← b;
/// finally p ← p - lr·g. State: `momentum_buffer` (after the first step, with momentum).
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub maximize: bool,
    /// Use the fused CPU kernel when it applies (the composed path otherwise).
    pub fused: bool,
}

impl Sgd {
    pub fn from_params(p: &Params) -> Result<Self> {
        let momentum = non_negative(p, "momentum")?;
        let dampening = p.float("dampening")?;
        let nesterov = p.bool("nesterov")?;
        if nesterov && (momentum <= 0.0 || dampening != 0.0) {
            return Err(p.invalid("nesterov", "Nesterov momentum requires momentum > 0 and dampening = 0"));
        }
        Ok(Sgd {
            lr: non_negative(p, "lr")?,
            momentum,
            dampening,
            weight_decay: non_negative(p, "weight_decay")?,
            nesterov,
            maximize: p.bool("maximize")?,
            fused: true,
        })
    }

    fn composed(&self, param: &Var, grad: &Tensor, state: &mut State, lr: f64) -> Result<()> {
        let p = param.as_tensor();
        let mut g = effective_grad(p, grad, self.maximize, self.weight_decay)?;
        if self.momentum != 0.0 {
            let buf = match state.tensors.get("momentum_buffer") {
                None => g.copy()?,
                Some(b) => add_scaled(&b.affine(self.momentum, 0.0)?, &g, 1.0 - self.dampening)?,
            };
            g = if self.nesterov { add_scaled(&g, &buf, self.momentum)? } else { buf.clone() };
            state.tensors.insert("momentum_buffer".into(), buf);
        }
        param.set(&add_scaled(p, &g, -lr)?)?;
        Ok(())
    }

    fn fused_step<T: CpuFloat + Real>(&self, param: &Tensor, grad: &Tensor, buf: &Tensor, lr: f64) -> Result<()> {
        let k = SgdKernel {
            sign: if self.maximize { -T::one() } else { T::one() },
            wd: (self.weight_decay != 0.0).then(|| T::of(self.weight_decay)),
            momentum: T::of(self.momentum),
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
    fn lr(&self) -> f64 {
        self.lr
    }

    fn init_state(&self, _param: &Tensor) -> Result<State> {
        Ok(State::new())
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut State, ctx: &StepContext) -> Result<()> {
        // Plain SGD and the first momentum step (which copies the gradient) are composed.
        let buf = match state.tensors.get("momentum_buffer") {
            Some(b) if self.fused && self.momentum != 0.0 => b,
            _ => return self.composed(param, grad, state, ctx.lr),
        };
        match fused_kind(param.as_tensor(), grad, &[buf]) {
            Some(Fused::F32) => self.fused_step::<f32>(param.as_tensor(), grad, buf, ctx.lr),
            Some(Fused::F64) => self.fused_step::<f64>(param.as_tensor(), grad, buf, ctx.lr),
            None => self.composed(param, grad, state, ctx.lr),
        }
    }
}

pub(crate) const PARAMS: &[ParamSpec] = &[
    ParamSpec::float("lr", 1e-3, crate::common::LR_DOC),
    ParamSpec::float("momentum", 0.0, "momentum factor; >= 0"),
    ParamSpec::float("dampening", 0.0, "dampening for momentum"),
    WEIGHT_DECAY,
    ParamSpec::bool("nesterov", false, "Nesterov momentum (needs momentum > 0, dampening = 0)"),
    MAXIMIZE,
];

ember_core::inventory::submit! {
    OptimizerEntry {
        name: "sgd",
        summary: "stochastic gradient descent with momentum / Nesterov (torch.optim.SGD)",
        params: PARAMS,
        module: module_path!(),
        build: |p, _| Ok(Box::new(Sgd::from_params(p)?)),
    }
}
