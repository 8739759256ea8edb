//! `sequential`: schedules one after another, each taking over at a milestone (PyTorch
//! `SequentialLR`), e.g. a linear warm-up then cosine annealing.

use ember_core::{BuildContext, Config, Error, Hyperparams, Result, Scheduler, State, Value};

use crate::common::Progress;
use crate::nested;

/// `schedulers[i]` is in charge from step `milestones[i - 1]` until `milestones[i]`.
/// At its milestone a schedule starts over from the groups' configured rates, as if it
/// had just been constructed (PyTorch's `step(0)`, the closed form at epoch 0); in
/// between it steps as it would alone. The exception is `swalr`: PyTorch's `SWALR` has
/// no closed form, so at its milestone it is evaluated on the rate in effect, and anneals
/// from the rate the schedule before it left (the SWA recipe, e.g. cosine then swalr).
/// As in PyTorch, every schedule is built at the start (so one that cycles momentum sets
/// it from the start) and keeps the configured rates as its base. Schedules stepped with
/// a metric (`reduce_on_plateau`) are refused. One difference: PyTorch's `OneCycleLR`,
/// and a `CyclicLR` built first, also rewrite the optimizer's `initial_lr`, so there the
/// other schedules start over from (and keep as base) that rate; here they use the
/// configured rate.
///
/// ```toml
/// [scheduler]
/// name = "sequential"
/// milestones = [5]
/// schedulers = [
///     { name = "linear", start_factor = 0.1, total_iters = 5 },
///     { name = "cosine", T_max = 45 },
/// ]
/// ```
#[derive(Debug, Hyperparams)]
#[plugin(
    scheduler = "sequential",
    summary = "schedules one after another, switching at milestones, e.g. warm-up then cosine (SequentialLR)",
    build = SequentialLr::with_children
)]
pub struct SequentialLr {
    #[param(doc = "the schedules in order: tables with name = \"...\" and the scheduler's arguments")]
    pub schedulers: Vec<Config>,
    /// the steps at which each next schedule takes over: one fewer than schedulers, increasing
    pub milestones: Vec<i64>,
    #[param(skip)]
    children: Vec<Box<dyn Scheduler>>,
    /// The momentum each group was last given by a schedule that cycles it (PyTorch
    /// leaves it in the optimizer until the next one sets it).
    #[param(skip)]
    momenta: Vec<Option<f64>>,
    /// `last_epoch`, and the groups' configured rates, where each schedule starts over.
    #[param(skip)]
    progress: Progress,
}

impl SequentialLr {
    /// The registration's build hook: checks the milestones and builds the schedules.
    fn with_children(mut self, ctx: &BuildContext) -> Result<Self> {
        self.children = nested::build("sequential", &self.schedulers, ctx)?;
        self.check_milestones()?;
        Ok(self)
    }

    fn check_milestones(&self) -> Result<()> {
        let (n, m) = (self.schedulers.len(), self.milestones.len());
        if m + 1 != n {
            return Err(Error::input(format!(
                "sequential.milestones has {m} entries, but {n} schedulers need {}: the step at which each next one takes over",
                n.saturating_sub(1)
            )));
        }
        let rule = if self.milestones.iter().any(|&s| s < 0) {
            "every milestone must be >= 0"
        } else if self.milestones.windows(2).any(|w| w[0] > w[1]) {
            "must be in increasing order"
        } else {
            return Ok(());
        };
        Err(Error::input(format!("sequential.milestones = {:?} is invalid: {rule}", self.milestones)))
    }

    /// Whether schedule `k` takes over at its milestone from the rate in effect rather
    /// than the configured one: those whose PyTorch class has no closed form and reads
    /// the group's current rate (`SWALR`).
    fn keeps_rate(&self, k: usize) -> bool {
        matches!(self.schedulers[k].get("name"), Some(Value::Str(n)) if n == "swalr")
    }

    /// The schedule in charge at step `t` (PyTorch's `bisect_right(milestones, t)`).
    fn active(&self, t: i64) -> usize {
        self.milestones.iter().filter(|&&m| m <= t).count()
    }

    /// Notes the momentum schedule `k` now sets, if it cycles momentum.
    fn follow(&mut self, k: usize) {
        let child = &self.children[k];
        if child.cycles_momentum() {
            for (g, m) in self.momenta.iter_mut().enumerate() {
                if let Some(v) = child.momentum(g) {
                    *m = Some(v);
                }
            }
        }
    }
}

impl Scheduler for SequentialLr {
    fn init(&mut self, lrs: &mut [f64]) -> Result<()> {
        if self.children.len() != self.schedulers.len() {
            // Built without the registry's hook (`Hyperparams::from_config`).
            self.children = nested::build("sequential", &self.schedulers, &BuildContext::default())?;
            self.check_milestones()?;
        }
        self.progress = Progress::start(lrs);
        self.momenta = vec![None; lrs.len()];
        // PyTorch constructs every schedule first, each on the configured rates, then
        // starts over with the one in charge at step 0.
        for child in &mut self.children {
            child.init(&mut lrs.to_vec())?;
        }
        for k in 0..self.children.len() {
            self.follow(k);
        }
        let k = self.active(0);
        self.children[k].init(lrs)?;
        self.follow(k);
        Ok(())
    }

    /// Starts from the configured rates whatever came before, as PyTorch's constructor
    /// resets each group's lr to its `initial_lr`.
    fn init_with_base(&mut self, base: &[f64], lrs: &mut [f64]) -> Result<()> {
        lrs.iter_mut().zip(base).for_each(|(lr, b)| *lr = *b);
        self.init(lrs)
    }

    fn step(&mut self, lrs: &mut [f64], _metric: Option<f64>) -> Result<()> {
        self.progress.last_epoch += 1;
        let t = self.progress.last_epoch;
        let k = self.active(t);
        if k > 0 && self.milestones[k - 1] == t {
            if !self.keeps_rate(k) {
                for (i, lr) in lrs.iter_mut().enumerate() {
                    *lr = self.progress.base(i)?;
                }
            }
            self.children[k].init(lrs).map_err(|e| e.context(format!("sequential.schedulers[{k}]")))?;
        } else {
            self.children[k].step(lrs, None).map_err(|e| e.context(format!("sequential.schedulers[{k}]")))?;
        }
        self.follow(k);
        Ok(())
    }

    fn cycles_momentum(&self) -> bool {
        self.children.iter().any(|c| c.cycles_momentum())
    }

    fn momentum(&self, group: usize) -> Option<f64> {
        self.momenta.get(group).copied().flatten()
    }

    /// `last_epoch`, the configured rates (`base_lr.{i}`), the momentum last set
    /// (`momentum.{g}`) and each schedule's state under `schedulers.{k}.`.
    fn state(&self) -> State {
        let mut state = self.progress.to_state();
        for (g, m) in self.momenta.iter().enumerate() {
            if let Some(m) = m {
                state.scalars.insert(format!("momentum.{g}"), *m);
            }
        }
        nested::save(&mut state, &self.children);
        state
    }

    fn load_state(&mut self, state: &State) -> Result<()> {
        self.progress = Progress::load("sequential", state)?;
        self.momenta = (0..self.progress.base_lrs.len()).map(|g| state.scalar(&format!("momentum.{g}"))).collect();
        nested::load("sequential", state, &mut self.children)
    }
}

#[cfg(test)]
mod tests {
    use ember_core::{BuildContext, Config, Value};

    use super::*;

    fn table(pairs: &[(&str, Value)]) -> Value {
        Value::Table(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    fn build(schedulers: Vec<Value>, milestones: &[i64]) -> Result<Box<dyn Scheduler>> {
        let mut config = Config::new();
        config.insert("schedulers".into(), Value::List(schedulers));
        config.insert("milestones".into(), Value::List(milestones.iter().map(|&m| Value::Int(m)).collect()));
        ember_core::scheduler("sequential", &config, &BuildContext::default())
    }

    fn warmup_cosine() -> Result<Box<dyn Scheduler>> {
        build(
            vec![
                table(&[("name", "linear".into()), ("start_factor", 0.1.into()), ("total_iters", 5i64.into())]),
                table(&[("name", "cosine".into()), ("T_max", 15i64.into())]),
            ],
            &[5],
        )
    }

    fn run(s: &mut dyn Scheduler, lrs: &mut [f64], steps: usize) -> Vec<f64> {
        let mut out = Vec::new();
        for _ in 0..steps {
            out.push(lrs[0]);
            s.step(lrs, None).unwrap();
        }
        out
    }

    #[test]
    fn a_saved_state_resumes_exactly() {
        let (mut a, mut b) = (warmup_cosine().unwrap(), warmup_cosine().unwrap());
        let (mut lrs_a, mut lrs_b) = (vec![0.1], vec![0.1]);
        a.init(&mut lrs_a).unwrap();
        b.init(&mut lrs_b).unwrap();
        run(a.as_mut(), &mut lrs_a, 8);
        b.load_state(&a.state()).unwrap();
        lrs_b.copy_from_slice(&lrs_a);
        assert_eq!(run(a.as_mut(), &mut lrs_a, 20), run(b.as_mut(), &mut lrs_b, 20));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let err = |s: Vec<Value>, m: &[i64]| build(s, m).unwrap_err().to_string();
        let cosine = || table(&[("name", "cosine".into()), ("T_max", 10i64.into())]);
        assert_eq!(
            err(vec![cosine(), cosine()], &[]),
            "sequential.milestones has 0 entries, but 2 schedulers need 1: the step at which each next one takes over"
        );
        assert_eq!(
            err(vec![cosine(), cosine(), cosine()], &[5, 3]),
            "sequential.milestones = [5, 3] is invalid: must be in increasing order"
        );
        assert_eq!(
            err(vec![cosine(), cosine()], &[-1]),
            "sequential.milestones = [-1] is invalid: every milestone must be >= 0"
        );
        let e = err(vec![cosine(), table(&[("T_max", 10i64.into())])], &[3]);
        assert!(e.starts_with("sequential.schedulers[1]: no `name`"), "{e}");
        let e = err(vec![cosine(), table(&[("name", "reduce_on_plateau".into())])], &[3]);
        assert!(e.starts_with("sequential.schedulers[1]: 'reduce_on_plateau' is stepped with a metric"), "{e}");
        let e = err(vec![table(&[("name", "cosine".into()), ("T_maxx", 10i64.into())])], &[]);
        assert!(e.starts_with("sequential.schedulers[0]: "), "{e}");
        assert!(e.contains("T_maxx"), "{e}");
        assert!(err(vec![], &[]).starts_with("sequential.schedulers is empty"));
    }
}
