//! `linear`: ramp the learning rate factor linearly from start_factor to end_factor
//! (PyTorch `LinearLR`).

use ember_core::{ParamSpec, Result, Scheduler, SchedulerEntry, State};

use crate::common::Progress;

/// The factor goes from `start_factor` to `end_factor` over `total_iters` steps, then
/// stays; PyTorch's chainable formula.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearLr {
    pub start_factor: f64,
    pub end_factor: f64,
    pub total_iters: i64,
    progress: Progress,
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

ember_core::inventory::submit! {
    SchedulerEntry {
        name: "linear",
        summary: "linear ramp of the learning rate factor from start_factor to end_factor (LinearLR)",
        params: &[
            ParamSpec::float("start_factor", 1.0 / 3.0, "factor at step 0; in (0, 1]"),
            ParamSpec::float("end_factor", 1.0, "factor from total_iters on; in [0, 1]"),
            ParamSpec::int("total_iters", 5, "steps of the ramp; >= 0"),
        ],
        module: module_path!(),
        build: |p, _| {
            Ok(Box::new(LinearLr {
                start_factor: p.float_where("start_factor", |f| f > 0.0 && f <= 1.0, "must be in (0, 1]")?,
                end_factor: p.float_where("end_factor", |f| (0.0..=1.0).contains(&f), "must be in [0, 1]")?,
                total_iters: p.int_where("total_iters", |t| t >= 0, "must be >= 0")?,
                progress: Progress::default(),
            }))
        },
    }
}
