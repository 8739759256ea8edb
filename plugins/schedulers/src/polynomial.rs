//! `polynomial`: decay the learning rate to 0 along a polynomial over total_iters steps
//! (PyTorch `PolynomialLR`).

use ember_core::{check, Hyperparams, Result, Scheduler, State};

use crate::common::Progress;

/// η_t = η_base (1 - t / total_iters)^power up to total_iters, then unchanged; computed
/// with PyTorch's recursive (chainable) formula,
/// lr ← lr·((1 - t/T) / (1 - (t-1)/T))^power, so the numbers match PyTorch's.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    scheduler = "polynomial",
    summary = "polynomial decay of the learning rate to 0 over total_iters steps (PolynomialLR)"
)]
pub struct PolynomialLr {
    /// steps of the decay; >= 0
    #[param(default = 5, check = check::at_least(0))]
    pub total_iters: i64,
    /// power of the polynomial; >= 0
    #[param(default = 1.0, check = check::non_negative)]
    pub power: f64,
    #[param(skip)]
    progress: Progress,
}

impl Scheduler for PolynomialLr {
    fn init(&mut self, lrs: &mut [f64]) -> Result<()> {
        self.progress = Progress::start(lrs);
        Ok(())
    }

    fn step(&mut self, lrs: &mut [f64], _metric: Option<f64>) -> Result<()> {
        self.progress.last_epoch += 1;
        let t = self.progress.last_epoch;
        if t <= self.total_iters {
            let total = self.total_iters as f64;
            let factor = ((1.0 - t as f64 / total) / (1.0 - (t - 1) as f64 / total)).powf(self.power);
            lrs.iter_mut().for_each(|lr| *lr *= factor);
        }
        Ok(())
    }

    fn state(&self) -> State {
        self.progress.to_state()
    }

    fn load_state(&mut self, state: &State) -> Result<()> {
        self.progress = Progress::load("polynomial", state)?;
        Ok(())
    }
}
