//! Tensor-valued loss hyperparameters (class `weight`, `pos_weight`) take exactly the
//! shapes PyTorch takes. A config writes a tensor as a number, a list or nested lists;
//! the accepted shapes are checked against PyTorch's numbers in
//! tests/parity/losses_broadcast.json, and here every shape PyTorch rejects (the same list
//! as REJECTED in tests/parity/gen_losses_broadcast.py) is an error naming the
//! hyperparameter's shape, the input's shape and the fix.

use candle_core::{DType, Device, Tensor};
use ember::core::{loss, BuildContext, Config, Loss};

fn build(name: &str, config: &str) -> Box<dyn Loss> {
    let config: Config = toml::from_str(config).unwrap();
    loss(name, &config, &BuildContext::new(Device::Cpu, DType::F64)).unwrap()
}

fn build_err(name: &str, config: &str) -> String {
    let config: Config = toml::from_str(config).unwrap();
    loss(name, &config, &BuildContext::default()).unwrap_err().to_string()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn t2(rows: &[&[f64]]) -> Tensor {
    let data: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_vec(data, (rows.len(), rows[0].len()), &Device::Cpu).unwrap()
}

/// A tensor of `shape` as a config writes it: nested lists of ones (a bare number for 0-d).
fn toml_ones(shape: &[usize]) -> String {
    match shape.split_first() {
        None => "1.0".to_string(),
        Some((&n, rest)) => format!("[{}]", vec![toml_ones(rest); n].join(", ")),
    }
}

/// An input of `shape` (values in (0, 1), so valid probabilities for bce) and a valid
/// target for `name`: class indices 0 for the class losses, unless `probabilities` (a
/// float target of the input's shape, cross_entropy's probability targets); else zeros of
/// the input's shape.
fn args(name: &str, shape: &[usize], probabilities: bool) -> (Tensor, Tensor) {
    let n: usize = shape.iter().product();
    let data: Vec<f64> = (0..n).map(|i| 0.1 + 0.8 * i as f64 / n as f64).collect();
    let x = Tensor::from_vec(data, shape, &Device::Cpu).unwrap();
    let target = match (name, shape) {
        ("nll" | "cross_entropy" | "multi_margin", [] | [_]) if !probabilities => {
            Tensor::zeros((), DType::I64, &Device::Cpu).unwrap()
        }
        ("nll" | "cross_entropy" | "multi_margin", [n, _, rest @ ..]) if !probabilities => {
            Tensor::zeros([&[*n][..], rest].concat(), DType::I64, &Device::Cpu).unwrap()
        }
        _ => x.zeros_like().unwrap(),
    };
    (x, target)
}

/// Shapes PyTorch 2.15 rejects: (loss, key, input shape, hyperparameter shape, other
/// config, probability targets).
type Rejected = (&'static str, &'static str, &'static [usize], &'static [usize], &'static str, bool);
const REJECTED: &[Rejected] = &[
    ("bce", "weight", &[4, 3], &[4], "", false),
    ("bce", "weight", &[4, 3], &[3, 1], "", false),
    ("bce", "weight", &[4, 3], &[1, 4, 3], "", false),
    ("bce", "weight", &[3], &[1, 3], "", false),
    ("bce", "weight", &[], &[1], "", false),
    ("bce_with_logits", "pos_weight", &[4, 3], &[4], "", false),
    ("bce_with_logits", "pos_weight", &[4, 3], &[2, 4, 3], "", false),
    ("bce_with_logits", "pos_weight", &[2, 3, 4], &[3], "", false),
    ("bce_with_logits", "pos_weight", &[1, 1], &[3], "", false),
    ("bce_with_logits", "weight", &[4, 3], &[2, 3], "", false),
    ("bce_with_logits", "weight", &[3], &[1, 1], "", false),
    ("multilabel_soft_margin", "weight", &[4, 3], &[2], "", false),
    ("multilabel_soft_margin", "weight", &[4, 3], &[3, 3], "", false),
    ("multilabel_soft_margin", "weight", &[4, 3], &[2, 3, 1], "", false),
    ("nll", "weight", &[4, 3], &[1, 3], "", false),
    ("nll", "weight", &[4, 3], &[2], "", false),
    ("nll", "weight", &[2, 3, 4], &[4], "", false),
    ("nll", "weight", &[2, 3, 4], &[2, 3], "", false),
    ("cross_entropy", "weight", &[4, 3], &[3, 1], "", false),
    ("cross_entropy", "weight", &[2, 1, 4], &[], "label_smoothing = 0.2", false),
    ("cross_entropy", "weight", &[2, 3, 4], &[1, 3], "label_smoothing = 0.2\nreduction = \"sum\"", false),
    ("cross_entropy", "weight", &[2, 3, 4], &[3, 1], "label_smoothing = 0.2\nreduction = \"mean\"", false),
    ("cross_entropy", "weight", &[2, 3, 4], &[3, 1], "", true),
    ("cross_entropy", "weight", &[3], &[], "", false),
    ("multi_margin", "weight", &[4, 3], &[1, 3], "", false),
    ("multi_margin", "weight", &[4, 3], &[], "", false),
    ("multi_margin", "weight", &[], &[], "", false),
    ("multi_margin", "weight", &[4, 3], &[4], "", false),
];

#[test]
fn shapes_pytorch_rejects_are_errors_naming_both_shapes_and_the_fix() {
    for &(name, key, input, shape, extra, probabilities) in REJECTED {
        let config = format!("{key} = {}\n{extra}", toml_ones(shape));
        let (x, target) = args(name, input, probabilities);
        let e = build(name, &config).forward(&x, &target).unwrap_err().to_string();
        let start = match name {
            "bce" | "bce_with_logits" => {
                format!("{name}.{key} of shape {shape:?} does not broadcast to the input's shape {input:?}: ")
            }
            "multilabel_soft_margin" => {
                format!("{name}.{key} of shape {shape:?} does not broadcast with the input's shape {input:?}: ")
            }
            _ => {
                let classes = match input {
                    [] => 1,
                    [c] | [_, c, ..] => *c,
                };
                format!("{name}.{key} has shape {shape:?} but the input of shape {input:?} has {classes} classes")
            }
        };
        assert!(e.starts_with(&start), "{name}.{key} {shape:?} for input {input:?}: {e}");
        assert!(e.contains("; give "), "{e}");
    }
}

#[test]
fn rejected_shapes_say_what_to_give() {
    let (x, y) = args("bce_with_logits", &[2, 3], false);
    let e = build("bce_with_logits", "pos_weight = [1.0, 2.0, 3.0, 4.0]").forward(&x, &y).unwrap_err().to_string();
    assert_eq!(
        e,
        "bce_with_logits.pos_weight of shape [4] does not broadcast to the input's shape [2, 3]: aligned from the last dimension, each of its sizes must be 1 or the input's size there, with at most 2 dimensions; give e.g. [3] for one value per entry of the last dimension, [1] for one value for all"
    );
    let (x, y) = args("cross_entropy", &[2, 3], false);
    let e = build("cross_entropy", "weight = [1.0, 2.0]").forward(&x, &y).unwrap_err().to_string();
    assert_eq!(
        e,
        "cross_entropy.weight has shape [2] but the input of shape [2, 3] has 3 classes (dim 1); give a 1-D weight of 3 entries, one per class"
    );
    let (x, y) = args("nll", &[2, 3, 4], false);
    let e = build("nll", "weight = [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]").forward(&x, &y).unwrap_err().to_string();
    assert_eq!(
        e,
        "nll.weight has shape [2, 3] but the input of shape [2, 3, 4] has 3 classes (dim 1); give a 1-D weight of 3 entries (or any shape of 3 entries), one per class"
    );
    let (x, y) = args("multilabel_soft_margin", &[2, 3], false);
    let e = build("multilabel_soft_margin", "weight = [1.0, 2.0]").forward(&x, &y).unwrap_err().to_string();
    assert!(e.ends_with("each pair of sizes must be equal or one of them 1; give e.g. [3] for one value per entry of the last dimension, [1] for one value for all"), "{e}");
}

#[test]
fn nested_lists_in_a_config_are_tensors_of_their_shape() {
    let x = t2(&[&[0.3, -1.2, 0.8], &[1.5, 0.1, -0.4]]);
    let y = t2(&[&[1.0, 0.0, 1.0], &[0.0, 0.0, 1.0]]);
    let run = |name: &str, config: &str, x: &Tensor| {
        values(&build(name, &format!("{config}\nreduction = \"none\"")).forward(x, &y).unwrap())
    };
    // A per-element pos_weight whose rows repeat is the per-class one; a bare number is one for all.
    let per_class = run("bce_with_logits", "pos_weight = [2.0, 0.5, 3.0]", &x);
    assert_eq!(run("bce_with_logits", "pos_weight = [[2.0, 0.5, 3.0], [2.0, 0.5, 3.0]]", &x), per_class);
    assert_eq!(run("bce_with_logits", "pos_weight = [[2.0, 0.5, 3.0]]", &x), per_class);
    assert_ne!(run("bce_with_logits", "", &x), per_class);
    assert_eq!(
        run("bce_with_logits", "pos_weight = 2.0", &x),
        run("bce_with_logits", "pos_weight = [2.0, 2.0, 2.0]", &x)
    );
    // A weight per sample, [N, 1], scales each row.
    let p = x.affine(0.25, 0.5).unwrap();
    let plain = run("bce", "", &p);
    let rows = run("bce", "weight = [[2.0], [0.5]]", &p);
    let scaled: Vec<f64> = plain.iter().enumerate().map(|(i, l)| l * if i < 3 { 2.0 } else { 0.5 }).collect();
    assert_eq!(rows, scaled);
    // multilabel_soft_margin broadcasts as a plain product, as PyTorch: a [K, 1, 1] weight on
    // an (N, C) input gives K rows of C class sums.
    let l = build("multilabel_soft_margin", "weight = [[[1.0]], [[2.0]]]\nreduction = \"none\"");
    let out = l.forward(&x, &y).unwrap();
    assert_eq!(out.dims(), [2, 3]);
    let out = values(&out);
    assert_eq!(out[3..].to_vec(), out[..3].iter().map(|v| 2.0 * v).collect::<Vec<_>>());
}

#[test]
fn class_weights_of_inputs_with_extra_dimensions_take_any_shape_of_c_entries() {
    let (x, y) = args("nll", &[2, 3, 4], false);
    let y = y.broadcast_add(&Tensor::new(&[0i64, 1, 2, 1], &Device::Cpu).unwrap()).unwrap();
    let run = |name: &str, config: &str| values(&build(name, config).forward(&x, &y).unwrap());
    for name in ["nll", "cross_entropy"] {
        let flat = run(name, "weight = [0.5, 2.0, 3.0]");
        assert_eq!(run(name, "weight = [[0.5, 2.0, 3.0]]"), flat, "{name}");
        assert_eq!(run(name, "weight = [[[0.5]], [[2.0]], [[3.0]]]"), flat, "{name}");
        assert_ne!(run(name, ""), flat, "{name}");
    }
    // Label smoothing takes [C, 1, ...] under none and sum.
    let smooth = "label_smoothing = 0.2\nreduction = \"sum\"";
    assert_eq!(
        run("cross_entropy", &format!("weight = [[0.5], [2.0], [3.0]]\n{smooth}")),
        run("cross_entropy", &format!("weight = [0.5, 2.0, 3.0]\n{smooth}"))
    );
}

#[test]
fn ragged_or_non_numeric_tensors_are_rejected_when_built() {
    assert_eq!(
        build_err("bce", "weight = [[1.0, 2.0], [3.0]]"),
        "bce.weight = [[1.0, 2.0], [3.0]] is invalid: nested lists must be rectangular, the nesting giving the tensor's shape: entry [1] has 1 items but entry [0] has 2; give every list of one level the same length"
    );
    let e = build_err("bce_with_logits", "pos_weight = [[1.0], 2.0]");
    assert!(e.contains("entry [1] is a number but entry [0] is a list of 1"), "{e}");
    assert_eq!(
        build_err("cross_entropy", "weight = \"balanced\""),
        "cross_entropy.weight: expected a number or a (nested) list of numbers, got \"balanced\" (a string)"
    );
    let e = build_err("multi_margin", "weight = [1.0, nan]");
    assert!(e.starts_with("multi_margin.weight = [1.0, NaN] is invalid: every entry must be a number, not NaN"), "{e}");
}
