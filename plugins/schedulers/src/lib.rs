//! Ember's built-in learning-rate schedulers, registered by name with PyTorch's
//! semantics, argument names and defaults: `step`, `multi_step`, `exponential`,
//! `cosine`, `linear`, `cosine_warm_restarts`, `one_cycle`, `reduce_on_plateau`.
//!
//! A schedule updates the learning rates of the optimizer's parameter groups in place,
//! once per step, in PyTorch's order (read the lr, optimizer step, scheduler step); its
//! state (step counter, base rates, plateau counters) saves as scalars.
//!
//! A program gets these registrations by linking the crate: the `ember` facade does;
//! otherwise write `use ember_schedulers as _;`.

mod common;
mod cosine;
mod cosine_warm_restarts;
mod exponential;
mod linear;
mod multi_step;
mod one_cycle;
mod reduce_on_plateau;
mod step;

pub use cosine::CosineLr;
pub use cosine_warm_restarts::CosineWarmRestarts;
pub use exponential::ExponentialLr;
pub use linear::LinearLr;
pub use multi_step::MultiStepLr;
pub use one_cycle::{AnnealStrategy, OneCycle};
pub use reduce_on_plateau::{PlateauMode, ReduceOnPlateau, ThresholdMode};
pub use step::StepLr;
