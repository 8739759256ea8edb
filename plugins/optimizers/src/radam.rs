//! `radam`: Adam with a rectified adaptive learning rate (PyTorch `torch.optim.RAdam`).

use candle_core::{Tensor, Var};
use ember_core::optim::{add_scaled, decay_and_grad, div_scalar, zeros};
use ember_core::{check, Hyperparams, Optimizer, OptimizerState, Result, StepContext};

use crate::common::{adam_moments, Betas};

/// PyTorch's RAdam, step t: m, v as in Adam; m̂ = m/(1-β1ᵗ); ρ∞ = 2/(1-β2) - 1,
/// ρₜ = ρ∞ - 2tβ2ᵗ/(1-β2ᵗ). If ρₜ > 5: p ← p - m̂·lr·√(1-β2ᵗ)/(√v + eps)·r with
/// r = √((ρₜ-4)(ρₜ-2)ρ∞ / ((ρ∞-4)(ρ∞-2)ρₜ)); else p ← p - m̂·lr. β1 is the scheduled
/// momentum when a scheduler cycles it.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "radam",
    summary = "RAdam: Adam with a rectified warm-up of the adaptive learning rate (torch.optim.RAdam)",
    lr = 1e-3
)]
pub struct Radam {
    /// decay rates of the moment estimates; in [0, 1)
    #[param(default = [0.9, 0.999])]
    pub betas: Betas,
    /// added to the denominator; >= 0
    #[param(default = 1e-8, check = check::non_negative)]
    pub eps: f64,
    /// weight decay; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub weight_decay: f64,
    /// decay the weights directly instead of the gradient
    #[param(default = false)]
    pub decoupled_weight_decay: bool,
    /// maximize the objective instead of minimizing
    #[param(default = false)]
    pub maximize: bool,
}

/// RAdam's state (PyTorch's names): the step count and the moment averages.
#[derive(Clone, Debug, OptimizerState)]
pub struct RadamState {
    pub step: u64,
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
}

impl Optimizer for Radam {
    type State = RadamState;

    fn init_state(&self, param: &Tensor) -> Result<RadamState> {
        Ok(RadamState { step: 0, exp_avg: zeros(param)?, exp_avg_sq: zeros(param)? })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut RadamState, ctx: &StepContext) -> Result<()> {
        state.step += 1;
        let step = state.step as f64;
        let (b1, b2, lr) = (ctx.momentum_or(self.betas.0), self.betas.1, ctx.lr);
        let (p, g) =
            decay_and_grad(param.as_tensor(), grad, self.maximize, self.weight_decay, self.decoupled_weight_decay, lr)?;
        let (m, v) = adam_moments(&state.exp_avg, &state.exp_avg_sq, &g, (b1, b2))?;
        let bias_correction1 = 1.0 - b1.powf(step);
        let bias_correction2 = 1.0 - b2.powf(step);
        let corrected = div_scalar(&m, bias_correction1)?;
        let rho_inf = 2.0 / (1.0 - b2) - 1.0;
        let rho_t = rho_inf - 2.0 * step * b2.powf(step) / bias_correction2;
        let update = if rho_t > 5.0 {
            let rect = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)).sqrt();
            // PyTorch computes `scalar / tensor` as reciprocal(tensor) * scalar.
            let adaptive = v.sqrt()?.affine(1.0, self.eps)?.recip()?.affine(bias_correction2.sqrt(), 0.0)?;
            corrected.affine(lr, 0.0)?.mul(&adaptive)?.affine(rect, 0.0)?
        } else {
            corrected.affine(lr, 0.0)?
        };
        param.set(&add_scaled(&p, &update, -1.0)?)?;
        state.exp_avg = m;
        state.exp_avg_sq = v;
        Ok(())
    }
}
