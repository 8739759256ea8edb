//! `multi_step`: multiply the learning rate by gamma at each milestone (PyTorch `MultiStepLR`).

use ember_core::{Hyperparams, Result, Scheduler, State};

use crate::common::Progress;

/// lr ← lr·γᵏ at step t, where k counts how often t appears in `milestones`.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(scheduler = "multi_step", summary = "decay the learning rate by gamma at each milestone step (MultiStepLR)")]
pub struct MultiStepLr {
    /// steps at which to decay
    pub milestones: Vec<i64>,
    /// multiplicative factor of the decay
    #[param(default = 0.1)]
    pub gamma: f64,
    #[param(skip)]
    progress: Progress,
}

impl Scheduler for MultiStepLr {
    fn init(&mut self, lrs: &mut [f64]) -> Result<()> {
        self.progress = Progress::start(lrs);
        Ok(())
    }

    fn step(&mut self, lrs: &mut [f64], _metric: Option<f64>) -> Result<()> {
        self.progress.last_epoch += 1;
        let hits = self.milestones.iter().filter(|&&m| m == self.progress.last_epoch).count();
        if hits > 0 {
            let factor = self.gamma.powi(hits as i32);
            lrs.iter_mut().for_each(|lr| *lr *= factor);
        }
        Ok(())
    }

    fn state(&self) -> State {
        self.progress.to_state()
    }

    fn load_state(&mut self, state: &State) -> Result<()> {
        self.progress = Progress::load("multi_step", state)?;
        Ok(())
    }
}
