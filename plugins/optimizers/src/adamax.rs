//! `adamax`: Adam with the infinity norm (PyTorch `torch.optim.Adamax`).

use candle_core::{Tensor, Var};
use ember_core::{Optimizer, OptimizerEntry, ParamSpec, Params, Result, State, StepContext};

use crate::common::{
    addcdiv, betas, buffer, effective_grad, lerp, next_step, non_negative, zero_state, MAXIMIZE, WEIGHT_DECAY,
};

/// PyTorch's Adamax, step t: m ← lerp(m, g, 1-β1); u ← max(β2·u, |g| + eps);
/// p ← p - (lr / (1-β1ᵗ))·m/u. State: `step`, `exp_avg`, `exp_inf`.
#[derive(Clone, Debug, PartialEq)]
pub struct Adamax {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub maximize: bool,
}

impl Optimizer for Adamax {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn init_state(&self, param: &Tensor) -> Result<State> {
        zero_state(param, &["exp_avg", "exp_inf"])
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut State, ctx: &StepContext) -> Result<()> {
        let step = next_step(state);
        let (b1, b2) = self.betas;
        let p = param.as_tensor();
        let g = effective_grad(p, grad, self.maximize, self.weight_decay)?;
        let m = lerp(buffer("adamax", state, "exp_avg")?, &g, 1.0 - b1)?;
        let u = buffer("adamax", state, "exp_inf")?.affine(b2, 0.0)?.maximum(&g.abs()?.affine(1.0, self.eps)?)?;
        let clr = ctx.lr / (1.0 - b1.powf(step));
        param.set(&addcdiv(p, &m, &u, -clr)?)?;
        state.tensors.insert("exp_avg".into(), m);
        state.tensors.insert("exp_inf".into(), u);
        Ok(())
    }
}

fn build(p: &Params) -> Result<Adamax> {
    Ok(Adamax {
        lr: non_negative(p, "lr")?,
        betas: betas(p)?,
        eps: non_negative(p, "eps")?,
        weight_decay: non_negative(p, "weight_decay")?,
        maximize: p.bool("maximize")?,
    })
}

ember_core::inventory::submit! {
    OptimizerEntry {
        name: "adamax",
        summary: "Adamax: Adam with an infinity-norm second moment (torch.optim.Adamax)",
        params: &[
            ParamSpec::float("lr", 2e-3, crate::common::LR_DOC),
            ParamSpec::float_list("betas", &[0.9, 0.999], "decay rates of the moment estimates; in [0, 1)"),
            ParamSpec::float("eps", 1e-8, "added to |g|; >= 0"),
            WEIGHT_DECAY,
            MAXIMIZE,
        ],
        module: module_path!(),
        build: |p, _| Ok(Box::new(build(p)?)),
    }
}
