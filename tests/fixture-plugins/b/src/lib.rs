//! Test fixture: a second third-party crate that registers an activation named `twin`,
//! the same name as `ember-fixture-plugin-a` registers.

use candle_core::Tensor;
use ember_core::{Activation, ActivationEntry, Result};

/// -x, registered as `twin`.
#[derive(Debug)]
pub struct Negate;

impl Activation for Negate {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.neg()?)
    }
}

ember_core::inventory::submit! {
    ActivationEntry {
        name: "twin",
        summary: "negation (registered by two fixture crates)",
        params: &[],
        module: module_path!(),
        build: |_, _| Ok(Box::new(Negate)),
    }
}
