//! `lion`: the update is the sign of an interpolation of momentum and gradient.

use candle_core::{Tensor, Var};
use ember_core::optim::{self, Betas};
use ember_core::{check, Hyperparams, Optimizer, OptimizerState, Result, StepContext};

/// Lion, step by step (the paper's pseudo-code):
///
/// ```text
/// c = β1·m + (1 - β1)·g
/// p ← p·(1 - lr·λ)          (decoupled weight decay)
/// p ← p - lr·sign(c)
/// m ← β2·m + (1 - β2)·g
/// ```
///
/// Defaults follow the paper's reference: lr 1e-4, betas (0.9, 0.99), weight_decay 0.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "lion",
    summary = "Lion: sign of interpolated momentum, decoupled weight decay (Chen et al. 2023)",
    lr = 1e-4,
    lr_doc = "learning rate; >= 0 (typically 3-10x smaller than AdamW's)"
)]
pub struct Lion {
    /// interpolation (beta1) and momentum decay (beta2); in [0, 1)
    #[param(default = [0.9, 0.99])]
    pub betas: Betas,
    /// decoupled weight decay; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub weight_decay: f64,
}

/// Lion's state per parameter: the momentum `exp_avg` (m).
#[derive(Clone, Debug, OptimizerState)]
pub struct LionState {
    pub exp_avg: Tensor,
}

impl Optimizer for Lion {
    type State = LionState;

    fn init_state(&self, param: &Tensor) -> Result<LionState> {
        Ok(LionState { exp_avg: optim::zeros(param)? })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut LionState, ctx: &StepContext) -> Result<()> {
        // A scheduler that cycles momentum (one_cycle) moves beta1, as for Adam.
        let (b1, b2) = (ctx.momentum_or(self.betas.0), self.betas.1);
        let m = &state.exp_avg;
        let c = m.affine(b1, 0.0)?.add(&grad.affine(1.0 - b1, 0.0)?)?;
        let mut p = param.as_tensor().clone();
        if self.weight_decay != 0.0 {
            p = p.affine(1.0 - ctx.lr * self.weight_decay, 0.0)?;
        }
        param.set(&p.sub(&c.sign()?.affine(ctx.lr, 0.0)?)?)?;
        state.exp_avg = m.affine(b2, 0.0)?.add(&grad.affine(1.0 - b2, 0.0)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn one_step_moves_each_coordinate_by_lr_against_the_gradient_sign() {
        let lion = Lion { betas: Betas(0.9, 0.99), weight_decay: 0.0 };
        let p = Var::from_tensor(&Tensor::new(&[1.0f64, -2.0, 0.5], &Device::Cpu).unwrap()).unwrap();
        let g = Tensor::new(&[3.0f64, -0.001, 0.0], &Device::Cpu).unwrap();
        let mut s = lion.init_state(p.as_tensor()).unwrap();
        lion.step(&p, &g, &mut s, &StepContext::new(0.1)).unwrap();
        assert_eq!(p.as_tensor().to_vec1::<f64>().unwrap(), [0.9, -1.9, 0.5]);
    }
}
