//! `l1`: the lasso penalty lambda · Σ|w|.

use candle_core::Tensor;
use ember_core::{check, Hyperparams, Regularizer, RegularizerRole, Result};

use crate::penalty::sum_abs;

/// λ·Σ|w|, added to the loss; its gradient λ·sign(w) (0 at w = 0) pushes weights to
/// exactly zero.
#[derive(Clone, Copy, Debug, PartialEq, Hyperparams)]
#[plugin(regularizer = "l1", summary = "L1 penalty lambda * sum(|w|) added to the loss")]
pub struct L1 {
    /// penalty strength; >= 0
    #[param(check = check::non_negative)]
    pub lambda: f64,
}

impl Regularizer for L1 {
    fn role(&self) -> RegularizerRole {
        RegularizerRole::Penalty
    }

    fn penalty(&self, weight: &Tensor) -> Result<Tensor> {
        Ok(sum_abs(weight)?.affine(self.lambda, 0.0)?)
    }
}
