//! Layers as plugins and models declared as layer lists: PyTorch's weights (buffers
//! included) load into Ember's model of the same config and give PyTorch's outputs; the
//! exported state_dict has PyTorch's names and dtypes; a CNN run resumes bit-exact, batch
//! norm's running statistics included, also after SIGKILL; the fused CPU kernels agree
//! with the composed path; and a layer that does not fit its input is an error naming the
//! layer, the shapes and the fix, before training.

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use candle_core::{DType, Device, Tensor, Var};
use ember::core::module::Context;
use ember::core::ops::{with_kernels, Kernels};
use ember::core::{Config, LayerContext, Value};
use ember::train::{build_model, Learner, Reporter, RunConfig};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn ember(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ember")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// `layers_model.toml` in f64.
fn layers_model() -> RunConfig {
    let text = std::fs::read_to_string(fixture("layers_model.toml")).unwrap();
    RunConfig::from_toml(&format!("{text}\n[train]\ndtype = \"f64\"\n"), "layers_model.toml").unwrap()
}

fn max_rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let a: Vec<f64> = a.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f64> = b.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    a.iter().zip(&b).map(|(x, y)| (x - y).abs() / y.abs().max(1e-3)).fold(0.0, f64::max)
}

#[test]
fn pytorch_weights_load_into_a_layers_model_and_give_pytorchs_outputs() {
    let config = layers_model();
    let io = candle_core::safetensors::load(fixture("torch_layers_io.safetensors"), &Device::Cpu).unwrap();
    let (x, want) = (&io["input"], &io["output"]);
    for kernels in [Kernels::Auto, Kernels::Composed] {
        with_kernels(kernels, || {
            let (model, output) = build_model(&config, &x.dims()[1..], DType::F64, &Device::Cpu).unwrap();
            assert_eq!(output, [3]);
            ember::nn::load_safetensors(&model, fixture("torch_layers.safetensors")).unwrap();
            let y = ember::nn::Module::forward(&model, x, &mut Context::eval()).unwrap();
            let diff = max_rel_diff(&y, want);
            assert!(diff < 1e-10, "{kernels:?}: outputs differ from PyTorch's by {diff:e}");
        });
    }
}

#[test]
fn the_exported_state_dict_has_pytorchs_names_shapes_and_dtypes_buffers_included() {
    let config = layers_model();
    let (model, _) = build_model(&config, &[3, 9, 9], DType::F64, &Device::Cpu).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("w.safetensors");
    ember::nn::save_safetensors(&model, &path).unwrap();
    let ours = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let torch = candle_core::safetensors::load(fixture("torch_layers.safetensors"), &Device::Cpu).unwrap();
    let describe = |d: &HashMap<String, Tensor>| {
        let mut v: Vec<_> = d.iter().map(|(k, t)| format!("{k} {:?} {:?}", t.dtype(), t.dims())).collect();
        v.sort();
        v
    };
    // PyTorch's load_state_dict(strict=True) needs exactly these names and shapes; the
    // batch count is an int64 scalar there too.
    assert_eq!(describe(&ours), describe(&torch));
    assert!(ours.contains_key("3.shortcut.1.num_batches_tracked") && ours.contains_key("4.body.0.0.weight"));
    // Strict loading refuses a missing buffer, naming it.
    let mut partial = torch.clone();
    partial.remove("1.running_var");
    let e = ember::nn::load_state_dict(&model, &partial).unwrap_err().to_string();
    assert!(e.contains("missing: 1.running_var (shape [4])"), "{e}");
}

/// A small CNN on a generated MNIST-layout folder of `n` images per split.
fn cnn(dir: &Path, epochs: usize) -> String {
    format!(
        r#"
seed = 5
[[model.layers]]
name = "conv2d"
out_channels = 4
kernel_size = 3
stride = 2
[[model.layers]]
name = "batch_norm2d"
[[model.layers]]
name = "relu"
[[model.layers]]
name = "max_pool2d"
kernel_size = 2
[[model.layers]]
name = "flatten"
[[model.layers]]
name = "dropout"
p = 0.2
[[model.layers]]
name = "linear"
out_features = 10
[loss]
name = "cross_entropy"
[optimizer]
name = "adam"
lr = 0.01
[data]
kind = "fashion_mnist"
dir = "{}"
[train]
epochs = {epochs}
batch_size = 16
"#,
        dir.display()
    )
}

/// Every tensor of the latest checkpoint's model section (buffers included) as f64.
fn model_state(run: &Path) -> Vec<(String, Vec<f64>)> {
    let file = ember::train::checkpoint::resolve(run).unwrap();
    let ckpt = ember::train::checkpoint::read(&file).unwrap();
    let mut v: Vec<_> = ckpt
        .section("model/")
        .into_iter()
        .map(|(k, t)| (k, t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn a_cnn_trains_and_resumes_bit_exact_with_its_batch_norm_statistics() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::write_mnist_dir(&data, 64, false);
    let config = |epochs| RunConfig::from_toml(&cnn(&data, epochs), "cnn.toml").unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    Learner::new(config(2), Device::Cpu, &a, Reporter::Quiet).unwrap().fit().unwrap();
    Learner::new(config(1), Device::Cpu, &b, Reporter::Quiet).unwrap().fit().unwrap();
    let mut resumed = Learner::resume(&b, Device::Cpu, None, Some(2), Reporter::Quiet).unwrap();
    resumed.fit().unwrap();
    let state = model_state(&a);
    assert_eq!(state, model_state(&b));
    assert_eq!(common::metrics_without_seconds(&a), common::metrics_without_seconds(&b));
    let get = |name: &str| state.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap();
    // 64 images in batches of 16, two epochs: eight steps, and statistics that moved.
    assert_eq!(get("1.num_batches_tracked"), [8.0]);
    assert!(get("1.running_mean").iter().all(|m| *m != 0.0), "{:?}", get("1.running_mean"));
    let names: Vec<&str> = state.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "0.bias",
            "0.weight",
            "1.bias",
            "1.num_batches_tracked",
            "1.running_mean",
            "1.running_var",
            "1.weight",
            "6.bias",
            "6.weight"
        ]
    );

    // predict builds the model for the input's shape and runs it in evaluation mode.
    let cfg = tmp.path().join("cnn.toml");
    std::fs::write(&cfg, cnn(&data, 2)).unwrap();
    let input = tmp.path().join("in.safetensors");
    let x = Tensor::rand(0f32, 1.0, (3, 1, 28, 28), &Device::Cpu).unwrap();
    candle_core::safetensors::save(&HashMap::from([("input".to_string(), x.clone())]), &input).unwrap();
    let pred = tmp.path().join("out.safetensors");
    let ckpt = ember::train::checkpoint::resolve(&a).unwrap();
    let (code, out, err) = ember(&[
        "predict",
        ckpt.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--out",
        pred.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("wrote output [3, 10]"), "{out}");
    let learner = Learner::resume(&a, Device::Cpu, Some(tmp.path().join("x")), None, Reporter::Quiet).unwrap();
    let want = ember::nn::Module::forward(learner.model(), &x, &mut Context::eval()).unwrap();
    let got = candle_core::safetensors::load(&pred, &Device::Cpu).unwrap()["output"].clone();
    assert_eq!(got.to_vec2::<f32>().unwrap(), want.to_vec2::<f32>().unwrap());
    // export writes the state_dict with the buffers; inspect lists the i64 count.
    let w = tmp.path().join("w.safetensors");
    let (code, out, err) = ember(&["export", a.to_str().unwrap(), "--out", w.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("wrote 9 tensors"), "{out}");
    let (_, out, _) = ember(&["inspect", w.to_str().unwrap()]);
    assert!(out.contains("1.num_batches_tracked\tI64\t[]") && out.contains("1.running_var\tF32\t[4]"), "{out}");
}

#[test]
fn a_cnn_run_killed_mid_epoch_resumes_to_the_same_weights_and_statistics() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::write_mnist_dir(&data, 256, false);
    let cfg = tmp.path().join("cnn.toml");
    std::fs::write(&cfg, cnn(&data, 400)).unwrap();
    let dir = tmp.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["train", cfg.to_str().unwrap(), "--out", dir.to_str().unwrap(), "--quiet"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ckpts = dir.join("checkpoints");
    common::wait_for_checkpoints(&ckpts, 2);
    // Into the next epoch, then SIGKILL.
    std::thread::sleep(Duration::from_millis(30));
    child.kill().unwrap();
    child.wait().unwrap();
    let files = ember::train::checkpoint::epoch_files(&ckpts).unwrap();
    assert!(!files.is_empty(), "no checkpoint was written");
    let target = (files.last().unwrap().0 + 1).to_string();
    let (code, _, err) = ember(&["train", "--resume", dir.to_str().unwrap(), "--epochs", &target, "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let straight = tmp.path().join("straight");
    let (code, _, err) =
        ember(&["train", cfg.to_str().unwrap(), "--out", straight.to_str().unwrap(), "--epochs", &target, "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(model_state(&dir), model_state(&straight), "killed + resumed == uninterrupted");
    assert_eq!(common::metrics_without_seconds(&dir), common::metrics_without_seconds(&straight));
}

fn table(pairs: &[(&str, Value)]) -> Config {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

fn int(i: i64) -> Value {
    Value::Int(i)
}

fn name(n: &str) -> (&'static str, Value) {
    ("name", Value::Str(n.into()))
}

/// The error building `layers` for examples of shape `input`.
fn build_error(layers: Vec<Config>, input: &[usize]) -> String {
    let config = RunConfig { model: ember::train::config::ModelConfig::layers(layers), ..layers_model() };
    build_model(&config, input, DType::F32, &Device::Cpu).unwrap_err().to_string()
}

#[test]
fn a_layer_that_does_not_fit_its_input_names_the_layer_the_shapes_and_the_fix() {
    let conv = |k: i64| table(&[name("conv2d"), ("out_channels", int(4)), ("kernel_size", int(k))]);
    let flatten = table(&[name("flatten")]);
    for (layers, input, want) in [
        (
            vec![flatten.clone(), conv(7)],
            vec![1, 5, 5],
            "model.layers[1] (conv2d): expects examples of shape [C, H, W], got shape [25]",
        ),
        (
            vec![conv(3), conv(7)],
            vec![1, 8, 8],
            "model.layers[1] (conv2d): kernel_size = [7, 7] (dilated extent [7, 7]) is larger than the input [6, 6] padded by [0, 0]; use a smaller kernel or dilation, or more padding",
        ),
        (
            vec![table(&[name("conv2d"), ("out_channels", int(4)), ("kernel_size", int(3)), ("groups", int(2))])],
            vec![3, 8, 8],
            "model.layers[0] (conv2d): in_channels = 3 does not divide by groups = 2; choose groups dividing both in_channels (3) and out_channels (4)",
        ),
        (
            vec![table(&[name("conv2d"), ("in_channels", int(3)), ("out_channels", int(4)), ("kernel_size", int(3))])],
            vec![1, 8, 8],
            "model.layers[0] (conv2d): in_channels = 3 but the input (shape [1, 8, 8] per example) gives 1; set in_channels = 1, or leave it out to have it inferred",
        ),
        (
            vec![table(&[
                name("residual"),
                ("body", Value::List(vec![Value::Table(table(&[name("conv2d"), ("out_channels", int(4)), ("kernel_size", int(3))]))])),
            ])],
            vec![1, 8, 8],
            "model.layers[0] (residual): the body's output shape [4, 6, 6] differs from the shortcut's [1, 8, 8] (input [1, 8, 8]); add a shortcut",
        ),
        (
            vec![table(&[
                name("sequential"),
                ("layers", Value::List(vec![Value::Table(flatten.clone()), Value::Table(table(&[name("max_pool2d"), ("kernel_size", int(2))]))])),
            ])],
            vec![1, 8, 8],
            "model.layers[0].layers[1] (max_pool2d): expects examples of shape [C, H, W], got shape [64]",
        ),
        (vec![table(&[name("conv3d")])], vec![1, 8, 8], "model.layers[0]: unknown layer 'conv3d'; known layers: "),
        (
            vec![table(&[("out_features", int(3))])],
            vec![4],
            "model.layers[0]: no `name`; each layer table names its layer",
        ),
        (
            vec![table(&[name("linear"), ("out_features", int(3)), ("bias", Value::Str("yes".into()))])],
            vec![4],
            "model.layers[0] (linear): linear.bias: expected true or false, got \"yes\" (a string)",
        ),
        (
            vec![table(&[name("max_pool2d"), ("kernel_size", int(2)), ("padding", int(2))])],
            vec![1, 8, 8],
            "model.layers[0] (max_pool2d): padding = [2, 2] is more than half the window [2, 2]",
        ),
        (
            vec![table(&[name("group_norm"), ("num_groups", int(3))])],
            vec![4, 8, 8],
            "model.layers[0] (group_norm): num_channels = 4 does not divide into num_groups = 3",
        ),
    ] {
        let e = build_error(layers, &input);
        assert!(e.starts_with(want), "got: {e}\nwant: {want}");
    }
    // Unknown names suggest the closest layer or activation.
    let e = build_error(vec![table(&[name("batchnorm2d")])], &[1, 4, 4]);
    assert!(e.contains("did you mean 'batch_norm2d'?") && e.contains("every activation: "), "{e}");
}

#[test]
fn a_model_given_twice_or_not_at_all_and_mlp_keys_beside_layers_are_errors() {
    let base = std::fs::read_to_string(fixture("layers_model.toml")).unwrap();
    let e = RunConfig::from_toml(&base.replace("seed = 3", "seed = 3\n[model]\nsizes = [4, 3]"), "x.toml");
    // TOML itself refuses [model] after [[model.layers]] in this order, so build it directly.
    let mut c = layers_model();
    c.model.sizes = Some(vec![4, 3]);
    let msg = c.validate().unwrap_err().to_string();
    assert!(msg.contains("give either model.sizes (the MLP shorthand) or [[model.layers]], not both"), "{msg} {e:?}");
    let mut c = layers_model();
    c.model.dropout = vec![0.5];
    let msg = c.validate().unwrap_err().to_string();
    assert!(msg.starts_with("model.dropout belongs to the MLP shorthand (model.sizes)"), "{msg}");
    let mut c = layers_model();
    c.model.layers.clear();
    assert!(c.validate().unwrap_err().to_string().starts_with("model: no model; give [[model.layers]]"));
}

#[test]
fn class_targets_need_a_score_per_class_from_the_last_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::write_mnist_dir(&data, 16, false);
    let text = cnn(&data, 1).replace("out_features = 10", "out_features = 7");
    let e = Learner::new(
        RunConfig::from_toml(&text, "x.toml").unwrap(),
        Device::Cpu,
        tmp.path().join("r"),
        Reporter::Quiet,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("the data has labels 0..=9 but the model outputs 7 classes; give the last layer 10 outputs (its out_features)"), "{e}");
    let text = cnn(&data, 1)
        .replace("name = \"flatten\"\n", "name = \"identity\"\n")
        .replace("[[model.layers]]\nname = \"linear\"\nout_features = 10\n", "");
    let e = Learner::new(
        RunConfig::from_toml(&text, "x.toml").unwrap(),
        Device::Cpu,
        tmp.path().join("s"),
        Reporter::Quiet,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("the model's output has shape [4, 6, 6] per example, but class targets need one score per class"),
        "{e}"
    );
}

#[test]
fn layers_are_listed_and_every_activation_is_a_layer() {
    let (code, out, err) = ember(&["plugins", "--kind", "layer"]);
    assert_eq!(code, 0, "{err}");
    for n in ["conv2d", "max_pool2d", "batch_norm2d", "layer_norm", "embedding", "residual", "sequential"] {
        assert!(out.contains(n), "{n} in {out}");
    }
    assert!(out.contains("kernel_size"), "arguments are listed: {out}");
    // An activation by name, with its config, as a layer (PReLU's weight named as PyTorch's).
    let layers = vec![table(&[name("prelu"), ("num_parameters", int(3))])];
    let config = RunConfig { model: ember::train::config::ModelConfig::layers(layers), ..layers_model() };
    let (model, out) = build_model(&config, &[3, 2, 2], DType::F32, &Device::Cpu).unwrap();
    assert_eq!(out, [3, 2, 2]);
    let names: Vec<String> = ember::nn::Module::named_parameters(&model).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["0.weight"]);
}

/// Random `[n, c, h, w]` data (f64) from a seed.
fn data(dims: &[usize], seed: u64) -> Tensor {
    let mut rng = ember::core::rng::Rng::new(seed);
    let n: usize = dims.iter().product();
    Tensor::from_vec((0..n).map(|_| rng.uniform_in(-2.0, 2.0)).collect::<Vec<f64>>(), dims, &Device::Cpu).unwrap()
}

/// The output and the gradients of sum(output * r) with respect to the input and every
/// parameter, for the layer `table` on `x`, under `kernels`.
fn run(table: &Config, x: &Tensor, kernels: Kernels, train: bool) -> Vec<(String, Tensor)> {
    with_kernels(kernels, || {
        let mut ctx = LayerContext::new(Device::Cpu, x.dtype(), 9);
        let built = ember::nn::build_layer(table, &x.dims()[1..], &mut ctx).unwrap();
        let xv = Var::from_tensor(x).unwrap();
        let mut fwd = if train { Context::train(1) } else { Context::eval() };
        let y = built.module.forward(xv.as_tensor(), &mut fwd).unwrap();
        let r = data(y.dims(), 77).to_dtype(x.dtype()).unwrap();
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let mut out =
            vec![("output".to_string(), y), ("grad_input".into(), grads.get(xv.as_tensor()).unwrap().clone())];
        for (n, v) in built.module.named_parameters() {
            out.push((format!("grad_{n}"), grads.get(v.as_tensor()).unwrap().clone()));
        }
        for (n, v) in built.module.named_buffers() {
            out.push((n, v.as_tensor().clone()));
        }
        out
    })
}

#[test]
fn the_fused_cpu_kernels_agree_with_the_composed_path() {
    let layer = |n: &str, pairs: &[(&str, Value)]| {
        let mut t = table(pairs);
        t.insert("name".into(), Value::Str(n.into()));
        t
    };
    let list = |v: &[i64]| Value::List(v.iter().map(|&i| int(i)).collect());
    let cases = [
        (layer("conv2d", &[("out_channels", int(5)), ("kernel_size", int(3))]), vec![3, 2, 7, 6]),
        (
            layer(
                "conv2d",
                &[
                    ("out_channels", int(6)),
                    ("kernel_size", list(&[3, 2])),
                    ("stride", list(&[2, 3])),
                    ("padding", list(&[2, 1])),
                    ("dilation", list(&[1, 2])),
                    ("groups", int(2)),
                ],
            ),
            vec![2, 4, 9, 11],
        ),
        (
            layer("conv2d", &[("out_channels", int(4)), ("kernel_size", int(1)), ("bias", Value::Bool(false))]),
            vec![2, 4, 3, 3],
        ),
        (
            layer(
                "conv1d",
                &[("out_channels", int(3)), ("kernel_size", int(3)), ("padding", int(2)), ("stride", int(2))],
            ),
            vec![2, 2, 9],
        ),
        (
            layer(
                "max_pool2d",
                &[("kernel_size", int(3)), ("stride", int(2)), ("padding", int(1)), ("ceil_mode", Value::Bool(true))],
            ),
            vec![2, 3, 8, 7],
        ),
        (layer("max_pool2d", &[("kernel_size", int(2)), ("dilation", int(2))]), vec![1, 2, 7, 7]),
        (
            layer(
                "avg_pool2d",
                &[
                    ("kernel_size", int(3)),
                    ("stride", int(2)),
                    ("padding", int(1)),
                    ("ceil_mode", Value::Bool(true)),
                    ("count_include_pad", Value::Bool(false)),
                ],
            ),
            vec![2, 3, 8, 7],
        ),
        (layer("avg_pool2d", &[("kernel_size", list(&[2, 3])), ("divisor_override", int(4))]), vec![2, 2, 6, 6]),
        (layer("batch_norm2d", &[("momentum", Value::Null)]), vec![4, 3, 5, 5]),
        (layer("batch_norm1d", &[("affine", Value::Bool(false))]), vec![6, 4]),
        (layer("batch_norm2d", &[("track_running_stats", Value::Bool(false))]), vec![3, 2, 4, 4]),
        // MaxPool2d(2) on odd sizes: the 2x2 fast path.
        (layer("max_pool2d", &[("kernel_size", int(2))]), vec![2, 3, 7, 9]),
        // A relu absorbed by the batch norm before it.
        (
            layer(
                "sequential",
                &[(
                    "layers",
                    Value::List(vec![
                        Value::Table(table(&[name("batch_norm2d")])),
                        Value::Table(table(&[name("relu")])),
                    ]),
                )],
            ),
            vec![4, 3, 5, 5],
        ),
    ];
    for (table, dims) in cases {
        let x = data(&dims, 3);
        for dtype in [DType::F64, DType::F32] {
            let x = x.to_dtype(dtype).unwrap();
            let fused = run(&table, &x, Kernels::Auto, true);
            let composed = run(&table, &x, Kernels::Composed, true);
            let tol = if dtype == DType::F64 { 1e-12 } else { 1e-4 };
            for ((n, a), (_, b)) in fused.iter().zip(&composed) {
                let d = max_rel_diff(a, b);
                assert!(d < tol, "{table:?} {dtype:?} {n}: fused and composed differ by {d:e}");
            }
        }
    }
}

/// `run` for layers built one by one (so none absorbs the next) and applied in turn: the
/// output, and the gradients of sum(output * r) for the input and every parameter.
fn run_apart(tables: &[Config], x: &Tensor, kernels: Kernels, train: bool) -> Vec<Tensor> {
    with_kernels(kernels, || {
        let mut ctx = LayerContext::new(Device::Cpu, x.dtype(), 9);
        let xv = Var::from_tensor(x).unwrap();
        let mut fwd = if train { Context::train(1) } else { Context::eval() };
        let (mut y, mut params, mut buffers) = (xv.as_tensor().clone(), vec![], vec![]);
        for t in tables {
            let built = ember::nn::build_layer(t, &y.dims()[1..], &mut ctx).unwrap();
            y = built.module.forward(&y, &mut fwd).unwrap();
            params.extend(built.module.named_parameters().into_iter().map(|(_, v)| v));
            buffers.extend(built.module.named_buffers().into_iter().map(|(_, v)| v.as_tensor().clone()));
        }
        let r = data(y.dims(), 77).to_dtype(x.dtype()).unwrap();
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let mut out = vec![y, grads.get(xv.as_tensor()).unwrap().clone()];
        out.extend(params.iter().map(|p| grads.get(p.as_tensor()).unwrap().clone()));
        out.extend(buffers);
        out
    })
}

#[test]
fn a_relu_after_a_batch_norm_runs_in_its_kernel_with_the_same_results() {
    let (bn, relu) = (table(&[name("batch_norm2d")]), table(&[name("relu")]));
    let seq = table(&[
        name("sequential"),
        ("layers", Value::List(vec![Value::Table(bn.clone()), Value::Table(relu.clone())])),
    ]);
    // Absorbed: the sequence's second layer passes its input through.
    let mut ctx = LayerContext::new(Device::Cpu, DType::F32, 0);
    let built = ember::nn::build_layer(&seq, &[3, 5, 5], &mut ctx).unwrap();
    let shown = format!("{:?}", built.module);
    assert!(shown.contains("Absorbed") && shown.contains("relu: true"), "{shown}");
    // Not absorbed: a relu with an argument, or another activation.
    for next in [table(&[name("relu"), ("inplace", Value::Bool(true))]), table(&[name("leaky_relu")])] {
        let other =
            table(&[name("sequential"), ("layers", Value::List(vec![Value::Table(bn.clone()), Value::Table(next)]))]);
        let mut ctx = LayerContext::new(Device::Cpu, DType::F32, 0);
        if let Ok(built) = ember::nn::build_layer(&other, &[3, 5, 5], &mut ctx) {
            assert!(!format!("{:?}", built.module).contains("Absorbed"));
        }
    }
    // Half the normalised values are negative: the mask matters.
    let x = data(&[4, 3, 5, 5], 5);
    for dtype in [DType::F64, DType::F32] {
        let x = x.to_dtype(dtype).unwrap();
        for kernels in [Kernels::Auto, Kernels::Composed] {
            for train in [true, false] {
                let together: Vec<Tensor> = run(&seq, &x, kernels, train).into_iter().map(|(_, t)| t).collect();
                let apart = run_apart(&[bn.clone(), relu.clone()], &x, kernels, train);
                assert_eq!(together.len(), apart.len());
                let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
                for (i, (a, b)) in together.iter().zip(&apart).enumerate() {
                    let d = max_rel_diff(a, b);
                    assert!(
                        d < tol,
                        "{dtype:?} {kernels:?} train={train} tensor {i}: absorbed and apart differ by {d:e}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_layer_fixtures_pass_on_the_composed_path() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity/layers.json");
    let file = ember_parity::load(&path).unwrap();
    let failed: Vec<String> = with_kernels(Kernels::Composed, || {
        file.cases
            .iter()
            .enumerate()
            .map(|(i, c)| ember_parity::run_case(c, i))
            .filter(|r| !r.passed())
            .map(|r| format!("{} {:?}", r.id, r.outcome))
            .collect()
    });
    assert!(file.cases.len() > 150 && failed.is_empty(), "{failed:#?}");
}
