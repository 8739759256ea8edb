//! The `signum` plugin against the reference trajectories in signum.json, through the same
//! code as `ember parity`, and the plugin as users meet it: listed and buildable by name.

use ember_core::{registry, DynOptimizer, Kind, StepContext};
use ember_signum as _;

#[test]
fn signum_matches_the_reference() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/signum.json");
    let file = ember_parity::load(&path).unwrap();
    assert!(!file.cases.is_empty());
    for (i, case) in file.cases.iter().enumerate() {
        let r = ember_parity::run_case(case, i);
        assert!(r.passed(), "{}: {:?}", r.id, r.outcome);
    }
}

#[test]
fn signum_is_registered_with_its_defaults_and_checks_its_config() {
    let info = registry::plugins(Kind::Optimizer);
    let signum = info.iter().find(|p| p.name == "signum").expect("signum is registered");
    assert_eq!(signum.module, "ember_signum::signum");
    let params = registry::resolve::<dyn DynOptimizer>("signum", &Default::default()).unwrap();
    assert_eq!(params.float("lr").unwrap(), 1e-3);
    assert_eq!(params.float("momentum").unwrap(), 0.9);
    assert!(params.bool("weight_decouple").unwrap());
    let bad: ember_core::Config = toml::from_str("momentum = 1.0").unwrap();
    let e = ember_core::optimizer("signum", &bad, &Default::default()).unwrap_err().to_string();
    assert_eq!(e, "signum.momentum = 1.0 is invalid: must be in [0, 1)");
    let e = ember_core::optimizer("signum", &toml::from_str("lr = -1.0").unwrap(), &Default::default()).unwrap_err();
    assert_eq!(e.to_string(), "signum.lr = -1.0 is invalid: must be >= 0");
}

#[test]
fn the_state_round_trips_to_a_bit_identical_next_step() {
    let dev = candle_core::Device::Cpu;
    let opt = ember_core::optimizer("signum", &Default::default(), &Default::default()).unwrap();
    let p = candle_core::Var::new(&[1.0f32, -2.0, 0.5], &dev).unwrap();
    let g = candle_core::Tensor::new(&[0.3f32, -0.1, 0.2], &dev).unwrap();
    let ctx = StepContext::new(0.01);
    let mut state = opt.init_state(p.as_tensor()).unwrap();
    opt.step(&p, &g, &mut state, &ctx).unwrap();
    let saved = state.save();
    assert_eq!(saved.tensors.keys().collect::<Vec<_>>(), ["momentum_buffer"]);
    let mut loaded = opt.load_state(&saved).unwrap();
    let q = candle_core::Var::from_tensor(&p.as_tensor().copy().unwrap()).unwrap();
    // A gradient against the momentum: the next step depends on the saved buffer.
    let g = candle_core::Tensor::new(&[-0.5f32, 0.05, -0.1], &dev).unwrap();
    opt.step(&p, &g, &mut state, &ctx).unwrap();
    opt.step(&q, &g, &mut loaded, &ctx).unwrap();
    assert_eq!(p.as_tensor().to_vec1::<f32>().unwrap(), q.as_tensor().to_vec1::<f32>().unwrap());
    let mut extra = saved.clone();
    extra.tensors.insert("exp_avg".into(), g.clone());
    let e = opt.load_state(&extra).unwrap_err().to_string();
    assert!(e.contains("unexpected buffer 'exp_avg'"), "{e}");
}

#[test]
fn plain_signsgd_keeps_no_buffer() {
    let dev = candle_core::Device::Cpu;
    let config: ember_core::Config = toml::from_str("momentum = 0.0").unwrap();
    let opt = ember_core::optimizer("signum", &config, &Default::default()).unwrap();
    let p = candle_core::Var::new(&[1.0f64, -2.0], &dev).unwrap();
    let mut state = opt.init_state(p.as_tensor()).unwrap();
    let g = candle_core::Tensor::new(&[0.3f64, -0.1], &dev).unwrap();
    opt.step(&p, &g, &mut state, &StepContext::new(0.5)).unwrap();
    assert_eq!(p.as_tensor().to_vec1::<f64>().unwrap(), [0.5, -1.5]);
    assert!(state.save().tensors.is_empty());
}
