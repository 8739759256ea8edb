//! Behaviour of the built-in activations beyond the PyTorch fixtures: gradients agree
//! with finite differences, extremes stay finite, every dtype and layout works, bad input
//! is a clear error.

use candle_core::{DType, Device, Tensor, Var};
use ember::core::registry::{plugins, Kind};
use ember::core::{activation, Activation, BuildContext, Config};

fn build(name: &str, config: &str, dtype: DType) -> Box<dyn Activation> {
    let config: Config = toml::from_str(config).unwrap();
    activation(name, &config, &BuildContext::new(Device::Cpu, dtype)).unwrap()
}

fn value_and_grad(act: &dyn Activation, x: &[f64], dtype: DType) -> (Vec<f64>, Vec<f64>) {
    let x = Var::from_tensor(&Tensor::new(x, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()).unwrap();
    let y = act.forward(x.as_tensor()).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    let f64s = |t: &Tensor| t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
    (f64s(&y), f64s(g.get(x.as_tensor()).unwrap()))
}

/// Every built-in activation, with configs that exercise its options.
fn all_configs() -> Vec<(&'static str, &'static str)> {
    vec![
        ("sigmoid", ""),
        ("tanh", ""),
        ("relu", ""),
        ("leaky_relu", "negative_slope = 0.3"),
        ("prelu", "init = 0.4"),
        ("elu", "alpha = 1.5"),
        ("selu", ""),
        ("gelu", ""),
        ("gelu", "approximate = \"tanh\""),
        ("silu", ""),
        ("softplus", "beta = 2.0\nthreshold = 15.0"),
        ("mish", ""),
        ("hardtanh", "min_val = -2.0\nmax_val = 1.5"),
        ("softmax", "dim = 0"),
        ("log_softmax", "dim = 0"),
    ]
}

#[test]
fn every_builtin_is_exercised_here() {
    for p in plugins(Kind::Activation) {
        assert!(all_configs().iter().any(|(n, _)| *n == p.name), "{} has no test config", p.name);
    }
}

#[test]
fn gradients_match_central_finite_differences_in_f64() {
    // Points away from every kink; 1-D so softmax's dim 0 couples all of them.
    let xs = [-3.7, -1.2, -0.4, 0.3, 0.9, 1.3, 2.6];
    let h = 1e-6;
    for (name, cfg) in all_configs() {
        let act = build(name, cfg, DType::F64);
        let (_, grad) = value_and_grad(act.as_ref(), &xs, DType::F64);
        for i in 0..xs.len() {
            let shifted = |d: f64| {
                let mut x = xs.to_vec();
                x[i] += d;
                value_and_grad(act.as_ref(), &x, DType::F64).0.iter().sum::<f64>()
            };
            let numeric = (shifted(h) - shifted(-h)) / (2.0 * h);
            assert!(
                (numeric - grad[i]).abs() <= 1e-6 * (1.0 + numeric.abs()),
                "{name} {cfg}: d/dx at {} is {} by autograd, {numeric} numerically",
                xs[i],
                grad[i]
            );
        }
    }
}

#[test]
fn extreme_inputs_give_finite_values_and_gradients() {
    let xs = [-1000.0, -100.0, -30.0, 30.0, 100.0, 1000.0];
    for dtype in [DType::F32, DType::F64] {
        for (name, cfg) in all_configs() {
            let act = build(name, cfg, dtype);
            let (y, g) = value_and_grad(act.as_ref(), &xs, dtype);
            assert!(y.iter().chain(&g).all(|v| v.is_finite()), "{name} {dtype:?}: {y:?} {g:?}");
        }
    }
    let sig = build("sigmoid", "", DType::F64);
    let (y, _) = value_and_grad(sig.as_ref(), &[-100.0, 100.0], DType::F64);
    assert!((y[0] - 3.720075976020836e-44).abs() < 1e-57 && y[1] == 1.0, "{y:?}");
    let sp = build("softplus", "", DType::F32);
    assert_eq!(value_and_grad(sp.as_ref(), &[1000.0], DType::F32), (vec![1000.0], vec![1.0]));
}

#[test]
fn softmax_and_log_softmax_of_plus_minus_1000_are_exact() {
    let x = [1000.0, -1000.0, 0.0, 1000.0];
    let sm = build("softmax", "dim = 0", DType::F64);
    assert_eq!(value_and_grad(sm.as_ref(), &x, DType::F64).0, [0.5, 0.0, 0.0, 0.5]);
    let lsm = build("log_softmax", "dim = -1", DType::F64);
    let (y, g) = value_and_grad(lsm.as_ref(), &x, DType::F64);
    let ln2 = std::f64::consts::LN_2;
    assert_eq!(y, [-ln2, -2000.0 - ln2, -1000.0 - ln2, -ln2]);
    // d/dx sum(log_softmax(x)) = 1 - n * softmax(x).
    assert_eq!(g, [-1.0, 1.0, 1.0, -1.0]);
}

#[test]
fn gradients_at_kinks_follow_pytorch() {
    let cases = [
        ("relu", "", 0.0, 0.0),
        ("leaky_relu", "negative_slope = 0.3", 0.0, 0.3),
        ("elu", "alpha = 1.5", 0.0, 1.5),
        ("hardtanh", "", 1.0, 0.0),
        ("hardtanh", "", -1.0, 0.0),
        ("prelu", "init = 0.4", 0.0, 0.4),
        ("softplus", "beta = 2.0\nthreshold = 15.0", 7.5, 15f64.exp() / (15f64.exp() + 1.0)),
    ];
    for (name, cfg, x, want) in cases {
        let (_, g) = value_and_grad(build(name, cfg, DType::F64).as_ref(), &[x], DType::F64);
        assert_eq!(g[0], want, "{name} {cfg} at {x}");
    }
}

#[test]
fn half_precision_inputs_compute_in_f32_and_keep_their_dtype() {
    let xs = [-2.0, -0.5, 0.0, 0.75, 3.0];
    for dtype in [DType::F16, DType::BF16] {
        for (name, cfg) in all_configs() {
            let act = build(name, cfg, DType::F32);
            let x = Tensor::new(&xs, &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
            let y = act.forward(&x).unwrap();
            assert_eq!(y.dtype(), dtype, "{name}");
            let reference = value_and_grad(act.as_ref(), &xs, DType::F32).0;
            let y: Vec<f64> = y.to_dtype(DType::F64).unwrap().to_vec1().unwrap();
            for (a, b) in y.iter().zip(&reference) {
                assert!((a - b).abs() <= 1e-2 * (1.0 + b.abs()), "{name} {dtype:?}: {y:?} vs {reference:?}");
            }
        }
    }
}

#[test]
fn non_contiguous_inputs_give_the_same_result() {
    let x = Tensor::arange(0f32, 12.0, &Device::Cpu).unwrap().affine(0.5, -3.0).unwrap().reshape((3, 4)).unwrap();
    let xt = x.t().unwrap();
    assert!(!xt.is_contiguous());
    for (name, cfg) in all_configs() {
        let act = build(name, cfg, DType::F32);
        let a: Vec<Vec<f32>> = act.forward(&xt).unwrap().to_vec2().unwrap();
        let b: Vec<Vec<f32>> = act.forward(&xt.contiguous().unwrap()).unwrap().to_vec2().unwrap();
        assert_eq!(a, b, "{name}");
    }
}

#[test]
fn integer_inputs_are_a_clear_error() {
    let x = Tensor::new(&[1u8, 2, 3], &Device::Cpu).unwrap();
    for (name, cfg) in all_configs() {
        let e = build(name, cfg, DType::F32).forward(&x).unwrap_err().to_string();
        assert!(e.contains(&format!("{name}: expected a float tensor")) && e.contains("got U8"), "{name}: {e}");
    }
}

#[test]
fn softmax_dims_follow_pytorch_and_bad_dims_are_errors() {
    let x = Tensor::new(&[[1f64, 2.0], [3.0, 5.0]], &Device::Cpu).unwrap();
    let rows: Vec<Vec<f64>> = build("softmax", "", DType::F64).forward(&x).unwrap().to_vec2().unwrap();
    // Implicit dim for 2-D input is 1: each row sums to one.
    for r in &rows {
        assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-15);
    }
    let e = build("softmax", "dim = 2", DType::F64).forward(&x).unwrap_err().to_string();
    assert_eq!(e, "softmax: dim 2 is out of range for an input with 2 dimensions (shape [2, 2]); use a dim in [-2, 1]");
    let e = build("log_softmax", "dim = -3", DType::F64).forward(&x).unwrap_err().to_string();
    assert!(e.starts_with("log_softmax: dim -3 is out of range"), "{e}");
}

#[test]
fn prelu_learns_one_slope_per_channel() {
    let act = build("prelu", "num_parameters = 2\ninit = 0.5", DType::F64);
    let params = act.parameters();
    assert_eq!(params.len(), 1);
    assert_eq!(params[0].0, "weight");
    assert_eq!(params[0].1.dims(), [2]);
    let x = Var::from_tensor(&Tensor::new(&[[-1f64, -2.0], [-3.0, 4.0]], &Device::Cpu).unwrap()).unwrap();
    let y = act.forward(x.as_tensor()).unwrap();
    assert_eq!(y.to_vec2::<f64>().unwrap(), [[-0.5, -1.0], [-1.5, 4.0]]);
    let grads = y.sum_all().unwrap().backward().unwrap();
    // Channel 0 sees -1 and -3; channel 1 sees -2 (4 is positive).
    assert_eq!(grads.get(&params[0].1).unwrap().to_vec1::<f64>().unwrap(), [-4.0, -2.0]);

    let e = act.forward(&Tensor::zeros((2, 3), DType::F64, &Device::Cpu).unwrap()).unwrap_err().to_string();
    assert!(
        e.starts_with("prelu: num_parameters = 2 needs an input with 2 channels along dim 1, got shape [2, 3]"),
        "{e}"
    );
}
