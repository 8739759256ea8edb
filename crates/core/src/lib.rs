//! Ember's core: the seven plugin kinds, the registry that finds them by name, typed
//! hyperparameters, the [`Module`] trait and the library error.
//!
//! A plugin crate implements one of the traits ([`Activation`], [`Loss`], [`Optimizer`],
//! [`Scheduler`], [`Regularizer`], [`Layer`], [`Metric`]) on a struct whose fields are its hyperparameters, and
//! registers it under a name with one derive: each hyperparameter is stated once, with
//! PyTorch's name, default and a doc line (see [`Hyperparams`] for every attribute).
//!
//! ```
//! use candle_core::Tensor;
//! use ember_core::{check, Activation, Hyperparams, Result};
//!
//! /// `x * scale`: a toy activation.
//! #[derive(Debug, Hyperparams)]
//! #[plugin(activation = "scaled_doc", summary = "x * scale")]
//! struct Scaled {
//!     /// the factor; > 0
//!     #[param(default = 2.0, check = check::positive)]
//!     scale: f64,
//! }
//!
//! impl Activation for Scaled {
//!     fn forward(&self, x: &Tensor) -> Result<Tensor> {
//!         Ok(x.affine(self.scale, 0.0)?)
//!     }
//! }
//!
//! # fn main() -> ember_core::Result<()> {
//! let act = ember_core::activation("scaled_doc", &Default::default(), &Default::default())?;
//! let y = act.forward(&Tensor::new(&[3f32], &candle_core::Device::Cpu)?)?;
//! assert_eq!(y.to_vec1::<f32>()?, [6.0]);
//! let bad = [("scale".to_string(), ember_core::Value::Float(-1.0))].into();
//! let e = ember_core::activation("scaled_doc", &bad, &Default::default()).unwrap_err();
//! assert_eq!(e.to_string(), "scaled_doc.scale = -1.0 is invalid: must be > 0");
//! # Ok(())
//! # }
//! ```
//!
//! A registration only exists in a program that links the crate holding it: a binary or
//! test that wants a plugin crate's plugins must name that crate in code
//! (`use my_plugins as _;`). The `ember` facade names every built-in plugin crate.

pub mod check;
pub mod device;
pub mod env;
mod error;
pub mod layer;
pub mod memory;
pub mod metric;
pub mod module;
pub mod ops;
pub mod optim;
pub mod params;
mod plugins;
pub mod registry;
pub mod rng;
mod state;
pub mod threads;
mod value;

pub use ember_macros::{Hyperparams, OptimizerState, ParamEnum};
pub use error::{suggest, Context, Error, IoContext, Result};
pub use layer::{Built, Layer, LayerContext};
pub use metric::{Direction, Metric, MetricState};
pub use module::Module;
pub use optim::{AnyState, Closure, ClosureOptimizer, DynOptimizer, Optimizer, OptimizerState, StepContext};
pub use params::{DefaultValue, Dims, Hyperparams, ParamEnum, ParamSpec, ParamType, ParamValue, Params};
pub use plugins::{Activation, Loss, LossArg, LossTargets, Regularizer, RegularizerRole, Scheduler};
pub use registry::{
    activation, layer, loss, metric, optimizer, regularizer, scheduler, ActivationEntry, BuildContext, Entry, Kind,
    LayerEntry, LossEntry, MetricEntry, OptimizerEntry, PluginInfo, RegularizerEntry, SchedulerEntry,
};
pub use state::State;
pub use value::{Config, Value};

/// Re-exported so that plugin crates can register with `ember_core::inventory::submit!`
/// without depending on `inventory` themselves.
#[doc(hidden)]
pub use inventory;
