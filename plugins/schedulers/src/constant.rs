//! `constant`: multiply the learning rate by a constant factor for the first total_iters
//! steps (PyTorch `ConstantLR`).

use ember_core::{check, Hyperparams, Result, Scheduler, State};

use crate::common::Progress;

/// lr ← lr·factor at the start, lr ← lr·(1/factor) at step total_iters (PyTorch's
/// chainable form, so other schedules' changes in between are kept).
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(scheduler = "constant", summary = "multiply the learning rate by factor until step total_iters (ConstantLR)")]
pub struct ConstantLr {
    /// factor until total_iters; in (0, 1]
    #[param(default = 0.3333333333333333, check = positive_fraction)] // 1/3, PyTorch's default
    pub factor: f64,
    /// steps with the factor; >= 0
    #[param(default = 5, check = check::at_least(0))]
    pub total_iters: i64,
    #[param(skip)]
    progress: Progress,
}

/// In `(0, 1]`: PyTorch takes 0 too, then divides by it at total_iters.
fn positive_fraction(v: &f64) -> check::Check {
    if *v > 0.0 && *v <= 1.0 {
        Ok(())
    } else {
        Err("must be in (0, 1]".into())
    }
}

impl Scheduler for ConstantLr {
    fn init(&mut self, lrs: &mut [f64]) -> Result<()> {
        self.progress = Progress::start(lrs);
        lrs.iter_mut().for_each(|lr| *lr *= self.factor);
        Ok(())
    }

    fn step(&mut self, lrs: &mut [f64], _metric: Option<f64>) -> Result<()> {
        self.progress.last_epoch += 1;
        if self.progress.last_epoch == self.total_iters {
            let undo = 1.0 / self.factor;
            lrs.iter_mut().for_each(|lr| *lr *= undo);
        }
        Ok(())
    }

    fn state(&self) -> State {
        self.progress.to_state()
    }

    fn load_state(&mut self, state: &State) -> Result<()> {
        self.progress = Progress::load("constant", state)?;
        Ok(())
    }
}
