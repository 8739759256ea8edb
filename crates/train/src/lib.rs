//! Ember's training machinery. Today: the optimizer driver ([`optim`]) that runs any
//! registered optimizer over a model's named parameters, with PyTorch-style parameter
//! groups, gradient clipping and saveable state, and the scheduler state helpers. The
//! Learner (epochs, metrics, checkpoints) arrives with the Learner issue.

pub mod checkpoint;
pub mod clip;
pub mod config;
pub mod data;
pub mod glob;
pub mod learner;
pub mod optim;
pub mod plot;
pub mod regularize;
pub mod rundir;

pub use clip::{clip_grad_norm, clip_grad_value, NormType};
pub use config::RunConfig;
pub use learner::{build_model, EpochRecord, Learner, Phases, Progress, Reporter, Summary};
pub use optim::{load_scheduler_state, scheduler_state_dict, OptimizerDriver, ParamGroupSpec};
pub use regularize::{Regularization, RegularizerSpec};
