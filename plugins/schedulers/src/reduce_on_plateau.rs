//! `reduce_on_plateau`: cut the learning rate when a metric stops improving (PyTorch
//! `ReduceLROnPlateau`).

use ember_core::{check, Error, Hyperparams, ParamEnum, Result, Scheduler, State};

use crate::common::{scalar, Progress};

/// After more than `patience` steps without improvement of the metric (by `threshold`,
/// relative or absolute), lr ← max(lr·factor, min_lr), then wait `cooldown` steps.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    scheduler = "reduce_on_plateau",
    summary = "reduce the learning rate when a metric has stopped improving (ReduceLROnPlateau)"
)]
pub struct ReduceOnPlateau {
    /// min: lower metric is better; max: higher
    #[param(default = "min")]
    pub mode: PlateauMode,
    /// lr <- lr * factor; in [0, 1)
    #[param(default = 0.1, check = check::unit_interval)]
    pub factor: f64,
    /// steps without improvement before reducing; >= 0
    #[param(default = 10, check = check::at_least(0))]
    pub patience: i64,
    /// minimum change that counts as improvement; >= 0
    #[param(default = 1e-4, check = check::non_negative)]
    pub threshold: f64,
    /// threshold relative to the best value, or absolute
    #[param(default = "rel")]
    pub threshold_mode: ThresholdMode,
    /// steps to wait after a reduction; >= 0
    #[param(default = 0, check = check::at_least(0))]
    pub cooldown: i64,
    /// lower bound on the learning rate; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub min_lr: f64,
    /// smaller reductions are skipped
    #[param(default = 1e-8)]
    pub eps: f64,
    #[param(skip = f64::INFINITY)]
    best: f64,
    #[param(skip)]
    num_bad_epochs: i64,
    #[param(skip)]
    cooldown_counter: i64,
    #[param(skip)]
    progress: Progress,
}

/// Which direction of the metric is an improvement (PyTorch's `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ParamEnum)]
pub enum PlateauMode {
    /// Lower is better.
    Min,
    /// Higher is better.
    Max,
}

/// How `threshold` compares with the best value (PyTorch's `threshold_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ParamEnum)]
pub enum ThresholdMode {
    /// Relative: best * (1 ± threshold).
    Rel,
    /// Absolute: best ± threshold.
    Abs,
}

impl ReduceOnPlateau {
    fn is_better(&self, a: f64) -> bool {
        match (self.mode, self.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => a < self.best * (1.0 - self.threshold),
            (PlateauMode::Min, ThresholdMode::Abs) => a < self.best - self.threshold,
            (PlateauMode::Max, ThresholdMode::Rel) => a > self.best * (self.threshold + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => a > self.best + self.threshold,
        }
    }
}

impl Scheduler for ReduceOnPlateau {
    fn init(&mut self, lrs: &mut [f64]) -> Result<()> {
        self.progress = Progress::start(lrs);
        self.best = if self.mode == PlateauMode::Max { f64::NEG_INFINITY } else { f64::INFINITY };
        self.num_bad_epochs = 0;
        self.cooldown_counter = 0;
        Ok(())
    }

    fn needs_metric(&self) -> bool {
        true
    }

    fn step(&mut self, lrs: &mut [f64], metric: Option<f64>) -> Result<()> {
        let current =
            metric.ok_or_else(|| Error::input("reduce_on_plateau needs the monitored metric at every step"))?;
        self.progress.last_epoch += 1;
        if self.is_better(current) {
            self.best = current;
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0;
        }
        if self.num_bad_epochs > self.patience {
            for lr in lrs.iter_mut() {
                let new_lr = (*lr * self.factor).max(self.min_lr);
                if *lr - new_lr > self.eps {
                    *lr = new_lr;
                }
            }
            self.cooldown_counter = self.cooldown;
            self.num_bad_epochs = 0;
        }
        Ok(())
    }

    fn state(&self) -> State {
        let mut s = self.progress.to_state();
        s.scalars.insert("best".into(), self.best);
        s.scalars.insert("num_bad_epochs".into(), self.num_bad_epochs as f64);
        s.scalars.insert("cooldown_counter".into(), self.cooldown_counter as f64);
        s
    }

    fn load_state(&mut self, state: &State) -> Result<()> {
        let name = "reduce_on_plateau";
        self.progress = Progress::load(name, state)?;
        self.best = scalar(name, state, "best")?;
        self.num_bad_epochs = scalar(name, state, "num_bad_epochs")? as i64;
        self.cooldown_counter = scalar(name, state, "cooldown_counter")? as i64;
        Ok(())
    }
}
