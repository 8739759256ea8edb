//! Ember's built-in learning-rate schedulers, registered by name with PyTorch's
//! semantics, argument names and defaults: `step`, `multi_step`, `exponential`,
//! `cosine`, `linear`, `constant`, `polynomial`, `cosine_warm_restarts`, `cyclic`,
//! `one_cycle`, `reduce_on_plateau`, `swalr` (annealing to the constant rate of stochastic
//! weight averaging), and the composites `sequential` (one schedule after
//! another, e.g. warm-up then cosine) and `chained` (schedules stepped together).
//!
//! A schedule updates the learning rates of the optimizer's parameter groups in place,
//! once per step, in PyTorch's order (read the lr, optimizer step, scheduler step); its
//! state (step counter, base rates, plateau counters) saves as scalars.
//!
//! A program gets these registrations by linking the crate: the `ember` facade does;
//! otherwise write `use ember_schedulers as _;`.

mod chained;
mod common;
mod constant;
mod cosine;
mod cosine_warm_restarts;
mod cyclic;
mod exponential;
mod linear;
mod multi_step;
mod nested;
mod one_cycle;
mod polynomial;
mod reduce_on_plateau;
mod sequential;
mod step;
mod swalr;

pub use chained::ChainedScheduler;
pub use constant::ConstantLr;
pub use cosine::CosineLr;
pub use cosine_warm_restarts::CosineWarmRestarts;
pub use cyclic::{CyclicLr, CyclicMode, ScaleMode};
pub use exponential::ExponentialLr;
pub use linear::LinearLr;
pub use multi_step::MultiStepLr;
pub use one_cycle::{AnnealStrategy, OneCycle};
pub use polynomial::PolynomialLr;
pub use reduce_on_plateau::{PlateauMode, ReduceOnPlateau, ThresholdMode};
pub use sequential::SequentialLr;
pub use step::StepLr;
pub use swalr::SwaLr;

#[cfg(test)]
mod tests {
    use ember_core::{BuildContext, Config, Scheduler, Value};

    fn config(pairs: &[(&str, Value)]) -> Config {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn table(pairs: &[(&str, Value)]) -> Value {
        Value::Table(config(pairs))
    }

    fn build(name: &str, pairs: &[(&str, Value)]) -> Box<dyn Scheduler> {
        ember_core::scheduler(name, &config(pairs), &BuildContext::default()).unwrap()
    }

    fn cyclic() -> Value {
        table(&[
            ("name", "cyclic".into()),
            ("base_lr", 0.01.into()),
            ("max_lr", 0.1.into()),
            ("step_size_up", 3i64.into()),
            ("mode", "triangular2".into()),
        ])
    }

    /// Every new schedule, alone and nested, over two groups.
    fn all() -> Vec<(&'static str, Vec<(&'static str, Value)>)> {
        let warmup = table(&[("name", "linear".into()), ("start_factor", 0.1.into()), ("total_iters", 3i64.into())]);
        let cosine = table(&[("name", "cosine".into()), ("T_max", 4i64.into())]);
        vec![
            ("constant", vec![("factor", 0.5.into()), ("total_iters", 7i64.into())]),
            ("polynomial", vec![("total_iters", 9i64.into()), ("power", 2.0.into())]),
            ("cyclic", vec![("base_lr", 0.01.into()), ("max_lr", 0.1.into()), ("step_size_up", 2i64.into())]),
            (
                "sequential",
                vec![
                    ("schedulers", Value::List(vec![warmup.clone(), cyclic(), cosine.clone()])),
                    ("milestones", Value::List(vec![Value::Int(3), Value::Int(7)])),
                ],
            ),
            ("chained", vec![("schedulers", Value::List(vec![warmup, cosine, cyclic()]))]),
        ]
    }

    #[test]
    fn every_new_schedule_resumes_from_its_saved_state() {
        for (name, pairs) in all() {
            let (mut a, mut b) = (build(name, &pairs), build(name, &pairs));
            let mut lrs_a = vec![0.1, 0.05];
            a.init(&mut lrs_a).unwrap();
            for _ in 0..5 {
                a.step(&mut lrs_a, None).unwrap();
            }
            b.init(&mut [0.1, 0.05]).unwrap();
            b.load_state(&a.state()).unwrap();
            let mut lrs_b = lrs_a.clone();
            assert_eq!(a.momentum(1), b.momentum(1), "{name} momentum after load_state");
            for k in 5..14 {
                a.step(&mut lrs_a, None).unwrap();
                b.step(&mut lrs_b, None).unwrap();
                assert_eq!(lrs_a, lrs_b, "{name} at step {k}");
                assert_eq!(a.momentum(0), b.momentum(0), "{name} momentum at step {k}");
            }
        }
    }

    #[test]
    fn composites_cycle_momentum_when_a_schedule_inside_does() {
        for (name, pairs) in all() {
            let mut s = build(name, &pairs);
            s.init(&mut [0.1]).unwrap();
            let cycles = name != "constant" && name != "polynomial";
            assert_eq!(s.cycles_momentum(), cycles, "{name}");
            // PyTorch's CyclicLR sets max_momentum when it is constructed.
            assert_eq!(s.momentum(0), cycles.then_some(0.9), "{name}");
        }
        let mut s =
            build("cyclic", &[("base_lr", 0.01.into()), ("max_lr", 0.1.into()), ("cycle_momentum", false.into())]);
        s.init(&mut [0.1]).unwrap();
        assert!(!s.cycles_momentum());
        assert_eq!(s.momentum(0), None);
    }

    #[test]
    fn bad_values_name_the_rule() {
        let err = |name: &str, pairs: &[(&str, Value)]| {
            ember_core::scheduler(name, &config(pairs), &BuildContext::default()).unwrap_err().to_string()
        };
        assert_eq!(err("constant", &[("factor", 0.0.into())]), "constant.factor = 0.0 is invalid: must be in (0, 1]");
        assert_eq!(err("polynomial", &[("power", (-1.0).into())]), "polynomial.power = -1.0 is invalid: must be >= 0");
        let lrs: [(&str, Value); 2] = [("base_lr", 0.01.into()), ("max_lr", 0.1.into())];
        assert_eq!(
            err("cyclic", &[lrs[0].clone(), lrs[1].clone(), ("mode", "triangle".into())]),
            "cyclic.mode = \"triangle\" is invalid: must be one of \"triangular\", \"triangular2\", \"exp_range\""
        );
        assert_eq!(
            err("cyclic", &[lrs[0].clone(), lrs[1].clone(), ("step_size_up", 0i64.into())]),
            "cyclic.step_size_up = 0 is invalid: must be >= 1"
        );
        assert!(err("cyclic", &[lrs[0].clone()]).contains("needs the key 'max_lr'"));
        assert!(err("chained", &[("schedulers", Value::List(vec![]))]).starts_with("chained.schedulers is empty"));
    }
}
