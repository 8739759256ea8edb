//! `cosine_warm_restarts`: cosine annealing restarted every T_i steps, T_i growing by
//! T_mult (PyTorch `CosineAnnealingWarmRestarts`).

use std::f64::consts::PI;

use ember_core::{check, Hyperparams, Result, Scheduler, State};

use crate::common::{scalar, Progress};

/// η = η_min + (η_base - η_min)(1 + cos(π T_cur / T_i)) / 2; T_cur restarts at 0 when it
/// reaches T_i, and T_i ← T_i·T_mult.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    scheduler = "cosine_warm_restarts",
    summary = "cosine annealing with warm restarts every T_0, T_0 T_mult, ... steps (CosineAnnealingWarmRestarts)"
)]
pub struct CosineWarmRestarts {
    /// steps until the first restart; >= 1
    #[param(name = "T_0", check = check::at_least(1))]
    pub t_0: i64,
    /// growth factor of the period after each restart; >= 1
    #[param(name = "T_mult", default = 1, check = check::at_least(1))]
    pub t_mult: i64,
    /// minimum learning rate
    #[param(default = 0.0)]
    pub eta_min: f64,
    #[param(skip)]
    t_i: i64,
    #[param(skip)]
    t_cur: i64,
    #[param(skip)]
    progress: Progress,
}

impl CosineWarmRestarts {
    fn apply(&self, lrs: &mut [f64]) -> Result<()> {
        for (i, lr) in lrs.iter_mut().enumerate() {
            let base = self.progress.base(i)?;
            *lr = self.eta_min + (base - self.eta_min) * (1.0 + (PI * self.t_cur as f64 / self.t_i as f64).cos()) / 2.0;
        }
        Ok(())
    }
}

impl Scheduler for CosineWarmRestarts {
    fn init(&mut self, lrs: &mut [f64]) -> Result<()> {
        self.progress = Progress::start(lrs);
        self.t_i = self.t_0;
        self.t_cur = 0;
        self.apply(lrs)
    }

    /// Sets the rates from the groups' configured ones, whatever came before.
    fn init_with_base(&mut self, base: &[f64], lrs: &mut [f64]) -> Result<()> {
        self.progress = Progress::start(base);
        self.t_i = self.t_0;
        self.t_cur = 0;
        self.apply(lrs)
    }

    fn step(&mut self, lrs: &mut [f64], _metric: Option<f64>) -> Result<()> {
        self.progress.last_epoch += 1;
        self.t_cur += 1;
        if self.t_cur >= self.t_i {
            self.t_cur -= self.t_i;
            self.t_i *= self.t_mult;
        }
        self.apply(lrs)
    }

    fn state(&self) -> State {
        let mut s = self.progress.to_state();
        s.scalars.insert("T_i".into(), self.t_i as f64);
        s.scalars.insert("T_cur".into(), self.t_cur as f64);
        s
    }

    fn load_state(&mut self, state: &State) -> Result<()> {
        self.progress = Progress::load("cosine_warm_restarts", state)?;
        self.t_i = scalar("cosine_warm_restarts", state, "T_i")? as i64;
        self.t_cur = scalar("cosine_warm_restarts", state, "T_cur")? as i64;
        Ok(())
    }
}
