//! Test fixture: a second third-party crate that registers an activation named `twin`,
//! the same name as `ember-fixture-plugin-a` registers.

use candle_core::Tensor;
use ember_core::{Activation, Hyperparams, Result};

/// -x, registered as `twin`.
#[derive(Debug, Hyperparams)]
#[plugin(activation = "twin", summary = "negation (registered by two fixture crates)")]
pub struct Negate;

impl Activation for Negate {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.neg()?)
    }
}
