//! `elastic_net`: a mix of the L1 and L2 penalties.

use candle_core::Tensor;
use ember_core::{ParamSpec, ParamType, Regularizer, RegularizerEntry, RegularizerRole, Result};

use crate::penalty::{sum_abs, sum_sq};

/// λ·(r·Σ|w| + (1 - r)/2·Σw²) with r = l1_ratio.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ElasticNet {
    pub lambda: f64,
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

ember_core::inventory::submit! {
    RegularizerEntry {
        name: "elastic_net",
        summary: "elastic net lambda * (l1_ratio * sum(|w|) + (1 - l1_ratio) / 2 * sum(w^2))",
        params: &[
            ParamSpec::required("lambda", ParamType::Float, "penalty strength; >= 0"),
            ParamSpec::float("l1_ratio", 0.5, "share of the L1 term; in [0, 1]"),
        ],
        module: module_path!(),
        build: |p, _| {
            Ok(Box::new(ElasticNet {
                lambda: p.float_where("lambda", |l| l >= 0.0, "must be >= 0")?,
                l1_ratio: p.float_where("l1_ratio", |r| (0.0..=1.0).contains(&r), "must be in [0, 1]")?,
            }))
        },
    }
}
