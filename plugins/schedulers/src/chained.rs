//! `chained`: several schedules stepped together, each applying its change to the rate
//! the ones before it left (PyTorch `ChainedScheduler`).

use ember_core::{BuildContext, Config, Hyperparams, Result, Scheduler, State};

use crate::nested;

/// Every step steps each schedule in order on the same rates, so chainable schedules'
/// factors multiply (`constant` then `exponential`: lr·factor·γᵗ), while one that sets
/// the rate outright (`one_cycle`, `cyclic`, `cosine_warm_restarts`) overrides those
/// before it. Every schedule keeps the configured rates as its base, as in PyTorch. The
/// momentum is the one set by the last schedule that cycles it. Schedules stepped with a
/// metric (`reduce_on_plateau`) are refused. One difference: PyTorch's `OneCycleLR`, and a
/// `CyclicLR` built first, also rewrite the optimizer's `initial_lr`, the base of the
/// schedules built after them; here every base is the configured rate.
///
/// ```toml
/// [scheduler]
/// name = "chained"
/// schedulers = [
///     { name = "constant", factor = 0.1, total_iters = 2 },
///     { name = "exponential", gamma = 0.9 },
/// ]
/// ```
#[derive(Debug, Hyperparams)]
#[plugin(
    scheduler = "chained",
    summary = "schedules stepped together, their changes applied in turn (ChainedScheduler)",
    build = ChainedScheduler::with_children
)]
pub struct ChainedScheduler {
    #[param(doc = "the schedules, stepped in this order: tables with name = \"...\" and the scheduler's arguments")]
    pub schedulers: Vec<Config>,
    #[param(skip)]
    children: Vec<Box<dyn Scheduler>>,
}

impl ChainedScheduler {
    /// The registration's build hook: builds the schedules.
    fn with_children(mut self, ctx: &BuildContext) -> Result<Self> {
        self.children = nested::build("chained", &self.schedulers, ctx)?;
        Ok(self)
    }
}

impl Scheduler for ChainedScheduler {
    fn init(&mut self, lrs: &mut [f64]) -> Result<()> {
        let base = lrs.to_vec();
        self.init_with_base(&base, lrs)
    }

    /// Starts each schedule in turn on the rates the ones before it left, each keeping
    /// `base` as its base (PyTorch constructs them one after another on one optimizer).
    fn init_with_base(&mut self, base: &[f64], lrs: &mut [f64]) -> Result<()> {
        if self.children.len() != self.schedulers.len() {
            // Built without the registry's hook (`Hyperparams::from_config`).
            self.children = nested::build("chained", &self.schedulers, &BuildContext::default())?;
        }
        for child in &mut self.children {
            child.init_with_base(base, lrs)?;
        }
        Ok(())
    }

    fn step(&mut self, lrs: &mut [f64], _metric: Option<f64>) -> Result<()> {
        for (k, child) in self.children.iter_mut().enumerate() {
            child.step(lrs, None).map_err(|e| e.context(format!("chained.schedulers[{k}]")))?;
        }
        Ok(())
    }

    fn cycles_momentum(&self) -> bool {
        self.children.iter().any(|c| c.cycles_momentum())
    }

    /// The last schedule that cycles momentum sets it last, at every step.
    fn momentum(&self, group: usize) -> Option<f64> {
        self.children.iter().rev().find(|c| c.cycles_momentum()).and_then(|c| c.momentum(group))
    }

    /// Each schedule's state under `schedulers.{k}.`.
    fn state(&self) -> State {
        let mut state = State::new();
        nested::save(&mut state, &self.children);
        state
    }

    fn load_state(&mut self, state: &State) -> Result<()> {
        nested::load("chained", state, &mut self.children)
    }
}

#[cfg(test)]
mod tests {
    use ember_core::{BuildContext, Config, Value};

    use super::*;

    fn table(pairs: &[(&str, Value)]) -> Value {
        Value::Table(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    fn build() -> Box<dyn Scheduler> {
        let schedulers = vec![
            table(&[("name", "constant".into()), ("factor", 0.5.into()), ("total_iters", 3i64.into())]),
            table(&[("name", "exponential".into()), ("gamma", 0.9.into())]),
        ];
        let config: Config = [("schedulers".to_string(), Value::List(schedulers))].into();
        ember_core::scheduler("chained", &config, &BuildContext::default()).unwrap()
    }

    #[test]
    fn factors_multiply_and_a_saved_state_resumes_exactly() {
        let mut a = build();
        let mut lrs = vec![1.0];
        a.init(&mut lrs).unwrap();
        assert_eq!(lrs, [0.5]);
        a.step(&mut lrs, None).unwrap();
        assert_eq!(lrs, [0.5 * 0.9]);
        let mut b = build();
        b.init(&mut [1.0]).unwrap();
        b.load_state(&a.state()).unwrap();
        let mut lrs_b = lrs.clone();
        for _ in 0..6 {
            a.step(&mut lrs, None).unwrap();
            b.step(&mut lrs_b, None).unwrap();
            assert_eq!(lrs, lrs_b);
        }
    }
}
