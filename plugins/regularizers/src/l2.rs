//! `l2`: the weight-decay penalty lambda/2 · Σw².

use candle_core::Tensor;
use ember_core::{check, Hyperparams, Regularizer, RegularizerRole, Result};

use crate::penalty::sum_sq;

/// λ/2·Σw², added to the loss (the seed's form), so its gradient is λ·w: the same as an
/// optimizer's `weight_decay = λ` for plain SGD.
#[derive(Clone, Copy, Debug, PartialEq, Hyperparams)]
#[plugin(regularizer = "l2", summary = "L2 penalty lambda / 2 * sum(w^2) added to the loss (gradient lambda * w)")]
pub struct L2 {
    /// penalty strength; >= 0
    #[param(check = check::non_negative)]
    pub lambda: f64,
}

impl Regularizer for L2 {
    fn role(&self) -> RegularizerRole {
        RegularizerRole::Penalty
    }

    fn penalty(&self, weight: &Tensor) -> Result<Tensor> {
        Ok(sum_sq(weight)?.affine(self.lambda / 2.0, 0.0)?)
    }
}
