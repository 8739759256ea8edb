//! Ember's built-in optimizers, registered by name with PyTorch's semantics, argument
//! names and defaults: `sgd`, `adagrad`, `rmsprop`, `adam`, `adamw`, `adadelta`,
//! `adamax`, `nadam`, `radam`, `adafactor`, `rprop`, `asgd`, `muon`; and `lion`
//! (the `lion-pytorch` package's `Lion`).
//!
//! Each is a struct of its hyperparameters (`#[derive(Hyperparams)]`, registered by a
//! `#[plugin(optimizer = ...)]` that also declares the default `lr`) implementing
//! [`ember_core::Optimizer`]: the per-parameter math of one step, with a typed state
//! ([`AdamState`], [`SgdState`], ...) whose fields are PyTorch's state keys (`step`,
//! `exp_avg`, `momentum_buffer`, ...), the names checkpoints store. A driver (see
//! `ember-train`) walks the parameters, keeps one state per parameter, builds one
//! optimizer per parameter group and hands every step the learning rate in effect, and
//! the momentum (`momentum`, or `betas[0]`) when a scheduler cycles it; no optimizer
//! keeps a copy of either. `adamw` is [`Adam`] registered a second time, with decoupled
//! weight decay. `muon` (PyTorch's `torch.optim.Muon`) takes 2-D parameters only and
//! orthogonalizes its momentum by Newton–Schulz in bfloat16, as PyTorch does.
//!
//! `lbfgs` (PyTorch's `torch.optim.LBFGS`, with its strong-Wolfe line search) updates all
//! parameters together as one flat vector and re-evaluates the loss within its step: it
//! is an [`ember_core::ClosureOptimizer`], whose one state the driver keeps and whose
//! step (`OptimizerDriver::step_closure`) gets a closure that recomputes the loss and
//! gradients on the same batch, as PyTorch's `step(closure)`.
//!
//! `lamb`, `lars` and `adan`, which PyTorch lacks, follow the `pytorch-optimizer` package
//! (`pytorch_optimizer.Lamb`, `LARS`, `Adan`): its argument names, defaults and state
//! keys, and the update of its default (batched) path.
//!
//! `schedule_free_adamw` and `schedule_free_sgd` follow the `schedulefree` package
//! (`AdamWScheduleFree`, `SGDScheduleFree`, their `foreach=False` path). They train at a
//! point y and evaluate at an average x of their iterates, which
//! [`ember_core::Optimizer::eval_point`] returns; `schedule_free_adamw` has a fused CPU
//! kernel too.
//!
//! `sgd` (with momentum), `adam`/`adamw`, `rmsprop`, `adagrad`, `rprop`, `asgd`, `adan`,
//! `lion`, `schedule_free_adamw` and `schedule_free_sgd` update contiguous f32/f64 CPU parameters
//! with fused kernels (one pass over memory, split across threads); every optimizer also has a composed-op path, the reference the fused
//! kernels are tested against and the path for other devices and dtypes. The fused
//! kernel is taken exactly when [`ember_core::optim::fused_kind`] allows it, so
//! `EMBER_KERNELS=composed` or [`ember_core::ops::with_kernels`]`(Kernels::Composed, ..)`
//! sends every optimizer down its composed path.
//!
//! A program gets these registrations by linking the crate: the `ember` facade does;
//! otherwise write `use ember_optimizers as _;`.

mod adadelta;
mod adafactor;
mod adagrad;
mod adam;
mod adamax;
mod adan;
mod asgd;
mod common;
mod lamb;
mod lars;
mod lbfgs;
mod lion;
mod muon;
mod nadam;
mod radam;
mod rmsprop;
mod rprop;
mod schedule_free;
mod sgd;

pub use adadelta::{Adadelta, AdadeltaState};
pub use adafactor::{Adafactor, AdafactorEps, AdafactorState};
pub use adagrad::{Adagrad, AdagradState};
pub use adam::{Adam, AdamState};
pub use adamax::{Adamax, AdamaxState};
pub use adan::{Adan, AdanBetas, AdanState};
pub use asgd::{Asgd, AsgdState};
pub use common::Betas;
pub use lamb::{Lamb, LambState};
pub use lars::{Lars, LarsState};
pub use lbfgs::{Lbfgs, LbfgsParamState, LineSearch};
pub use lion::{Lion, LionState};
pub use muon::{AdjustLr, Muon, MuonState, NsCoefficients};
pub use nadam::{Nadam, NadamState};
pub use radam::{Radam, RadamState};
pub use rmsprop::{Rmsprop, RmspropState};
pub use rprop::{Rprop, RpropState};
pub use schedule_free::{ScheduleFreeAdamW, ScheduleFreeAdamWState, ScheduleFreeSgd, ScheduleFreeSgdState};
pub use sgd::{Sgd, SgdState};

#[cfg(test)]
mod tests;
