//! `cosine`: cosine annealing from the base learning rate to eta_min over T_max steps
//! (PyTorch `CosineAnnealingLR`).

use std::f64::consts::PI;

use ember_core::{check, Hyperparams, Result, Scheduler, State};

use crate::common::Progress;

/// η_t = η_min + (η_base - η_min)(1 + cos(π t / T_max)) / 2, computed with PyTorch's
/// recursive (chainable) formula, so the numbers match PyTorch's; past T_max the
/// schedule continues along the cosine.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(scheduler = "cosine", summary = "cosine annealing to eta_min over T_max steps (CosineAnnealingLR)")]
pub struct CosineLr {
    /// steps of a half cosine period; >= 1
    #[param(name = "T_max", check = check::at_least(1))]
    pub t_max: i64,
    /// minimum learning rate
    #[param(default = 0.0)]
    pub eta_min: f64,
    #[param(skip)]
    progress: Progress,
}

impl Scheduler for CosineLr {
    fn init(&mut self, lrs: &mut [f64]) -> Result<()> {
        self.progress = Progress::start(lrs);
        Ok(())
    }

    /// The base is the groups' configured rate (the restart branch past T_max reads it);
    /// the first step leaves the rates as they are.
    fn init_with_base(&mut self, base: &[f64], _lrs: &mut [f64]) -> Result<()> {
        self.progress = Progress::start(base);
        Ok(())
    }

    fn step(&mut self, lrs: &mut [f64], _metric: Option<f64>) -> Result<()> {
        self.progress.last_epoch += 1;
        let (t, t_max, eta_min) = (self.progress.last_epoch, self.t_max, self.eta_min);
        for (i, lr) in lrs.iter_mut().enumerate() {
            let base = self.progress.base(i)?;
            *lr = if (t - 1 - t_max) % (2 * t_max) == 0 {
                *lr + (base - eta_min) * (1.0 - (PI / t_max as f64).cos()) / 2.0
            } else {
                (1.0 + (PI * t as f64 / t_max as f64).cos()) / (1.0 + (PI * (t - 1) as f64 / t_max as f64).cos())
                    * (*lr - eta_min)
                    + eta_min
            };
        }
        Ok(())
    }

    fn state(&self) -> State {
        self.progress.to_state()
    }

    fn load_state(&mut self, state: &State) -> Result<()> {
        self.progress = Progress::load("cosine", state)?;
        Ok(())
    }
}
