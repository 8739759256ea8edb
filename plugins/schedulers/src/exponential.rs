//! `exponential`: multiply the learning rate by gamma every step (PyTorch `ExponentialLR`).

use ember_core::{Hyperparams, Result, Scheduler, State};

use crate::common::Progress;

/// lr ← lr·γ at every step.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(scheduler = "exponential", summary = "decay the learning rate by gamma every step (ExponentialLR)")]
pub struct ExponentialLr {
    /// multiplicative factor of the decay
    pub gamma: f64,
    #[param(skip)]
    progress: Progress,
}

impl Scheduler for ExponentialLr {
    fn init(&mut self, lrs: &mut [f64]) -> Result<()> {
        self.progress = Progress::start(lrs);
        Ok(())
    }

    fn step(&mut self, lrs: &mut [f64], _metric: Option<f64>) -> Result<()> {
        self.progress.last_epoch += 1;
        lrs.iter_mut().for_each(|lr| *lr *= self.gamma);
        Ok(())
    }

    fn state(&self) -> State {
        self.progress.to_state()
    }

    fn load_state(&mut self, state: &State) -> Result<()> {
        self.progress = Progress::load("exponential", state)?;
        Ok(())
    }
}
