//! `one_cycle`: the 1cycle policy, warm up to max_lr then anneal far below the start,
//! cycling the momentum inversely (PyTorch `OneCycleLR`).

use std::f64::consts::PI;

use ember_core::{check, BuildContext, Error, Hyperparams, ParamEnum, Result, Scheduler, State};

use crate::common::Progress;

/// The learning rate starts at max_lr / div_factor, rises to max_lr over the first
/// pct_start of total_steps, then falls to start / final_div_factor (or, with
/// three_phase, back to the start and then down), by cosine or linear annealing.
/// With `cycle_momentum` (PyTorch's default) the momentum (or `betas[0]`) moves the
/// other way with the same annealing: max_momentum → base_momentum while the learning
/// rate rises, back to max_momentum while it falls (three_phase: then stays there).
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    scheduler = "one_cycle",
    summary = "1cycle policy: warm up to max_lr, then anneal; momentum cycled inversely (OneCycleLR)",
    build = OneCycle::validate
)]
pub struct OneCycle {
    /// peak learning rate; > 0
    #[param(check = check::positive)]
    pub max_lr: f64,
    /// steps in the cycle (or give epochs and steps_per_epoch)
    pub total_steps: Option<i64>,
    /// with steps_per_epoch, total_steps = epochs * steps_per_epoch
    pub epochs: Option<i64>,
    /// steps per epoch
    pub steps_per_epoch: Option<i64>,
    /// fraction of the cycle spent rising; in [0, 1]
    #[param(default = 0.3, check = check::probability)]
    pub pct_start: f64,
    /// annealing shape
    #[param(default = "cos")]
    pub anneal_strategy: AnnealStrategy,
    #[param(
        default = true,
        doc = "also cycle momentum (or betas[0]) inversely to the learning rate, between max_momentum and base_momentum"
    )]
    pub cycle_momentum: bool,
    #[param(default = 0.85, doc = "momentum (or betas[0]) at the peak learning rate, the low end of its cycle")]
    pub base_momentum: f64,
    #[param(default = 0.95, doc = "momentum (or betas[0]) at the start and end of the cycle, the high end")]
    pub max_momentum: f64,
    /// initial lr = max_lr / div_factor
    #[param(default = 25.0, check = check::positive)]
    pub div_factor: f64,
    /// final lr = initial lr / final_div_factor
    #[param(default = 1e4, check = check::positive)]
    pub final_div_factor: f64,
    /// rise, fall back to the initial lr, then anneal
    #[param(default = false)]
    pub three_phase: bool,
    #[param(skip)]
    progress: Progress,
}

/// The shape of each phase (PyTorch's `anneal_strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ParamEnum)]
pub enum AnnealStrategy {
    /// Half a cosine from the start value to the end value.
    Cos,
    /// A straight line.
    Linear,
}

/// One phase of the cycle: its last step and the (start, end) of each quantity.
struct Phase {
    end_step: f64,
    lr: (f64, f64),
    momentum: (f64, f64),
}

impl OneCycle {
    /// The steps in the cycle: `total_steps`, or `epochs * steps_per_epoch`.
    pub fn total(&self) -> Result<i64> {
        let total_steps = match (self.total_steps, self.epochs, self.steps_per_epoch) {
            (Some(t), _, _) => t,
            (None, Some(e), Some(s)) => e * s,
            _ => return Err(Error::input("one_cycle needs total_steps, or epochs and steps_per_epoch")),
        };
        if total_steps < 1 {
            return Err(Error::input(format!("one_cycle: total_steps = {total_steps} is invalid: must be >= 1")));
        }
        Ok(total_steps)
    }

    /// The registration's build hook: total_steps, or epochs and steps_per_epoch.
    fn validate(self, _ctx: &BuildContext) -> Result<Self> {
        self.total()?;
        Ok(self)
    }

    /// The phase that holds `step` and how far through it `step` is (PyTorch's `pct`).
    fn locate(&self, step: i64) -> Result<(Phase, f64)> {
        let total_steps = self.total()?;
        if step > total_steps {
            return Err(Error::input(format!(
                "one_cycle: stepped {step} times, but total_steps is {total_steps}; raise total_steps"
            )));
        }
        let initial = self.max_lr / self.div_factor;
        let min = initial / self.final_div_factor;
        let total = total_steps as f64;
        let (base_m, max_m) = (self.base_momentum, self.max_momentum);
        let phases = if self.three_phase {
            vec![
                Phase { end_step: self.pct_start * total - 1.0, lr: (initial, self.max_lr), momentum: (max_m, base_m) },
                Phase {
                    end_step: 2.0 * self.pct_start * total - 2.0,
                    lr: (self.max_lr, initial),
                    momentum: (base_m, max_m),
                },
                Phase { end_step: total - 1.0, lr: (initial, min), momentum: (max_m, max_m) },
            ]
        } else {
            vec![
                Phase { end_step: self.pct_start * total - 1.0, lr: (initial, self.max_lr), momentum: (max_m, base_m) },
                Phase { end_step: total - 1.0, lr: (self.max_lr, min), momentum: (base_m, max_m) },
            ]
        };
        let last = phases.len() - 1;
        let step = step as f64;
        let mut start_step = 0.0;
        for (i, phase) in phases.into_iter().enumerate() {
            if step <= phase.end_step || i == last {
                let pct = (step - start_step) / (phase.end_step - start_step);
                return Ok((phase, pct));
            }
            start_step = phase.end_step;
        }
        unreachable!("the last phase always matches")
    }

    /// PyTorch's `_annealing_cos` or `_annealing_linear`.
    fn anneal(&self, (start, end): (f64, f64), pct: f64) -> f64 {
        match self.anneal_strategy {
            AnnealStrategy::Linear => (end - start) * pct + start,
            AnnealStrategy::Cos => end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0),
        }
    }

    fn lr_at(&self, step: i64) -> Result<f64> {
        let (phase, pct) = self.locate(step)?;
        Ok(self.anneal(phase.lr, pct))
    }

    /// The momentum (or `betas[0]`) at `step`.
    fn momentum_at(&self, step: i64) -> Result<f64> {
        let (phase, pct) = self.locate(step)?;
        Ok(self.anneal(phase.momentum, pct))
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

    fn cycles_momentum(&self) -> bool {
        self.cycle_momentum
    }

    /// The same for every group (PyTorch's scalar `base_momentum` / `max_momentum`),
    /// a function of the step count alone, so it is right after `load_state` too.
    fn momentum(&self, _group: usize) -> Option<f64> {
        if self.cycle_momentum {
            self.momentum_at(self.progress.last_epoch).ok()
        } else {
            None
        }
    }

    fn state(&self) -> State {
        self.progress.to_state()
    }

    fn load_state(&mut self, state: &State) -> Result<()> {
        self.progress = Progress::load("one_cycle", state)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ember_core::{BuildContext, Config, Value};

    use super::*;

    /// PyTorch's momentum for `one_cycle/momentum-cos/f64` (tests/parity/schedulers.json).
    #[rustfmt::skip]
    const COS_MOMENTUM: [f64; 20] = [
        0.95, 0.9404508497187474, 0.9154508497187474, 0.8845491502812526, 0.8595491502812526, 0.85,
        0.8512536043909088, 0.854951556604879, 0.8609084258765984, 0.8688255099070633, 0.878305813044122,
        0.8888739533021842, 0.8999999999999999, 0.9111260466978157, 0.9216941869558779, 0.9311744900929366,
        0.9390915741234015, 0.945048443395121, 0.9487463956090911, 0.95
    ];

    /// PyTorch's momentum for `one_cycle/momentum-three-phase/f64` (tests/parity/schedulers.json).
    #[rustfmt::skip]
    const THREE_PHASE_MOMENTUM: [f64; 24] = [
        0.95, 0.9437173308072291, 0.9264482005163481, 0.9025324584419356, 0.8779802924221183, 0.8589618279396362,
        0.8502565338304052, 0.8540521094189885, 0.8693947008726168, 0.8924286111247711, 0.917365262642241,
        0.9379379061346396, 0.9489764970626247, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95
    ];

    /// PyTorch's momentum for `one_cycle/momentum-custom/f64` (tests/parity/schedulers.json).
    #[rustfmt::skip]
    const CUSTOM_MOMENTUM: [f64; 12] = [
        0.99, 0.8964177086211675, 0.7364659415151903, 0.7016195301973563, 0.7194263164512564, 0.7545939787304836,
        0.8022604997104188, 0.8558358635700315, 0.9079131421720459, 0.9512925214153247, 0.9799766935534096, 0.99
    ];

    fn build(pairs: &[(&str, Value)]) -> Result<Box<dyn Scheduler>> {
        let config: Config = pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        ember_core::scheduler("one_cycle", &config, &BuildContext::default())
    }

    /// The momentum in effect before each of `steps` steps, as the parity loop reads it.
    fn run(s: &mut dyn Scheduler, steps: usize) -> Vec<f64> {
        let mut lrs = vec![0.1];
        s.init(&mut lrs).unwrap();
        let mut momentum = Vec::new();
        for _ in 0..steps {
            momentum.push(s.momentum(0).unwrap());
            s.step(&mut lrs, None).unwrap();
        }
        momentum
    }

    fn assert_close(got: &[f64], expected: &[f64], what: &str) {
        assert_eq!(got.len(), expected.len(), "{what}");
        for (k, (g, e)) in got.iter().zip(expected).enumerate() {
            assert!((g - e).abs() <= 1e-15 + 1e-13 * e.abs(), "{what} at step {k}: got {g}, expected {e}");
        }
    }

    #[test]
    fn momentum_cycles_as_pytorch_does() {
        let mut s = build(&[("max_lr", 1.0.into()), ("total_steps", 20i64.into())]).unwrap();
        assert!(s.cycles_momentum());
        let momentum = run(s.as_mut(), 20);
        assert_close(&momentum, &COS_MOMENTUM, "cos momentum");

        let mut s = build(&[
            ("max_lr", 0.3.into()),
            ("total_steps", 24i64.into()),
            ("three_phase", true.into()),
            ("div_factor", 10.0.into()),
            ("final_div_factor", 100.0.into()),
        ])
        .unwrap();
        let momentum = run(s.as_mut(), 24);
        assert_close(&momentum, &THREE_PHASE_MOMENTUM, "three-phase momentum");

        let mut s = build(&[
            ("max_lr", 0.2.into()),
            ("epochs", 3i64.into()),
            ("steps_per_epoch", 4i64.into()),
            ("base_momentum", 0.7.into()),
            ("max_momentum", 0.99.into()),
        ])
        .unwrap();
        let momentum = run(s.as_mut(), 12);
        assert_close(&momentum, &CUSTOM_MOMENTUM, "custom momentum");
    }

    #[test]
    fn momentum_follows_the_step_count_after_load_state() {
        let config = [("max_lr", 1.0.into()), ("total_steps", 20i64.into())];
        let (mut a, mut b) = (build(&config).unwrap(), build(&config).unwrap());
        let (mut lrs_a, mut lrs_b) = (vec![0.1], vec![0.1]);
        a.init(&mut lrs_a).unwrap();
        b.init(&mut lrs_b).unwrap();
        for _ in 0..7 {
            a.step(&mut lrs_a, None).unwrap();
        }
        b.load_state(&a.state()).unwrap();
        assert_eq!(b.momentum(0), a.momentum(0));
        assert_eq!(b.momentum(0), Some(COS_MOMENTUM[7]));
    }

    #[test]
    fn without_cycle_momentum_there_is_no_momentum() {
        let mut s =
            build(&[("max_lr", 1.0.into()), ("total_steps", 20i64.into()), ("cycle_momentum", false.into())]).unwrap();
        assert!(!s.cycles_momentum());
        s.init(&mut [0.1]).unwrap();
        assert_eq!(s.momentum(0), None);
    }

    #[test]
    fn total_steps_rules_keep_their_messages() {
        let err = |pairs: &[(&str, Value)]| build(pairs).unwrap_err().to_string();
        assert_eq!(err(&[("max_lr", 0.1.into())]), "one_cycle needs total_steps, or epochs and steps_per_epoch");
        assert_eq!(
            err(&[("max_lr", 0.1.into()), ("epochs", 0i64.into()), ("steps_per_epoch", 4i64.into())]),
            "one_cycle: total_steps = 0 is invalid: must be >= 1"
        );
        assert_eq!(
            err(&[("max_lr", 0.1.into()), ("total_steps", 5i64.into()), ("anneal_strategy", "cosine".into())]),
            "one_cycle.anneal_strategy = \"cosine\" is invalid: must be one of \"cos\", \"linear\""
        );
        let keys: Vec<&str> = <OneCycle as Hyperparams>::PARAMS.iter().map(|p| p.name).collect();
        assert_eq!(
            keys,
            [
                "max_lr",
                "total_steps",
                "epochs",
                "steps_per_epoch",
                "pct_start",
                "anneal_strategy",
                "cycle_momentum",
                "base_momentum",
                "max_momentum",
                "div_factor",
                "final_div_factor",
                "three_phase"
            ]
        );
    }
}
