//! `adadelta`: step sizes from running averages of squared gradients and squared updates
//! (PyTorch `torch.optim.Adadelta`).

use candle_core::{Tensor, Var};
use ember_core::{Optimizer, OptimizerEntry, ParamSpec, Params, Result, State, StepContext};

use crate::common::{
    add_scaled, addcmul, buffer, effective_grad, next_step, non_negative, zero_state, MAXIMIZE, WEIGHT_DECAY,
};

/// PyTorch's Adadelta: s ← ρ·s + (1-ρ)·g²; δ = √(u + eps) / √(s + eps) · g;
/// u ← ρ·u + (1-ρ)·δ²; p ← p - lr·δ. State: `step`, `square_avg`, `acc_delta`.
#[derive(Clone, Debug, PartialEq)]
pub struct Adadelta {
    pub lr: f64,
    pub rho: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub maximize: bool,
}

impl Optimizer for Adadelta {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn init_state(&self, param: &Tensor) -> Result<State> {
        zero_state(param, &["square_avg", "acc_delta"])
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut State, ctx: &StepContext) -> Result<()> {
        next_step(state);
        let p = param.as_tensor();
        let g = effective_grad(p, grad, self.maximize, self.weight_decay)?;
        let sq = addcmul(&buffer("adadelta", state, "square_avg")?.affine(self.rho, 0.0)?, &g, &g, 1.0 - self.rho)?;
        let std = sq.affine(1.0, self.eps)?.sqrt()?;
        let acc = buffer("adadelta", state, "acc_delta")?;
        let delta = acc.affine(1.0, self.eps)?.sqrt()?.div(&std)?.mul(&g)?;
        let acc = addcmul(&acc.affine(self.rho, 0.0)?, &delta, &delta, 1.0 - self.rho)?;
        param.set(&add_scaled(p, &delta, -ctx.lr)?)?;
        state.tensors.insert("square_avg".into(), sq);
        state.tensors.insert("acc_delta".into(), acc);
        Ok(())
    }
}

fn build(p: &Params) -> Result<Adadelta> {
    Ok(Adadelta {
        lr: non_negative(p, "lr")?,
        rho: p.float_where("rho", |r| (0.0..=1.0).contains(&r), "must be in [0, 1]")?,
        eps: non_negative(p, "eps")?,
        weight_decay: non_negative(p, "weight_decay")?,
        maximize: p.bool("maximize")?,
    })
}

ember_core::inventory::submit! {
    OptimizerEntry {
        name: "adadelta",
        summary: "Adadelta: unit-corrected adaptive steps from running averages (torch.optim.Adadelta)",
        params: &[
            ParamSpec::float("lr", 1.0, "scale applied to the update; >= 0"),
            ParamSpec::float("rho", 0.9, "decay of the running averages; in [0, 1]"),
            ParamSpec::float("eps", 1e-6, "added inside the square roots; >= 0"),
            WEIGHT_DECAY,
            MAXIMIZE,
        ],
        module: module_path!(),
        build: |p, _| Ok(Box::new(build(p)?)),
    }
}
