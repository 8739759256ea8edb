//! Test fixture: a third-party crate that adds activations to Ember's registry without
//! touching Ember. It registers `cube` (used to check that outside plugins show up
//! everywhere) and `twin`, which `ember-fixture-plugin-b` registers too (used to check
//! that a duplicate name is an error naming both crates).

use candle_core::Tensor;
use ember_core::{Activation, ActivationEntry, ParamSpec, Result};

/// scale * x³.
#[derive(Debug)]
pub struct Cube {
    pub scale: f64,
}

impl Activation for Cube {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.powf(3.0)?.affine(self.scale, 0.0)?)
    }
}

ember_core::inventory::submit! {
    ActivationEntry {
        name: "cube",
        summary: "scale * x^3 (a third-party test plugin)",
        params: &[ParamSpec::float("scale", 1.0, "factor applied to x^3; must be finite")],
        module: module_path!(),
        build: |p, _| Ok(Box::new(Cube { scale: p.float_where("scale", f64::is_finite, "must be finite")? })),
    }
}

/// The identity, registered as `twin` here and in `ember-fixture-plugin-b`.
#[derive(Debug)]
pub struct Twin;

impl Activation for Twin {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.clone())
    }
}

pub mod twin {
    ember_core::inventory::submit! {
        ember_core::ActivationEntry {
            name: "twin",
            summary: "identity (registered by two fixture crates)",
            params: &[],
            module: module_path!(),
            build: |_, _| Ok(Box::new(super::Twin)),
        }
    }
}
