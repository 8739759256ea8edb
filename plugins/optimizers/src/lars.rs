//! `lars`: SGD with a per-tensor learning rate scaled by the weight and gradient norms
//! (`pytorch_optimizer.LARS`).

use candle_core::{Tensor, Var};
use ember_core::optim::{add_scaled, zeros};
use ember_core::{check, Hyperparams, Optimizer, OptimizerState, Result, StepContext};

use crate::lamb::{in_dtype, norm};

/// pytorch-optimizer's LARS (the path its default `foreach=None` takes on every device),
/// on each parameter tensor: g ← ±grad; for a parameter of rank >= 2,
/// r = trust_coefficient·‖p‖ / (‖g‖ + wd·‖p‖) (1 when ‖p‖ = 0 or the denominator is 0)
/// and g ← (g + wd·p)·r; scalars and vectors (biases, norm weights) take plain SGD
/// steps, without weight decay or trust ratio. With momentum > 0, b ← momentum·b +
/// (1 - dampening)·g (b starts at 0), and g ← g + momentum·b (Nesterov) or g ← b;
/// finally p ← p - lr·g. The momentum is the scheduled one when a scheduler cycles it.
/// No fused kernel: the trust ratio needs the norms, so the update is made of candle ops
/// on every device and dtype.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "lars",
    summary = "LARS: SGD with per-tensor rates trust_coefficient ||p|| / ||g|| on matrices (pytorch_optimizer.LARS)",
    lr = 1e-3
)]
pub struct Lars {
    /// weight decay added to the gradient of parameters of rank >= 2; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub weight_decay: f64,
    /// momentum factor; in [0, 1)
    #[param(default = 0.9, check = check::unit_interval)]
    pub momentum: f64,
    /// dampening for momentum; in [0, 1)
    #[param(default = 0.0, check = check::unit_interval)]
    pub dampening: f64,
    /// trust coefficient: the rate scale trust_coefficient ||p|| / (||g|| + wd ||p||); >= 0
    #[param(default = 1e-3, check = check::non_negative)]
    pub trust_coefficient: f64,
    /// Nesterov momentum
    #[param(default = false)]
    pub nesterov: bool,
    /// maximize the objective instead of minimizing
    #[param(default = false)]
    pub maximize: bool,
}

/// LARS's state (the reference's name): the momentum buffer, with momentum > 0.
#[derive(Clone, Debug, OptimizerState)]
pub struct LarsState {
    pub momentum_buffer: Option<Tensor>,
}

impl Optimizer for Lars {
    type State = LarsState;

    fn init_state(&self, param: &Tensor) -> Result<LarsState> {
        let momentum_buffer = if self.momentum > 0.0 { Some(zeros(param)?) } else { None };
        Ok(LarsState { momentum_buffer })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut LarsState, ctx: &StepContext) -> Result<()> {
        let p = param.as_tensor();
        let mut g = if self.maximize { grad.neg()? } else { grad.clone() };
        if p.rank() > 1 {
            // The trust ratio on 0-d tensors of the parameter's dtype, as the reference.
            let dt = p.dtype();
            let (param_norm, grad_norm) = (norm(p)?, norm(&g)?);
            let denominator = in_dtype(dt, grad_norm + in_dtype(dt, in_dtype(dt, self.weight_decay) * param_norm));
            let trust = if param_norm > 0.0 && denominator > 0.0 {
                in_dtype(dt, in_dtype(dt, in_dtype(dt, self.trust_coefficient) * param_norm) / denominator)
            } else {
                1.0
            };
            g = add_scaled(&g, p, self.weight_decay)?.affine(trust, 0.0)?;
        }
        // The reference reads the group's momentum at each step: a scheduled momentum > 0
        // uses (and creates) the buffer even when the configured momentum is 0.
        let momentum = ctx.momentum_or(self.momentum);
        if momentum > 0.0 {
            let buf = match &state.momentum_buffer {
                Some(b) => b.affine(momentum, 0.0)?,
                None => zeros(p)?,
            };
            let buf = add_scaled(&buf, &g, 1.0 - self.dampening)?;
            g = if self.nesterov { add_scaled(&g, &buf, momentum)? } else { buf.clone() };
            state.momentum_buffer = Some(buf);
        }
        param.set(&add_scaled(p, &g, -ctx.lr)?)?;
        Ok(())
    }
}
