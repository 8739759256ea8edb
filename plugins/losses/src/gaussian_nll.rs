//! `gaussian_nll`: negative log-likelihood of a Gaussian with a predicted mean and
//! variance (PyTorch `nn.GaussianNLLLoss`).

use candle_core::Tensor;
use ember_core::ops::pointwise::check_float;
use ember_core::{check, Error, Hyperparams, Loss, LossArg, Result};

use crate::inputs::{compute_dtype, host_values, is_float, not_input_target, take};
use crate::reduction::Reduction;

const NAME: &str = "gaussian_nll";
const ARGS: &[LossArg] = &[LossArg::grad("input"), LossArg::data("target"), LossArg::grad("var")];

/// For a predicted mean x, a target y and a predicted variance v >= 0:
/// 0.5 (log(max(v, eps)) + (x - y)² / max(v, eps)), plus 0.5 log(2π) with `full`. As in
/// PyTorch the clamp at eps is not differentiated: var's gradient is the formula's at the
/// clamped value, everywhere. `var` has the input's shape (one variance per element), or
/// the input's shape without its last dimension, or the input's shape with one
/// dimension of size 1 (a variance shared along it); the target has the input's shape or
/// broadcasts to it. It takes three tensors (input, target, var): call
/// [`Loss::forward_args`], in a Learner from a custom training step (a model that
/// predicts a mean and a variance, e.g. the variance through softplus).
#[derive(Clone, Copy, Debug, PartialEq, Hyperparams)]
#[plugin(
    loss = "gaussian_nll",
    summary = "Gaussian negative log-likelihood 0.5 * (log(var) + (input - target)^2 / var) (nn.GaussianNLLLoss)"
)]
pub struct GaussianNll {
    /// add the constant 0.5 * log(2 pi)
    #[param(default = false)]
    pub full: bool,
    /// the variance is clamped to at least eps (without a gradient through the clamp); >= 0
    #[param(default = 1e-6, check = check::non_negative)]
    pub eps: f64,
    /// none: per-element losses; mean; sum
    #[param(default = "mean")]
    pub reduction: Reduction,
}

impl Default for GaussianNll {
    fn default() -> Self {
        Self { full: false, eps: 1e-6, reduction: Reduction::Mean }
    }
}

/// `var` shaped to broadcast to the input, by PyTorch's rules: the input's shape; the
/// input's shape without its last dimension (a trailing 1 is added); or the input's rank
/// with exactly one dimension that differs, of size 1 in var.
fn fit_var(input: &Tensor, var: &Tensor) -> Result<Tensor> {
    let (xs, vs) = (input.dims(), var.dims());
    if xs == vs {
        return Ok(var.clone());
    }
    if !xs.is_empty() && vs == &xs[..xs.len() - 1] {
        return Ok(var.unsqueeze(xs.len() - 1)?);
    }
    if xs.len() == vs.len() {
        let differ: Vec<usize> = (0..xs.len()).filter(|&d| xs[d] != vs[d]).collect();
        if differ.len() == 1 && vs[differ[0]] == 1 {
            return Ok(var.clone());
        }
    }
    Err(Error::input(format!(
        "{NAME}: var has shape {vs:?}, which does not fit the input's {xs:?}: give one variance per element (the input's shape), one per vector along the last dimension (the shape without it, or with it 1), or the input's shape with one dimension of size 1"
    )))
}

impl Loss for GaussianNll {
    fn forward(&self, _input: &Tensor, _target: &Tensor) -> Result<Tensor> {
        Err(not_input_target(NAME, ARGS))
    }

    fn arguments(&self) -> &'static [LossArg] {
        ARGS
    }

    fn forward_args(&self, args: &[&Tensor]) -> Result<Tensor> {
        let [input, target, var] = take::<3>(NAME, ARGS, args)?;
        check_float(NAME, input)?;
        check_float(NAME, var)?;
        if !is_float(target.dtype()) {
            return Err(Error::input(format!("{NAME}: target must be a float tensor, got {:?}", target.dtype())));
        }
        let var = fit_var(input, var)?;
        if let Some((i, v)) = host_values(&var)?.into_iter().enumerate().find(|(_, v)| *v < 0.0) {
            return Err(Error::input(format!(
                "{NAME}: every var must be >= 0 (a variance), got {v} at flat index {i}; end the variance head with softplus or exp"
            )));
        }
        let dtype = input.dtype();
        let work = compute_dtype(dtype);
        let x = input.to_dtype(work)?;
        let y = target.detach().to_dtype(work)?.broadcast_as(x.shape()).map_err(|_| {
            Error::input(format!(
                "{NAME}: target shape {:?} does not broadcast to the input's shape {:?}",
                target.dims(),
                x.dims()
            ))
        })?;
        let v = var.to_dtype(work)?;
        // PyTorch clamps a clone of var in place under no_grad: the value is max(var, eps),
        // the gradient reaches var as if nothing was clamped. Where var < eps the value is
        // (v - v) + eps, exactly eps, with v's gradient; elsewhere v itself.
        let fixed = v.detach();
        let lifted = v.sub(&fixed)?.add(&fixed.maximum(self.eps)?)?;
        let v = fixed.lt(self.eps)?.where_cond(&lifted, &v)?.broadcast_as(x.shape())?;
        // PyTorch's order: 0.5 * (log(var) + (input - target) ** 2 / var).
        let loss = v.log()?.add(&x.sub(&y)?.sqr()?.div(&v)?)?.affine(0.5, 0.0)?;
        // PyTorch's `loss += 0.5 * math.log(2 * math.pi)`.
        let half_log_two_pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        let loss = if self.full { loss.affine(1.0, half_log_two_pi)? } else { loss };
        Ok(self.reduction.apply(loss)?.to_dtype(dtype)?)
    }
}
