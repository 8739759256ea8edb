//! Optimizers, schedulers and the optimizer driver: a conformance suite over the whole
//! registry, fused kernels against the composed reference, exact state round trips,
//! parameter groups against PyTorch, clipping, and every error message.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use ember::core::ops::{with_kernels, Kernels};
use ember::core::registry::{plugins, Kind};
use ember::core::{BuildContext, Config, StepContext};
use ember::train::{clip_grad_norm, clip_grad_value, NormType, OptimizerDriver, ParamGroupSpec};
use serde_json::Value as Json;

const OPTIMIZERS: [&str; 20] = [
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "adan",
    "asgd",
    "lamb",
    "lars",
    "lbfgs",
    "lion",
    "muon",
    "nadam",
    "radam",
    "rmsprop",
    "rprop",
    "schedule_free_adamw",
    "schedule_free_sgd",
    "sgd",
];
const SCHEDULERS: [&str; 14] = [
    "chained",
    "constant",
    "cosine",
    "cosine_warm_restarts",
    "cyclic",
    "exponential",
    "linear",
    "multi_step",
    "one_cycle",
    "polynomial",
    "reduce_on_plateau",
    "sequential",
    "step",
    "swalr",
];

fn cfg(text: &str) -> Config {
    toml::from_str(text).unwrap()
}

fn tensor(v: &[f64], dtype: DType) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn every_builtin_optimizer_and_scheduler_is_registered() {
    let names = |k: Kind| plugins(k).iter().map(|p| p.name).collect::<Vec<_>>();
    assert_eq!(names(Kind::Optimizer), OPTIMIZERS);
    assert_eq!(names(Kind::Scheduler), SCHEDULERS);
}

/// A config per optimizer with a learning rate that makes progress in 30 steps.
fn lively(name: &str) -> Config {
    cfg(match name {
        "adadelta" => "lr = 1.0",
        "sgd" => "lr = 0.05\nmomentum = 0.5",
        _ => "lr = 0.05",
    })
}

#[test]
fn every_optimizer_decreases_a_quadratic_and_keeps_shape_and_dtype() {
    let a = [0.5, 1.0, 2.0, 0.1];
    let b = [0.3, -0.2, 0.0, 0.1];
    let f = |x: &[f64]| x.iter().zip(&a).zip(&b).map(|((x, a), b)| a * x * x + b * x).sum::<f64>();
    for name in OPTIMIZERS {
        for dtype in [DType::F32, DType::F64] {
            for start in [[1.0, -2.0, 0.5, 3.0], [-4.0, 0.1, 2.0, -1.0], [0.3, 0.3, -0.3, 0.3]] {
                for config in [Config::new(), lively(name)] {
                    let (opt, lr) =
                        ember::core::registry::optimizer_with_lr(name, &config, &BuildContext::default()).unwrap();
                    // Muon takes matrices only: the same four values as 2 x 2.
                    let shape: &[usize] = if name == "muon" { &[2, 2] } else { &[4] };
                    let x = Var::from_tensor(&tensor(&start, dtype).reshape(shape).unwrap()).unwrap();
                    let (a_t, b_t) =
                        (tensor(&a, dtype).reshape(shape).unwrap(), tensor(&b, dtype).reshape(shape).unwrap());
                    let grad = |x: &Tensor| a_t.affine(2.0, 0.0).unwrap().mul(x).unwrap().add(&b_t).unwrap();
                    if let Some(whole) = opt.closure_optimizer() {
                        // L-BFGS: one step re-evaluates f and its gradient through the closure.
                        let mut state = whole.init_state(&[&x]).unwrap();
                        let fx = |x: &Tensor| f(&values(x));
                        for _ in 0..3 {
                            let mut closure = || Ok((fx(x.as_tensor()), vec![grad(x.as_tensor())]));
                            let (loss, g) = (fx(x.as_tensor()), vec![grad(x.as_tensor())]);
                            whole.step(&[&x], loss, g, &mut closure, &mut state, &StepContext::new(lr)).unwrap();
                        }
                    } else {
                        let mut state = opt.init_state(x.as_tensor()).unwrap();
                        for _ in 0..30 {
                            opt.step(&x, &grad(x.as_tensor()), &mut state, &StepContext::new(lr)).unwrap();
                        }
                    }
                    assert_eq!(x.dtype(), dtype, "{name}");
                    assert_eq!(x.dims(), shape, "{name}");
                    let (before, after) = (f(&start), f(&values(x.as_tensor())));
                    assert!(after < before, "{name} {dtype:?} {config:?}: f went from {before} to {after}");
                }
            }
        }
    }
}

/// Steps `opt` 10 times on a parameter of `n` elements with pseudo-random gradients.
fn run(name: &str, config: &Config, composed: bool, n: usize, dtype: DType) -> Vec<f64> {
    let (opt, lr) = ember::core::registry::optimizer_with_lr(name, config, &BuildContext::default()).unwrap();
    // The one kernel switch: composed ops for every optimizer, or fused where they apply.
    let kernels = if composed { Kernels::Composed } else { Kernels::Auto };
    let x0: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1000) as f64 / 250.0 - 2.0).collect();
    let x = Var::from_tensor(&tensor(&x0, dtype)).unwrap();
    let mut state = opt.init_state(x.as_tensor()).unwrap();
    for k in 0..10 {
        let g: Vec<f64> = (0..n).map(|i| (((i + 31 * k) * 104729) % 2000) as f64 / 1000.0 - 1.0).collect();
        with_kernels(kernels, || opt.step(&x, &tensor(&g, dtype), &mut state, &StepContext::new(lr))).unwrap();
    }
    values(x.as_tensor())
}

#[test]
fn fused_kernels_match_the_composed_reference() {
    let cases = [
        ("sgd", "lr = 0.1\nmomentum = 0.9"),
        ("sgd", "lr = 0.1\nmomentum = 0.9\nnesterov = true\nweight_decay = 0.1"),
        ("sgd", "lr = 0.1\nmomentum = 0.5\ndampening = 0.3\nmaximize = true"),
        ("adam", "lr = 0.01"),
        ("adam", "lr = 0.01\namsgrad = true\nweight_decay = 0.1\nmaximize = true"),
        ("adam", "lr = 0.01\nbetas = [0.3, 0.5]"),
        ("adamw", "lr = 0.01\nweight_decay = 0.1"),
        ("adamw", "lr = 0.01\namsgrad = true"),
        ("rmsprop", "lr = 0.01"),
        ("rmsprop", "lr = 0.01\ncentered = true\nmomentum = 0.9\nweight_decay = 0.1"),
        ("rmsprop", "lr = 0.01\nalpha = 0.3\nmaximize = true"),
        ("adagrad", "lr = 0.1\nlr_decay = 0.01\nweight_decay = 0.1"),
        ("adagrad", "lr = 0.1\ninitial_accumulator_value = 0.5\nmaximize = true"),
        ("rprop", "lr = 0.01"),
        ("rprop", "lr = 0.05\netas = [0.3, 1.5]\nstep_sizes = [0.001, 0.2]\nmaximize = true"),
        ("asgd", "lr = 0.01\nt0 = 3.0"),
        ("asgd", "lr = 0.05\nlambd = 0.01\nalpha = 0.5\nt0 = 4.0\nweight_decay = 0.1\nmaximize = true"),
        ("lion", "lr = 0.01"),
        ("lion", "lr = 0.01\nbetas = [0.3, 0.5]\nweight_decay = 0.1"),
        ("lion", "lr = 0.01\nweight_decay = 0.01\ndecoupled_weight_decay = true"),
        ("schedule_free_adamw", "lr = 0.01"),
        ("schedule_free_adamw", "lr = 0.01\nweight_decay = 0.1\nwarmup_steps = 3\nr = 0.5"),
        ("schedule_free_sgd", "lr = 0.1"),
        ("adan", "lr = 0.01"),
        ("adan", "lr = 0.01\nbetas = [0.3, 0.6, 0.9]\nweight_decay = 0.1\nmaximize = true"),
        ("adan", "lr = 0.01\nweight_decay = 0.1\nweight_decouple = true"),
        ("schedule_free_sgd", "lr = 0.1\nweight_decay = 0.1\nwarmup_steps = 3\nmomentum = 0.3"),
    ];
    // More elements than one chunk, and an odd count, to cross every split.
    let n = (1 << 17) + 3;
    for (name, text) in cases {
        for (dtype, tol) in [(DType::F32, 1e-6), (DType::F64, 1e-14)] {
            let fused = run(name, &cfg(text), false, n, dtype);
            let composed = run(name, &cfg(text), true, n, dtype);
            for (i, (a, b)) in fused.iter().zip(&composed).enumerate() {
                assert!(
                    (a - b).abs() <= tol * (1.0 + b.abs()),
                    "{name} {text:?} {dtype:?} [{i}]: fused {a}, composed {b}"
                );
            }
        }
    }
}

fn model() -> Vec<(String, Var)> {
    vec![
        (
            "0.weight".to_string(),
            Var::from_tensor(&tensor(&[0.5, -0.3, 0.8, 0.1, -0.7, 0.2], DType::F32).reshape((2, 3)).unwrap()).unwrap(),
        ),
        ("0.bias".to_string(), Var::from_tensor(&tensor(&[0.1, -0.1], DType::F32)).unwrap()),
        ("frozen".to_string(), Var::from_tensor(&tensor(&[1.0], DType::F32)).unwrap()),
    ]
}

/// Gradients for the first two parameters only ("frozen" has none and is skipped).
fn grads(params: &[(String, Var)], k: usize) -> GradStore {
    let loss = params[..2]
        .iter()
        .map(|(_, v)| v.as_tensor().sqr().unwrap().affine(1.0 + k as f64 * 0.1, 0.0).unwrap().sum_all().unwrap())
        .reduce(|a, b| a.add(&b).unwrap())
        .unwrap();
    loss.backward().unwrap()
}

fn snapshot(params: &[(String, Var)]) -> Vec<Vec<f64>> {
    params.iter().map(|(_, v)| values(v.as_tensor())).collect()
}

#[test]
fn state_round_trip_gives_a_bit_identical_next_step_for_every_optimizer() {
    let dir = tempfile::tempdir().unwrap();
    for p in plugins(Kind::Optimizer) {
        if p.name == "lbfgs" {
            // Steps through a closure; its driver state round trip is a unit test of
            // ember-train's optim module, its own in lbfgs.rs.
            continue;
        }
        // Muon takes matrices only: the bias goes to a group with AdamW.
        let bias = if p.name == "muon" { "name = \"adamw\"\nlr = 0.02" } else { "lr = 0.02" };
        let groups = [ParamGroupSpec { params: vec!["*.bias".into()], overrides: cfg(bias) }];
        let params = model();
        let mut a = OptimizerDriver::new(p.name, &lively(p.name), &groups, params.clone()).unwrap();
        for k in 0..3 {
            a.step(&grads(&params, k)).unwrap();
        }
        let path = dir.path().join(format!("{}.safetensors", p.name));
        a.save(&path).unwrap();
        // A fresh model with the same weights, and a fresh driver that loads the state.
        let copy: Vec<(String, Var)> = params
            .iter()
            .map(|(n, v)| (n.clone(), Var::from_tensor(&v.as_tensor().copy().unwrap()).unwrap()))
            .collect();
        let mut b = OptimizerDriver::new(p.name, &lively(p.name), &groups, copy.clone()).unwrap();
        b.load(&path).unwrap();
        for k in 3..5 {
            a.step(&grads(&params, k)).unwrap();
            b.step(&grads(&copy, k)).unwrap();
        }
        let (sa, sb) = (snapshot(&params), snapshot(&copy));
        for (x, y) in sa.iter().flatten().zip(sb.iter().flatten()) {
            assert_eq!(x.to_bits(), y.to_bits(), "{}: {sa:?} vs {sb:?}", p.name);
        }
        assert_eq!(snapshot(&params)[2], [1.0], "a parameter without gradient is not touched");
    }
}

#[test]
fn parameter_groups_reproduce_pytorch_with_weight_decay_on_the_weight_only() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/param_groups.json");
    let doc: Json = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let matrix = |v: &Json| -> Tensor {
        let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
        let (r, c) = (rows.len(), rows[0].len());
        Tensor::from_vec(rows.concat(), (r, c), &Device::Cpu).unwrap()
    };
    let (x, y) = (matrix(&doc["x"]), matrix(&doc["y"]));
    let mse = ember::core::loss("mse", &Config::new(), &BuildContext::new(Device::Cpu, DType::F64)).unwrap();
    for run in doc["runs"].as_array().unwrap() {
        let name = run["optimizer"].as_str().unwrap();
        let config: Config = serde_json::from_value(run["config"].clone()).unwrap();
        let groups: Vec<ParamGroupSpec> = run["groups"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, g)| ParamGroupSpec::from_table(i, &serde_json::from_value(g.clone()).unwrap()).unwrap())
            .collect();
        let w = Var::from_tensor(&matrix(&doc["weight0"])).unwrap();
        let b: Vec<f64> = serde_json::from_value(doc["bias0"].clone()).unwrap();
        let b = Var::from_tensor(&Tensor::new(b.as_slice(), &Device::Cpu).unwrap()).unwrap();
        let params = vec![("weight".to_string(), w.clone()), ("bias".to_string(), b.clone())];
        let mut driver = OptimizerDriver::new(name, &config, &groups, params).unwrap();
        assert_eq!(driver.group_of("weight"), Some(0));
        assert_eq!(driver.group_of("bias"), Some(1));
        for (k, (we, be)) in
            run["weights"].as_array().unwrap().iter().zip(run["biases"].as_array().unwrap()).enumerate()
        {
            let pred = x.matmul(&w.as_tensor().t().unwrap()).unwrap().broadcast_add(b.as_tensor()).unwrap();
            let loss = mse.forward(&pred, &y).unwrap();
            driver.step(&loss.backward().unwrap()).unwrap();
            let got = [values(w.as_tensor()), values(b.as_tensor())].concat();
            let want: Vec<f64> =
                [values(&matrix(we)), serde_json::from_value::<Vec<f64>>(be.clone()).unwrap()].concat();
            for (g, e) in got.iter().zip(&want) {
                assert!(
                    (g - e).abs() <= 1e-10 * e.abs() + 1e-12,
                    "{name} step {}: got {got:?}, PyTorch {want:?}",
                    k + 1
                );
            }
        }
    }
}

#[test]
fn group_errors_name_the_parameter_and_the_groups() {
    let groups = [
        ParamGroupSpec { params: vec!["*.bias".into()], overrides: cfg("lr = 0.1") },
        ParamGroupSpec { params: vec!["0.*".into()], overrides: cfg("lr = 0.2") },
    ];
    let e = OptimizerDriver::new("sgd", &Config::new(), &groups, model()).unwrap_err().to_string();
    assert_eq!(
        e,
        "parameter '0.bias' matches optimizer.groups[0] (*.bias) and optimizer.groups[1] (0.*); every parameter must belong to exactly one group"
    );
    let e = OptimizerDriver::new("sgd", &Config::new(), &groups[..1], model()).map(|_| ()).err();
    assert!(e.is_none(), "one group is fine");

    let groups = [ParamGroupSpec { params: vec!["*.bais".into()], overrides: Config::new() }];
    let e = OptimizerDriver::new("sgd", &Config::new(), &groups, model()).unwrap_err().to_string();
    assert_eq!(e, "optimizer.groups[0] (*.bais) matches no parameter; the parameters are: 0.weight, 0.bias, frozen");

    let groups = [ParamGroupSpec { params: vec!["*.bias".into()], overrides: cfg("lr = -1.0") }];
    let e = OptimizerDriver::new("sgd", &Config::new(), &groups, model()).unwrap_err().to_string();
    assert_eq!(e, "optimizer.groups[0]: sgd.lr = -1.0 is invalid: must be >= 0");

    let e = ParamGroupSpec::from_table(2, &cfg("lr = 0.1")).unwrap_err().to_string();
    assert!(e.starts_with("optimizer.groups[2] needs `params`"), "{e}");
}

#[test]
fn bad_optimizer_hyperparameters_are_rejected_like_pytorch() {
    let err = |name: &str, text: &str| {
        ember::core::optimizer(name, &cfg(text), &BuildContext::default()).unwrap_err().to_string()
    };
    assert_eq!(err("sgd", "lr = -0.1"), "sgd.lr = -0.1 is invalid: must be >= 0");
    assert_eq!(err("adam", "betas = [0.9, 1.5]"), "adam.betas = [0.9, 1.5] is invalid: expected two numbers in [0, 1)");
    assert_eq!(err("adam", "betas = [0.9]"), "adam.betas = [0.9] is invalid: expected two numbers in [0, 1)");
    assert_eq!(err("adam", "eps = -1e-8"), "adam.eps = -1e-8 is invalid: must be >= 0");
    assert_eq!(
        err("sgd", "nesterov = true"),
        "sgd.nesterov = true is invalid: Nesterov momentum requires momentum > 0 and dampening = 0"
    );
    assert!(err("sgd", "nesterov = true\nmomentum = 0.9\ndampening = 0.1")
        .contains("requires momentum > 0 and dampening = 0"));
    assert_eq!(err("adadelta", "rho = 1.5"), "adadelta.rho = 1.5 is invalid: must be in [0, 1]");
    assert_eq!(err("rmsprop", "alpha = -0.5"), "rmsprop.alpha = -0.5 is invalid: must be >= 0");
    assert_eq!(err("adamw", "weight_decay = -0.01"), "adamw.weight_decay = -0.01 is invalid: must be >= 0");
    assert!(err("adam", "beta = [0.9, 0.99]").contains("did you mean 'betas'?"));
}

#[test]
fn every_scheduler_resumes_from_its_saved_state() {
    let configs = [
        ("step", "step_size = 2"),
        ("multi_step", "milestones = [2, 4, 7]"),
        ("exponential", "gamma = 0.9"),
        ("cosine", "T_max = 5"),
        ("linear", ""),
        ("cosine_warm_restarts", "T_0 = 3\nT_mult = 2"),
        ("one_cycle", "max_lr = 1.0\ntotal_steps = 12"),
        ("reduce_on_plateau", "patience = 1"),
        ("constant", "factor = 0.5\ntotal_iters = 3"),
        ("polynomial", "total_iters = 8\npower = 2.0"),
        ("cyclic", "base_lr = 0.01\nmax_lr = 0.1\nstep_size_up = 2\nmode = \"triangular2\"\ncycle_momentum = false"),
        (
            "sequential",
            "milestones = [2]\nschedulers = [{ name = \"linear\", start_factor = 0.1, total_iters = 2 }, { name = \"cosine\", T_max = 6 }]",
        ),
        ("chained", "schedulers = [{ name = \"constant\", factor = 0.5, total_iters = 3 }, { name = \"exponential\", gamma = 0.9 }]"),
        ("swalr", "swa_lr = 0.01\nanneal_epochs = 8"),
    ];
    assert_eq!(configs.len(), SCHEDULERS.len(), "every scheduler is resumed");
    for (name, text) in configs {
        let build = || ember::core::scheduler(name, &cfg(text), &BuildContext::default()).unwrap();
        let metric = |k: usize| Some([1.0, 0.9, 0.95, 0.97, 0.96, 0.99, 1.0, 0.98, 0.97, 0.99, 1.0][k % 11]);
        let (mut a, mut lrs_a) = (build(), vec![0.1, 0.05]);
        a.init(&mut lrs_a).unwrap();
        for k in 0..5 {
            a.step(&mut lrs_a, metric(k)).unwrap();
        }
        let saved = ember::train::scheduler_state_dict(a.as_ref()).unwrap();
        let (mut b, mut lrs_b) = (build(), vec![0.1, 0.05]);
        b.init(&mut lrs_b).unwrap();
        ember::train::load_scheduler_state(b.as_mut(), &saved).unwrap();
        lrs_b.copy_from_slice(&lrs_a);
        for k in 5..11 {
            a.step(&mut lrs_a, metric(k)).unwrap();
            b.step(&mut lrs_b, metric(k)).unwrap();
            assert_eq!(lrs_a, lrs_b, "{name} at step {k}");
        }
    }
}

#[test]
fn bad_scheduler_configs_are_errors() {
    let err = |name: &str, text: &str| {
        ember::core::scheduler(name, &cfg(text), &BuildContext::default()).unwrap_err().to_string()
    };
    assert_eq!(err("step", ""), "scheduler 'step' needs the key 'step_size' (period of the decay, in steps; >= 1)");
    assert_eq!(err("step", "step_size = 0"), "step.step_size = 0 is invalid: must be >= 1");
    assert_eq!(err("cosine", "T_max = 0"), "cosine.T_max = 0 is invalid: must be >= 1");
    assert_eq!(err("linear", "start_factor = 0.0"), "linear.start_factor = 0.0 is invalid: must be in (0, 1]");
    assert_eq!(
        err("reduce_on_plateau", "factor = 1.0"),
        "reduce_on_plateau.factor = 1.0 is invalid: must be in [0, 1)"
    );
    assert_eq!(err("one_cycle", "max_lr = 0.1"), "one_cycle needs total_steps, or epochs and steps_per_epoch");
    let mut s =
        ember::core::scheduler("one_cycle", &cfg("max_lr = 0.1\ntotal_steps = 2"), &BuildContext::default()).unwrap();
    let mut lrs = vec![0.1];
    s.init(&mut lrs).unwrap();
    s.step(&mut lrs, None).unwrap();
    s.step(&mut lrs, None).unwrap();
    let e = s.step(&mut lrs, None).unwrap_err().to_string();
    assert_eq!(e, "one_cycle: stepped 3 times, but total_steps is 2; raise total_steps");
    let mut r = ember::core::scheduler("reduce_on_plateau", &Config::new(), &BuildContext::default()).unwrap();
    assert!(r.needs_metric());
    r.init(&mut lrs).unwrap();
    assert!(r.step(&mut lrs, None).unwrap_err().to_string().contains("needs the monitored metric"));
}

#[test]
fn clipping_follows_pytorch() {
    let a = Var::from_tensor(&tensor(&[3.0, 4.0], DType::F32)).unwrap();
    let b = Var::from_tensor(&tensor(&[12.0], DType::F32)).unwrap();
    let unused = Var::from_tensor(&tensor(&[1.0], DType::F32)).unwrap();
    let loss = |t: &Var| t.as_tensor().sqr().unwrap().affine(0.5, 0.0).unwrap().sum_all().unwrap();
    // The gradient of 0.5 x^2 is x: grads are [3, 4] and [12], total L2 norm 13.
    let fresh = || loss(&a).add(&loss(&b)).unwrap().backward().unwrap();
    let mut g = fresh();
    let total = clip_grad_norm(&mut g, &[&a, &b, &unused], 6.5, NormType::L2).unwrap();
    assert!((total - 13.0).abs() < 1e-12);
    let coef = 6.5 / (13.0 + 1e-6);
    let ga = values(g.get(a.as_tensor()).unwrap());
    assert!((ga[0] - 3.0 * coef).abs() < 1e-6 && (ga[1] - 4.0 * coef).abs() < 1e-6, "{ga:?}");

    let mut g = fresh();
    assert_eq!(clip_grad_norm(&mut g, &[&a, &b], 100.0, NormType::L2).unwrap(), 13.0);
    assert_eq!(values(g.get(b.as_tensor()).unwrap()), [12.0], "no scaling below max_norm");

    let mut g = fresh();
    assert_eq!(clip_grad_norm(&mut g, &[&a, &b], 6.0, NormType::Inf).unwrap(), 12.0);

    let mut g = fresh();
    clip_grad_value(&mut g, &[&a, &b], 3.5).unwrap();
    assert_eq!(values(g.get(a.as_tensor()).unwrap()), [3.0, 3.5]);
    assert_eq!(values(g.get(b.as_tensor()).unwrap()), [3.5]);
    let e = clip_grad_value(&mut g, &[&a], -1.0).unwrap_err().to_string();
    assert_eq!(e, "clip_grad_value: clip_value = -1 is invalid: must be >= 0");
}

#[test]
fn loading_state_for_another_model_lists_every_problem() {
    let mut a = OptimizerDriver::new("adam", &Config::new(), &[], model()).unwrap();
    let params = model();
    a.step(&grads(a.params(), 0)).unwrap();
    let mut dict: HashMap<String, Tensor> = a.state_dict().unwrap();
    dict.insert("optimizer/state/1.weight/exp_avg".into(), Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap());
    dict.insert("optimizer/state/0.bias/exp_avg".into(), Tensor::zeros(5, DType::F32, &Device::Cpu).unwrap());
    let mut b = OptimizerDriver::new("adam", &Config::new(), &[], params).unwrap();
    let e = b.load_state_dict(&dict).unwrap_err().to_string();
    assert!(e.starts_with("optimizer state does not fit this model and optimizer:"), "{e}");
    assert!(e.contains("optimizer/state/1.weight/exp_avg: the model has no parameter '1.weight'"), "{e}");
    assert!(e.contains("optimizer/state/0.bias/exp_avg: shape [5], but parameter '0.bias' has shape [2]"), "{e}");
}

#[test]
fn resumed_state_with_missing_or_extra_entries_is_refused() {
    let mut a = OptimizerDriver::new("adam", &Config::new(), &[], model()).unwrap();
    a.step(&grads(a.params(), 0)).unwrap();
    let full = a.state_dict().unwrap();
    let mut b = OptimizerDriver::new("adam", &Config::new(), &[], model()).unwrap();
    b.load_state_dict(&full).unwrap();
    let mut dict = full.clone();
    dict.remove("optimizer/state/0.weight/exp_avg_sq").unwrap();
    dict.insert("optimizer/state/0.bias/momentum_buffer".into(), Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap());
    let e = b.load_state_dict(&dict).unwrap_err().to_string();
    assert!(e.contains("optimizer/state/0.weight/exp_avg_sq: missing; adam keeps it for every parameter"), "{e}");
    assert!(
        e.contains("optimizer/state/0.bias/momentum_buffer: unexpected; adam with this config keeps no such entry"),
        "{e}"
    );
    // SGD without momentum keeps no buffer; one from a momentum run is refused.
    let mut sgd = OptimizerDriver::new("sgd", &Config::new(), &[], model()).unwrap();
    let mut m = Config::new();
    m.insert("momentum".into(), ember::core::Value::Float(0.9));
    let mut with_momentum = OptimizerDriver::new("sgd", &m, &[], model()).unwrap();
    with_momentum.step(&grads(with_momentum.params(), 0)).unwrap();
    let e = sgd.load_state_dict(&with_momentum.state_dict().unwrap()).unwrap_err().to_string();
    assert!(e.contains("optimizer/state/0.weight/momentum_buffer: unexpected"), "{e}");
}

/// `one_cycle` with `cycle_momentum = true` (PyTorch's default) moves SGD's momentum and
/// Adam's beta1 step by step; the trajectory matches PyTorch's (tests/fixtures/
/// gen_one_cycle_momentum.py) on f(x) = 0.1 x1² + 2 x2².
#[test]
fn one_cycle_cycles_momentum_and_betas_like_pytorch() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/one_cycle_momentum.json"),
    )
    .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 2);
    let close = |got: f64, want: f64, what: &str| {
        assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{what}: got {got}, PyTorch {want}");
    };
    for case in cases {
        let name = case["optimizer"].as_str().unwrap();
        let config: Config = serde_json::from_value(case["config"].clone()).unwrap();
        let sched_config: Config = serde_json::from_value(case["scheduler"].clone()).unwrap();
        let x0: Vec<f64> = serde_json::from_value(case["x0"].clone()).unwrap();
        let x = Var::from_tensor(&Tensor::new(x0.as_slice(), &Device::Cpu).unwrap()).unwrap();
        let mut driver = OptimizerDriver::new(name, &config, &[], vec![("x".into(), x.clone())]).unwrap();
        let mut sched = ember::core::scheduler("one_cycle", &sched_config, &BuildContext::default()).unwrap();
        assert!(sched.cycles_momentum());
        sched.init(driver.lrs_mut()).unwrap();
        driver.follow(sched.as_ref()).unwrap();
        let a = Tensor::new(&[0.1f64, 2.0], &Device::Cpu).unwrap();
        for (k, want) in case["steps"].as_array().unwrap().iter().enumerate() {
            let grads = x.as_tensor().sqr().unwrap().mul(&a).unwrap().sum_all().unwrap().backward().unwrap();
            driver.step(&grads).unwrap();
            sched.step(driver.lrs_mut(), None).unwrap();
            driver.follow(sched.as_ref()).unwrap();
            let what = format!("{name} step {}", k + 1);
            let want_x: Vec<f64> = serde_json::from_value(want["x"].clone()).unwrap();
            for (g, w) in values(x.as_tensor()).iter().zip(&want_x) {
                close(*g, *w, &format!("{what} x"));
            }
            close(driver.lrs()[0], want["lr"].as_f64().unwrap(), &format!("{what} lr"));
            close(driver.momenta()[0].unwrap(), want["momentum"].as_f64().unwrap(), &format!("{what} momentum"));
        }
    }
}

#[test]
fn cycling_momentum_needs_an_optimizer_with_momentum_or_betas() {
    let mut driver = OptimizerDriver::new("adagrad", &Config::new(), &[], model()).unwrap();
    let mut sched =
        ember::core::scheduler("one_cycle", &cfg("max_lr = 0.1\ntotal_steps = 10"), &BuildContext::default()).unwrap();
    sched.init(driver.lrs_mut()).unwrap();
    let e = driver.follow(sched.as_ref()).unwrap_err().to_string();
    assert!(e.contains("optimizer 'adagrad' has no `momentum` or `betas`; set cycle_momentum = false"), "{e}");
    let mut sched = ember::core::scheduler(
        "one_cycle",
        &cfg("max_lr = 0.1\ntotal_steps = 10\ncycle_momentum = false"),
        &BuildContext::default(),
    )
    .unwrap();
    sched.init(driver.lrs_mut()).unwrap();
    driver.follow(sched.as_ref()).unwrap();
    assert_eq!(driver.momenta(), [None]);
}

/// `warmup = N` on any scheduler is `sequential` of LinearLR (from `warmup_start_factor`,
/// default 1/3, to 1 over N steps) and the scheduler, with milestone N.
#[test]
fn warmup_on_a_scheduler_is_sequential_linear_then_it() {
    let resolve = |text: &str| -> ember::train::config::SchedulerConfig { toml::from_str(text).unwrap() };
    let lrs = |name: &str, config: &Config| {
        let mut s = ember::core::scheduler(name, config, &BuildContext::default()).unwrap();
        let mut lrs = vec![0.1];
        s.init(&mut lrs).unwrap();
        let mut seen = vec![lrs[0]];
        for _ in 0..10 {
            s.step(&mut lrs, None).unwrap();
            seen.push(lrs[0]);
        }
        seen
    };
    let (name, config) =
        resolve("name = \"cosine\"\nT_max = 6\nwarmup = 3\nwarmup_start_factor = 0.01").resolved().unwrap();
    assert_eq!(name, "sequential");
    let explicit = cfg("milestones = [3]\nschedulers = [{ name = \"linear\", start_factor = 0.01, end_factor = 1.0, total_iters = 3 }, { name = \"cosine\", T_max = 6 }]");
    let (a, b) = (lrs(&name, &config), lrs("sequential", &explicit));
    assert_eq!(a, b);
    assert!((a[0] - 0.001).abs() < 1e-15 && (a[3] - 0.1).abs() < 1e-15, "{a:?}");
    let (_, config) = resolve("name = \"step\"\nstep_size = 2\nwarmup = 2").resolved().unwrap();
    assert!((lrs("sequential", &config)[0] - 0.1 / 3.0).abs() < 1e-15);
    let plain = resolve("name = \"step\"\nstep_size = 2").resolved().unwrap();
    assert_eq!(plain.0, "step");
    for (text, want) in [
        ("name = \"cosine\"\nT_max = 4\nwarmup = 0", "scheduler.warmup = 0 is invalid"),
        ("name = \"cosine\"\nT_max = 4\nwarmup_start_factor = 0.1", "warmup_start_factor without warmup"),
        ("name = \"chained\"\nwarmup = 2\nschedulers = []", "warmup on chained"),
    ] {
        let e = resolve(text).resolved().unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
}

/// A parameter group may name its own optimizer: built from the group's keys alone (that
/// optimizer's defaults for the rest), stepping exactly as that optimizer alone on those
/// parameters; its state saves and loads with the rest.
#[test]
fn a_group_with_its_own_optimizer_steps_as_that_optimizer_alone() {
    let groups = [ParamGroupSpec { params: vec!["*.bias".into()], overrides: cfg("name = \"adamw\"\nlr = 0.02") }];
    let copy = |params: &[(String, Var)]| -> Vec<(String, Var)> {
        params.iter().map(|(n, v)| (n.clone(), Var::from_tensor(&v.as_tensor().copy().unwrap()).unwrap())).collect()
    };
    let params = model();
    let mut mixed = OptimizerDriver::new("sgd", &cfg("lr = 0.05\nmomentum = 0.5"), &groups, params.clone()).unwrap();
    let (weight, bias) = (copy(&params[..1]), copy(&params[1..2]));
    let mut sgd = OptimizerDriver::new("sgd", &cfg("lr = 0.05\nmomentum = 0.5"), &[], weight.clone()).unwrap();
    let mut adamw = OptimizerDriver::new("adamw", &cfg("lr = 0.02"), &[], bias.clone()).unwrap();
    assert_eq!(mixed.lrs(), [0.05, 0.02]);
    let dir = tempfile::tempdir().unwrap();
    let mut resumed: Option<(OptimizerDriver, Vec<(String, Var)>)> = None;
    for k in 0..4 {
        if k == 2 {
            // Saved and loaded into a fresh driver midway: the same steps follow.
            mixed.save(dir.path().join("mixed.safetensors")).unwrap();
            let fresh = copy(&params);
            let mut again =
                OptimizerDriver::new("sgd", &cfg("lr = 0.05\nmomentum = 0.5"), &groups, fresh.clone()).unwrap();
            again.load(dir.path().join("mixed.safetensors")).unwrap();
            resumed = Some((again, fresh));
        }
        if let Some((again, fresh)) = resumed.as_mut() {
            again.step(&grads(fresh, k)).unwrap();
        }
        mixed.step(&grads(&params, k)).unwrap();
        let both: Vec<(String, Var)> = weight.iter().chain(&bias).cloned().collect();
        let g = grads(&both, k);
        sgd.step(&g).unwrap();
        adamw.step(&g).unwrap();
    }
    let (got, want) = (snapshot(&params), [snapshot(&weight), snapshot(&bias)].concat());
    assert_eq!(got[..2], want[..], "sgd on the weight, adamw on the bias");
    assert_eq!(snapshot(&resumed.unwrap().1), got, "resumed midway");
    let bad = [ParamGroupSpec { params: vec!["*.bias".into()], overrides: cfg("name = \"adamw\"\nmomentum = 0.9") }];
    let e = OptimizerDriver::new("sgd", &cfg("lr = 0.05"), &bad, model()).unwrap_err().to_string();
    assert!(e.contains("optimizer.groups[0]") && e.contains("momentum"), "{e}");
}
