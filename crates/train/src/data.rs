//! Building the datasets a run config names.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use ember_core::rng::Rng;
use ember_core::{Error, Result};

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
    pub train: Arc<dyn Dataset>,
    pub eval: Arc<dyn Dataset>,
    pub source: String,
    pub notice: Option<String>,
    /// Where each split came from, for errors about it.
    pub origins: Origins,
    /// The class names, index k naming class k, when the data has them (stored in
    /// checkpoints; `ember predict` writes them).
    pub class_names: Vec<String>,
    /// A table's feature columns, in input order (stored in checkpoints, so that
    /// `ember predict` reads new tables by column name).
    pub feature_names: Vec<String>,
    /// The input scaling applied to both splits (a table with `standardize = true`: the
    /// training split's statistics); stored in checkpoints, so that `ember predict`
    /// scales new inputs the same way. `None` when the inputs are used as read.
    pub scaling: Option<Scaling>,
}

/// The checkpoint metadata key of a run's [`Scaling`] (JSON, see [`Scaling::to_json`]).
pub const SCALING_KEY: &str = "input_scaling";

/// A table's per-feature input scaling, `(x - mean) / std` computed in f64: with
/// `standardize = true`, the training split's mean and population standard deviation
/// (scikit-learn's `StandardScaler`; a constant column has a std of 1). One value per
/// feature (per element of an example, for inputs of higher rank), in input order.
/// Checkpoints store it as `{"mean": [...], "std": [...]}` under [`SCALING_KEY`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scaling {
    /// The training split's mean per feature.
    pub mean: Vec<f64>,
    /// The training split's population standard deviation per feature (1 where 0).
    pub std: Vec<f64>,
}

impl Scaling {
    /// The scaling of `[1, ...]` f64 statistics (as [`moments`] gives them).
    fn from_tensors(mean: &Tensor, std: &Tensor) -> Result<Scaling> {
        Ok(Scaling {
            mean: mean.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?,
            std: std.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?,
        })
    }

    /// The JSON a checkpoint stores: `{"mean": [...], "std": [...]}` (floats round-trip
    /// exactly).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a scaling serializes")
    }

    /// Reads [`Scaling::to_json`]'s JSON; `origin` (the checkpoint) names an error.
    pub fn from_json(text: &str, origin: &Path) -> Result<Scaling> {
        let s: Scaling = serde_json::from_str(text)
            .map_err(|e| Error::corrupt(origin, format!("unreadable {SCALING_KEY} metadata: {e}")))?;
        if s.mean.len() != s.std.len() {
            return Err(Error::corrupt(
                origin,
                format!("{SCALING_KEY} has {} means but {} standard deviations", s.mean.len(), s.std.len()),
            ));
        }
        Ok(s)
    }

    /// `(x - mean) / std` for inputs `[N, ...]` with one statistic per element of an
    /// example (`[N, F]` for a table), in `x`'s dtype and on its device. Inputs with
    /// another number of features are an error naming both counts.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() < 2 {
            return Err(Error::input(format!(
                "the inputs have shape {:?}, but the run scales table rows of {} features: give a batch [N, {}]",
                x.dims(),
                self.mean.len(),
                self.mean.len()
            )));
        }
        let per = x.dims()[1..].to_vec();
        let count: usize = per.iter().product();
        if count != self.mean.len() || self.std.len() != self.mean.len() {
            return Err(Error::input(format!(
                "the inputs have {count} features per example (shape {:?}), but the run was trained on {} features (its stored input scaling, standardize = true, has {} means); give the columns it was trained on",
                x.dims(),
                self.mean.len(),
                self.mean.len()
            )));
        }
        let mut shape = vec![1];
        shape.extend(per);
        let mean = Tensor::from_vec(self.mean.clone(), shape.clone(), &Device::Cpu)?;
        let std = Tensor::from_vec(self.std.clone(), shape, &Device::Cpu)?;
        apply_scaling(x, &mean, &std)
    }
}

/// Fashion-MNIST's classes, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

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
            train: Arc::new(images(s.train.0, s.train.1)?),
            eval: Arc::new(images(s.test.0, s.test.1)?),
            source: s.source,
            notice: s.notice,
            origins,
            class_names: match which {
                mnist::Which::FashionMnist => FASHION_MNIST_CLASSES.iter().map(|c| c.to_string()).collect(),
                _ => (0..10).map(|d| d.to_string()).collect(),
            },
            feature_names: Vec::new(),
            scaling: None,
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
                train: Arc::new(images(x, y)?),
                eval: Arc::new(images(xt, yt)?),
                source: train_images.clone(),
                notice: None,
                origins,
                class_names: Vec::new(),
                feature_names: Vec::new(),
                scaling: None,
            })
        }
        DataConfig::Csv {
            path,
            train,
            test,
            target,
            features,
            delimiter,
            classes,
            eval_split,
            standardize,
            missing,
            seed,
        } => {
            let spec = ember_data::csv::TableSpec {
                delimiter: delimiter.chars().next().unwrap_or(','),
                target: target.names(),
                features: features.clone(),
                classes: *classes,
                missing: missing.policy(),
                exclude: Vec::new(),
            };
            let files =
                TableFiles { path, train, test, eval_split: *eval_split, standardize: *standardize, seed: *seed };
            load_tables(&ember_data::csv::read_table, &spec, &files)
        }
        #[cfg(feature = "hub")]
        DataConfig::Parquet {
            path,
            train,
            test,
            target,
            features,
            classes,
            eval_split,
            standardize,
            missing,
            seed,
        } => {
            let spec = ember_data::csv::TableSpec {
                target: target.names(),
                features: features.clone(),
                classes: *classes,
                missing: missing.policy(),
                ..Default::default()
            };
            let files =
                TableFiles { path, train, test, eval_split: *eval_split, standardize: *standardize, seed: *seed };
            load_tables(&ember_data::parquet_table::read_parquet_table, &spec, &files)
        }
        #[cfg(not(feature = "hub"))]
        DataConfig::Parquet { .. } => Err(Error::input(
            "data: kind = \"parquet\" needs the `hub` feature (on by default); rebuild without --no-default-features",
        )),
        #[cfg(feature = "hub")]
        DataConfig::Hub {
            repo,
            config: subset,
            split,
            test_split,
            revision,
            target,
            features,
            classes,
            eval_split,
            standardize,
            missing,
            seed,
        } => {
            let hub = ember_data::hub::Hub::from_env()?;
            let mut notices = Vec::new();
            let mut resolve = |name: &str| -> Result<(String, Vec<std::path::PathBuf>)> {
                let s = ember_data::hub::Split {
                    repo: repo.clone(),
                    revision: revision.clone(),
                    config: subset.clone(),
                    split: name.to_string(),
                };
                let found = hub.split(&s).map_err(|e| {
                    Error::input(format!(
                        "data: {e}; check data.repo, data.config and data.split (the hub's dataset viewer lists them), or set HF_HUB_CACHE to the cache that holds the dataset"
                    ))
                })?;
                notices.extend(found.notice);
                Ok((s.describe(), found.files))
            };
            let train_part = resolve(split)?;
            let test_part = test_split.as_deref().map(&mut resolve).transpose()?;
            let spec = ember_data::csv::TableSpec {
                target: target.names(),
                features: features.clone(),
                classes: *classes,
                missing: missing.policy(),
                ..Default::default()
            };
            let parts: Vec<(String, Vec<std::path::PathBuf>)> = std::iter::once(train_part).chain(test_part).collect();
            let read = |name: &Path, spec: &ember_data::csv::TableSpec| -> Result<ember_data::csv::Table> {
                let files = parts.iter().find(|(n, _)| Path::new(n) == name).map(|(_, f)| f.as_slice()).unwrap_or(&[]);
                ember_data::parquet_table::read_parquet_tables(files, spec)
            };
            let (train_name, test_name) = (Some(parts[0].0.clone()), parts.get(1).map(|p| p.0.clone()));
            let files = match &test_name {
                Some(_) => TableFiles {
                    path: &None,
                    train: &train_name,
                    test: &test_name,
                    eval_split: *eval_split,
                    standardize: *standardize,
                    seed: *seed,
                },
                None => TableFiles {
                    path: &train_name,
                    train: &None,
                    test: &None,
                    eval_split: *eval_split,
                    standardize: *standardize,
                    seed: *seed,
                },
            };
            let mut loaded = load_tables(&read, &spec, &files)?;
            notices.extend(loaded.notice.take());
            let notes: Vec<&str> = notices.iter().map(|n| n.trim_start_matches("note: ")).collect();
            loaded.notice = (!notes.is_empty()).then(|| format!("note: {}", notes.join("; ")));
            Ok(loaded)
        }
        #[cfg(not(feature = "hub"))]
        DataConfig::Hub { .. } => Err(Error::input(
            "data: kind = \"hub\" needs the `hub` feature (on by default); rebuild without --no-default-features",
        )),
        DataConfig::Safetensors { path, train, test, inputs, targets, eval_split, seed } => {
            let (train_file, test_file) = match (path, train) {
                (Some(p), _) => (p.clone(), None),
                (None, Some(t)) => (t.clone(), test.clone()),
                (None, None) => return Err(Error::config("data", "a safetensors data set needs `path` or `train`")),
            };
            let read = |file: &str| -> Result<TensorDataset> {
                let (x, y) = (tensor_in(file, inputs, "inputs")?, tensor_in(file, targets, "targets")?);
                let y = match y.dtype() {
                    DType::U8 | DType::U32 | DType::I16 | DType::I32 => y.to_dtype(DType::I64)?,
                    _ => y,
                };
                TensorDataset::new(x, y).map_err(|e| e.context(file))
            };
            let all = read(&train_file)?;
            let (tr, ev, origins) = match &test_file {
                Some(t) => (all, read(t)?, Origins::same(&train_file, t)),
                None => {
                    let (tr, ev) = split(all, *eval_split, seed.unwrap_or(0))?;
                    let what = format!("{train_file} (examples held out by eval_split = {eval_split})");
                    (tr, ev, Origins::same(&train_file, &what))
                }
            };
            Ok(Loaded {
                train: Arc::new(tr),
                eval: Arc::new(ev),
                source: train_file.clone(),
                notice: None,
                origins,
                class_names: Vec::new(),
                feature_names: Vec::new(),
                scaling: None,
            })
        }
        DataConfig::ImageFolder {
            path,
            train,
            test,
            size,
            mean,
            std,
            channels,
            crop_padding,
            flip,
            eval_split,
            seed,
        } => {
            use ember_data::image_folder::{ImageFolder, ImageSpec};
            let (train_dir, test_dir) = match (path, train) {
                (Some(p), _) => (p.clone(), None),
                (None, Some(t)) => (t.clone(), test.clone()),
                (None, None) => return Err(Error::config("data", "an image folder needs `path` or `train`")),
            };
            let spec = ImageSpec {
                size: size.map(|[h, w]| (h, w)),
                mean: mean.clone(),
                std: std.clone(),
                crop_padding: *crop_padding,
                flip: *flip,
                seed: seed.unwrap_or(0),
                channels: *channels,
            };
            let folder = ImageFolder::open(Path::new(&train_dir), spec.clone())?;
            let classes = folder.classes().to_vec();
            let (tr, ev, origins): (Arc<dyn Dataset>, Arc<dyn Dataset>, Origins) = match &test_dir {
                Some(t) => {
                    // Evaluation images are never augmented, and share the training
                    // folder's size and channels.
                    let test_spec = ImageSpec {
                        size: Some(folder.size()),
                        channels: Some(folder.channels()),
                        crop_padding: 0,
                        flip: false,
                        ..spec
                    };
                    let test = ImageFolder::open(Path::new(t), test_spec)?;
                    if test.classes() != classes {
                        return Err(Error::input(format!(
                            "{t}: its classes ({}) are not the training folder's ({}); both folders need the same class sub-folders",
                            test.classes().join(", "),
                            classes.join(", ")
                        )));
                    }
                    (Arc::new(folder), Arc::new(test), Origins::same(&train_dir, t))
                }
                None => {
                    let n = folder.len();
                    let order = permutation(n, seed.unwrap_or(0));
                    let held = (n as f64 * eval_split).round() as usize;
                    let sorted = |idx: &[u32]| {
                        let mut v = idx.to_vec();
                        v.sort_unstable();
                        v
                    };
                    let all: Arc<dyn Dataset> = Arc::new(folder);
                    let what = format!("{train_dir} (images held out by eval_split = {eval_split})");
                    (
                        Arc::new(ember_data::Subset::new(all.clone(), sorted(&order[held..]))?),
                        Arc::new(ember_data::Subset::new(all, sorted(&order[..held]))?),
                        Origins::same(&train_dir, &what),
                    )
                }
            };
            let notice = Some(format!("note: {train_dir}: {} classes ({})", classes.len(), classes.join(", ")));
            Ok(Loaded {
                train: tr,
                eval: ev,
                source: train_dir.clone(),
                notice,
                origins,
                class_names: classes,
                feature_names: Vec::new(),
                scaling: None,
            })
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
            Ok(Loaded {
                train: Arc::new(train),
                eval: Arc::new(eval),
                source: "synthetic".into(),
                notice: None,
                origins,
                class_names: Vec::new(),
                feature_names: Vec::new(),
                scaling: None,
            })
        }
    }
}

/// The files of a table data set and what to do with them.
struct TableFiles<'a> {
    path: &'a Option<String>,
    train: &'a Option<String>,
    test: &'a Option<String>,
    eval_split: f64,
    standardize: bool,
    seed: Option<u64>,
}

/// A table data set (CSV or Parquet, by `read`): the training file split by eval_split
/// or a test file, class labels mapped alike, missing values noted, features
/// standardised.
fn load_tables(
    read: &dyn Fn(&Path, &ember_data::csv::TableSpec) -> Result<ember_data::csv::Table>,
    spec: &ember_data::csv::TableSpec,
    files: &TableFiles,
) -> Result<Loaded> {
    let TableFiles { path, train, test, eval_split, standardize, seed } = files;
    let (eval_split, standardize, classes, spec) = (*eval_split, *standardize, &spec.classes, spec);
    let (train_file, test_file) = match (path, train) {
        (Some(p), _) => (p.clone(), None),
        (None, Some(t)) => (t.clone(), (*test).clone()),
        (None, None) => return Err(Error::config("data", "a table needs `path` or `train`")),
    };
    let table = read(Path::new(&train_file), spec)?;
    let names = table.class_names.clone();
    let feature_names = table.features.clone();
    let mut filled = Vec::new();
    let mut note = |file: &str, t: &ember_data::csv::Table| {
        if t.dropped > 0 {
            filled.push(format!("{file}: left out {} rows with missing values (data.missing = \"drop\")", t.dropped));
        }
        if t.imputed > 0 {
            filled.push(format!(
                "{file}: filled {} missing feature values with their column's mean (data.missing = \"mean\")",
                t.imputed
            ));
        }
    };
    note(&train_file, &table);
    let (mut tr, mut ev, origins) = match &test_file {
        Some(t) => {
            let mut test = read(Path::new(t), spec)?;
            note(t, &test);
            if *classes {
                test.target_values = remap(&test.target_values, &test.class_names, &names, t)?;
            }
            (table.into_dataset()?, test.into_dataset()?, Origins::same(&train_file, t))
        }
        None => {
            let (tr, ev) = split(table.into_dataset()?, eval_split, seed.unwrap_or(0))?;
            let what = format!("{train_file} (rows held out by eval_split = {eval_split})");
            (tr, ev, Origins::same(&train_file, &what))
        }
    };
    let mut scaling = None;
    if standardize {
        let (mean, std) = moments(&tr)?;
        let scale = |d: &TensorDataset| -> Result<TensorDataset> {
            if d.is_empty() {
                return Ok(d.clone());
            }
            TensorDataset::new(apply_scaling(d.inputs(), &mean, &std)?, d.targets().clone())
        };
        tr = scale(&tr)?;
        ev = scale(&ev)?;
        scaling = Some(Scaling::from_tensors(&mean, &std)?);
    }
    let notice = (!filled.is_empty()).then(|| format!("note: {}", filled.join("; ")));
    Ok(Loaded {
        train: Arc::new(tr),
        eval: Arc::new(ev),
        source: train_file.clone(),
        notice,
        origins,
        class_names: names,
        feature_names,
        scaling,
    })
}

/// Holds out `fraction` of a data set's examples (rounded) for evaluation, drawn by a
/// permutation seeded from `seed`; both parts keep the file's order.
fn split(all: TensorDataset, fraction: f64, seed: u64) -> Result<(TensorDataset, TensorDataset)> {
    let n = all.len();
    let held = (n as f64 * fraction).round() as usize;
    let order = permutation(n, seed);
    let pick = |idx: &[u32]| -> Result<TensorDataset> {
        let mut idx = idx.to_vec();
        idx.sort_unstable();
        let (x, y) = all.batch(&idx)?;
        TensorDataset::new(x, y)
    };
    Ok((pick(&order[held..])?, pick(&order[..held])?))
}

/// The example order of an `eval_split` draw: the first examples are held out.
fn permutation(n: usize, seed: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut rng = Rng::new(ember_core::rng::at(seed, 0x5711_7000));
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// A named tensor of a safetensors file, on the CPU.
fn tensor_in(file: &str, name: &str, role: &str) -> Result<Tensor> {
    let tensors = candle_core::safetensors::load(file, &Device::Cpu)
        .map_err(|e| Error::input(format!("{file}: cannot read it as safetensors: {}", Error::from(e))))?;
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    tensors.get(name).cloned().ok_or_else(|| {
        Error::input(format!(
            "{file}: no tensor {name:?} (data.{role}); it holds {}",
            names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
        ))
    })
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

/// Scales new inputs for `ember predict` as the run scaled its training inputs: by the
/// checkpoint's stored [`Scaling`] when it has one (the source of truth: the training
/// data need not exist any more), else as [`scale_inputs`] does for inputs `[N, F]`
/// (recomputed from the run's data files: checkpoints written before the scaling was
/// stored, and plain weights with a run config). Inputs of another rank are left as
/// they are when nothing is stored.
pub fn scale_for_prediction(stored: Option<&Scaling>, config: &DataConfig, x: &Tensor) -> Result<Tensor> {
    match stored {
        Some(s) => s.apply(x),
        None if x.rank() == 2 => scale_inputs(config, x),
        None => Ok(x.clone()),
    }
}

/// Applies a run's input scaling to new inputs `[N, F]`: with `standardize = true` the
/// training split's mean and standard deviation, recomputed from the run's data files;
/// otherwise `x` unchanged. `ember predict` uses the checkpoint's stored [`Scaling`]
/// instead when it has one ([`scale_for_prediction`]).
pub fn scale_inputs(config: &DataConfig, x: &Tensor) -> Result<Tensor> {
    let (DataConfig::Csv { standardize: true, .. }
    | DataConfig::Parquet { standardize: true, .. }
    | DataConfig::Hub { standardize: true, .. }) = config
    else {
        return Ok(x.clone());
    };
    let mut raw = config.clone();
    if let DataConfig::Csv { standardize, .. }
    | DataConfig::Parquet { standardize, .. }
    | DataConfig::Hub { standardize, .. } = &mut raw
    {
        *standardize = false;
    }
    let loaded = load(&raw).map_err(|e| {
        e.context("the run standardizes its features with its training split's statistics, which are read again from its data")
    })?;
    let all: Vec<u32> = (0..loaded.train.len() as u32).collect();
    let (mean, std) = moments(&TensorDataset::new(loaded.train.batch(&all)?.0, loaded.train.all_targets()?)?)?;
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

/// The shape of one example's input (from the first example).
pub fn example_shape(data: &dyn Dataset) -> Result<Vec<usize>> {
    Ok(data.batch(&[0])?.0.dims()[1..].to_vec())
}

/// Checks the data before a model is built on it: a training set, and evaluation
/// examples of the training examples' shape. Errors name the split's file.
pub fn check_data(train: &dyn Dataset, eval: &dyn Dataset, origins: &Origins) -> Result<()> {
    if train.is_empty() {
        return Err(Error::input("data: the training set is empty"));
    }
    let dims = example_shape(train)?;
    if !eval.is_empty() {
        let eval_dims = example_shape(eval)?;
        if eval_dims != dims {
            return Err(Error::input(format!(
                "{}: its examples have shape {eval_dims:?}, but the training examples ({}) have shape {dims:?}; both splits must have the same shape",
                origins.eval_inputs, origins.train_inputs,
            )));
        }
    }
    Ok(())
}

/// Checks that the model fits the data, both splits, before any training: the MLP's
/// input size, and for class targets, one output per class covering every label.
/// `output` is the shape of one model output. Errors name the split's file.
pub fn check_fits(
    model: &ModelConfig,
    output: &[usize],
    train: &dyn Dataset,
    eval: &dyn Dataset,
    origins: &Origins,
    class_targets: bool,
) -> Result<()> {
    let dims = example_shape(train)?;
    if let Some(mlp) = model.mlp_config() {
        let features: usize = if mlp.flatten { dims.iter().product() } else { *dims.last().unwrap_or(&0) };
        if mlp.sizes.first() != Some(&features) {
            return Err(Error::input(format!(
                "model.sizes[0] = {} but each example has {features} features (shape {dims:?}); set model.sizes[0] = {features}",
                mlp.sizes.first().copied().unwrap_or(0),
            )));
        }
    }
    if !class_targets {
        for (data, origin) in [(train, &origins.train_targets), (eval, &origins.eval_targets)] {
            if data.is_empty() {
                continue;
            }
            let targets = data.batch(&[0])?.1;
            let per = &targets.dims()[1..];
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
            if data.is_empty() {
                continue;
            }
            let targets = data.all_targets()?;
            if targets.dtype() != DType::I64 {
                continue;
            }
            let max = targets.max_all()?.to_scalar::<i64>()?;
            let min = targets.min_all()?.to_scalar::<i64>()?;
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
