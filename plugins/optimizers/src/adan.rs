//! `adan`: adaptive Nesterov momentum from gradient differences (`pytorch_optimizer.Adan`).

use candle_core::{Tensor, Var};
use ember_core::optim::{addcdiv, addcmul, div_scalar, lerp, zeros};
use ember_core::{check, Hyperparams, Optimizer, OptimizerState, ParamType, ParamValue, Params, Result, StepContext};

/// pytorch-optimizer's Adan (the path its default `foreach=None` takes on every device),
/// step t, with the gradient difference d = g - g_prev (0 at the first step):
/// g ← ±grad; m ← lerp(m, g, 1-β1); n ← lerp(n, d, 1-β2); z = g + β2·d;
/// v ← β3·v + (1-β3)·z²; D = √v / √(1-β3ᵗ) + eps; decoupled weight decay
/// p ← p·(1 - lr·wd); p ← p - lr/(1-β1ᵗ)·m/D - lr·β2/(1-β2ᵗ)·n/D; coupled weight decay
/// p ← p / (1 + lr·wd) after the update (the reference's proximal form). The first step
/// takes g_prev = -(the gradient as given) as the reference does, so with `maximize` its
/// difference is -2·grad rather than 0. β1 is the scheduled momentum when a scheduler
/// cycles it. The reference's `max_grad_norm` (gradients clipped by their global norm
/// over all parameters) is not offered: a step here sees one parameter. No fused kernel:
/// the update is made of elementwise candle ops on every device and dtype.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "adan",
    summary = "Adan: adaptive Nesterov momentum from gradient differences (pytorch_optimizer.Adan)",
    lr = 1e-3
)]
pub struct Adan {
    /// decay rates of the gradient, gradient-difference and squared-gradient averages;
    /// the first two in [0, 1), the third in [0, 1]
    #[param(default = [0.98, 0.92, 0.99])]
    pub betas: AdanBetas,
    /// weight decay; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub weight_decay: f64,
    /// decay the weights directly, p <- p (1 - lr wd), before the update, instead of
    /// p <- p / (1 + lr wd) after it
    #[param(default = false)]
    pub weight_decouple: bool,
    /// added to the denominator; >= 0
    #[param(default = 1e-8, check = check::non_negative)]
    pub eps: f64,
    /// maximize the objective instead of minimizing
    #[param(default = false)]
    pub maximize: bool,
}

/// Adan's `betas` `(β1, β2, β3)`: β1 and β2 in [0, 1), β3 in [0, 1] (the reference's
/// checks), read from a list of three numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdanBetas(pub f64, pub f64, pub f64);

impl ParamValue for AdanBetas {
    const TYPE: ParamType = ParamType::FloatList;

    fn read(params: &Params, key: &str) -> Result<Self> {
        let rule = "expected three numbers, the first two in [0, 1) and the third in [0, 1]";
        match *params.float_list(key)?.as_slice() {
            [b1, b2, b3] if (0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2) && (0.0..=1.0).contains(&b3) => {
                Ok(AdanBetas(b1, b2, b3))
            }
            _ => Err(params.invalid(key, rule)),
        }
    }
}

/// Adan's state (the reference's names): the step count, the averages of the gradient
/// (`exp_avg`), of its square (`exp_avg_sq`) and of the gradient difference
/// (`exp_avg_diff`), and the negated previous gradient (`previous_grad`).
#[derive(Clone, Debug, OptimizerState)]
pub struct AdanState {
    pub step: u64,
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
    pub exp_avg_diff: Tensor,
    pub previous_grad: Tensor,
}

impl Optimizer for Adan {
    type State = AdanState;

    fn init_state(&self, param: &Tensor) -> Result<AdanState> {
        Ok(AdanState {
            step: 0,
            exp_avg: zeros(param)?,
            exp_avg_sq: zeros(param)?,
            exp_avg_diff: zeros(param)?,
            previous_grad: zeros(param)?,
        })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut AdanState, ctx: &StepContext) -> Result<()> {
        let first = state.step == 0;
        state.step += 1;
        let step = state.step as f64;
        let (b1, b2, b3) = (ctx.momentum_or(self.betas.0), self.betas.1, self.betas.2);
        let lr = ctx.lr;
        // Per-step scalars, in f64 as the reference computes them in Python.
        let step_size = lr / (1.0 - b1.powf(step));
        let diff_step_size = lr * b2 / (1.0 - b2.powf(step));
        let bias_correction3_sqrt = (1.0 - b3.powf(step)).sqrt();
        let g = if self.maximize { grad.neg()? } else { grad.clone() };
        // The reference creates previous_grad at the first step as -grad (before
        // maximize negates the gradient).
        let previous = if first { grad.neg()? } else { state.previous_grad.clone() };
        let grad_diff = previous.add(&g)?;
        let m = lerp(&state.exp_avg, &g, 1.0 - b1)?;
        let n = lerp(&state.exp_avg_diff, &grad_diff, 1.0 - b2)?;
        let z = grad_diff.affine(b2, 0.0)?.add(&g)?;
        let v = addcmul(&state.exp_avg_sq.affine(b3, 0.0)?, &z, &z, 1.0 - b3)?;
        let denom = div_scalar(&v.sqrt()?, bias_correction3_sqrt)?.affine(1.0, self.eps)?;
        let mut p = param.as_tensor().clone();
        if self.weight_decay != 0.0 && self.weight_decouple {
            p = p.affine(1.0 - lr * self.weight_decay, 0.0)?;
        }
        p = addcdiv(&p, &m, &denom, -step_size)?;
        p = addcdiv(&p, &n, &denom, -diff_step_size)?;
        if self.weight_decay != 0.0 && !self.weight_decouple {
            p = div_scalar(&p, 1.0 + lr * self.weight_decay)?;
        }
        param.set(&p)?;
        state.exp_avg = m;
        state.exp_avg_sq = v;
        state.exp_avg_diff = n;
        state.previous_grad = g.neg()?;
        Ok(())
    }
}
