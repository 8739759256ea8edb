//! `one_cycle`: the 1cycle policy, warm up to max_lr then anneal far below the start
//! (PyTorch `OneCycleLR`).

use std::f64::consts::PI;

use ember_core::{Error, ParamSpec, ParamType, Result, Scheduler, SchedulerEntry, State};

use crate::common::Progress;

/// The learning rate starts at max_lr / div_factor, rises to max_lr over the first
/// pct_start of total_steps, then falls to start / final_div_factor (or, with
/// three_phase, back to the start and then down), by cosine or linear annealing.
/// Only the learning rate is cycled: PyTorch's momentum cycling (`cycle_momentum`) is
/// not supported, so set `cycle_momentum = false` for PyTorch's numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct OneCycle {
    pub max_lr: f64,
    pub total_steps: i64,
    pub pct_start: f64,
    pub linear: bool,
    pub div_factor: f64,
    pub final_div_factor: f64,
    pub three_phase: bool,
    progress: Progress,
}

impl OneCycle {
    fn lr_at(&self, step: i64) -> Result<f64> {
        if step > self.total_steps {
            return Err(Error::input(format!(
                "one_cycle: stepped {step} times, but total_steps is {}; raise total_steps",
                self.total_steps
            )));
        }
        let initial = self.max_lr / self.div_factor;
        let min = initial / self.final_div_factor;
        let total = self.total_steps as f64;
        let phases: Vec<(f64, f64, f64)> = if self.three_phase {
            vec![
                (self.pct_start * total - 1.0, initial, self.max_lr),
                (2.0 * self.pct_start * total - 2.0, self.max_lr, initial),
                (total - 1.0, initial, min),
            ]
        } else {
            vec![(self.pct_start * total - 1.0, initial, self.max_lr), (total - 1.0, self.max_lr, min)]
        };
        let step = step as f64;
        let mut start_step = 0.0;
        for (i, &(end_step, start, end)) in phases.iter().enumerate() {
            if step <= end_step || i == phases.len() - 1 {
                let pct = (step - start_step) / (end_step - start_step);
                return Ok(if self.linear {
                    (end - start) * pct + start
                } else {
                    end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0)
                });
            }
            start_step = end_step;
        }
        unreachable!("the last phase always matches")
    }
}

impl Scheduler for OneCycle {
    fn init(&mut self, lrs: &mut [f64]) -> Result<()> {
        self.progress = Progress::start(lrs);
        let lr = self.lr_at(0)?;
        lrs.iter_mut().for_each(|l| *l = lr);
        Ok(())
    }

    fn step(&mut self, lrs: &mut [f64], _metric: Option<f64>) -> Result<()> {
        let lr = self.lr_at(self.progress.last_epoch + 1)?;
        self.progress.last_epoch += 1;
        lrs.iter_mut().for_each(|l| *l = lr);
        Ok(())
    }

    fn state(&self) -> State {
        self.progress.to_state()
    }

    fn load_state(&mut self, state: &State) -> Result<()> {
        self.progress = Progress::load("one_cycle", state)?;
        Ok(())
    }
}

ember_core::inventory::submit! {
    SchedulerEntry {
        name: "one_cycle",
        summary: "1cycle policy: warm up to max_lr, then anneal (OneCycleLR; learning rate only)",
        params: &[
            ParamSpec::required("max_lr", ParamType::Float, "peak learning rate; > 0"),
            ParamSpec::optional("total_steps", ParamType::Int, "steps in the cycle (or give epochs and steps_per_epoch)"),
            ParamSpec::optional("epochs", ParamType::Int, "with steps_per_epoch, total_steps = epochs * steps_per_epoch"),
            ParamSpec::optional("steps_per_epoch", ParamType::Int, "steps per epoch"),
            ParamSpec::float("pct_start", 0.3, "fraction of the cycle spent rising; in [0, 1]"),
            ParamSpec::choice("anneal_strategy", &["cos", "linear"], "cos", "annealing shape"),
            ParamSpec::bool("cycle_momentum", false, "must be false: Ember cycles only the learning rate (PyTorch defaults to true)"),
            ParamSpec::float("div_factor", 25.0, "initial lr = max_lr / div_factor"),
            ParamSpec::float("final_div_factor", 1e4, "final lr = initial lr / final_div_factor"),
            ParamSpec::bool("three_phase", false, "rise, fall back to the initial lr, then anneal"),
        ],
        module: module_path!(),
        build: |p, _| {
            if p.bool("cycle_momentum")? {
                return Err(p.invalid("cycle_momentum", "momentum cycling is not supported; set cycle_momentum = false"));
            }
            let total_steps = match (p.opt_int("total_steps")?, p.opt_int("epochs")?, p.opt_int("steps_per_epoch")?) {
                (Some(t), _, _) => t,
                (None, Some(e), Some(s)) => e * s,
                _ => return Err(Error::input("one_cycle needs total_steps, or epochs and steps_per_epoch")),
            };
            if total_steps < 1 {
                return Err(Error::input(format!("one_cycle: total_steps = {total_steps} is invalid: must be >= 1")));
            }
            Ok(Box::new(OneCycle {
                max_lr: p.float_where("max_lr", |l| l > 0.0, "must be > 0")?,
                total_steps,
                pct_start: p.float_where("pct_start", |x| (0.0..=1.0).contains(&x), "must be in [0, 1]")?,
                linear: p.str("anneal_strategy")? == "linear",
                div_factor: p.float_where("div_factor", |x| x > 0.0, "must be > 0")?,
                final_div_factor: p.float_where("final_div_factor", |x| x > 0.0, "must be > 0")?,
                three_phase: p.bool("three_phase")?,
                progress: Progress::default(),
            }))
        },
    }
}
