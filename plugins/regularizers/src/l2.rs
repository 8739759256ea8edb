//! `l2`: the weight-decay penalty lambda/2 · Σw².

use candle_core::Tensor;
use ember_core::{ParamSpec, Regularizer, RegularizerEntry, RegularizerRole, Result};

use crate::penalty::sum_sq;

/// λ/2·Σw², added to the loss (the seed's form), so its gradient is λ·w: the same as an
/// optimizer's `weight_decay = λ` for plain SGD.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct L2 {
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

ember_core::inventory::submit! {
    RegularizerEntry {
        name: "l2",
        summary: "L2 penalty lambda / 2 * sum(w^2) added to the loss (gradient lambda * w)",
        params: &[ParamSpec::required("lambda", ember_core::ParamType::Float, "penalty strength; >= 0")],
        module: module_path!(),
        build: |p, _| Ok(Box::new(L2 { lambda: p.float_where("lambda", |l| l >= 0.0, "must be >= 0")? })),
    }
}
