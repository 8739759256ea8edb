//! Test fixture: a third-party crate that adds activations to Ember's registry without
//! touching Ember. It registers `cube` (used to check that outside plugins show up
//! everywhere) and `twin`, which `ember-fixture-plugin-b` registers too (used to check
//! that a duplicate name is an error naming both crates).

use candle_core::Tensor;
use ember_core::{check::Check, Activation, Hyperparams, Result};

/// `Err` unless `v` is finite.
fn finite(v: &f64) -> Check {
    if v.is_finite() {
        Ok(())
    } else {
        Err("must be finite".to_string())
    }
}

/// scale * x³.
#[derive(Debug, Hyperparams)]
#[plugin(activation = "cube", summary = "scale * x^3 (a third-party test plugin)")]
pub struct Cube {
    /// factor applied to x^3; must be finite
    #[param(default = 1.0, check = finite)]
    pub scale: f64,
}

impl Activation for Cube {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.powf(3.0)?.affine(self.scale, 0.0)?)
    }
}

pub use twin::Twin;

/// Registers `twin` from this module, so the duplicate-name error names
/// `ember_fixture_plugin_a::twin`.
pub mod twin {
    use candle_core::Tensor;
    use ember_core::{Activation, Hyperparams, Result};

    /// The identity, registered as `twin` here and in `ember-fixture-plugin-b`.
    #[derive(Debug, Hyperparams)]
    #[plugin(activation = "twin", summary = "identity (registered by two fixture crates)")]
    pub struct Twin;

    impl Activation for Twin {
        fn forward(&self, x: &Tensor) -> Result<Tensor> {
            Ok(x.clone())
        }
    }
}
