//! Ember's built-in optimizers, registered by name with PyTorch's semantics, argument
//! names and defaults: `sgd`, `adagrad`, `rmsprop`, `adam`, `adamw`, `adadelta`,
//! `adamax`, `nadam`, `radam`.
//!
//! Each is the per-parameter math of an [`ember_core::Optimizer`]: a driver (see
//! `ember-train`) walks the parameters, keeps one state per parameter and builds one
//! optimizer per parameter group. `sgd` (with momentum), `adam`/`adamw`, `rmsprop` and
//! `adagrad` update contiguous f32/f64 CPU parameters with fused kernels (one pass over
//! memory, split across threads); every optimizer also has a composed-op path, the
//! reference the fused kernels are tested against and the path for other devices.
//!
//! A program gets these registrations by linking the crate: the `ember` facade does;
//! otherwise write `use ember_optimizers as _;`.

mod adadelta;
mod adagrad;
mod adam;
mod adamax;
mod adamw;
mod common;
mod nadam;
mod radam;
mod rmsprop;
mod sgd;

pub use adadelta::Adadelta;
pub use adagrad::Adagrad;
pub use adam::Adam;
pub use adamax::Adamax;
pub use nadam::Nadam;
pub use radam::Radam;
pub use rmsprop::Rmsprop;
pub use sgd::Sgd;

use ember_core::{registry, BuildContext, Config, Optimizer, Params, Result};

/// Builds the optimizer `name` like the registry does, but forced onto the composed-op
/// path (for the optimizers that have a fused CPU kernel): the reference
/// implementation the fused kernels are checked against.
pub fn composed(name: &str, config: &Config) -> Result<Box<dyn Optimizer>> {
    let entry = registry::find::<dyn Optimizer>(name)?;
    let p = Params::resolve(&format!("optimizer '{name}'"), name, entry.params, config)?;
    Ok(match name {
        "sgd" => Box::new(Sgd { fused: false, ..Sgd::from_params(&p)? }),
        "adam" => Box::new(Adam { fused: false, ..Adam::from_params(&p, false)? }),
        "adamw" => Box::new(Adam { fused: false, ..Adam::from_params(&p, true)? }),
        "rmsprop" => Box::new(Rmsprop { fused: false, ..Rmsprop::from_params(&p)? }),
        "adagrad" => Box::new(Adagrad { fused: false, ..Adagrad::from_params(&p)? }),
        _ => (entry.build)(&p, &BuildContext::default())?,
    })
}
