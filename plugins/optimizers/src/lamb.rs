//! `lamb`: Adam updates scaled by a per-tensor trust ratio (`pytorch_optimizer.Lamb`).

use candle_core::{DType, Tensor, Var};
use ember_core::optim::{add_scaled, addcdiv, addcmul, zeros};
use ember_core::{check, Error, Hyperparams, Optimizer, OptimizerState, Result, StepContext};

use crate::common::Betas;

/// The reference's cap on the weight norm in the trust ratio (`Lamb.clamp`).
const CLAMP: f64 = 10.0;

/// pytorch-optimizer's Lamb (the path its default `foreach=None` takes on every device,
/// or its per-parameter path with `rectify`), step t, on each parameter tensor:
/// g ← ±grad; decoupled weight decay p ← p·(1 - lr·wd) (`fixed_decay`: p·(1 - wd));
/// m ← β1·m + β3·g with β3 = 1-β1 (`grad_averaging`) or 1; v ← β2·v + (1-β2)·g²;
/// u = m / (√v + eps) (+ wd·p for coupled decay); r = min(‖p‖, 10) / (‖u‖ + eps), or 1
/// when either norm is 0 (`adam`: always 1); p ← p - (lr / (1-β1ᵗ))·r·u (`adam_debias`:
/// without the 1/(1-β1ᵗ)). With `rectify` the step size is RAdam's (lr·rₜ/(1-β1ᵗ), a step
/// below `n_sma_threshold` skipped, or taken as SGD with `degenerated_to_sgd`), the
/// trust ratio's ‖u‖ is the norm of the parameter after that step (as the reference
/// computes it), and coupled weight decay does nothing. β1 is the scheduled momentum
/// when a scheduler cycles it. The reference's `pre_norm` and `max_grad_norm` (gradients
/// scaled by the global norm over all parameters) are not offered: a step here sees one
/// parameter. No fused kernel: the trust ratio needs the norms, so the update is made of
/// candle ops on every device and dtype.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "lamb",
    summary = "LAMB: Adam steps scaled by a per-tensor trust ratio ||p|| / ||update|| (pytorch_optimizer.Lamb)",
    lr = 1e-3
)]
pub struct Lamb {
    /// decay rates of the first and second moment averages; in [0, 1)
    #[param(default = [0.9, 0.999])]
    pub betas: Betas,
    /// weight decay; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub weight_decay: f64,
    /// decay the weights directly, p <- p (1 - lr wd), instead of adding wd p to the update
    #[param(default = true)]
    pub weight_decouple: bool,
    /// decoupled weight decay without the learning rate: p <- p (1 - wd)
    #[param(default = false)]
    pub fixed_decay: bool,
    /// RAdam's rectified step size
    #[param(default = false)]
    pub rectify: bool,
    /// with rectify, an SGD step (instead of none) while below n_sma_threshold
    #[param(default = false)]
    pub degenerated_to_sgd: bool,
    /// with rectify, the length of the approximated moving average from which steps are rectified
    #[param(default = 5)]
    pub n_sma_threshold: i64,
    /// scale the gradient's share of the first moment by 1 - beta1
    #[param(default = true)]
    pub grad_averaging: bool,
    /// a trust ratio of 1 (plain Adam-style steps)
    #[param(default = false)]
    pub adam: bool,
    /// leave out the first moment's bias correction from the step size (AdamD)
    #[param(default = false)]
    pub adam_debias: bool,
    /// added to the denominator and to the update norm; >= 0
    #[param(default = 1e-6, check = check::non_negative)]
    pub eps: f64,
    /// maximize the objective instead of minimizing
    #[param(default = false)]
    pub maximize: bool,
}

/// Lamb's state (the reference's names): the step count and the moment averages.
#[derive(Clone, Debug, OptimizerState)]
pub struct LambState {
    pub step: u64,
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
}

/// `‖t‖₂`, computed in the tensor's dtype and read as an f64.
pub(crate) fn norm(t: &Tensor) -> Result<f64> {
    Ok(t.sqr()?.sum_all()?.sqrt()?.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// `x` rounded to `dtype` when that is f32: the reference computes trust ratios on 0-d
/// tensors of the parameter's dtype (python numbers converted to it first), and one f64
/// operation on f32 values rounded to f32 is the f32 operation. Other dtypes keep f64.
pub(crate) fn in_dtype(dtype: DType, x: f64) -> f64 {
    if dtype == DType::F32 {
        x as f32 as f64
    } else {
        x
    }
}

impl Lamb {
    /// The step size and RAdam's n_sma (0 without `rectify`), in f64 as the reference
    /// computes them in Python; an error where the rectification term is undefined (a
    /// threshold below 4; the reference raises a math domain error there).
    fn step_size(&self, step: f64, b1: f64, lr: f64) -> Result<(f64, f64)> {
        let b2 = self.betas.1;
        let (mut step_size, mut n_sma) = (lr, 0.0);
        if self.rectify {
            let n_sma_max = 2.0 / (1.0 - b2) - 1.0;
            let beta2_t = b2.powf(step);
            n_sma = n_sma_max - 2.0 * step * beta2_t / (1.0 - beta2_t);
            let rt = if n_sma >= self.n_sma_threshold as f64 {
                let radicand = (1.0 - beta2_t) * (n_sma - 4.0) / (n_sma_max - 4.0) * (n_sma - 2.0) / n_sma * n_sma_max
                    / (n_sma_max - 2.0);
                if radicand < 0.0 {
                    return Err(Error::input(format!(
                        "lamb: the rectification term is undefined at step {step} (n_sma = {n_sma}); \
                         raise n_sma_threshold to 4 or more"
                    )));
                }
                radicand.sqrt()
            } else if self.degenerated_to_sgd {
                1.0
            } else {
                -1.0
            };
            step_size *= rt;
        }
        if !self.adam_debias {
            step_size /= 1.0 - b1.powf(step);
        }
        Ok((step_size, n_sma))
    }

    /// The trust ratio min(‖p‖, 10) / (‖u‖ + eps) in the parameter's dtype, or `None`
    /// (a ratio of 1) when either norm is 0.
    fn trust_ratio(&self, p: &Tensor, u: &Tensor) -> Result<Option<f64>> {
        let dt = p.dtype();
        let weight_norm = norm(p)?;
        // torch's clamp: NaN stays NaN.
        let weight_norm = if weight_norm > CLAMP { CLAMP } else { weight_norm };
        let update_norm = norm(u)?;
        if weight_norm == 0.0 || update_norm == 0.0 {
            return Ok(None);
        }
        let eps = in_dtype(dt, self.eps);
        Ok(Some(in_dtype(dt, weight_norm / in_dtype(dt, update_norm + eps))))
    }
}

impl Optimizer for Lamb {
    type State = LambState;

    fn init_state(&self, param: &Tensor) -> Result<LambState> {
        Ok(LambState { step: 0, exp_avg: zeros(param)?, exp_avg_sq: zeros(param)? })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut LambState, ctx: &StepContext) -> Result<()> {
        state.step += 1;
        let step = state.step as f64;
        let (b1, b2, lr) = (ctx.momentum_or(self.betas.0), self.betas.1, ctx.lr);
        let beta3 = if self.grad_averaging { 1.0 - b1 } else { 1.0 };
        let (step_size, n_sma) = self.step_size(step, b1, lr)?;
        let g = if self.maximize { grad.neg()? } else { grad.clone() };
        let mut p = param.as_tensor().clone();
        let decayed = self.weight_decay != 0.0 && self.weight_decouple;
        if decayed {
            let factor = if self.fixed_decay { 1.0 - self.weight_decay } else { 1.0 - self.weight_decay * lr };
            p = p.affine(factor, 0.0)?;
        }
        let m = add_scaled(&state.exp_avg.affine(b1, 0.0)?, &g, beta3)?;
        let v = addcmul(&state.exp_avg_sq.affine(b2, 0.0)?, &g, &g, 1.0 - b2)?;
        state.exp_avg = m.clone();
        state.exp_avg_sq = v.clone();
        if !self.rectify {
            // The batched path: u = (1 / (√v + eps))·m.
            let mut u = v.sqrt()?.affine(1.0, self.eps)?.recip()?.mul(&m)?;
            if !self.weight_decouple && self.weight_decay > 0.0 {
                u = add_scaled(&u, &p, self.weight_decay)?;
            }
            let trust = if self.adam { None } else { self.trust_ratio(&p, &u)? };
            if let Some(trust) = trust {
                u = u.affine(trust, 0.0)?;
            }
            param.set(&add_scaled(&p, &u, -step_size)?)?;
            return Ok(());
        }
        // The per-parameter path of the rectified variant.
        if step_size <= 0.0 {
            // A skipped step: only the decoupled weight decay applies.
            if decayed {
                param.set(&p)?;
            }
            return Ok(());
        }
        let denom = if n_sma >= self.n_sma_threshold as f64 { Some(v.sqrt()?.affine(1.0, self.eps)?) } else { None };
        let stepped = match &denom {
            Some(d) => addcdiv(&p, &m, d, -step_size)?,
            None => add_scaled(&p, &m, -step_size)?,
        };
        // The reference multiplies its f64 step size by a trust ratio of the parameter's
        // dtype (rounding the product to it), or by the number 1.
        let value = match self.trust_ratio(&p, &stepped)? {
            Some(trust) if !self.adam => in_dtype(p.dtype(), in_dtype(p.dtype(), -step_size) * trust),
            _ => -step_size,
        };
        let p = match &denom {
            Some(d) => addcdiv(&p, &m, d, value)?,
            None => add_scaled(&p, &m, value)?,
        };
        param.set(&p)?;
        Ok(())
    }
}
