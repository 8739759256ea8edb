//! Building the datasets a run config names.

use candle_core::{DType, Device, Tensor};
use ember_core::rng::Rng;
use ember_core::{Error, Result};
use std::path::Path;

use ember_data::{idx, mnist, Dataset, TensorDataset};

use crate::config::{DataConfig, ModelConfig};

/// Images scaled to [0, 1] with a channel dimension (`[N, 1, H, W]` for grey images, as
/// PyTorch's datasets give them), labels as class indices.
fn images(x: Tensor, y: Tensor) -> Result<TensorDataset> {
    let x = if x.rank() == 3 { x.unsqueeze(1)? } else { x };
    TensorDataset::new(x.to_dtype(DType::F32)?.affine(1.0 / 255.0, 0.0)?, y.to_dtype(DType::I64)?)
}

/// The training and evaluation sets of a run, where they came from, and a notice when
/// they stand in for the requested data.
pub struct Loaded {
    pub train: TensorDataset,
    pub eval: TensorDataset,
    pub source: String,
    pub notice: Option<String>,
    /// Where each split came from, for errors about it.
    pub origins: Origins,
}

/// The files (or descriptions) each split was read from: errors about a split name them.
#[derive(Clone, Debug, Default)]
pub struct Origins {
    pub train_inputs: String,
    pub train_targets: String,
    pub eval_inputs: String,
    pub eval_targets: String,
}

impl Origins {
    fn same(train: &str, eval: &str) -> Origins {
        Origins {
            train_inputs: train.to_string(),
            train_targets: train.to_string(),
            eval_inputs: eval.to_string(),
            eval_targets: eval.to_string(),
        }
    }
}

/// The training and evaluation sets a run config names.
pub fn load(config: &DataConfig) -> Result<Loaded> {
    let mnist = |which: mnist::Which, dir: &Option<String>| -> Result<Loaded> {
        let s = mnist::load(which, dir.as_deref().map(Path::new))?;
        let origins = Origins::same(&format!("{} (training split)", s.source), &format!("{} (test split)", s.source));
        Ok(Loaded {
            train: images(s.train.0, s.train.1)?,
            eval: images(s.test.0, s.test.1)?,
            source: s.source,
            notice: s.notice,
            origins,
        })
    };
    match config {
        DataConfig::FashionMnist { dir } => mnist(mnist::Which::FashionMnist, dir),
        DataConfig::Mnist { dir } => mnist(mnist::Which::Mnist, dir),
        DataConfig::Idx { train_images, train_labels, test_images, test_labels } => {
            let (x, y) = idx::read_pair(train_images, train_labels)?;
            let (xt, yt) = idx::read_pair(test_images, test_labels)?;
            let origins = Origins {
                train_inputs: train_images.clone(),
                train_targets: train_labels.clone(),
                eval_inputs: test_images.clone(),
                eval_targets: test_labels.clone(),
            };
            Ok(Loaded {
                train: images(x, y)?,
                eval: images(xt, yt)?,
                source: train_images.clone(),
                notice: None,
                origins,
            })
        }
        DataConfig::Csv { path, train, test, target, features, delimiter, classes, eval_split, standardize, seed } => {
            let spec = ember_data::csv::TableSpec {
                delimiter: delimiter.chars().next().unwrap_or(','),
                target: target.names(),
                features: features.clone(),
                classes: *classes,
            };
            let (train_file, test_file) = match (path, train) {
                (Some(p), _) => (p.clone(), None),
                (None, Some(t)) => (t.clone(), test.clone()),
                (None, None) => return Err(Error::config("data", "a csv table needs `path` or `train`")),
            };
            let table = ember_data::csv::read_table(Path::new(&train_file), &spec)?;
            let names = table.class_names.clone();
            let (mut tr, mut ev, origins) = match &test_file {
                Some(t) => {
                    let mut test = ember_data::csv::read_table(Path::new(t), &spec)?;
                    if *classes {
                        test.target_values = remap(&test.target_values, &test.class_names, &names, t)?;
                    }
                    (table.into_dataset()?, test.into_dataset()?, Origins::same(&train_file, t))
                }
                None => {
                    let n = table.len();
                    let held = (n as f64 * eval_split).round() as usize;
                    let mut order: Vec<u32> = (0..n as u32).collect();
                    let mut rng = Rng::new(ember_core::rng::at(seed.unwrap_or(0), 0x5711_7000));
                    for i in (1..n).rev() {
                        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                        order.swap(i, j);
                    }
                    let all = table.into_dataset()?;
                    let pick = |idx: &[u32]| -> Result<TensorDataset> {
                        let mut idx = idx.to_vec();
                        idx.sort_unstable();
                        let (x, y) = all.batch(&idx)?;
                        TensorDataset::new(x, y)
                    };
                    let what = format!("{train_file} (rows held out by eval_split = {eval_split})");
                    (pick(&order[held..])?, pick(&order[..held])?, Origins::same(&train_file, &what))
                }
            };
            if *standardize {
                let (mean, std) = moments(&tr)?;
                let scale = |d: &TensorDataset| -> Result<TensorDataset> {
                    if d.is_empty() {
                        return Ok(d.clone());
                    }
                    TensorDataset::new(apply_scaling(d.inputs(), &mean, &std)?, d.targets().clone())
                };
                tr = scale(&tr)?;
                ev = scale(&ev)?;
            }
            Ok(Loaded { train: tr, eval: ev, source: train_file.clone(), notice: None, origins })
        }
        DataConfig::Synthetic { n_train, n_eval, features, classes, seed } => {
            // Inputs (f32) and labels (i64) of both splits, checked before allocating.
            let rows = n_train.checked_add(*n_eval).map(|n| n as u64);
            let bytes = rows.and_then(|n| {
                ember_core::memory::product(&[n, *features as u64, 4])?
                    .checked_add(ember_core::memory::product(&[n, 8])?)
            });
            ember_core::memory::check(
                &format!("synthetic data with n_train = {n_train}, n_eval = {n_eval} and features = {features}"),
                bytes,
                "use fewer examples or features",
            )?;
            let mut rng = Rng::new(*seed);
            let centers: Vec<f64> = (0..classes * features).map(|_| rng.uniform_in(-2.0, 2.0)).collect();
            let mut make = |n: usize| -> Result<TensorDataset> {
                let mut x = Vec::with_capacity(n * features);
                let mut y = Vec::with_capacity(n);
                for i in 0..n {
                    let c = i % classes;
                    y.push(c as i64);
                    for f in 0..*features {
                        // Box-Muller normal noise around the class center.
                        let (u1, u2) = (rng.uniform().max(1e-12), rng.uniform());
                        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                        x.push((centers[c * features + f] + 2.0 * z) as f32);
                    }
                }
                TensorDataset::new(
                    Tensor::from_vec(x, (n, *features), &Device::Cpu)?,
                    Tensor::from_vec(y, n, &Device::Cpu)?,
                )
            };
            let (train, eval) = (make(*n_train)?, make(*n_eval)?);
            let origins = Origins::same("the synthetic training set", "the synthetic evaluation set");
            Ok(Loaded { train, eval, source: "synthetic".into(), notice: None, origins })
        }
    }
}

/// The per-feature mean and population standard deviation (scikit-learn's
/// `StandardScaler`) of a training set's inputs `[N, F]`, as f64 `[1, F]`; a constant
/// column gets a standard deviation of 1 (left unscaled).
fn moments(train: &TensorDataset) -> Result<(Tensor, Tensor)> {
    let x = train.inputs().to_dtype(DType::F64)?;
    let mean = x.mean_keepdim(0)?;
    let std = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(0)?.sqrt()?;
    let ones = std.ones_like()?;
    let std = std.eq(0.0)?.where_cond(&ones, &std)?;
    Ok((mean, std))
}

/// `(x - mean) / std`, in `x`'s dtype and on its device.
fn apply_scaling(x: &Tensor, mean: &Tensor, std: &Tensor) -> Result<Tensor> {
    let (mean, std) = (mean.to_device(x.device())?, std.to_device(x.device())?);
    Ok(x.to_dtype(DType::F64)?.broadcast_sub(&mean)?.broadcast_div(&std)?.to_dtype(x.dtype())?)
}

/// Applies a run's input scaling to new inputs `[N, F]` (for `ember predict`): with
/// `standardize = true` the training split's mean and standard deviation, recomputed
/// from the run's data files; otherwise `x` unchanged.
pub fn scale_inputs(config: &DataConfig, x: &Tensor) -> Result<Tensor> {
    let DataConfig::Csv { standardize: true, .. } = config else { return Ok(x.clone()) };
    let mut raw = config.clone();
    if let DataConfig::Csv { standardize, .. } = &mut raw {
        *standardize = false;
    }
    let loaded = load(&raw).map_err(|e| {
        e.context("the run standardizes its features with its training split's statistics, which are read again from its data")
    })?;
    let (mean, std) = moments(&loaded.train)?;
    if x.rank() != 2 || x.dim(1)? != mean.dim(1)? {
        return Err(Error::input(format!(
            "the inputs have shape {:?}, but the run's tables have {} features per row",
            x.dims(),
            mean.dim(1)?
        )));
    }
    apply_scaling(x, &mean, &std)
}

/// Class indices of a test table (by its own sorted labels) mapped to the training
/// table's indices; a label the training table lacks is an error naming it.
fn remap(values: &Tensor, labels: &[String], train_labels: &[String], file: &str) -> Result<Tensor> {
    let map = labels
        .iter()
        .map(|l| {
            train_labels.iter().position(|t| t == l).map(|i| i as i64).ok_or_else(|| {
                Error::input(format!(
                    "{file}: class {l:?} does not occur in the training table (its classes: {}); every test label must be a training label",
                    train_labels.join(", ")
                ))
            })
        })
        .collect::<Result<Vec<i64>>>()?;
    let v: Vec<i64> = values.to_vec1::<i64>()?.into_iter().map(|i| map[i as usize]).collect();
    Ok(Tensor::from_vec(v, values.dims1()?, &Device::Cpu)?)
}

/// Checks the data before a model is built on it: a training set, and evaluation
/// examples of the training examples' shape. Errors name the split's file.
pub fn check_data(train: &TensorDataset, eval: &TensorDataset, origins: &Origins) -> Result<()> {
    if train.is_empty() {
        return Err(Error::input("data: the training set is empty"));
    }
    let dims = train.inputs().dims();
    if !eval.is_empty() && eval.inputs().dims()[1..] != dims[1..] {
        return Err(Error::input(format!(
            "{}: its examples have shape {:?}, but the training examples ({}) have shape {:?}; both splits must have the same shape",
            origins.eval_inputs,
            &eval.inputs().dims()[1..],
            origins.train_inputs,
            &dims[1..]
        )));
    }
    Ok(())
}

/// Checks that the model fits the data, both splits, before any training: the MLP's
/// input size, and for class targets, one output per class covering every label.
/// `output` is the shape of one model output. Errors name the split's file.
pub fn check_fits(
    model: &ModelConfig,
    output: &[usize],
    train: &TensorDataset,
    eval: &TensorDataset,
    origins: &Origins,
    class_targets: bool,
) -> Result<()> {
    let dims = train.inputs().dims();
    if let Some(mlp) = model.mlp_config() {
        let features: usize = if mlp.flatten { dims[1..].iter().product() } else { *dims.last().unwrap_or(&0) };
        if mlp.sizes.first() != Some(&features) {
            return Err(Error::input(format!(
                "model.sizes[0] = {} but each example has {features} features (shape {:?}); set model.sizes[0] = {features}",
                mlp.sizes.first().copied().unwrap_or(0),
                &dims[1..]
            )));
        }
    }
    if !class_targets {
        for (data, origin) in [(train, &origins.train_targets), (eval, &origins.eval_targets)] {
            if data.is_empty() {
                continue;
            }
            let per = &data.targets().dims()[1..];
            let fits = per == output || (per.is_empty() && output == [1]);
            if !fits {
                return Err(Error::input(format!(
                    "{origin}: each target has shape {per:?} but the model outputs {output:?} per example; the loss compares them element by element, so give the last layer {} outputs",
                    per.iter().product::<usize>().max(1)
                )));
            }
        }
    }
    if class_targets {
        let fix_classes = |n: i64| {
            if model.sizes.is_some() {
                format!("set the last model.sizes entry to {n}")
            } else {
                format!("give the last layer {n} outputs (its out_features)")
            }
        };
        let classes = match output {
            [c] => *c as i64,
            _ => {
                return Err(Error::input(format!(
                    "the model's output has shape {output:?} per example, but class targets need one score per class ([classes]); end the model with a flatten and a linear layer"
                )))
            }
        };
        for (data, origin) in [(train, &origins.train_targets), (eval, &origins.eval_targets)] {
            if data.is_empty() || data.targets().dtype() != DType::I64 {
                continue;
            }
            let max = data.targets().max_all()?.to_scalar::<i64>()?;
            let min = data.targets().min_all()?.to_scalar::<i64>()?;
            if min < 0 || max >= classes {
                return Err(Error::input(format!(
                    "{origin}: the data has labels {min}..={max} but the model outputs {classes} classes; {} (or fix the labels)",
                    fix_classes(max + 1)
                )));
            }
        }
    }
    Ok(())
}
