//! `adamax`: Adam with the infinity norm (PyTorch `torch.optim.Adamax`).

use candle_core::{Tensor, Var};
use ember_core::optim::{addcdiv, effective_grad, lerp, zeros};
use ember_core::{check, Hyperparams, Optimizer, OptimizerState, Result, StepContext};

use crate::common::Betas;

/// PyTorch's Adamax, step t: m ← lerp(m, g, 1-β1); u ← max(β2·u, |g| + eps);
/// p ← p - (lr / (1-β1ᵗ))·m/u. β1 is the scheduled momentum when a scheduler cycles it.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "adamax",
    summary = "Adamax: Adam with an infinity-norm second moment (torch.optim.Adamax)",
    lr = 2e-3
)]
pub struct Adamax {
    /// decay rates of the moment estimates; in [0, 1)
    #[param(default = [0.9, 0.999])]
    pub betas: Betas,
    /// added to |g|; >= 0
    #[param(default = 1e-8, check = check::non_negative)]
    pub eps: f64,
    /// L2 penalty added to the gradient; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub weight_decay: f64,
    /// maximize the objective instead of minimizing
    #[param(default = false)]
    pub maximize: bool,
}

/// Adamax's state (PyTorch's names): the step count, the first moment average and the
/// exponentially weighted infinity norm.
#[derive(Clone, Debug, OptimizerState)]
pub struct AdamaxState {
    pub step: u64,
    pub exp_avg: Tensor,
    pub exp_inf: Tensor,
}

impl Optimizer for Adamax {
    type State = AdamaxState;

    fn init_state(&self, param: &Tensor) -> Result<AdamaxState> {
        Ok(AdamaxState { step: 0, exp_avg: zeros(param)?, exp_inf: zeros(param)? })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut AdamaxState, ctx: &StepContext) -> Result<()> {
        state.step += 1;
        let step = state.step as f64;
        let (b1, b2) = (ctx.momentum_or(self.betas.0), self.betas.1);
        let p = param.as_tensor();
        let g = effective_grad(p, grad, self.maximize, self.weight_decay)?;
        let m = lerp(&state.exp_avg, &g, 1.0 - b1)?;
        let u = state.exp_inf.affine(b2, 0.0)?.maximum(&g.abs()?.affine(1.0, self.eps)?)?;
        let clr = ctx.lr / (1.0 - b1.powf(step));
        param.set(&addcdiv(p, &m, &u, -clr)?)?;
        state.exp_avg = m;
        state.exp_inf = u;
        Ok(())
    }
}
