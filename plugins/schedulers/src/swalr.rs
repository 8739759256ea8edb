//! `swalr`: anneal the learning rate to a constant swa_lr, for stochastic weight averaging
//! (PyTorch `torch.optim.swa_utils.SWALR`).

use std::f64::consts::PI;

use ember_core::{check, Hyperparams, Result, Scheduler, State};

use crate::common::Progress;
use crate::one_cycle::AnnealStrategy;

/// Over `anneal_epochs` steps each group's rate moves from where it is to `swa_lr`, by
/// half a cosine or a straight line, then stays at `swa_lr`. PyTorch's formula is
/// recursive on the group's current rate (it undoes the previous step's interpolation,
/// then applies this one), so the anneal starts from whatever rate is in effect: inside
/// `sequential`, from the rate the schedule before it left, as with PyTorch's
/// `SequentialLR` — the usual SWA recipe. With `anneal_epochs = 0` the rate is `swa_lr`
/// from the start. Meant to be stepped per epoch (`interval = "epoch"`).
///
/// ```toml
/// [scheduler]
/// name = "sequential"
/// milestones = [75]
/// schedulers = [
///     { name = "cosine", T_max = 100 },
///     { name = "swalr", swa_lr = 0.05, anneal_epochs = 5 },
/// ]
/// ```
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    scheduler = "swalr",
    summary = "anneal the learning rate to a constant swa_lr, for stochastic weight averaging (SWALR)"
)]
pub struct SwaLr {
    /// the rate annealed to and then held, for every parameter group; >= 0
    #[param(check = check::non_negative)]
    pub swa_lr: f64,
    /// steps of the anneal; 0 sets swa_lr at once; >= 0
    #[param(default = 10, check = check::at_least(0))]
    pub anneal_epochs: i64,
    /// shape of the anneal: cos (half a cosine) or linear
    #[param(default = "cos")]
    pub anneal_strategy: AnnealStrategy,
    /// `last_epoch` counts the steps taken (PyTorch's `_step_count - 1`); the base rates
    /// are kept, unused, as every schedule's state has them.
    #[param(skip)]
    progress: Progress,
}

impl SwaLr {
    /// PyTorch's `anneal_func`: `_cosine_anneal` or `_linear_anneal`.
    fn anneal(&self, t: f64) -> f64 {
        match self.anneal_strategy {
            AnnealStrategy::Cos => (1.0 - (PI * t).cos()) / 2.0,
            AnnealStrategy::Linear => t,
        }
    }

    /// PyTorch's `get_lr` at the current step count, applied to the rates in effect.
    fn apply(&self, lrs: &mut [f64]) {
        let mut step = self.progress.last_epoch;
        if self.anneal_epochs == 0 {
            step = step.max(1);
        }
        let span = self.anneal_epochs.max(1) as f64;
        let prev_alpha = self.anneal(((step - 1) as f64 / span).clamp(0.0, 1.0));
        let alpha = self.anneal((step as f64 / span).clamp(0.0, 1.0));
        let swa_lr = self.swa_lr;
        for lr in lrs.iter_mut() {
            // `_get_initial_lr`: the rate before the previous step's interpolation.
            let prev = if prev_alpha == 1.0 { swa_lr } else { (*lr - prev_alpha * swa_lr) / (1.0 - prev_alpha) };
            *lr = swa_lr * alpha + prev * (1.0 - alpha);
        }
    }
}

impl Scheduler for SwaLr {
    /// PyTorch's constructor takes the first step at step count 0: the rates stay, or
    /// become swa_lr when anneal_epochs is 0.
    fn init(&mut self, lrs: &mut [f64]) -> Result<()> {
        self.progress = Progress::start(lrs);
        self.apply(lrs);
        Ok(())
    }

    fn step(&mut self, lrs: &mut [f64], _metric: Option<f64>) -> Result<()> {
        self.progress.last_epoch += 1;
        self.apply(lrs);
        Ok(())
    }

    fn state(&self) -> State {
        self.progress.to_state()
    }

    fn load_state(&mut self, state: &State) -> Result<()> {
        self.progress = Progress::load("swalr", state)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ember_core::{BuildContext, Config, Value};

    use super::*;

    fn config(pairs: &[(&str, Value)]) -> Config {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn build(name: &str, pairs: &[(&str, Value)]) -> Result<Box<dyn Scheduler>> {
        ember_core::scheduler(name, &config(pairs), &BuildContext::default())
    }

    fn swalr(swa_lr: f64, epochs: i64, strategy: &str) -> Box<dyn Scheduler> {
        build(
            "swalr",
            &[("swa_lr", swa_lr.into()), ("anneal_epochs", epochs.into()), ("anneal_strategy", strategy.into())],
        )
        .unwrap()
    }

    /// The rate of each group in effect before each of `steps` steps, as the parity loop
    /// reads it.
    fn run(s: &mut dyn Scheduler, lrs: &[f64], steps: usize) -> Vec<Vec<f64>> {
        let mut lrs = lrs.to_vec();
        s.init(&mut lrs).unwrap();
        let mut out = Vec::new();
        for _ in 0..steps {
            out.push(lrs.clone());
            s.step(&mut lrs, None).unwrap();
        }
        out
    }

    fn first_group(rows: Vec<Vec<f64>>) -> Vec<f64> {
        rows.into_iter().map(|r| r[0]).collect()
    }

    #[test]
    fn linear_anneal_reaches_swa_lr_and_stays() {
        // Binary fractions, so every value is exact: halfway at step 1, swa_lr from step 2.
        let rows = run(swalr(0.25, 2, "linear").as_mut(), &[1.0, 0.5], 5);
        assert_eq!(
            rows,
            [[1.0, 0.5], [0.625, 0.375], [0.25, 0.25], [0.25, 0.25], [0.25, 0.25]].map(|r| r.to_vec()).to_vec()
        );
    }

    #[test]
    fn cosine_anneal_matches_pytorch() {
        // PyTorch: SWALR(SGD(lr=0.1), swa_lr=0.03, anneal_epochs=3) (schedulers_swalr.json).
        let got = first_group(run(swalr(0.03, 3, "cos").as_mut(), &[0.1], 6));
        let expected = [0.1, 0.0825, 0.047500000000000014, 0.03, 0.03, 0.03];
        for (k, (g, e)) in got.iter().zip(expected).enumerate() {
            assert!((g - e).abs() <= 1e-15, "step {k}: got {g}, expected {e}");
        }
    }

    #[test]
    fn zero_anneal_epochs_sets_swa_lr_at_once_and_one_takes_a_step() {
        for strategy in ["cos", "linear"] {
            assert_eq!(first_group(run(swalr(0.02, 0, strategy).as_mut(), &[0.1], 3)), [0.02; 3], "{strategy}");
            assert_eq!(first_group(run(swalr(0.3, 1, strategy).as_mut(), &[0.05], 3)), [0.05, 0.3, 0.3], "{strategy}");
        }
    }

    #[test]
    fn defaults_are_pytorchs() {
        let s = SwaLr::from_config("swalr", &config(&[("swa_lr", 0.05.into())])).unwrap();
        assert_eq!((s.swa_lr, s.anneal_epochs, s.anneal_strategy), (0.05, 10, AnnealStrategy::Cos));
        let keys: Vec<&str> = <SwaLr as Hyperparams>::PARAMS.iter().map(|p| p.name).collect();
        assert_eq!(keys, ["swa_lr", "anneal_epochs", "anneal_strategy"]);
    }

    #[test]
    fn the_anneal_starts_from_the_rate_in_effect() {
        // The formula reads the current rate: moved between steps (as `chained` does), the
        // anneal carries on from the new rate.
        let mut s = swalr(0.25, 2, "linear");
        let mut lrs = vec![1.0];
        s.init(&mut lrs).unwrap();
        lrs[0] = 0.5;
        s.step(&mut lrs, None).unwrap();
        assert_eq!(lrs, [0.375]);
    }

    #[test]
    fn a_saved_state_resumes_exactly() {
        for strategy in ["cos", "linear"] {
            let (mut a, mut b) = (swalr(0.01, 6, strategy), swalr(0.01, 6, strategy));
            let (mut lrs_a, mut lrs_b) = (vec![0.1, 0.07], vec![0.1, 0.07]);
            a.init(&mut lrs_a).unwrap();
            b.init(&mut lrs_b).unwrap();
            for _ in 0..3 {
                a.step(&mut lrs_a, None).unwrap();
            }
            b.load_state(&a.state()).unwrap();
            lrs_b.copy_from_slice(&lrs_a);
            for k in 3..10 {
                a.step(&mut lrs_a, None).unwrap();
                b.step(&mut lrs_b, None).unwrap();
                assert_eq!(lrs_a, lrs_b, "{strategy} at step {k}");
            }
            assert_eq!(lrs_a, [0.01, 0.01], "{strategy}");
        }
    }

    #[test]
    fn inside_sequential_it_anneals_from_the_rate_the_schedule_before_left() {
        // PyTorch's SequentialLR evaluates SWALR at its milestone without resetting the
        // rate (no closed form): the rate at the milestone is cosine's last one.
        let sequential = |epochs: i64| {
            build(
                "sequential",
                &[
                    (
                        "schedulers",
                        Value::List(vec![
                            Value::Table(config(&[("name", "cosine".into()), ("T_max", 10i64.into())])),
                            Value::Table(config(&[
                                ("name", "swalr".into()),
                                ("swa_lr", 0.02.into()),
                                ("anneal_epochs", epochs.into()),
                            ])),
                        ]),
                    ),
                    ("milestones", Value::List(vec![Value::Int(6)])),
                ],
            )
            .unwrap()
        };
        let annealed = first_group(run(sequential(3).as_mut(), &[0.1], 12));
        // PyTorch: sequential/cosine-swalr-cos-epochs3-swa0.02/f64 (schedulers_swalr.json).
        let expected = [
            0.1,
            0.09755282581475769,
            0.09045084971874738,
            0.07938926261462367,
            0.06545084971874739,
            0.05000000000000001,
            0.05000000000000001,
            0.0425,
            0.027500000000000004,
            0.02,
            0.02,
            0.02,
        ];
        for (k, (g, e)) in annealed.iter().zip(expected).enumerate() {
            assert!((g - e).abs() <= 1e-15, "step {k}: got {g}, expected {e}");
        }
        assert_eq!(annealed[6], annealed[5], "the rate at the milestone is the one cosine left");
        // With anneal_epochs = 0 the rate is swa_lr from the milestone on.
        let got = first_group(run(sequential(0).as_mut(), &[0.1], 9));
        assert_eq!(got[..6], annealed[..6]);
        assert_eq!(got[6..], [0.02; 3]);
    }

    #[test]
    fn bad_values_name_the_rule() {
        let err = |pairs: &[(&str, Value)]| build("swalr", pairs).unwrap_err().to_string();
        assert!(err(&[]).contains("needs the key 'swa_lr'"), "{}", err(&[]));
        assert_eq!(
            err(&[("swa_lr", 0.05.into()), ("anneal_epochs", (-1i64).into())]),
            "swalr.anneal_epochs = -1 is invalid: must be >= 0"
        );
        assert_eq!(
            err(&[("swa_lr", 0.05.into()), ("anneal_strategy", "cosine".into())]),
            "swalr.anneal_strategy = \"cosine\" is invalid: must be one of \"cos\", \"linear\""
        );
        assert_eq!(err(&[("swa_lr", (-0.1).into())]), "swalr.swa_lr = -0.1 is invalid: must be >= 0");
    }
}
