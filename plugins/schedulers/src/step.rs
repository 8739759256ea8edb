//! `step`: multiply the learning rate by gamma every step_size steps (PyTorch `StepLR`).

use ember_core::{ParamSpec, Result, Scheduler, SchedulerEntry, State};

use crate::common::Progress;

/// lr ← lr·γ at every step t with t % step_size == 0 (PyTorch's chainable form).
#[derive(Clone, Debug, PartialEq)]
pub struct StepLr {
    pub step_size: i64,
    pub gamma: f64,
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

ember_core::inventory::submit! {
    SchedulerEntry {
        name: "step",
        summary: "decay the learning rate by gamma every step_size steps (StepLR)",
        params: &[
            ParamSpec::required("step_size", ember_core::ParamType::Int, "period of the decay, in steps; >= 1"),
            ParamSpec::float("gamma", 0.1, "multiplicative factor of the decay"),
        ],
        module: module_path!(),
        build: |p, _| {
            Ok(Box::new(StepLr {
                step_size: p.int_where("step_size", |s| s >= 1, "must be >= 1")?,
                gamma: p.float("gamma")?,
                progress: Progress::default(),
            }))
        },
    }
}
