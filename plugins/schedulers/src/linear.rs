//! `linear`: ramp the learning rate factor linearly from start_factor to end_factor
//! (PyTorch `LinearLR`).

use ember_core::{check, Hyperparams, Result, Scheduler, State};

use crate::common::Progress;

/// The factor goes from `start_factor` to `end_factor` over `total_iters` steps, then
/// stays; PyTorch's chainable formula.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    scheduler = "linear",
    summary = "linear ramp of the learning rate factor from start_factor to end_factor (LinearLR)"
)]
pub struct LinearLr {
    /// factor at step 0; in (0, 1]
    #[param(default = 0.3333333333333333, check = positive_fraction)] // 1/3, PyTorch's default
    pub start_factor: f64,
    /// factor from total_iters on; in [0, 1]
    #[param(default = 1.0, check = check::probability)]
    pub end_factor: f64,
    /// steps of the ramp; >= 0
    #[param(default = 5, check = check::at_least(0))]
    pub total_iters: i64,
    #[param(skip)]
    progress: Progress,
}

/// In `(0, 1]`.
fn positive_fraction(v: &f64) -> check::Check {
    if *v > 0.0 && *v <= 1.0 {
        Ok(())
    } else {
        Err("must be in (0, 1]".into())
    }
}

impl Scheduler for LinearLr {
    fn init(&mut self, lrs: &mut [f64]) -> Result<()> {
        self.progress = Progress::start(lrs);
        lrs.iter_mut().for_each(|lr| *lr *= self.start_factor);
        Ok(())
    }

    fn step(&mut self, lrs: &mut [f64], _metric: Option<f64>) -> Result<()> {
        self.progress.last_epoch += 1;
        let t = self.progress.last_epoch;
        if t <= self.total_iters {
            let (s, e) = (self.start_factor, self.end_factor);
            let factor = 1.0 + (e - s) / (self.total_iters as f64 * s + (t - 1) as f64 * (e - s));
            lrs.iter_mut().for_each(|lr| *lr *= factor);
        }
        Ok(())
    }

    fn state(&self) -> State {
        self.progress.to_state()
    }

    fn load_state(&mut self, state: &State) -> Result<()> {
        self.progress = Progress::load("linear", state)?;
        Ok(())
    }
}
