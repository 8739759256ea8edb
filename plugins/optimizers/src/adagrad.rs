//! `adagrad`: per-coordinate learning rates from accumulated squared gradients (PyTorch
//! `torch.optim.Adagrad`).

use candle_core::{Tensor, Var};
use ember_core::ops::fused::{par_chunks, with_cpu_data, ChunkKernel, CpuFloat};
use ember_core::ops::pointwise::Real;
use ember_core::optim::{addcdiv, addcmul, effective_grad, fused_kind, Fused};
use ember_core::{check, Hyperparams, Optimizer, OptimizerState, Result, StepContext};

/// PyTorch's Adagrad, step t: clr = lr / (1 + (t-1)·lr_decay); s ← s + g²;
/// p ← p - clr · g / (√s + eps).
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "adagrad",
    summary = "Adagrad: learning rate divided by the root of accumulated squared gradients (torch.optim.Adagrad)",
    lr = 0.01
)]
pub struct Adagrad {
    /// learning-rate decay per step; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub lr_decay: f64,
    /// L2 penalty added to the gradient; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub weight_decay: f64,
    /// starting value of the squared-gradient sum; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub initial_accumulator_value: f64,
    /// added to the denominator; >= 0
    #[param(default = 1e-10, check = check::non_negative)]
    pub eps: f64,
    /// maximize the objective instead of minimizing
    #[param(default = false)]
    pub maximize: bool,
}

/// Adagrad's state (PyTorch's names): the step count and the sum of squared gradients
/// (starting at `initial_accumulator_value`).
#[derive(Clone, Debug, OptimizerState)]
pub struct AdagradState {
    pub step: u64,
    pub sum: Tensor,
}

impl Adagrad {
    fn composed(&self, param: &Var, grad: &Tensor, state: &mut AdagradState, clr: f64) -> Result<()> {
        let p = param.as_tensor();
        let g = effective_grad(p, grad, self.maximize, self.weight_decay)?;
        let sum = addcmul(&state.sum, &g, &g, 1.0)?;
        let std = sum.sqrt()?.affine(1.0, self.eps)?;
        param.set(&addcdiv(p, &g, &std, -clr)?)?;
        state.sum = sum;
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
    type State = AdagradState;

    fn init_state(&self, param: &Tensor) -> Result<AdagradState> {
        let sum = param.ones_like()?.affine(self.initial_accumulator_value, 0.0)?.contiguous()?;
        Ok(AdagradState { step: 0, sum })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut AdagradState, ctx: &StepContext) -> Result<()> {
        state.step += 1;
        let clr = ctx.lr / (1.0 + (state.step as f64 - 1.0) * self.lr_decay);
        match fused_kind(param.as_tensor(), grad, &[&state.sum]) {
            Some(Fused::F32) => self.fused_step::<f32>(param.as_tensor(), grad, &state.sum, clr),
            Some(Fused::F64) => self.fused_step::<f64>(param.as_tensor(), grad, &state.sum, clr),
            None => self.composed(param, grad, state, clr),
        }
    }
}
