//! `adadelta`: step sizes from running averages of squared gradients and squared updates
//! (PyTorch `torch.optim.Adadelta`).

use candle_core::{Tensor, Var};
use ember_core::optim::{add_scaled, addcmul, effective_grad, zeros};
use ember_core::{check, Hyperparams, Optimizer, OptimizerState, Result, StepContext};

/// PyTorch's Adadelta: s ← ρ·s + (1-ρ)·g²; δ = √(u + eps) / √(s + eps) · g;
/// u ← ρ·u + (1-ρ)·δ²; p ← p - lr·δ.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "adadelta",
    summary = "Adadelta: unit-corrected adaptive steps from running averages (torch.optim.Adadelta)",
    lr = 1.0,
    lr_doc = "scale applied to the update; >= 0"
)]
pub struct Adadelta {
    /// decay of the running averages; in [0, 1]
    #[param(default = 0.9, check = check::probability)]
    pub rho: f64,
    /// added inside the square roots; >= 0
    #[param(default = 1e-6, check = check::non_negative)]
    pub eps: f64,
    /// L2 penalty added to the gradient; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub weight_decay: f64,
    /// maximize the objective instead of minimizing
    #[param(default = false)]
    pub maximize: bool,
}

/// Adadelta's state (PyTorch's names): the step count, the squared-gradient average and
/// the squared-update average.
#[derive(Clone, Debug, OptimizerState)]
pub struct AdadeltaState {
    pub step: u64,
    pub square_avg: Tensor,
    pub acc_delta: Tensor,
}

impl Optimizer for Adadelta {
    type State = AdadeltaState;

    fn init_state(&self, param: &Tensor) -> Result<AdadeltaState> {
        Ok(AdadeltaState { step: 0, square_avg: zeros(param)?, acc_delta: zeros(param)? })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut AdadeltaState, ctx: &StepContext) -> Result<()> {
        state.step += 1;
        let p = param.as_tensor();
        let g = effective_grad(p, grad, self.maximize, self.weight_decay)?;
        let sq = addcmul(&state.square_avg.affine(self.rho, 0.0)?, &g, &g, 1.0 - self.rho)?;
        let std = sq.affine(1.0, self.eps)?.sqrt()?;
        let acc = &state.acc_delta;
        let delta = acc.affine(1.0, self.eps)?.sqrt()?.div(&std)?.mul(&g)?;
        let acc = addcmul(&acc.affine(self.rho, 0.0)?, &delta, &delta, 1.0 - self.rho)?;
        param.set(&add_scaled(p, &delta, -ctx.lr)?)?;
        state.square_avg = sq;
        state.acc_delta = acc;
        Ok(())
    }
}
