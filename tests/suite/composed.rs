//! The device-generic path (composed candle ops) that CUDA and Metal tensors take, run on
//! the CPU with `Kernels::Composed`: every committed PyTorch fixture passes on it, the
//! built-in plugins never fall back to a host round trip, half floats agree with the fused
//! kernels, and training on it matches training on the fused kernels.

use std::path::Path;

use crate::common;

use candle_core::{DType, Device, Tensor, Var};
use ember::core::ops::composed::host_round_trips;
use ember::core::ops::{fused_on, kernels, with_kernels, Kernels};
use ember::core::{BuildContext, Kind};
use ember::train::{Learner, Reporter, RunConfig};
use ember_parity::{load, run_case, Outcome};

#[test]
fn the_kernel_choice_is_scoped_to_the_thread() {
    assert_eq!(kernels(), Kernels::Auto);
    assert!(fused_on(&Device::Cpu));
    with_kernels(Kernels::Composed, || {
        assert!(!fused_on(&Device::Cpu));
        // Another thread keeps the process-wide choice.
        std::thread::spawn(|| assert!(fused_on(&Device::Cpu))).join().unwrap();
    });
    assert!(fused_on(&Device::Cpu));
    assert!(Kernels::parse("composed").is_ok());
    let e = Kernels::parse("fast").unwrap_err().to_string();
    assert!(e.contains("EMBER_KERNELS=\"fast\"") && e.contains("use auto") && e.contains("composed"), "{e}");
}

#[test]
fn every_committed_fixture_passes_on_the_composed_path_without_host_round_trips() {
    with_kernels(Kernels::Composed, || {
        let before = host_round_trips();
        let mut failures = Vec::new();
        let mut total = 0;
        for path in common::parity_fixtures() {
            for (i, case) in load(&path).unwrap().cases.iter().enumerate() {
                total += 1;
                if let Outcome::Fail { reason } = run_case(case, i).outcome {
                    failures.push(format!("{}: {} {reason}", path.display(), case["id"]));
                }
            }
        }
        assert!(total > 200, "only {total} cases");
        assert!(failures.is_empty(), "{} of {total} cases failed:\n{}", failures.len(), failures.join("\n"));
        assert_eq!(host_round_trips() - before, 0, "a built-in plugin took the CPU fallback instead of composed ops");
    });
}

#[test]
fn a_plugin_without_a_composed_form_still_works_through_the_cpu_kernel() {
    use ember::core::ops::pointwise::{apply, Pointwise, Real};
    #[derive(Clone, Debug)]
    struct Cube;
    impl Pointwise for Cube {
        const NAME: &'static str = "cube";
        fn fwd<T: Real>(&self, x: T) -> T {
            x * x * x
        }
        fn bwd<T: Real>(&self, x: T, _y: T, g: T) -> T {
            g * T::of(3.0) * x * x
        }
    }
    let x = Var::new(&[1.0f64, -2.0, 0.5], &Device::Cpu).unwrap();
    let (y, grad, trips) = with_kernels(Kernels::Composed, || {
        let before = host_round_trips();
        let y = apply(&Cube, x.as_tensor()).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        (y, grads.get(x.as_tensor()).unwrap().clone(), host_round_trips() - before)
    });
    assert_eq!(y.to_vec1::<f64>().unwrap(), [1.0, -8.0, 0.125]);
    assert_eq!(grad.to_vec1::<f64>().unwrap(), [3.0, 12.0, 0.75]);
    assert_eq!(trips, 2, "forward and backward each run the CPU kernel once");
}

/// Output and input gradient of `f` on the fused and on the composed path.
fn both_paths(x: &Tensor, f: &dyn Fn(&Tensor) -> Tensor) -> [(Vec<f32>, Vec<f32>); 2] {
    [Kernels::Auto, Kernels::Composed].map(|k| {
        with_kernels(k, || {
            let v = Var::from_tensor(x).unwrap();
            let y = f(v.as_tensor());
            let g = y.sum_all().unwrap().backward().unwrap().get(v.as_tensor()).unwrap().clone();
            let flat = |t: &Tensor| t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (flat(&y), flat(&g))
        })
    })
}

fn close(a: &[f32], b: &[f32], rtol: f32, atol: f32) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= atol + rtol * y.abs() || (x.is_nan() && y.is_nan()))
}

#[test]
fn half_float_activations_agree_between_the_fused_and_composed_paths() {
    let base = Tensor::new(&[[-3.0f32, -1.0, -0.25, 0.0, 0.5], [1.0, 2.0, 3.5, -0.75, 0.125]], &Device::Cpu).unwrap();
    for dtype in [DType::F16, DType::BF16] {
        let x = base.to_dtype(dtype).unwrap();
        for p in ember::core::registry::plugins(Kind::Activation) {
            let ctx = BuildContext::new(Device::Cpu, dtype);
            let act = ember::core::activation(p.name, &Default::default(), &ctx).unwrap();
            let [(y1, g1), (y2, g2)] = both_paths(&x, &|t| act.forward(t).unwrap());
            // Both compute in f32 and round to the half type; the fused backward (as
            // PyTorch's) starts from the rounded output, the composed one from the f32
            // output, so gradients that cancel (log_softmax's g - exp(y) * sum(g)) differ
            // by a few roundings of the output.
            let tol = if dtype == DType::F16 { 2e-3 } else { 1.6e-2 };
            assert!(close(&y2, &y1, tol, tol), "{} {dtype:?} output: composed {y2:?} fused {y1:?}", p.name);
            assert!(close(&g2, &g1, tol, tol), "{} {dtype:?} gradient: composed {g2:?} fused {g1:?}", p.name);
        }
    }
}

#[test]
fn dropout_masks_and_gradients_are_the_same_on_both_paths() {
    let x = Tensor::randn(0f32, 1.0, (16, 32), &Device::Cpu).unwrap();
    let mut cfg = ember::core::Config::new();
    cfg.insert("p".into(), 0.3.into());
    let reg = ember::core::regularizer("dropout", &cfg, &BuildContext::default()).unwrap();
    let [(y1, g1), (y2, g2)] = both_paths(&x, &|t| reg.noise(t, true, 11).unwrap());
    assert_eq!(y1, y2);
    assert_eq!(g1, g2);
    assert!(y1.contains(&0.0) && y1.iter().any(|v| *v != 0.0));
}

const RUN: &str = r#"
seed = 3
[model]
sizes = [8, 16, 16, 3]
activation = "gelu"
dropout = [0.2, 0.1]
[loss]
name = "cross_entropy"
label_smoothing = 0.1
[optimizer]
name = "adamw"
lr = 0.01
[[optimizer.groups]]
params = ["*.bias"]
weight_decay = 0.0
[data]
kind = "synthetic"
n_train = 160
n_eval = 40
features = 8
classes = 3
[train]
epochs = 2
batch_size = 32
"#;

fn final_weights(k: Kernels, dir: &Path) -> (Vec<(String, Vec<f32>)>, f64) {
    with_kernels(k, || {
        let config = RunConfig::from_toml(RUN, "composed.toml").unwrap();
        let mut learner = Learner::new(config, Device::Cpu, dir, Reporter::Quiet).unwrap();
        let summary = learner.fit().unwrap();
        (common::checkpoint_weights(dir), summary.last.unwrap().eval_loss)
    })
}

#[test]
fn training_on_the_composed_path_matches_the_fused_kernels() {
    let tmp = tempfile::tempdir().unwrap();
    let (fused, fused_loss) = final_weights(Kernels::Auto, &tmp.path().join("fused"));
    let (composed, composed_loss) = final_weights(Kernels::Composed, &tmp.path().join("composed"));
    assert_eq!(fused.len(), composed.len());
    for ((n, a), (_, b)) in fused.iter().zip(&composed) {
        assert!(close(b, a, 1e-4, 1e-5), "{n}: composed {b:?}\nfused {a:?}");
    }
    assert!((fused_loss - composed_loss).abs() < 1e-5 * fused_loss.abs().max(1.0), "{fused_loss} vs {composed_loss}");
}

/// `ember bench optimizer` reports the path that ran: `--composed` runs the composed path
/// of any optimizer, and an optimizer without a fused kernel reports `composed`.
#[test]
fn bench_optimizer_reports_the_path_that_ran() {
    let path = |args: &[&str]| {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let argv = ["ember", "bench", "optimizer"].iter().chain(args).chain(&["--numel", "4096", "--steps", "3"]);
        assert_eq!(ember_cli::run(argv.copied(), &mut out, &mut err), 0, "{}", String::from_utf8_lossy(&err));
        let last = String::from_utf8(out).unwrap();
        let v: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
        v["path"].as_str().unwrap().to_string()
    };
    assert_eq!(path(&["adam"]), "fused");
    assert_eq!(path(&["adam", "--composed"]), "composed");
    assert_eq!(path(&["sgd", "--config", r#"{"momentum": 0.9}"#]), "fused");
    assert_eq!(path(&["sgd", "--config", r#"{"momentum": 0.9}"#, "--composed"]), "composed");
    assert_eq!(path(&["nadam"]), "composed");
}
