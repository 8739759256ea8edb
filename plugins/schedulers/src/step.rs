//! `step`: multiply the learning rate by gamma every step_size steps (PyTorch `StepLR`).

use ember_core::{check, Hyperparams, Result, Scheduler, State};

use crate::common::Progress;

/// lr ← lr·γ at every step t with t % step_size == 0 (PyTorch's chainable form).
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(scheduler = "step", summary = "decay the learning rate by gamma every step_size steps (StepLR)")]
pub struct StepLr {
    /// period of the decay, in steps; >= 1
    #[param(check = check::at_least(1))]
    pub step_size: i64,
    /// multiplicative factor of the decay
    #[param(default = 0.1)]
    pub gamma: f64,
    #[param(skip)]
    progress: Progress,
}

impl Scheduler for StepLr {
    fn init(&mut self, lrs: &mut [f64]) -> Result<()> {
        self.progress = Progress::start(lrs);
        Ok(())
    }

    fn step(&mut self, lrs: &mut [f64], _metric: Option<f64>) -> Result<()> {
        self.progress.last_epoch += 1;
        if self.progress.last_epoch % self.step_size == 0 {
            lrs.iter_mut().for_each(|lr| *lr *= self.gamma);
        }
        Ok(())
    }

    fn state(&self) -> State {
        self.progress.to_state()
    }

    fn load_state(&mut self, state: &State) -> Result<()> {
        self.progress = Progress::load("step", state)?;
        Ok(())
    }
}
