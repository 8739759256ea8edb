//! `nadam`: Adam with Nesterov momentum (PyTorch `torch.optim.NAdam`).

use candle_core::{Tensor, Var};
use ember_core::optim::{addcdiv, decay_and_grad, div_scalar, zeros};
use ember_core::{check, Hyperparams, Optimizer, OptimizerState, Result, StepContext};

use crate::common::{adam_moments, Betas};

/// PyTorch's NAdam, step t: μₜ = β1·(1 - ½·0.96^(t·ψ)) with ψ = momentum_decay,
/// Πₜ = Πₜ₋₁·μₜ; m and v as in Adam; d = √(v / (1-β2ᵗ)) + eps;
/// p ← p - lr(1-μₜ)/(1-Πₜ)·g/d - lr·μₜ₊₁/(1-Πₜ·μₜ₊₁)·m/d. Weight decay is added to the
/// gradient, or decoupled (p ← p(1 - lr·wd)) with `decoupled_weight_decay`. β1 is the
/// scheduled momentum when a scheduler cycles it.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(optimizer = "nadam", summary = "NAdam: Adam with Nesterov momentum (torch.optim.NAdam)", lr = 2e-3)]
pub struct Nadam {
    /// decay rates of the moment estimates; in [0, 1)
    #[param(default = [0.9, 0.999])]
    pub betas: Betas,
    /// added to the denominator; >= 0
    #[param(default = 1e-8, check = check::non_negative)]
    pub eps: f64,
    /// weight decay; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub weight_decay: f64,
    /// momentum decay psi; >= 0
    #[param(default = 4e-3, check = check::non_negative)]
    pub momentum_decay: f64,
    /// decay the weights directly (NAdamW) instead of the gradient
    #[param(default = false)]
    pub decoupled_weight_decay: bool,
    /// maximize the objective instead of minimizing
    #[param(default = false)]
    pub maximize: bool,
}

/// NAdam's state (PyTorch's names): the step count, the product of the momentum
/// coefficients μ₁⋯μₜ (1 at the start) and the moment averages.
#[derive(Clone, Debug, OptimizerState)]
pub struct NadamState {
    pub step: u64,
    pub mu_product: f64,
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
}

impl Optimizer for Nadam {
    type State = NadamState;

    fn init_state(&self, param: &Tensor) -> Result<NadamState> {
        Ok(NadamState { step: 0, mu_product: 1.0, exp_avg: zeros(param)?, exp_avg_sq: zeros(param)? })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut NadamState, ctx: &StepContext) -> Result<()> {
        state.step += 1;
        let step = state.step as f64;
        let (b1, b2, lr) = (ctx.momentum_or(self.betas.0), self.betas.1, ctx.lr);
        let bias_correction2 = 1.0 - b2.powf(step);
        let (p, g) =
            decay_and_grad(param.as_tensor(), grad, self.maximize, self.weight_decay, self.decoupled_weight_decay, lr)?;
        let mu = b1 * (1.0 - 0.5 * 0.96f64.powf(step * self.momentum_decay));
        let mu_next = b1 * (1.0 - 0.5 * 0.96f64.powf((step + 1.0) * self.momentum_decay));
        let mu_product = state.mu_product * mu;
        state.mu_product = mu_product;
        let (m, v) = adam_moments(&state.exp_avg, &state.exp_avg_sq, &g, (b1, b2))?;
        let denom = div_scalar(&v, bias_correction2)?.sqrt()?.affine(1.0, self.eps)?;
        let mu_product_next = mu_product * mu_next;
        let p = addcdiv(&p, &g, &denom, -lr * (1.0 - mu) / (1.0 - mu_product))?;
        let p = addcdiv(&p, &m, &denom, (-lr * mu_next) / (1.0 - mu_product_next))?;
        param.set(&p)?;
        state.exp_avg = m;
        state.exp_avg_sq = v;
        Ok(())
    }
}
