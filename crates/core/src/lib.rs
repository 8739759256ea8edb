//! Ember's core: the five plugin kinds, the registry that finds them by name, typed
//! hyperparameters and the library error.
//!
//! A plugin crate implements one of the traits ([`Activation`], [`Loss`], [`Optimizer`],
//! [`Scheduler`], [`Regularizer`]) and registers a constructor under a name:
//!
//! ```
//! use candle_core::Tensor;
//! use ember_core::{Activation, ActivationEntry, ParamSpec, Result};
//!
//! /// `x * x`: a toy activation.
//! #[derive(Debug)]
//! struct Square;
//!
//! impl Activation for Square {
//!     fn forward(&self, x: &Tensor) -> Result<Tensor> {
//!         Ok(x.sqr()?)
//!     }
//! }
//!
//! ember_core::inventory::submit! {
//!     ActivationEntry {
//!         name: "square_doc",
//!         summary: "x * x",
//!         params: &[],
//!         module: module_path!(),
//!         build: |_params, _ctx| Ok(Box::new(Square)),
//!     }
//! }
//!
//! # fn main() -> ember_core::Result<()> {
//! let act = ember_core::activation("square_doc", &Default::default(), &Default::default())?;
//! let y = act.forward(&Tensor::new(&[3f32], &candle_core::Device::Cpu)?)?;
//! assert_eq!(y.to_vec1::<f32>()?, [9.0]);
//! # Ok(())
//! # }
//! ```
//!
//! A registration only exists in a program that links the crate holding it: a binary or
//! test that wants a plugin crate's plugins must name that crate in code
//! (`use my_plugins as _;`). The `ember` facade names every built-in plugin crate.

pub mod env;
mod error;
pub mod memory;
pub mod ops;
mod params;
mod plugins;
pub mod registry;
pub mod rng;
mod state;
pub mod threads;
mod value;

pub use error::{Error, Result};
pub use params::{DefaultValue, ParamSpec, ParamType, Params};
pub use plugins::{Activation, Loss, Optimizer, Regularizer, RegularizerRole, Scheduler, StepContext};
pub use registry::{
    activation, loss, optimizer, regularizer, scheduler, ActivationEntry, BuildContext, Entry, Kind, LossEntry,
    OptimizerEntry, PluginInfo, RegularizerEntry, SchedulerEntry,
};
pub use state::State;
pub use value::{Config, Value};

/// Re-exported so that plugin crates can register with `ember_core::inventory::submit!`
/// without depending on `inventory` themselves.
#[doc(hidden)]
pub use inventory;
