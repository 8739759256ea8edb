//! The Signum optimizer (Bernstein et al. 2018, "signSGD: Compressed Optimisation for
//! Non-Convex Problems"): signSGD with momentum, as an Ember plugin registered as
//! `signum`, with the arguments, defaults and update of `pytorch_optimizer.SignSGD`. This
//! crate is the example of a third-party optimizer crate: see its README for the
//! walkthrough.
//!
//! A program gets the registration by linking the crate: `use ember_signum as _;`.

mod signum;

pub use signum::{Signum, SignumState};
