//! `adagrad`: per-coordinate learning rates from accumulated squared gradients (PyTorch
//! `torch.optim.Adagrad`).

use candle_core::{Tensor, Var};
use ember_core::ops::fused::{par_chunks, with_cpu_data, ChunkKernel, CpuFloat};
use ember_core::ops::pointwise::Real;
use ember_core::{Optimizer, OptimizerEntry, ParamSpec, Params, Result, State, StepContext};

use crate::common::{
    addcdiv, addcmul, buffer, effective_grad, fused_kind, next_step, non_negative, Fused, MAXIMIZE, WEIGHT_DECAY,
};

/// PyTorch's Adagrad, step t: clr = lr / (1 + (t-1)·lr_decay); s ← s + g²;
/// p ← p - clr · g / (√s + eps). State: `step`, `sum` (starts at
/// initial_accumulator_value).
#[derive(Clone, Debug, PartialEq)]
pub struct Adagrad {
    pub lr: f64,
    pub lr_decay: f64,
    pub weight_decay: f64,
    pub initial_accumulator_value: f64,
    pub eps: f64,
    pub maximize: bool,
    /// Use the fused CPU kernel when it applies.
    pub fused: bool,
}

impl Adagrad {
    pub fn from_params(p: &Params) -> Result<Self> {
        Ok(Adagrad {
            lr: non_negative(p, "lr")?,
            lr_decay: non_negative(p, "lr_decay")?,
            weight_decay: non_negative(p, "weight_decay")?,
            initial_accumulator_value: non_negative(p, "initial_accumulator_value")?,
            eps: non_negative(p, "eps")?,
            maximize: p.bool("maximize")?,
            fused: true,
        })
    }

    fn composed(&self, param: &Var, grad: &Tensor, state: &mut State, clr: f64) -> Result<()> {
        let p = param.as_tensor();
        let g = effective_grad(p, grad, self.maximize, self.weight_decay)?;
        let sum = addcmul(buffer("adagrad", state, "sum")?, &g, &g, 1.0)?;
        let std = sum.sqrt()?.affine(1.0, self.eps)?;
        param.set(&addcdiv(p, &g, &std, -clr)?)?;
        state.tensors.insert("sum".into(), sum);
        Ok(())
    }

    fn fused_step<T: CpuFloat + Real>(&self, param: &Tensor, grad: &Tensor, sum: &Tensor, clr: f64) -> Result<()> {
        let k = AdagradKernel {
            sign: if self.maximize { -T::one() } else { T::one() },
            wd: (self.weight_decay != 0.0).then(|| T::of(self.weight_decay)),
            eps: T::of(self.eps),
            neg_clr: T::of(-clr),
        };
        with_cpu_data::<T>(param, grad, &[sum], &mut |p, g, s| par_chunks(p, g, s, &k))
    }
}

/// Adagrad over one chunk.
struct AdagradKernel<T> {
    sign: T,
    wd: Option<T>,
    eps: T,
    neg_clr: T,
}

impl<T: Real> ChunkKernel<T> for AdagradKernel<T> {
    #[inline(always)]
    fn run(&self, p: &mut [T], g: &[T], s: &mut [&mut [T]]) {
        let [sum] = s else { unreachable!("one state buffer") };
        match self.wd {
            None => self.each::<false>(p, g, sum),
            Some(_) => self.each::<true>(p, g, sum),
        }
    }
}

impl<T: Real> AdagradKernel<T> {
    #[inline(always)]
    fn each<const WD: bool>(&self, p: &mut [T], g: &[T], sum: &mut [T]) {
        let n = p.len();
        let (g, sum) = (&g[..n], &mut sum[..n]);
        let wd = self.wd.unwrap_or(T::zero());
        for ((p, &g), s) in p.iter_mut().zip(g).zip(sum.iter_mut()) {
            let mut g = g * self.sign;
            if WD {
                g = g + wd * *p;
            }
            *s = *s + T::one() * g * g;
            *p = *p + self.neg_clr * g / (s.sqrt() + self.eps);
        }
    }
}

impl Optimizer for Adagrad {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn init_state(&self, param: &Tensor) -> Result<State> {
        let mut s = State::new();
        s.tensors.insert("sum".into(), param.ones_like()?.affine(self.initial_accumulator_value, 0.0)?.contiguous()?);
        s.scalars.insert("step".into(), 0.0);
        Ok(s)
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut State, ctx: &StepContext) -> Result<()> {
        let step = next_step(state);
        let clr = ctx.lr / (1.0 + (step - 1.0) * self.lr_decay);
        let sum = buffer("adagrad", state, "sum")?;
        let kind = if self.fused { fused_kind(param.as_tensor(), grad, &[sum]) } else { None };
        match kind {
            Some(Fused::F32) => self.fused_step::<f32>(param.as_tensor(), grad, sum, clr),
            Some(Fused::F64) => self.fused_step::<f64>(param.as_tensor(), grad, sum, clr),
            None => self.composed(param, grad, state, clr),
        }
    }
}

ember_core::inventory::submit! {
    OptimizerEntry {
        name: "adagrad",
        summary: "Adagrad: learning rate divided by the root of accumulated squared gradients (torch.optim.Adagrad)",
        params: &[
            ParamSpec::float("lr", 0.01, crate::common::LR_DOC),
            ParamSpec::float("lr_decay", 0.0, "learning-rate decay per step; >= 0"),
            WEIGHT_DECAY,
            ParamSpec::float("initial_accumulator_value", 0.0, "starting value of the squared-gradient sum; >= 0"),
            ParamSpec::float("eps", 1e-10, "added to the denominator; >= 0"),
            MAXIMIZE,
        ],
        module: module_path!(),
        build: |p, _| Ok(Box::new(Adagrad::from_params(p)?)),
    }
}
