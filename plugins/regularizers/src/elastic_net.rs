//! `elastic_net`: a mix of the L1 and L2 penalties.

use candle_core::Tensor;
use ember_core::{check, Hyperparams, Regularizer, RegularizerRole, Result};

use crate::penalty::{sum_abs, sum_sq};

/// λ·(r·Σ|w| + (1 - r)/2·Σw²) with r = l1_ratio.
#[derive(Clone, Copy, Debug, PartialEq, Hyperparams)]
#[plugin(
    regularizer = "elastic_net",
    summary = "elastic net lambda * (l1_ratio * sum(|w|) + (1 - l1_ratio) / 2 * sum(w^2))"
)]
pub struct ElasticNet {
    /// penalty strength; >= 0
    #[param(check = check::non_negative)]
    pub lambda: f64,
    /// share of the L1 term; in [0, 1]
    #[param(default = 0.5, check = check::probability)]
    pub l1_ratio: f64,
}

impl Regularizer for ElasticNet {
    fn role(&self) -> RegularizerRole {
        RegularizerRole::Penalty
    }

    fn penalty(&self, weight: &Tensor) -> Result<Tensor> {
        let l1 = sum_abs(weight)?.affine(self.l1_ratio, 0.0)?;
        let l2 = sum_sq(weight)?.affine((1.0 - self.l1_ratio) / 2.0, 0.0)?;
        Ok(l1.add(&l2)?.affine(self.lambda, 0.0)?)
    }
}
