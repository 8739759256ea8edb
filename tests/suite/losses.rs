//! Behaviour of the built-in losses beyond the PyTorch fixtures: gradients agree with
//! finite differences, large logits stay finite, and every bad input is a clear error.

use candle_core::{DType, Device, Tensor, Var};
use ember::core::registry::{plugins, Kind};
use ember::core::{loss, BuildContext, Config, Loss, LossArg};

const BUILTIN_LOSSES: [&str; 20] = [
    "bce",
    "bce_with_logits",
    "cosine_embedding",
    "cross_entropy",
    "ctc",
    "gaussian_nll",
    "hinge_embedding",
    "huber",
    "kl_div",
    "l1",
    "margin_ranking",
    "mse",
    "multi_margin",
    "multilabel_margin",
    "multilabel_soft_margin",
    "nll",
    "poisson_nll",
    "smooth_l1",
    "soft_margin",
    "triplet_margin",
];

/// The losses of several tensors and their arguments (the rest take an input and a target).
const SEVERAL_INPUT_LOSSES: [(&str, &str); 5] = [
    ("cosine_embedding", "input1, input2, target"),
    ("ctc", "log_probs, targets, input_lengths, target_lengths"),
    ("gaussian_nll", "input, target, var"),
    ("margin_ranking", "input1, input2, target"),
    ("triplet_margin", "anchor, positive, negative"),
];

fn several_inputs(name: &str) -> bool {
    SEVERAL_INPUT_LOSSES.iter().any(|(n, _)| *n == name)
}

fn build(name: &str, config: &str) -> Box<dyn Loss> {
    let config: Config = toml::from_str(config).unwrap();
    loss(name, &config, &BuildContext::new(Device::Cpu, DType::F64)).unwrap()
}

fn build_err(name: &str, config: &str) -> String {
    let config: Config = toml::from_str(config).unwrap();
    loss(name, &config, &BuildContext::default()).unwrap_err().to_string()
}

fn t2(rows: &[&[f64]]) -> Tensor {
    let data: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_vec(data, (rows.len(), rows[0].len()), &Device::Cpu).unwrap()
}

fn classes(v: &[i64]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

fn forward_err(name: &str, config: &str, input: &Tensor, target: &Tensor) -> String {
    build(name, config).forward(input, target).unwrap_err().to_string()
}

#[test]
fn every_builtin_loss_is_registered() {
    let names: Vec<&str> =
        plugins(Kind::Loss).iter().filter(|p| p.module.starts_with("ember_losses::")).map(|p| p.name).collect();
    assert_eq!(names, BUILTIN_LOSSES);
    for p in plugins(Kind::Loss) {
        let reduction = p.params.iter().find(|s| s.name == "reduction").expect("every loss takes reduction");
        assert_eq!(reduction.default.to_string(), "\"mean\"", "{}", p.name);
    }
    for name in BUILTIN_LOSSES {
        let args = build(name, "").arguments();
        assert_eq!(args == LossArg::INPUT_TARGET, !several_inputs(name), "{name}: {args:?}");
    }
}

/// An input and a valid target for each loss (2 x 3, classes along dim 1).
fn example(name: &str) -> (Tensor, Tensor) {
    let x = t2(&[&[0.3, -1.2, 0.8], &[1.5, 0.1, -0.4]]);
    let target = match name {
        "nll" | "cross_entropy" | "multi_margin" => classes(&[2, 0]),
        "multilabel_margin" => t2(&[&[2.0, 0.0, -1.0], &[1.0, -1.0, -1.0]]),
        "hinge_embedding" => t2(&[&[1.0, -1.0, 1.0], &[-1.0, -1.0, 1.0]]),
        "poisson_nll" => t2(&[&[0.0, 1.0, 3.0], &[2.0, 0.0, 5.0]]),
        "bce" => t2(&[&[0.0, 1.0, 0.25], &[1.0, 0.5, 0.0]]),
        "soft_margin" => t2(&[&[1.0, -1.0, 1.0], &[-1.0, 1.0, 1.0]]),
        "kl_div" => t2(&[&[0.2, 0.5, 0.3], &[0.0, 0.6, 0.4]]),
        "multilabel_soft_margin" | "bce_with_logits" => t2(&[&[1.0, 0.0, 1.0], &[0.0, 0.0, 1.0]]),
        _ => t2(&[&[0.5, -0.2, 2.0], &[1.0, 0.3, -2.0]]),
    };
    let x = if name == "bce" { x.affine(0.25, 0.5).unwrap() } else { x };
    (x, target)
}

#[test]
fn gradients_match_central_finite_differences_in_f64() {
    let configs = [
        ("l1", ""),
        ("mse", "reduction = \"sum\""),
        ("smooth_l1", "beta = 0.7"),
        ("huber", "delta = 0.6"),
        ("nll", "weight = [1.0, 2.0, 0.5]"),
        ("cross_entropy", "weight = [1.0, 2.0, 0.5]\nlabel_smoothing = 0.2"),
        ("bce", "weight = [1.0, 0.5, 2.0]"),
        ("bce_with_logits", "pos_weight = [2.0, 1.0, 0.5]"),
        ("soft_margin", ""),
        ("multilabel_soft_margin", "weight = [1.0, 0.5, 2.0]"),
        ("kl_div", "reduction = \"batchmean\""),
        ("poisson_nll", "full = true"),
        ("hinge_embedding", "margin = 0.5"),
        ("multi_margin", "p = 2\nweight = [1.0, 2.0, 0.5]"),
        ("multilabel_margin", ""),
    ];
    // The losses of three tensors have a test of their own below.
    for name in BUILTIN_LOSSES {
        assert!(configs.iter().any(|(n, _)| *n == name) || several_inputs(name), "{name} untested");
    }
    let h = 1e-6;
    for (name, cfg) in configs {
        let l = build(name, cfg);
        let (x, target) = example(name);
        let xv = Var::from_tensor(&x).unwrap();
        let grads = l.forward(xv.as_tensor(), &target).unwrap().backward().unwrap();
        let grad: Vec<f64> = grads.get(xv.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let flat: Vec<f64> = x.flatten_all().unwrap().to_vec1().unwrap();
        for i in 0..flat.len() {
            let at = |d: f64| {
                let mut v = flat.clone();
                v[i] += d;
                let xi = Tensor::from_vec(v, x.shape(), &Device::Cpu).unwrap();
                l.forward(&xi, &target).unwrap().to_scalar::<f64>().unwrap()
            };
            let numeric = (at(h) - at(-h)) / (2.0 * h);
            assert!(
                (numeric - grad[i]).abs() <= 1e-6 * (1.0 + numeric.abs()),
                "{name}: d/dx[{i}] is {} by autograd, {numeric} numerically",
                grad[i]
            );
        }
    }
}

/// Arguments for each loss of three tensors (two rows of three features), away from
/// every kink.
fn several_args(name: &str) -> Vec<Tensor> {
    let a = t2(&[&[0.3, -1.2, 0.8], &[1.5, 0.1, -0.4]]);
    let b = t2(&[&[0.5, -0.2, 2.0], &[1.0, 0.3, -2.0]]);
    let c = t2(&[&[-0.7, 0.9, 0.2], &[0.4, -1.1, 0.6]]);
    match name {
        "gaussian_nll" => vec![a, b, t2(&[&[0.5, 1.2, 0.8], &[2.0, 0.3, 1.1]])],
        "margin_ranking" => vec![a, b, t2(&[&[1.0, -1.0, 1.0], &[-1.0, 1.0, 1.0]])],
        "cosine_embedding" => vec![a, b, Tensor::new(&[1.0, -1.0], &Device::Cpu).unwrap()],
        "triplet_margin" => vec![a, b, c],
        other => panic!("{other} takes an input and a target"),
    }
}

#[test]
fn several_input_gradients_match_central_finite_differences_in_f64() {
    let configs = [
        ("cosine_embedding", "margin = 0.1\nreduction = \"sum\""),
        ("gaussian_nll", "full = true\neps = 0.1"),
        ("margin_ranking", "margin = 0.5"),
        ("triplet_margin", "p = 3.0\nswap = true"),
    ];
    // ctc's gradient is PyTorch's, not the derivative: it has a test of its own below.
    for (name, _) in SEVERAL_INPUT_LOSSES {
        assert!(configs.iter().any(|(n, _)| *n == name) || name == "ctc", "{name} untested");
    }
    let h = 1e-6;
    for (name, cfg) in configs {
        let l = build(name, cfg);
        let spec = l.arguments();
        let args = several_args(name);
        assert_eq!(spec.len(), args.len(), "{name}");
        let vars: Vec<Option<Var>> =
            spec.iter().zip(&args).map(|(a, t)| a.grad.then(|| Var::from_tensor(t).unwrap())).collect();
        let tracked: Vec<Tensor> = vars
            .iter()
            .zip(&args)
            .map(|(v, t)| v.as_ref().map_or_else(|| t.clone(), |v| v.as_tensor().clone()))
            .collect();
        let grads = l.forward_args(&tracked.iter().collect::<Vec<_>>()).unwrap().backward().unwrap();
        for (k, v) in vars.iter().enumerate() {
            let Some(v) = v else { continue };
            let grad: Vec<f64> = grads.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let flat: Vec<f64> = args[k].flatten_all().unwrap().to_vec1().unwrap();
            for i in 0..flat.len() {
                let at = |d: f64| {
                    let mut w = flat.clone();
                    w[i] += d;
                    let mut moved = args.clone();
                    moved[k] = Tensor::from_vec(w, args[k].shape(), &Device::Cpu).unwrap();
                    l.forward_args(&moved.iter().collect::<Vec<_>>()).unwrap().to_scalar::<f64>().unwrap()
                };
                let numeric = (at(h) - at(-h)) / (2.0 * h);
                assert!(
                    (numeric - grad[i]).abs() <= 1e-6 * (1.0 + numeric.abs()),
                    "{name}: d/d{}[{i}] is {} by autograd, {numeric} numerically",
                    spec[k].name,
                    grad[i]
                );
            }
        }
    }
}

#[test]
fn several_input_losses_name_their_arguments() {
    let x = t2(&[&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]]);
    for (name, args) in SEVERAL_INPUT_LOSSES {
        let l = build(name, "");
        assert_eq!(LossArg::names(l.arguments()), args);
        let e = l.forward(&x, &x).unwrap_err().to_string();
        let start = format!("{name} takes {args}, not a model output and a target: call forward_args(&[{args}])");
        assert!(e.starts_with(&start), "{e}");
        let e = l.forward_args(&[&x, &x]).unwrap_err().to_string();
        let count = args.split(", ").count();
        assert_eq!(e, format!("{name} takes {count} tensors ({args}), got 2"));
    }
    // A loss of an input and a target takes them through forward_args too.
    let mse = build("mse", "");
    assert_eq!(mse.arguments(), LossArg::INPUT_TARGET);
    assert_eq!(mse.forward_args(&[&x, &x]).unwrap().to_scalar::<f64>().unwrap(), 0.0);
    assert_eq!(mse.forward_args(&[&x]).unwrap_err().to_string(), "the loss takes 2 tensors (input, target), got 1");
}

#[test]
fn several_input_losses_check_shapes_labels_and_variances() {
    let x = t2(&[&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]]);
    let run = |name: &str, args: &[&Tensor]| build(name, "").forward_args(args).unwrap_err().to_string();
    let row = Tensor::new(&[1.0, -1.0], &Device::Cpu).unwrap();
    assert_eq!(
        run("margin_ranking", &[&x, &x, &row]),
        "margin_ranking: input1 [2, 3], input2 [2, 3] and target [2] must have one shape"
    );
    let labels = t2(&[&[1.0, 0.0, 1.0], &[-1.0, 1.0, 1.0]]);
    assert_eq!(
        run("margin_ranking", &[&x, &x, &labels]),
        "margin_ranking: every target must be 1 or -1, got 0 at flat index 1; map 0/1 labels to -1/1 with 2y - 1"
    );
    let e = run("cosine_embedding", &[&x, &x, &labels]);
    let start = "cosine_embedding: needs input1 and input2 of one shape (N, D) with a target of shape (N)";
    assert!(e.starts_with(start), "{e}");
    let e = run("triplet_margin", &[&x, &x, &row]);
    let start = "triplet_margin: anchor [2, 3], positive [2, 3] and negative [2] must have one shape";
    assert!(e.starts_with(start), "{e}");
    let var = t2(&[&[1.0, 0.5, -0.1], &[1.0, 1.0, 1.0]]);
    assert_eq!(
        run("gaussian_nll", &[&x, &x, &var]),
        "gaussian_nll: every var must be >= 0 (a variance), got -0.1 at flat index 2; end the variance head with softplus or exp"
    );
    let e = run("gaussian_nll", &[&x, &x, &Tensor::ones(3, DType::F64, &Device::Cpu).unwrap()]);
    assert!(e.starts_with("gaussian_nll: var has shape [3], which does not fit the input's [2, 3]"), "{e}");
    // One variance per row, as [2] or as [2, 1], is PyTorch's homoscedastic case.
    let l = build("gaussian_nll", "");
    let y = x.affine(1.0, 1.0).unwrap();
    let per_row = l.forward_args(&[&x, &y, &row.abs().unwrap()]).unwrap().to_scalar::<f64>().unwrap();
    let column = l.forward_args(&[&x, &y, &row.abs().unwrap().unsqueeze(1).unwrap()]).unwrap();
    assert_eq!(per_row, column.to_scalar::<f64>().unwrap());
    assert_eq!(build_err("triplet_margin", "margin = 0.0"), "triplet_margin.margin = 0.0 is invalid: must be > 0");
    assert_eq!(
        build_err("triplet_margin", "p = 0.5"),
        "triplet_margin.p = 0.5 is invalid: must be a finite number >= 1"
    );
}

/// PyTorch's CTC gradient with respect to log_probs is the gradient through the
/// log_softmax that made them: exp(log_probs) plus the derivative, for every frame within
/// a sequence's input length (0 beyond it, where the loss does not depend on log_probs).
/// It holds for any log_probs, normalised or not.
#[test]
fn ctc_gradient_is_exp_log_probs_plus_the_derivative_within_each_input_length() {
    let l = build("ctc", "reduction = \"sum\"\nblank = 1");
    let (frames, batch, classes_n) = (4, 2, 3);
    let vals: Vec<f64> = (0..frames * batch * classes_n).map(|i| ((i * 7 % 11) as f64 - 5.0) / 4.0).collect();
    let shape = (frames, batch, classes_n);
    let x = Tensor::from_vec(vals.clone(), shape, &Device::Cpu).unwrap();
    // [0, 2] in 4 frames; [2, 2] (a blank between the repeats) in 3.
    let targets = Tensor::new(&[[0i64, 2], [2, 2]], &Device::Cpu).unwrap();
    let (il, tl) = (classes(&[4, 3]), classes(&[2, 2]));
    let xv = Var::from_tensor(&x).unwrap();
    let grads = l.forward_args(&[xv.as_tensor(), &targets, &il, &tl]).unwrap().backward().unwrap();
    let grad: Vec<f64> = grads.get(xv.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let h = 1e-6;
    for i in 0..vals.len() {
        let at = |d: f64| {
            let mut v = vals.clone();
            v[i] += d;
            let xi = Tensor::from_vec(v, shape, &Device::Cpu).unwrap();
            l.forward_args(&[&xi, &targets, &il, &tl]).unwrap().to_scalar::<f64>().unwrap()
        };
        let numeric = (at(h) - at(-h)) / (2.0 * h);
        let (t, b) = (i / (batch * classes_n), i / classes_n % batch);
        let expected = if t < [4, 3][b] {
            numeric + vals[i].exp()
        } else {
            assert_eq!(numeric, 0.0, "frame {t} is beyond sequence {b}'s input length");
            0.0
        };
        assert!(
            (expected - grad[i]).abs() <= 1e-6 * (1.0 + expected.abs()),
            "ctc: d/dlog_probs[{i}] is {} by autograd, {expected} expected",
            grad[i]
        );
    }
}

#[test]
fn ctc_is_infinite_where_no_alignment_fits_and_zero_with_zero_infinity() {
    let d = &Device::Cpu;
    let vals = vec![-0.5, -1.0, -2.0, -1.2, -0.7, -1.5, -0.9, -1.1, -1.3, -0.4, -2.2, -1.0];
    let x = Var::from_tensor(&Tensor::from_vec(vals, (2, 2, 3), d).unwrap()).unwrap();
    // Concatenated: [1, 1] needs 3 frames (a blank between the repeats) but has 2; [2] fits.
    let targets = Tensor::new(&[1i64, 1, 2], d).unwrap();
    let (il, tl) = (classes(&[2, 2]), classes(&[2, 1]));
    let args = [x.as_tensor(), &targets, &il, &tl];
    let none = build("ctc", "reduction = \"none\"").forward_args(&args).unwrap();
    let v: Vec<f64> = none.to_vec1().unwrap();
    assert_eq!(v[0], f64::INFINITY);
    assert!(v[1].is_finite() && v[1] > 0.0, "{v:?}");
    // As in PyTorch, the impossible sequence's gradient is NaN, the other's finite.
    let grads = none.sum_all().unwrap().backward().unwrap();
    let g: Vec<f64> = grads.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    for t in 0..2 {
        for c in 0..3 {
            assert!(g[t * 6 + c].is_nan() && g[t * 6 + 3 + c].is_finite(), "{g:?}");
        }
    }
    let zero = build("ctc", "reduction = \"none\"\nzero_infinity = true").forward_args(&args).unwrap();
    assert_eq!(zero.to_vec1::<f64>().unwrap(), vec![0.0, v[1]]);
    let grads = zero.sum_all().unwrap().backward().unwrap();
    let gz: Vec<f64> = grads.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    for t in 0..2 {
        for c in 0..3 {
            assert_eq!(gz[t * 6 + c], 0.0);
            assert_eq!(gz[t * 6 + 3 + c], g[t * 6 + 3 + c]);
        }
    }
    // mean: each loss over its target length, then the mean over the batch.
    let mean = build("ctc", "zero_infinity = true").forward_args(&args).unwrap().to_scalar::<f64>().unwrap();
    assert!((mean - v[1] / 2.0).abs() < 1e-12, "{mean} vs {}", v[1] / 2.0);
}

#[test]
fn ctc_takes_unbatched_and_half_precision_log_probs() {
    let d = &Device::Cpu;
    let vals: Vec<f32> = (0..20).map(|i| -((i % 7) as f32) / 3.0 - 0.2).collect();
    let x = Tensor::from_vec(vals, (5, 4), d).unwrap();
    let l = build("ctc", "reduction = \"none\"");
    let one = |v: i64| Tensor::new(v, d).unwrap();
    let y = l.forward_args(&[&x, &Tensor::new(&[1i64, 2], d).unwrap(), &one(5), &one(2)]).unwrap();
    assert!(y.dims().is_empty(), "{:?}", y.dims());
    let batched = x.unsqueeze(1).unwrap();
    let padded = Tensor::new(&[[1i64, 2]], d).unwrap();
    let yb = l.forward_args(&[&batched, &padded, &classes(&[5]), &classes(&[2])]).unwrap();
    assert_eq!(yb.to_vec1::<f32>().unwrap(), vec![y.to_scalar::<f32>().unwrap()]);
    let half = x.to_dtype(DType::BF16).unwrap();
    let yh = l.forward_args(&[&half, &Tensor::new(&[1i64, 2], d).unwrap(), &one(5), &one(2)]).unwrap();
    assert_eq!(yh.dtype(), DType::BF16);
    let (h, f) = (yh.to_dtype(DType::F32).unwrap().to_scalar::<f32>().unwrap(), y.to_scalar::<f32>().unwrap());
    assert!((h - f).abs() <= 0.02 * f.abs(), "bf16 {h} vs f32 {f}");
}

#[test]
fn ctc_checks_its_arguments() {
    let d = &Device::Cpu;
    let x = Tensor::zeros((5, 2, 4), DType::F32, d).unwrap();
    // Sequence 1 is padded with the blank, which is never read.
    let targets = Tensor::new(&[[1i64, 2, 3], [3, 3, 0]], d).unwrap();
    let (il, tl) = (classes(&[5, 4]), classes(&[3, 2]));
    assert!(build("ctc", "").forward_args(&[&x, &targets, &il, &tl]).unwrap().to_scalar::<f32>().unwrap().is_finite());
    let run = |cfg: &str, args: &[&Tensor]| build("ctc", cfg).forward_args(args).unwrap_err().to_string();
    let with_blank = Tensor::new(&[[1i64, 0, 3], [3, 3, 0]], d).unwrap();
    assert_eq!(
        run("", &[&x, &with_blank, &il, &tl]),
        "ctc: targets: sequence 0 has the blank label 0 at position 1; targets hold the labels between blanks, never blank itself"
    );
    let too_big = Tensor::new(&[[1i64, 2, 4], [3, 3, 0]], d).unwrap();
    assert_eq!(
        run("", &[&x, &too_big, &il, &tl]),
        "ctc: targets: label 4 (sequence 0, position 2) is not a class of log_probs, which has 4 (its last dimension)"
    );
    assert_eq!(
        run("blank = 4", &[&x, &targets, &il, &tl]),
        "ctc: blank = 4 is not one of log_probs's 4 classes (its last dimension); give 0 <= blank < 4"
    );
    assert_eq!(
        run("", &[&x, &targets, &classes(&[6, 4]), &tl]),
        "ctc: input_lengths[0] = 6 is more than log_probs's 5 frames (its first dimension)"
    );
    assert_eq!(
        run("", &[&x, &targets, &il, &classes(&[4, 2])]),
        "ctc: target_lengths[0] = 4 is more than the padded targets' width 3 (shape [2, 3])"
    );
    assert_eq!(
        run("", &[&x, &classes(&[1, 2, 3, 3]), &il, &tl]),
        "ctc: 1-D targets hold every sequence's labels one after another, so as many as target_lengths sum to (5), got 4"
    );
    assert_eq!(
        run("", &[&x, &targets.to_dtype(DType::F32).unwrap(), &il, &tl]),
        "ctc: targets must be an integer tensor (i64, i32, u32, ...), got F32"
    );
    assert_eq!(
        run("", &[&x, &targets, &classes(&[5]), &tl]),
        "ctc: input_lengths must hold one length per sequence, shape (2) (or () for an unbatched (T, C) log_probs), got shape [1]"
    );
    assert_eq!(run("", &[&x, &targets, &il, &classes(&[3, -1])]), "ctc: target_lengths[1] = -1 is negative");
    let flat = Tensor::zeros(4, DType::F32, d).unwrap();
    assert_eq!(
        run("", &[&flat, &targets, &il, &tl]),
        "ctc: log_probs must have shape (T, N, C) (frames, sequences, classes), or (T, C) for one sequence, got [4]"
    );
    let e = build_err("ctc", "blank = -1");
    assert!(e.starts_with("ctc.blank = -1 is invalid"), "{e}");
}

/// A loss of three tensors trains only in a custom step (which calls forward_args) and
/// without an evaluation set (whose loss is loss(output, target)): both are refused when
/// the Learner is built, naming the loss and its arguments.
#[test]
fn the_learner_takes_a_several_input_loss_only_from_a_custom_step() {
    use ember::core::rng::Rng;
    use ember::data::TensorDataset;
    use ember::nn::{Linear, Module};
    use ember::train::{Learner, StepArgs, StepOutput};

    let data = || {
        let x: Vec<f32> = (0..64).map(|i| ((i * 7 % 13) as f32 - 6.0) / 4.0).collect();
        let x = Tensor::from_vec(x, (16, 4), &Device::Cpu).unwrap();
        TensorDataset::new(x, Tensor::zeros(16, DType::F32, &Device::Cpu).unwrap()).unwrap()
    };
    let tmp = tempfile::tempdir().unwrap();
    let builder = || {
        let model = Linear::init(4, 3, true, &mut Rng::new(1), DType::F32, &Device::Cpu).unwrap();
        Learner::builder(model)
            .train_data(data())
            .loss("triplet_margin")
            .optimizer("sgd:lr=0.1")
            .epochs(1)
            .batch_size(8)
            .out(tmp.path())
            .quiet()
    };
    let e = builder().build().err().unwrap().to_string();
    let start = "loss 'triplet_margin' takes anchor, positive, negative, not a model output and a target";
    assert!(e.contains(start), "{e}");
    // Anchors, positives (scaled) and negatives (flipped) through the model in one pass.
    fn step(m: &Linear, s: StepArgs<'_>) -> ember::core::Result<StepOutput> {
        let n = s.inputs.dim(0)?;
        let all = Tensor::cat(&[s.inputs, &s.inputs.affine(1.1, 0.0)?, &s.inputs.affine(-1.0, 0.5)?], 0)?;
        let out = m.forward(&all, s.ctx)?;
        let (a, p, q) = (out.narrow(0, 0, n)?, out.narrow(0, n, n)?, out.narrow(0, 2 * n, n)?);
        Ok(StepOutput::loss(s.loss.forward_args(&[&a, &p, &q])?))
    }
    let e = builder().eval_data(data()).train_step(step).build().err().unwrap().to_string();
    assert!(e.contains("loss 'triplet_margin' takes anchor, positive, negative, but the evaluation"), "{e}");
    let summary = builder().train_step(step).fit().unwrap();
    assert_eq!(summary.epochs, 1);
    assert!(summary.last.unwrap().train_loss.is_finite());
}

#[test]
fn bce_with_logits_is_finite_and_exact_for_large_logits() {
    for dtype in [DType::F32, DType::F64] {
        let l = loss("bce_with_logits", &toml::from_str("reduction = \"none\"").unwrap(), &BuildContext::default())
            .unwrap();
        let x = Var::from_tensor(
            &Tensor::new(&[100.0, -100.0, 100.0, -100.0], &Device::Cpu).unwrap().to_dtype(dtype).unwrap(),
        )
        .unwrap();
        let y = Tensor::new(&[1.0, 1.0, 0.0, 0.0], &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
        let out = l.forward(x.as_tensor(), &y).unwrap();
        let v: Vec<f64> = out.to_dtype(DType::F64).unwrap().to_vec1().unwrap();
        assert!(v[0] >= 0.0 && v[0] < 1e-40, "{v:?}");
        assert_eq!(&v[1..], [100.0, 100.0, 0.0], "{dtype:?}");
        let g = out.sum_all().unwrap().backward().unwrap();
        let g: Vec<f64> = g.get(x.as_tensor()).unwrap().to_dtype(DType::F64).unwrap().to_vec1().unwrap();
        assert_eq!(g[..3], [0.0, -1.0, 1.0], "{dtype:?}");
        assert!((0.0..1e-40).contains(&g[3]), "sigmoid(-100): {g:?}");
    }
}

#[test]
fn cross_entropy_takes_class_indices_or_probabilities() {
    let ce = build("cross_entropy", "");
    let x = t2(&[&[2.0, 1.0, 0.1], &[0.5, 2.5, 0.3]]);
    let by_index = ce.forward(&x, &classes(&[0, 1])).unwrap().to_scalar::<f64>().unwrap();
    let one_hot = t2(&[&[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0]]);
    let by_prob = ce.forward(&x, &one_hot).unwrap().to_scalar::<f64>().unwrap();
    assert!((by_index - by_prob).abs() < 1e-15, "{by_index} vs {by_prob}");
    // nll(log_softmax(x)) is cross_entropy(x).
    let logp = ember::core::ops::normalize::apply(ember::core::ops::normalize::Norm::LogSoftmax, Some(1), &x).unwrap();
    let nll = build("nll", "").forward(&logp, &classes(&[0, 1])).unwrap().to_scalar::<f64>().unwrap();
    assert_eq!(nll, by_index);
}

#[test]
fn shape_mismatches_name_both_shapes() {
    let x = t2(&[&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]]);
    let y = Tensor::zeros((3, 2), DType::F64, &Device::Cpu).unwrap();
    assert_eq!(
        forward_err("mse", "", &x, &y),
        "mse: input shape [2, 3] and target shape [3, 2] differ; they must be the same"
    );
    assert_eq!(
        forward_err("nll", "", &x, &classes(&[0, 1, 2])),
        "nll: input shape [2, 3] needs a class-index target of shape [2], got [3]"
    );
    let e = forward_err("cross_entropy", "", &x, &y);
    assert!(
        e.starts_with("cross_entropy: target must hold class indices (an integer tensor), got F64 of shape [3, 2]"),
        "{e}"
    );
}

#[test]
fn class_indices_out_of_range_name_the_index_and_the_class_count() {
    let x = t2(&[&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]]);
    assert_eq!(
        forward_err("cross_entropy", "", &x, &classes(&[0, 3])),
        "cross_entropy: target class index 3 is out of range for 3 classes; use 0..=2 (or ignore_index = -100)"
    );
    let e = forward_err("nll", "ignore_index = 1", &x, &classes(&[-100, 1]));
    assert!(e.starts_with("nll: target class index -100 is out of range for 3 classes"), "{e}");
    // ignore_index inside the class range is ignored, not an error.
    assert!(build("nll", "ignore_index = 1").forward(&x, &classes(&[0, 1])).is_ok());
}

#[test]
fn float_and_integer_targets_are_checked() {
    let x = t2(&[&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]]);
    let e = forward_err("nll", "", &x, &Tensor::new(&[0.0, 1.0], &Device::Cpu).unwrap());
    assert!(e.starts_with("nll: target must hold class indices (an integer tensor), got F64"), "{e}");
    let e = forward_err("mse", "", &x, &Tensor::zeros((2, 3), DType::I64, &Device::Cpu).unwrap());
    assert_eq!(e, "mse: target must be a float tensor, got I64; class indices go with cross_entropy or nll");
    let ints = Tensor::zeros((2, 3), DType::U8, &Device::Cpu).unwrap();
    let e = forward_err("l1", "", &ints, &ints);
    assert!(e.starts_with("l1: expected a float tensor"), "{e}");
}

#[test]
fn bad_hyperparameters_are_rejected_when_built() {
    assert_eq!(
        build_err("cross_entropy", "label_smoothing = 1.5"),
        "cross_entropy.label_smoothing = 1.5 is invalid: must be in [0, 1]"
    );
    assert_eq!(
        build_err("cross_entropy", "label_smoothing = -0.1"),
        "cross_entropy.label_smoothing = -0.1 is invalid: must be in [0, 1]"
    );
    assert_eq!(build_err("smooth_l1", "beta = -1.0"), "smooth_l1.beta = -1.0 is invalid: must be >= 0");
    assert_eq!(build_err("huber", "delta = 0.0"), "huber.delta = 0.0 is invalid: must be > 0");
    assert_eq!(
        build_err("mse", "reduction = \"batchmean\""),
        "mse.reduction = \"batchmean\" is invalid: must be one of \"none\", \"mean\", \"sum\""
    );
    assert_eq!(build_err("nll", "ignore_index = 1.5"), "nll.ignore_index: expected an integer, got 1.5 (a float)");
}

#[test]
fn bce_wants_probabilities() {
    let x = t2(&[&[0.5, 1.2]]);
    let y = t2(&[&[1.0, 0.0]]);
    let e = forward_err("bce", "", &x, &y);
    assert_eq!(
        e,
        "bce: every input value must be in [0, 1], got 1.2 at flat index 1; bce takes probabilities (apply sigmoid first, or use bce_with_logits on raw scores)"
    );
    let e = forward_err("bce", "", &t2(&[&[0.5, 0.2]]), &t2(&[&[2.0, 0.0]]));
    assert_eq!(e, "bce: every target value must be in [0, 1], got 2 at flat index 0");
    // Probabilities of exactly 0 and 1 are fine: the logs are clamped at -100.
    let v = build("bce", "reduction = \"sum\"").forward(&t2(&[&[0.0, 1.0]]), &y).unwrap().to_scalar::<f64>().unwrap();
    assert_eq!(v, 200.0);
}

#[test]
fn every_target_ignored_gives_nan_mean_and_zero_gradient() {
    let x = Var::from_tensor(&t2(&[&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]])).unwrap();
    for (name, cfg) in [("nll", ""), ("cross_entropy", ""), ("cross_entropy", "label_smoothing = 0.2")] {
        let out = build(name, cfg).forward(x.as_tensor(), &classes(&[-100, -100])).unwrap();
        assert!(out.to_scalar::<f64>().unwrap().is_nan(), "{name}");
        let g = out.backward().unwrap();
        let g: Vec<Vec<f64>> = g.get(x.as_tensor()).unwrap().to_vec2().unwrap();
        assert!(g.iter().flatten().all(|v| *v == 0.0), "{name}: {g:?}");
    }
}
