//! `poisson_nll`: negative log-likelihood of a Poisson distribution (PyTorch
//! `nn.PoissonNLLLoss`).

use candle_core::Tensor;
use ember_core::ops::composed::pick;
use ember_core::ops::pointwise::{check_float, Real};
use ember_core::ops::ternary::{apply2, Ternary};
use ember_core::{check, Error, Hyperparams, Loss, Result};

use crate::inputs::{host_values, same_shape};
use crate::reduction::Reduction;

/// 2π, as PyTorch writes it (`2 * c10::pi<double>`).
const TWO_PI: f64 = 2.0 * std::f64::consts::PI;

/// For counts y >= 0 and the model's log-rate x (`log_input = true`, the default):
/// exp(x) - y x; for a rate x >= 0 (`log_input = false`): x - y log(x + eps). With
/// `full = true` adds Stirling's approximation of log(y!), y log y - y + 0.5 log(2π y),
/// where y > 1 (0 elsewhere). Gradient exp(x) - y, or 1 - y / (x + eps). Pair a raw
/// output with the default `log_input = true`; a rate output (softplus, exp) with
/// `log_input = false`.
#[derive(Clone, Copy, Debug, PartialEq, Hyperparams)]
#[plugin(
    loss = "poisson_nll",
    summary = "Poisson negative log-likelihood of counts given a log-rate (or rate) (nn.PoissonNLLLoss)"
)]
pub struct PoissonNll {
    /// the input is the log of the rate: exp(input) - target * input; false: the rate itself, input - target * log(input + eps)
    #[param(default = true)]
    pub log_input: bool,
    /// add the Stirling term target * log(target) - target + 0.5 * log(2 pi target) where target > 1
    #[param(default = false)]
    pub full: bool,
    /// added to the rate inside the log when log_input = false; >= 0
    #[param(default = 1e-8, check = check::non_negative)]
    pub eps: f64,
    /// none: per-element losses; mean; sum
    #[param(default = "mean")]
    pub reduction: Reduction,
}

impl Default for PoissonNll {
    fn default() -> Self {
        Self { log_input: true, full: false, eps: 1e-8, reduction: Reduction::Mean }
    }
}

#[derive(Clone, Copy, Debug)]
struct Kernel {
    log_input: bool,
    full: bool,
    eps: f64,
}

impl Ternary for Kernel {
    const NAME: &'static str = "poisson_nll";

    fn fwd<T: Real>(&self, x: T, y: T, _: T) -> T {
        let loss = if self.log_input { x.exp() - y * x } else { x - y * (x + T::of(self.eps)).ln() };
        // PyTorch masks the term where target <= 1 (so a NaN target keeps it).
        if self.full && (y > T::one() || y.is_nan()) {
            loss + (y * y.ln() - y + T::of(0.5) * (T::of(TWO_PI) * y).ln())
        } else {
            loss
        }
    }

    fn dfdx<T: Real>(&self, x: T, y: T, _: T) -> T {
        if self.log_input {
            x.exp() - y
        } else {
            T::one() - y / (x + T::of(self.eps))
        }
    }

    fn fwd_composed(&self, x: &Tensor, y: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        let loss =
            if self.log_input { x.exp()?.sub(&y.mul(x)?)? } else { x.sub(&y.mul(&x.affine(1.0, self.eps)?.log()?)?)? };
        if !self.full {
            return Ok(loss);
        }
        let stirling = y.mul(&y.log()?)?.sub(y)?.add(&y.affine(TWO_PI, 0.0)?.log()?.affine(0.5, 0.0)?)?;
        loss.add(&pick(&y.le(1.0)?, &y.zeros_like()?, &stirling)?)
    }

    fn dfdx_composed(&self, x: &Tensor, y: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        if self.log_input {
            x.exp()?.sub(y)
        } else {
            y.div(&x.affine(1.0, self.eps)?)?.affine(-1.0, 1.0)
        }
    }
}

impl Loss for PoissonNll {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        check_float("poisson_nll", input)?;
        same_shape("poisson_nll", input, target)?;
        if let Some((i, v)) = host_values(target)?.into_iter().enumerate().find(|(_, v)| v.is_nan() || *v < 0.0) {
            return Err(Error::input(format!(
                "poisson_nll: every target must be a count (a number >= 0), got {v} at flat index {i}"
            )));
        }
        if !self.log_input {
            if let Some((i, v)) = host_values(input)?.into_iter().enumerate().find(|(_, v)| *v < 0.0) {
                return Err(Error::input(format!(
                    "poisson_nll: with log_input = false the input is the rate and must be >= 0, got {v} at flat index {i}; end the model with softplus or exp, or give log-rates with log_input = true (the default)"
                )));
            }
        }
        let target = target.to_dtype(input.dtype())?;
        let kernel = Kernel { log_input: self.log_input, full: self.full, eps: self.eps };
        self.reduction.apply(apply2(&kernel, input, &target)?)
    }
}
