//! The `ember` command line as a library. `ember`'s own binary is `ember_cli::main()`;
//! a plugin crate's binary is the same call with the plugin linked, so the full CLI
//! (`plugins`, `train`, `parity`, `bench`) sees the plugin:
//!
//! ```text
//! use my_optimizer as _;   // link the plugin crate, so its registrations exist
//!
//! fn main() {
//!     ember_cli::main()
//! }
//! ```
//!
//! This crate names every built-in plugin crate, so they are always registered.

mod bench;
mod cli;
mod commands;
#[doc(hidden)]
pub mod fuzzing;
mod runs;
mod scaffold;

pub use cli::{main, run};

use ember_activations as _;
use ember_layers as _;
use ember_losses as _;
use ember_metrics as _;
use ember_optimizers as _;
use ember_regularizers as _;
use ember_schedulers as _;
