//! `signum`: a step of the same size on every coordinate, against the sign of a momentum
//! average of the gradient (signSGD with momentum), as `pytorch_optimizer.SignSGD`.

use candle_core::{Tensor, Var};
use ember_core::optim::{decay_and_grad, lerp, zeros};
use ember_core::{check, Hyperparams, Optimizer, OptimizerState, Result, StepContext};

/// Signum, step by step (the update of pytorch-optimizer's `SignSGD`, operation for
/// operation):
///
/// ```text
/// g ← -grad if maximize, else grad
/// p ← p·(1 - lr·λ)              (weight_decouple, the default)
///   or g ← g + λ·p              (coupled weight decay)
/// m ← lerp(m, g, 1 - μ)         (μ·m + (1 - μ)·g; only when μ > 0, m starting at zero)
/// p ← p - lr·sign(m)            (sign(g) when μ = 0: plain signSGD)
/// ```
///
/// with sign(0) = 0, as torch's. Defaults are pytorch-optimizer's: lr 1e-3, momentum 0.9,
/// weight_decay 0 (decoupled when set), maximize false. Its `foreach` switch (batched or
/// per-parameter updates, the same arithmetic) has no counterpart here.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "signum",
    summary = "Signum: signSGD with momentum, p <- p - lr sign(m) (pytorch_optimizer.SignSGD)",
    lr = 1e-3
)]
pub struct Signum {
    /// momentum of the average whose sign is the step; in [0, 1) (0: plain signSGD)
    #[param(default = 0.9, check = check::unit_interval)]
    pub momentum: f64,
    /// weight decay; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub weight_decay: f64,
    /// decay the weights, p <- p (1 - lr weight_decay), instead of adding weight_decay p to the gradient
    #[param(default = true)]
    pub weight_decouple: bool,
    /// maximize the objective instead of minimizing
    #[param(default = false)]
    pub maximize: bool,
}

/// Signum's state per parameter, under pytorch-optimizer's name: the momentum buffer m,
/// made (zeros) at the first step with momentum > 0; plain signSGD keeps none.
#[derive(Clone, Debug, OptimizerState)]
pub struct SignumState {
    pub momentum_buffer: Option<Tensor>,
}

impl Optimizer for Signum {
    type State = SignumState;

    fn init_state(&self, _param: &Tensor) -> Result<SignumState> {
        Ok(SignumState { momentum_buffer: None })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut SignumState, ctx: &StepContext) -> Result<()> {
        // The momentum in effect: one_cycle's when it cycles momentum, else the configured one.
        let momentum = ctx.momentum_or(self.momentum);
        // ±grad and the weight decay: p·(1 - lr·wd) decoupled, g + wd·p coupled.
        let (p, g) =
            decay_and_grad(param.as_tensor(), grad, self.maximize, self.weight_decay, self.weight_decouple, ctx.lr)?;
        let direction = if momentum > 0.0 {
            let m = match &state.momentum_buffer {
                Some(m) => m.clone(),
                None => zeros(param.as_tensor())?,
            };
            let m = lerp(&m, &g, 1.0 - momentum)?;
            state.momentum_buffer = Some(m.clone());
            m
        } else {
            g
        };
        // p.add_(sign(m), alpha = -lr); candle's sign, like torch's, is 0 at 0.
        param.set(&p.sub(&direction.sign()?.affine(ctx.lr, 0.0)?)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn signum(momentum: f64) -> Signum {
        Signum { momentum, weight_decay: 0.0, weight_decouple: true, maximize: false }
    }

    #[test]
    fn each_coordinate_moves_by_lr_against_the_sign_and_a_zero_gradient_stays() {
        let p = Var::new(&[1.0f64, -2.0, 0.5], &Device::Cpu).unwrap();
        let g = Tensor::new(&[3.0f64, -0.001, 0.0], &Device::Cpu).unwrap();
        for momentum in [0.0, 0.9] {
            let p = Var::from_tensor(&p.as_tensor().copy().unwrap()).unwrap();
            let opt = signum(momentum);
            let mut s = opt.init_state(p.as_tensor()).unwrap();
            opt.step(&p, &g, &mut s, &StepContext::new(0.1)).unwrap();
            assert_eq!(p.as_tensor().to_vec1::<f64>().unwrap(), [0.9, -1.9, 0.5], "momentum {momentum}");
            // Plain signSGD keeps no buffer; with momentum, m = (1 - 0.9) g after one step.
            assert_eq!(s.momentum_buffer.is_some(), momentum > 0.0);
        }
    }

    #[test]
    fn the_momentum_keeps_the_old_direction_until_the_average_turns() {
        // m = 0.1 after a gradient of 1; a gradient of -0.05 then leaves
        // m = 0.9·0.1 + 0.1·(-0.05) = 0.085 > 0, so the second step still goes down; plain
        // signSGD turns at once.
        let steps = |momentum: f64| {
            let p = Var::new(&[0.0f64], &Device::Cpu).unwrap();
            let opt = signum(momentum);
            let mut s = opt.init_state(p.as_tensor()).unwrap();
            for g in [1.0f64, -0.05] {
                opt.step(&p, &Tensor::new(&[g], &Device::Cpu).unwrap(), &mut s, &StepContext::new(0.5)).unwrap();
            }
            p.as_tensor().to_vec1::<f64>().unwrap()[0]
        };
        assert_eq!(steps(0.9), -1.0);
        assert_eq!(steps(0.0), 0.0);
    }
}
