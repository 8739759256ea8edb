//! Modules and regularizers: PyTorch-compatible names, initialisation and weights in
//! both directions; dropout statistics; penalty and constraint behaviour; errors.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use ember::core::registry::{plugins, Kind};
use ember::core::{BuildContext, Config};
use ember::nn::{
    load_safetensors, load_state_dict, mlp, save_safetensors, state_dict, Context, Linear, MlpConfig, Module,
};
use ember::train::OptimizerDriver;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn small() -> MlpConfig {
    MlpConfig::new(&[6, 5, 4, 3]).with_dropout(&[0.2, 0.5])
}

fn names(model: &dyn Module) -> Vec<String> {
    model.named_parameters().into_iter().map(|(n, _)| n).collect()
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn every_builtin_regularizer_is_registered() {
    let names: Vec<&str> = plugins(Kind::Regularizer).iter().map(|p| p.name).collect();
    assert_eq!(names, ["dropout", "elastic_net", "l1", "l2", "max_norm"]);
}

#[test]
fn mlp_parameters_are_named_like_torch_sequential() {
    let with_dropout =
        mlp(&MlpConfig::new(&[784, 256, 256, 10]).with_dropout(&[0.2, 0.5]), 0, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(names(&with_dropout), ["1.weight", "1.bias", "4.weight", "4.bias", "7.weight", "7.bias"]);
    let plain = mlp(&MlpConfig::new(&[784, 256, 10]), 0, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(names(&plain), ["1.weight", "1.bias", "3.weight", "3.bias"]);
    let prelu =
        mlp(&MlpConfig::new(&[4, 3, 2]).with_activation("prelu", Config::new()), 0, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(names(&prelu), ["1.weight", "1.bias", "2.weight", "3.weight", "3.bias"]);
    let sd = state_dict(&with_dropout);
    assert_eq!(sd["1.weight"].dims(), [256, 784], "PyTorch's [out, in] layout");
}

#[test]
fn initialisation_follows_pytorch_bounds_and_is_reproducible() {
    let model = mlp(&MlpConfig::new(&[784, 256, 10]), 42, DType::F32, &Device::Cpu).unwrap();
    let sd = state_dict(&model);
    for (name, fan_in) in [("1.weight", 784.0), ("1.bias", 784.0), ("3.weight", 256.0), ("3.bias", 256.0)] {
        let v = flat(&sd[name]);
        let bound = 1.0 / f64::sqrt(fan_in);
        assert!(v.iter().all(|x| x.abs() <= bound), "{name} exceeds ±{bound}");
        if v.len() > 1000 {
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
            // Uniform(-b, b): mean 0 and variance b²/3, each within 4 standard errors.
            let n = v.len() as f64;
            assert!(mean.abs() < 4.0 * bound / (3.0 * n).sqrt(), "{name} mean {mean}");
            assert!((var / (bound * bound / 3.0) - 1.0).abs() < 4.0 * (0.8 / n).sqrt(), "{name} variance {var}");
        }
    }
    let again = state_dict(&mlp(&MlpConfig::new(&[784, 256, 10]), 42, DType::F32, &Device::Cpu).unwrap());
    let other = state_dict(&mlp(&MlpConfig::new(&[784, 256, 10]), 43, DType::F32, &Device::Cpu).unwrap());
    assert_eq!(flat(&sd["1.weight"]), flat(&again["1.weight"]));
    assert_ne!(flat(&sd["1.weight"]), flat(&other["1.weight"]));
}

#[test]
fn dropout_drops_the_right_fraction_and_preserves_the_mean() {
    let n = 1_000_000;
    let x = Tensor::ones(n, DType::F32, &Device::Cpu).unwrap();
    for p in [0.1, 0.5, 0.8] {
        let cfg: Config = toml::from_str(&format!("p = {p}")).unwrap();
        let d = ember::core::regularizer("dropout", &cfg, &BuildContext::default()).unwrap();
        let y = flat(&d.noise(&x, true, 7).unwrap());
        let dropped = y.iter().filter(|v| **v == 0.0).count() as f64 / n as f64;
        let sigma = (p * (1.0 - p) / n as f64).sqrt();
        assert!((dropped - p).abs() < 4.0 * sigma, "p = {p}: dropped {dropped}");
        let kept = y.iter().find(|v| **v != 0.0).unwrap();
        assert!((kept - 1.0 / (1.0 - p)).abs() < 1e-6);
        let mean = y.iter().sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 4.0 * sigma / (1.0 - p), "p = {p}: mean {mean}");
        // Same seed, same mask; another seed, another mask; evaluation is the identity.
        assert_eq!(y, flat(&d.noise(&x, true, 7).unwrap()));
        assert_ne!(y, flat(&d.noise(&x, true, 8).unwrap()));
        assert_eq!(flat(&d.noise(&x, false, 7).unwrap()), vec![1.0; n]);
    }
    let zero =
        ember::core::regularizer("dropout", &toml::from_str("p = 0.0").unwrap(), &BuildContext::default()).unwrap();
    assert_eq!(flat(&zero.noise(&x, true, 1).unwrap()), vec![1.0; n]);
    let all =
        ember::core::regularizer("dropout", &toml::from_str("p = 1.0").unwrap(), &BuildContext::default()).unwrap();
    assert!(flat(&all.noise(&x, true, 1).unwrap()).iter().all(|v| *v == 0.0));
}

#[test]
fn dropout_layers_act_only_in_training_and_pass_gradients_through_the_mask() {
    let model = mlp(&MlpConfig::new(&[50, 50, 50]).with_dropout(&[0.5]), 1, DType::F64, &Device::Cpu).unwrap();
    let x = Tensor::ones((2, 50), DType::F64, &Device::Cpu).unwrap();
    let eval1 = flat(&model.forward(&x, &mut Context::eval()).unwrap());
    let eval2 = flat(&model.forward(&x, &mut Context::eval()).unwrap());
    assert_eq!(eval1, eval2);
    let t1 = flat(&model.forward(&x, &mut Context::train(3)).unwrap());
    assert_eq!(t1, flat(&model.forward(&x, &mut Context::train(3)).unwrap()), "same seed, same masks");
    assert_ne!(t1, flat(&model.forward(&x, &mut Context::train(4)).unwrap()));
    assert_ne!(t1, eval1);

    let d = ember::core::regularizer("dropout", &toml::from_str("p = 0.5").unwrap(), &BuildContext::default()).unwrap();
    let v = Var::from_tensor(&Tensor::ones(1000, DType::F64, &Device::Cpu).unwrap()).unwrap();
    let y = d.noise(v.as_tensor(), true, 9).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    assert_eq!(flat(g.get(v.as_tensor()).unwrap()), flat(&y), "d(sum(x * mask))/dx = mask");
    // The mask follows the logical element order, whatever the memory layout; a weighted
    // upstream gradient comes back multiplied by the mask.
    let m = Tensor::arange(0f64, 600.0, &Device::Cpu).unwrap().reshape((20, 30)).unwrap();
    let mt = Var::from_tensor(&m.t().unwrap()).unwrap();
    let yt = d.noise(mt.as_tensor(), true, 5).unwrap();
    assert_eq!(flat(&yt), flat(&d.noise(&mt.as_tensor().contiguous().unwrap(), true, 5).unwrap()));
    let w = Tensor::arange(1f64, 601.0, &Device::Cpu).unwrap().reshape((30, 20)).unwrap();
    let g = yt.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
    let mask = d.noise(&Tensor::ones((30, 20), DType::F64, &Device::Cpu).unwrap(), true, 5).unwrap();
    assert_eq!(flat(g.get(mt.as_tensor()).unwrap()), flat(&w.mul(&mask).unwrap()));
}

#[test]
fn weights_round_trip_through_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let a = mlp(&small(), 11, DType::F32, &Device::Cpu).unwrap();
    save_safetensors(&a, &path).unwrap();
    let b = mlp(&small(), 12, DType::F32, &Device::Cpu).unwrap();
    let x = Tensor::randn(0f32, 1.0, (3, 2, 3), &Device::Cpu).unwrap();
    assert_ne!(
        flat(&a.forward(&x, &mut Context::eval()).unwrap()),
        flat(&b.forward(&x, &mut Context::eval()).unwrap())
    );
    load_safetensors(&b, &path).unwrap();
    assert_eq!(
        flat(&a.forward(&x, &mut Context::eval()).unwrap()),
        flat(&b.forward(&x, &mut Context::eval()).unwrap())
    );
}

#[test]
fn weights_saved_by_pytorch_load_and_give_pytorch_outputs() {
    let model = mlp(&small(), 0, DType::F32, &Device::Cpu).unwrap();
    load_safetensors(&model, fixture("torch_mlp.safetensors")).unwrap();
    let io = candle_core::safetensors::load(fixture("torch_mlp_io.safetensors"), &Device::Cpu).unwrap();
    let y = model.forward(&io["input"], &mut Context::eval()).unwrap();
    for (a, b) in flat(&y).iter().zip(flat(&io["output"])) {
        assert!((a - b).abs() <= 1e-5, "{a} vs PyTorch {b}");
    }
}

#[test]
fn exports_weights_that_pytorch_loads() {
    // Train a little, so the export is of a trained model.
    let model = mlp(&small(), 3, DType::F32, &Device::Cpu).unwrap();
    let x = Tensor::randn(0f32, 1.0, (16, 2, 3), &Device::Cpu).unwrap();
    let y = Tensor::new(&[0i64, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0], &Device::Cpu).unwrap();
    let ce = ember::core::loss("cross_entropy", &Config::new(), &BuildContext::default()).unwrap();
    let mut opt =
        OptimizerDriver::new("adam", &toml::from_str("lr = 0.05").unwrap(), &[], model.named_parameters()).unwrap();
    let before = state_dict(&model)["7.bias"].to_vec1::<f32>().unwrap();
    for step in 0..5 {
        let loss = ce.forward(&model.forward(&x, &mut Context::train(step)).unwrap(), &y).unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
    }
    assert_ne!(before, state_dict(&model)["7.bias"].to_vec1::<f32>().unwrap(), "training changed the weights");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ember-export");
    std::fs::create_dir_all(&dir).unwrap();
    save_safetensors(&model, dir.join("mlp.safetensors")).unwrap();
    let probe = Tensor::randn(0f32, 1.0, (4, 2, 3), &Device::Cpu).unwrap();
    let out = model.forward(&probe, &mut Context::eval()).unwrap();
    let io: HashMap<String, Tensor> = [("input".to_string(), probe), ("output".to_string(), out)].into_iter().collect();
    candle_core::safetensors::save(&io, dir.join("io.safetensors")).unwrap();
    // What PyTorch will see: its names, [out, in] shapes, f32.
    let saved = candle_core::safetensors::load(dir.join("mlp.safetensors"), &Device::Cpu).unwrap();
    let mut keys: Vec<&String> = saved.keys().collect();
    keys.sort();
    assert_eq!(keys, ["1.bias", "1.weight", "4.bias", "4.weight", "7.bias", "7.weight"]);
    assert_eq!(saved["1.weight"].dims(), [5, 6]);
    assert!(saved.values().all(|t| t.dtype() == DType::F32));
}

#[test]
fn loading_mismatched_weights_lists_every_problem() {
    let model = mlp(&small(), 0, DType::F32, &Device::Cpu).unwrap();
    let mut dict = state_dict(&mlp(&small(), 1, DType::F32, &Device::Cpu).unwrap());
    dict.remove("4.bias");
    dict.insert("9.weight".into(), Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap());
    dict.insert("1.weight".into(), Tensor::zeros((6, 5), DType::F32, &Device::Cpu).unwrap());
    let before = flat(&state_dict(&model)["7.weight"]);
    let e = load_state_dict(&model, &dict).unwrap_err().to_string();
    assert_eq!(
        e,
        "the weights do not fit the model:\n  wrong shape: 1.weight is [6, 5] in the file, [5, 6] in the model\n  missing: 4.bias (shape [4])\n  unexpected: 9.weight (shape [2, 2])"
    );
    assert_eq!(before, flat(&state_dict(&model)["7.weight"]), "nothing changes on error");
    let e = load_safetensors(&model, "/nonexistent/w.safetensors").unwrap_err().to_string();
    assert!(e.starts_with("/nonexistent/w.safetensors: cannot read weights:"), "{e}");
    assert!(!e.contains("stack backtrace"), "{e}");
}

#[test]
fn bad_model_configs_and_inputs_are_clear_errors() {
    let err = |c: MlpConfig| mlp(&c, 0, DType::F32, &Device::Cpu).unwrap_err().to_string();
    assert!(err(MlpConfig::new(&[784])).starts_with("model.sizes = [784] is invalid"));
    assert!(err(MlpConfig::new(&[784, 0, 10])).contains("entry 1 is 0"));
    assert!(err(MlpConfig::new(&[784, 256, 10]).with_dropout(&[0.1, 0.2]))
        .contains("2 values but the model has 1 hidden layers"));
    assert_eq!(
        err(MlpConfig::new(&[784, 256, 10]).with_dropout(&[1.5])),
        "model.dropout = 1.5 is invalid: must be in [0, 1]"
    );
    assert!(err(MlpConfig::new(&[4, 3, 2]).with_activation("rellu", Config::new()))
        .starts_with("unknown activation 'rellu'; did you mean 'relu'?"));
    let lin = Linear::init(3, 2, true, &mut ember::core::rng::Rng::new(0), DType::F32, &Device::Cpu).unwrap();
    let e = lin
        .forward(&Tensor::zeros((4, 5), DType::F32, &Device::Cpu).unwrap(), &mut Context::eval())
        .unwrap_err()
        .to_string();
    assert_eq!(e, "Linear: expected input of shape (..., 3), got [4, 5]");
}

#[test]
fn regularizer_roles_and_errors() {
    let err = |n: &str, c: &str| {
        ember::core::regularizer(n, &toml::from_str(c).unwrap(), &BuildContext::default()).unwrap_err().to_string()
    };
    assert_eq!(err("l2", "lambda = -1.0"), "l2.lambda = -1.0 is invalid: must be >= 0");
    assert_eq!(err("dropout", "p = 1.5"), "dropout.p = 1.5 is invalid: must be in [0, 1]");
    assert_eq!(
        err("elastic_net", "lambda = 1.0\nl1_ratio = 2.0"),
        "elastic_net.l1_ratio = 2.0 is invalid: must be in [0, 1]"
    );
    assert_eq!(err("max_norm", "max_norm = 0.0"), "max_norm.max_norm = 0.0 is invalid: must be > 0");
    assert_eq!(err("l1", ""), "regularizer 'l1' needs the key 'lambda' (penalty strength; >= 0)");
    let e = ember::nn::DropoutLayer::new("l2", &toml::from_str("lambda = 1.0").unwrap()).unwrap_err().to_string();
    assert_eq!(e, "regularizer 'l2' is a Penalty, not a noise layer; use it as a penalty or constraint");
    let mn = ember::core::regularizer(
        "max_norm",
        &toml::from_str("max_norm = 1.0\ndim = 2").unwrap(),
        &BuildContext::default(),
    )
    .unwrap();
    let e = mn.constrain(&Tensor::zeros((3, 4), DType::F32, &Device::Cpu).unwrap()).unwrap_err().to_string();
    assert_eq!(e, "max_norm: dim 2 is out of range for a weight of shape [3, 4]; use a dim in [-2, 1]");
    let w = Tensor::new(&[[3f64, 4.0], [0.3, 0.4]], &Device::Cpu).unwrap();
    let out = mn_dim0().constrain(&w).unwrap().to_vec2::<f64>().unwrap();
    assert!((out[0][0] - 0.6).abs() < 1e-6 && (out[0][1] - 0.8).abs() < 1e-6, "{out:?}");
    assert_eq!(out[1], [0.3, 0.4], "rows within the bound are unchanged");
}

fn mn_dim0() -> Box<dyn ember::core::Regularizer> {
    ember::core::regularizer("max_norm", &toml::from_str("max_norm = 1.0").unwrap(), &BuildContext::default()).unwrap()
}

#[test]
fn penalties_and_constraints_apply_to_the_selected_parameters() {
    use ember::train::{Regularization, RegularizerSpec};
    let model = mlp(&MlpConfig::new(&[3, 4, 2]), 5, DType::F64, &Device::Cpu).unwrap();
    let spec = |text: &str| RegularizerSpec::from_table(0, &toml::from_str(text).unwrap()).unwrap();
    // Default: the weights, not the biases.
    let reg = Regularization::new(&[spec("name = \"l2\"\nlambda = 2.0")], model.named_parameters()).unwrap();
    let sd = state_dict(&model);
    let want: f64 = ["1.weight", "3.weight"].iter().map(|n| flat(&sd[*n]).iter().map(|w| w * w).sum::<f64>()).sum();
    let got = reg.penalty().unwrap().unwrap().to_scalar::<f64>().unwrap();
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    let biases =
        Regularization::new(&[spec("name = \"l1\"\nlambda = 1.0\nparams = [\"*.bias\"]")], model.named_parameters())
            .unwrap();
    let want: f64 = ["1.bias", "3.bias"].iter().map(|n| flat(&sd[*n]).iter().map(|w| w.abs()).sum::<f64>()).sum();
    assert!((biases.penalty().unwrap().unwrap().to_scalar::<f64>().unwrap() - want).abs() < 1e-12);

    let mn = Regularization::new(&[spec("name = \"max_norm\"\nmax_norm = 0.1")], model.named_parameters()).unwrap();
    assert!(mn.penalty().unwrap().is_none());
    mn.constrain().unwrap();
    let w = state_dict(&model)["1.weight"].to_vec2::<f64>().unwrap();
    for row in w {
        assert!(row.iter().map(|x| x * x).sum::<f64>().sqrt() <= 0.1 + 1e-9);
    }

    let e =
        Regularization::new(&[spec("name = \"l2\"\nlambda = 1.0\nparams = [\"*.wieght\"]")], model.named_parameters())
            .err()
            .unwrap()
            .to_string();
    assert_eq!(e, "regularizers[0] (l2) selects no parameter with *.wieght; the parameters are: 1.weight, 1.bias, 3.weight, 3.bias");
    let e = Regularization::new(&[spec("name = \"dropout\"\np = 0.5")], model.named_parameters())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("is a noise layer; put it in the model"), "{e}");
    let e = Regularization::new(&[spec("name = \"l3\"\nlambda = 1.0")], model.named_parameters())
        .err()
        .unwrap()
        .to_string();
    assert!(e.starts_with("regularizers[0]: unknown regularizer 'l3'; did you mean"), "{e}");
}

#[test]
fn integer_weights_are_refused_and_float_weights_convert() {
    let model = mlp(&MlpConfig::new(&[2, 2]), 1, DType::F32, &Device::Cpu).unwrap();
    let names = names(&model);
    assert_eq!(names.len(), 2, "{names:?}");
    let (w, b) = (&names[0], &names[1]);
    let mut dict = HashMap::new();
    dict.insert(w.clone(), Tensor::ones((2, 2), DType::U8, &Device::Cpu).unwrap());
    dict.insert(b.clone(), Tensor::ones(2, DType::F64, &Device::Cpu).unwrap());
    let e = ember::nn::load_state_dict(&model, &dict).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("the weights do not fit the model:\n  wrong dtype: {w} is U8 in the file; weights must be floating point (f16, bf16, f32 or f64)")
    );
    dict.insert(w.clone(), Tensor::ones((2, 2), DType::F64, &Device::Cpu).unwrap());
    ember::nn::load_state_dict(&model, &dict).unwrap();
    assert_eq!(model.named_parameters()[0].1.dtype(), DType::F32, "f64 weights convert to the model's f32");
}

/// Ember builds candle-core with one change to its backward pass (vendor/README.md): a
/// tensor's first gradient is stored as computed, not added to zeros. Sums over several
/// uses, and layouts, must come out as before: contiguous, with the right values.
#[test]
fn gradients_sum_over_every_use_and_are_stored_contiguous() {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::new(&[[1f64, 2., 3.], [4., 5., 6.]], &dev).unwrap()).unwrap();
    let c = Tensor::new(&[[1f64, -1.], [2., 0.5], [-3., 4.]], &dev).unwrap();
    // One use, through a transpose: the gradient arrives transposed.
    let once = (x.as_tensor().t().unwrap() * &c).unwrap().sum_all().unwrap().backward().unwrap();
    let g = once.get(x.as_tensor()).unwrap();
    assert!(g.is_contiguous());
    assert_eq!(flat(g), flat(&c.t().unwrap()));
    // Three uses: transposed, squared, and broadcast against a row.
    let row = Tensor::new(&[[0.5f64, 1.5, -2.0]], &dev).unwrap();
    let t = x.as_tensor();
    let loss = ((t.t().unwrap() * &c).unwrap().sum_all().unwrap()
        + t.sqr().unwrap().sum_all().unwrap()
        + t.broadcast_mul(&row).unwrap().sum_all().unwrap())
    .unwrap();
    let grads = loss.backward().unwrap();
    let g = grads.get(t).unwrap();
    assert!(g.is_contiguous());
    let xs = flat(t);
    let (ct, r) = (flat(&c.t().unwrap()), flat(&row));
    let want: Vec<f64> = (0..6).map(|i| ct[i] + 2.0 * xs[i] + r[i % 3]).collect();
    assert_eq!(flat(g), want);
}
