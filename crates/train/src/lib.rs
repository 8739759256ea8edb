//! Ember's training machinery: the [`Learner`] (epochs, metrics, checkpoints, resume,
//! plots) over a model described by a run config ([`RunConfig`]) or written in Rust
//! ([`Learner::builder`]), with custom steps and callbacks ([`hooks`]); the optimizer
//! driver ([`optim`]) that runs any registered optimizer over a model's named
//! parameters, with PyTorch-style parameter groups, gradient clipping and saveable state.

pub mod builder;
pub mod checkpoint;
pub mod clip;
pub mod config;
pub mod data;
pub mod distributed;
pub mod glob;
pub mod hooks;
pub mod learner;
pub mod optim;
pub mod plot;
pub mod regularize;
pub mod report;
pub mod rundir;
pub mod tensorboard;

pub use builder::LearnerBuilder;
pub use clip::{clip_grad_norm, clip_grad_value, NormType};
pub use config::{RunConfig, TrainSpec};
pub use distributed::{Collective, Solo};
pub use hooks::{Callback, Control, StepArgs, StepEnd, StepOutput, TrainStep};
pub use learner::{build_model, EpochRecord, Evaluation, Learner, Phases, Progress, Reporter, Summary};
pub use optim::{load_scheduler_state, scheduler_state_dict, OptimizerDriver, ParamGroupSpec};
pub use regularize::{Regularization, RegularizerSpec};
