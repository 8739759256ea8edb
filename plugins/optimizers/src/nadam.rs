//! `nadam`: Adam with Nesterov momentum (PyTorch `torch.optim.NAdam`).

use candle_core::{Tensor, Var};
use ember_core::{Optimizer, OptimizerEntry, ParamSpec, Params, Result, State, StepContext};

use crate::common::{adam_moments, addcdiv, betas, decay_and_grad, next_step, non_negative, zero_state, MAXIMIZE};

/// PyTorch's NAdam, step t: μₜ = β1·(1 - ½·0.96^(t·ψ)) with ψ = momentum_decay,
/// Πₜ = Πₜ₋₁·μₜ; m and v as in Adam; d = √(v / (1-β2ᵗ)) + eps;
/// p ← p - lr(1-μₜ)/(1-Πₜ)·g/d - lr·μₜ₊₁/(1-Πₜ·μₜ₊₁)·m/d. Weight decay is added to the
/// gradient, or decoupled (p ← p(1 - lr·wd)) with `decoupled_weight_decay`.
/// State: `step`, `mu_product`, `exp_avg`, `exp_avg_sq`.
#[derive(Clone, Debug, PartialEq)]
pub struct Nadam {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum_decay: f64,
    pub decoupled_weight_decay: bool,
    pub maximize: bool,
}

impl Optimizer for Nadam {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn init_state(&self, param: &Tensor) -> Result<State> {
        let mut s = zero_state(param, &["exp_avg", "exp_avg_sq"])?;
        s.scalars.insert("mu_product".into(), 1.0);
        Ok(s)
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut State, ctx: &StepContext) -> Result<()> {
        let step = next_step(state);
        let (b1, b2, lr) = (self.betas.0, self.betas.1, ctx.lr);
        let bias_correction2 = 1.0 - b2.powf(step);
        let (p, g) =
            decay_and_grad(param.as_tensor(), grad, self.maximize, self.weight_decay, self.decoupled_weight_decay, lr)?;
        let mu = b1 * (1.0 - 0.5 * 0.96f64.powf(step * self.momentum_decay));
        let mu_next = b1 * (1.0 - 0.5 * 0.96f64.powf((step + 1.0) * self.momentum_decay));
        let mu_product = state.scalar("mu_product").unwrap_or(1.0) * mu;
        state.scalars.insert("mu_product".into(), mu_product);
        let (m, v) = adam_moments("nadam", state, &g, (b1, b2))?;
        let bc2 = Tensor::new(bias_correction2, p.device())?.to_dtype(p.dtype())?;
        let denom = v.broadcast_div(&bc2)?.sqrt()?.affine(1.0, self.eps)?;
        let mu_product_next = mu_product * mu_next;
        let p = addcdiv(&p, &g, &denom, -lr * (1.0 - mu) / (1.0 - mu_product))?;
        let p = addcdiv(&p, &m, &denom, (-lr * mu_next) / (1.0 - mu_product_next))?;
        param.set(&p)?;
        state.tensors.insert("exp_avg".into(), m);
        state.tensors.insert("exp_avg_sq".into(), v);
        Ok(())
    }
}

fn build(p: &Params) -> Result<Nadam> {
    Ok(Nadam {
        lr: non_negative(p, "lr")?,
        betas: betas(p)?,
        eps: non_negative(p, "eps")?,
        weight_decay: non_negative(p, "weight_decay")?,
        momentum_decay: non_negative(p, "momentum_decay")?,
        decoupled_weight_decay: p.bool("decoupled_weight_decay")?,
        maximize: p.bool("maximize")?,
    })
}

ember_core::inventory::submit! {
    OptimizerEntry {
        name: "nadam",
        summary: "NAdam: Adam with Nesterov momentum (torch.optim.NAdam)",
        params: &[
            ParamSpec::float("lr", 2e-3, crate::common::LR_DOC),
            ParamSpec::float_list("betas", &[0.9, 0.999], "decay rates of the moment estimates; in [0, 1)"),
            ParamSpec::float("eps", 1e-8, "added to the denominator; >= 0"),
            ParamSpec::float("weight_decay", 0.0, "weight decay; >= 0"),
            ParamSpec::float("momentum_decay", 4e-3, "momentum decay psi; >= 0"),
            ParamSpec::bool("decoupled_weight_decay", false, "decay the weights directly (NAdamW) instead of the gradient"),
            MAXIMIZE,
        ],
        module: module_path!(),
        build: |p, _| Ok(Box::new(build(p)?)),
    }
}
