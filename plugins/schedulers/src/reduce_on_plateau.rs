//! `reduce_on_plateau`: cut the learning rate when a metric stops improving (PyTorch
//! `ReduceLROnPlateau`).

use ember_core::{Error, ParamSpec, Result, Scheduler, SchedulerEntry, State};

use crate::common::{scalar, Progress};

/// After more than `patience` steps without improvement of the metric (by `threshold`,
/// relative or absolute), lr ← max(lr·factor, min_lr), then wait `cooldown` steps.
#[derive(Clone, Debug, PartialEq)]
pub struct ReduceOnPlateau {
    pub maximize: bool,
    pub factor: f64,
    pub patience: i64,
    pub threshold: f64,
    pub relative: bool,
    pub cooldown: i64,
    pub min_lr: f64,
    pub eps: f64,
    best: f64,
    num_bad_epochs: i64,
    cooldown_counter: i64,
    progress: Progress,
}

impl ReduceOnPlateau {
    fn is_better(&self, a: f64) -> bool {
        match (self.maximize, self.relative) {
            (false, true) => a < self.best * (1.0 - self.threshold),
            (false, false) => a < self.best - self.threshold,
            (true, true) => a > self.best * (self.threshold + 1.0),
            (true, false) => a > self.best + self.threshold,
        }
    }
}

impl Scheduler for ReduceOnPlateau {
    fn init(&mut self, lrs: &mut [f64]) -> Result<()> {
        self.progress = Progress::start(lrs);
        self.best = if self.maximize { f64::NEG_INFINITY } else { f64::INFINITY };
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

ember_core::inventory::submit! {
    SchedulerEntry {
        name: "reduce_on_plateau",
        summary: "reduce the learning rate when a metric has stopped improving (ReduceLROnPlateau)",
        params: &[
            ParamSpec::choice("mode", &["min", "max"], "min", "min: lower metric is better; max: higher"),
            ParamSpec::float("factor", 0.1, "lr <- lr * factor; in [0, 1)"),
            ParamSpec::int("patience", 10, "steps without improvement before reducing; >= 0"),
            ParamSpec::float("threshold", 1e-4, "minimum change that counts as improvement; >= 0"),
            ParamSpec::choice("threshold_mode", &["rel", "abs"], "rel", "threshold relative to the best value, or absolute"),
            ParamSpec::int("cooldown", 0, "steps to wait after a reduction; >= 0"),
            ParamSpec::float("min_lr", 0.0, "lower bound on the learning rate; >= 0"),
            ParamSpec::float("eps", 1e-8, "smaller reductions are skipped"),
        ],
        module: module_path!(),
        build: |p, _| {
            Ok(Box::new(ReduceOnPlateau {
                maximize: p.str("mode")? == "max",
                factor: p.float_where("factor", |f| (0.0..1.0).contains(&f), "must be in [0, 1)")?,
                patience: p.int_where("patience", |x| x >= 0, "must be >= 0")?,
                threshold: p.float_where("threshold", |x| x >= 0.0, "must be >= 0")?,
                relative: p.str("threshold_mode")? == "rel",
                cooldown: p.int_where("cooldown", |x| x >= 0, "must be >= 0")?,
                min_lr: p.float_where("min_lr", |x| x >= 0.0, "must be >= 0")?,
                eps: p.float("eps")?,
                best: f64::INFINITY,
                num_bad_epochs: 0,
                cooldown_counter: 0,
                progress: Progress::default(),
            }))
        },
    }
}
