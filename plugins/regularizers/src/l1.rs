//! `l1`: the lasso penalty lambda · Σ|w|.

use candle_core::Tensor;
use ember_core::{ParamSpec, Regularizer, RegularizerEntry, RegularizerRole, Result};

use crate::penalty::sum_abs;

/// λ·Σ|w|, added to the loss; its gradient λ·sign(w) (0 at w = 0) pushes weights to
/// exactly zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct L1 {
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

ember_core::inventory::submit! {
    RegularizerEntry {
        name: "l1",
        summary: "L1 penalty lambda * sum(|w|) added to the loss",
        params: &[ParamSpec::required("lambda", ember_core::ParamType::Float, "penalty strength; >= 0")],
        module: module_path!(),
        build: |p, _| Ok(Box::new(L1 { lambda: p.float_where("lambda", |l| l >= 0.0, "must be >= 0")? })),
    }
}
