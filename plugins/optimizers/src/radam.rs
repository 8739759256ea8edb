//! `radam`: Adam with a rectified adaptive learning rate (PyTorch `torch.optim.RAdam`).

use candle_core::{Tensor, Var};
use ember_core::{Optimizer, OptimizerEntry, ParamSpec, Params, Result, State, StepContext};

use crate::common::{adam_moments, add_scaled, betas, decay_and_grad, next_step, non_negative, zero_state, MAXIMIZE};

/// PyTorch's RAdam, step t: m, v as in Adam; m̂ = m/(1-β1ᵗ); ρ∞ = 2/(1-β2) - 1,
/// ρₜ = ρ∞ - 2tβ2ᵗ/(1-β2ᵗ). If ρₜ > 5: p ← p - m̂·lr·√(1-β2ᵗ)/(√v + eps)·r with
/// r = √((ρₜ-4)(ρₜ-2)ρ∞ / ((ρ∞-4)(ρ∞-2)ρₜ)); else p ← p - m̂·lr.
/// State: `step`, `exp_avg`, `exp_avg_sq`.
#[derive(Clone, Debug, PartialEq)]
pub struct Radam {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub decoupled_weight_decay: bool,
    pub maximize: bool,
}

impl Optimizer for Radam {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn init_state(&self, param: &Tensor) -> Result<State> {
        zero_state(param, &["exp_avg", "exp_avg_sq"])
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut State, ctx: &StepContext) -> Result<()> {
        let step = next_step(state);
        let (b1, b2, lr) = (self.betas.0, self.betas.1, ctx.lr);
        let (p, g) =
            decay_and_grad(param.as_tensor(), grad, self.maximize, self.weight_decay, self.decoupled_weight_decay, lr)?;
        let (m, v) = adam_moments("radam", state, &g, (b1, b2))?;
        let bias_correction1 = 1.0 - b1.powf(step);
        let bias_correction2 = 1.0 - b2.powf(step);
        let bc1 = Tensor::new(bias_correction1, p.device())?.to_dtype(p.dtype())?;
        let corrected = m.broadcast_div(&bc1)?;
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
        state.tensors.insert("exp_avg".into(), m);
        state.tensors.insert("exp_avg_sq".into(), v);
        Ok(())
    }
}

fn build(p: &Params) -> Result<Radam> {
    Ok(Radam {
        lr: non_negative(p, "lr")?,
        betas: betas(p)?,
        eps: non_negative(p, "eps")?,
        weight_decay: non_negative(p, "weight_decay")?,
        decoupled_weight_decay: p.bool("decoupled_weight_decay")?,
        maximize: p.bool("maximize")?,
    })
}

ember_core::inventory::submit! {
    OptimizerEntry {
        name: "radam",
        summary: "RAdam: Adam with a rectified warm-up of the adaptive learning rate (torch.optim.RAdam)",
        params: &[
            ParamSpec::float("lr", 1e-3, crate::common::LR_DOC),
            ParamSpec::float_list("betas", &[0.9, 0.999], "decay rates of the moment estimates; in [0, 1)"),
            ParamSpec::float("eps", 1e-8, "added to the denominator; >= 0"),
            ParamSpec::float("weight_decay", 0.0, "weight decay; >= 0"),
            ParamSpec::bool("decoupled_weight_decay", false, "decay the weights directly instead of the gradient"),
            MAXIMIZE,
        ],
        module: module_path!(),
        build: |p, _| Ok(Box::new(build(p)?)),
    }
}
