//! One TOML file describes a run: model, loss, optimizer (and groups), scheduler,
//! regularizers, data, training settings and seed. Structural keys are checked here
//! (unknown keys are rejected with the valid choices); plugin keys are checked by each
//! plugin when it is built.

use std::path::Path;

use ember_core::{Config, Context, Error, ParamEnum, Result, Value};
use serde::{Deserialize, Serialize};

pub use crate::clip::NormType;

/// A whole run.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Seeds initialisation, shuffling and dropout.
    #[serde(default)]
    pub seed: u64,
    pub model: ModelConfig,
    pub loss: PluginConfig,
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub scheduler: Option<SchedulerConfig>,
    /// Penalties and constraints: `[[regularizers]]` tables with `name`, optional
    /// `params` (name globs) and the plugin's keys.
    #[serde(default)]
    pub regularizers: Vec<Config>,
    pub data: DataConfig,
    #[serde(default)]
    pub train: TrainConfig,
}

/// A run's training settings: everything in a run config but the model and the data.
/// What the Learner builder runs (see [`crate::builder::LearnerBuilder::spec`]); a
/// [`RunConfig`] adds the model and the data. Reads the same TOML tables: `seed`,
/// `[loss]`, `[optimizer]`, `[scheduler]`, `[[regularizers]]`, `[train]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    #[serde(default)]
    pub seed: u64,
    pub loss: PluginConfig,
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub scheduler: Option<SchedulerConfig>,
    #[serde(default)]
    pub regularizers: Vec<Config>,
    #[serde(default)]
    pub train: TrainConfig,
}

impl TrainSpec {
    /// Parses the training tables of a TOML text (no `[model]` or `[data]`).
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let spec: TrainSpec = parse_toml(text, origin)?;
        spec.validate().context(origin)?;
        Ok(spec)
    }

    /// Checks settings that are consistent only together.
    pub fn validate(&self) -> Result<()> {
        if let Some(ember_core::Value::Str(r)) = self.loss.config.get("reduction") {
            if r == "none" {
                return Err(Error::input(format!(
                    "loss.reduction = \"none\" gives one loss per example, but training needs one number to minimise; use \"mean\" (the default) or \"sum\" for loss {:?}",
                    self.loss.name
                )));
            }
        }
        let t = &self.train;
        if t.keep_last == 0 {
            return Err(invalid(
                "train.keep_last",
                0,
                "must be >= 1 (the newest checkpoint is the one --resume continues from)",
            ));
        }
        for (key, v) in
            [("train.epochs", t.epochs), ("train.batch_size", t.batch_size), ("train.accumulate", t.accumulate)]
        {
            if v == 0 {
                return Err(invalid(key, v, "must be >= 1"));
            }
        }
        if let Some(k) = t.blocks {
            if !k.is_power_of_two() {
                return Err(invalid(
                    "train.blocks",
                    k,
                    "must be a power of two (1, 2, 4, 8, ...): blocks are summed pairwise, and every power-of-two number of ranks up to it takes whole subtrees",
                ));
            }
            if k > t.batch_size {
                return Err(Error::input(format!(
                    "train.blocks = {k} splits each batch into more blocks than its train.batch_size = {} rows; use at most {} blocks",
                    t.batch_size,
                    t.batch_size.next_power_of_two() / if t.batch_size.is_power_of_two() { 1 } else { 2 }
                )));
            }
        }
        for (key, v) in [("train.clip_grad_norm", t.clip_grad_norm), ("train.clip_grad_value", t.clip_grad_value)] {
            if let Some(v) = v {
                if v.is_nan() || v <= 0.0 {
                    return Err(invalid(key, v, "must be > 0"));
                }
            }
        }
        if let Some(es) = &t.early_stopping {
            if !es.min_delta.is_finite() || es.min_delta < 0.0 {
                return Err(invalid("train.early_stopping.min_delta", es.min_delta, "must be a finite number >= 0"));
            }
        }
        let mut labels = Vec::new();
        for (i, m) in t.metrics.iter().enumerate() {
            let label = metric_label(m).context(format!("train.metrics[{i}]"))?;
            if labels.contains(&label) {
                return Err(Error::input(format!(
                    "train.metrics[{i}] = {m:?} repeats metric {label}; list each metric once"
                )));
            }
            labels.push(label);
        }
        if let Some(a) = &t.average {
            a.settings()?;
        }
        if t.init_from.as_deref() == Some("") {
            return Err(invalid("train.init_from", "\"\"", "must name a safetensors file"));
        }
        Ok(())
    }

    /// The settings as JSON (stored in checkpoints of runs built in code).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a train spec serializes")
    }
}

/// The label of a metric spec, its `metrics.csv` column without the `eval_` prefix: the
/// name alone (`accuracy`), or with its options in key order
/// (`"f1:average=macro"` → `f1[average=macro]`, `"top_k_accuracy:k=5"` →
/// `top_k_accuracy[k=5]`).
pub fn metric_label(spec: &str) -> Result<String> {
    let (name, options) = ember_core::metric::parse_spec(spec)?;
    if options.is_empty() {
        return Ok(name);
    }
    let opts: Vec<String> = options
        .iter()
        .map(|(k, v)| match v {
            ember_core::Value::Str(s) => format!("{k}={s}"),
            ember_core::Value::Null => format!("{k}=null"),
            other => format!("{k}={}", other.to_string().trim_matches('"')),
        })
        .collect();
    Ok(format!("{name}[{}]", opts.join(";")))
}

/// The model: a list of layers (`[[model.layers]]` tables, each with `name` and the
/// layer's PyTorch arguments), or the MLP shorthand `sizes` with its few options.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The MLP shorthand: input size, hidden sizes..., output size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sizes: Option<Vec<usize>>,
    /// The model as layers, in order: tables with `name = "conv2d"` and its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<Config>,
    /// The MLP's hidden activation (default `relu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<String>,
    /// Hyperparameters of the hidden activation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_config: Option<Config>,
    /// Dropout after each hidden layer of the MLP: one value for all or one per hidden layer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropout: Vec<f64>,
    /// Flatten each example first (MLP; default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flatten: Option<bool>,
    /// Biases in the MLP's Linear layers (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias: Option<bool>,
    /// An activation applied to the output (e.g. `log_softmax` before `nll`).
    #[serde(default)]
    pub output_activation: Option<String>,
}

impl ModelConfig {
    /// The MLP shorthand with these sizes and its defaults.
    pub fn mlp(sizes: &[usize]) -> Self {
        ModelConfig { sizes: Some(sizes.to_vec()), ..Default::default() }
    }

    /// The model as these layers.
    pub fn layers(layers: Vec<Config>) -> Self {
        ModelConfig { layers, ..Default::default() }
    }

    /// The MLP these settings describe, when they use the `sizes` shorthand.
    pub fn mlp_config(&self) -> Option<ember_nn::MlpConfig> {
        Some(ember_nn::MlpConfig {
            sizes: self.sizes.clone()?,
            activation: self.activation.clone().unwrap_or_else(|| "relu".into()),
            activation_config: self.activation_config.clone().unwrap_or_default(),
            dropout: self.dropout.clone(),
            flatten: self.flatten.unwrap_or(true),
            bias: self.bias.unwrap_or(true),
        })
    }

    /// Checks that the model is given one way: `layers`, or `sizes` with its options.
    pub fn validate(&self) -> Result<()> {
        match (&self.sizes, self.layers.is_empty()) {
            (Some(_), false) => Err(Error::input(
                "model: give either model.sizes (the MLP shorthand) or [[model.layers]], not both",
            )),
            (None, true) => Err(Error::input(
                "model: no model; give [[model.layers]] tables (name = \"conv2d\", ...) or the MLP shorthand model.sizes = [784, 256, 10]",
            )),
            (None, false) => {
                let mlp_only = [
                    ("activation", self.activation.is_some()),
                    ("activation_config", self.activation_config.is_some()),
                    ("dropout", !self.dropout.is_empty()),
                    ("flatten", self.flatten.is_some()),
                    ("bias", self.bias.is_some()),
                ];
                match mlp_only.iter().find(|(_, given)| *given) {
                    Some((key, _)) => Err(Error::input(format!(
                        "model.{key} belongs to the MLP shorthand (model.sizes); with [[model.layers]], put it in the layers (an activation or dropout layer, a linear layer's bias)"
                    ))),
                    None => Ok(()),
                }
            }
            (Some(_), true) => self.mlp_config().expect("sizes given").validate(),
        }
    }
}

fn yes() -> bool {
    true
}

/// A plugin chosen by name, with its hyperparameters beside the name.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct PluginConfig {
    pub name: String,
    #[serde(flatten)]
    pub config: Config,
}

/// The optimizer, with optional parameter groups (`[[optimizer.groups]]`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct OptimizerConfig {
    pub name: String,
    #[serde(default)]
    pub groups: Vec<Config>,
    #[serde(flatten)]
    pub config: Config,
}

/// When the scheduler steps.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    /// After each epoch (PyTorch's usual `scheduler.step()` per epoch).
    #[default]
    Epoch,
    /// After each optimizer step (one_cycle, warm-ups).
    Step,
}

/// The learning-rate scheduler.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct SchedulerConfig {
    pub name: String,
    #[serde(default)]
    pub interval: Interval,
    /// The metric a metric-driven scheduler watches (default `eval_loss`).
    #[serde(default)]
    pub monitor: Option<Metric>,
    #[serde(flatten)]
    pub config: Config,
}

impl SchedulerConfig {
    /// The scheduler to build, by name and config: the scheduler itself, or with `warmup =
    /// N` (a shorthand on any scheduler) PyTorch's `SequentialLR([LinearLR(start_factor =
    /// warmup_start_factor (default 1/3, LinearLR's), total_iters = N), SCHEDULER],
    /// milestones = [N])`: the learning rate rises linearly to its configured value over N
    /// steps (epochs or batches, by `interval`), then the scheduler runs from its start.
    pub fn resolved(&self) -> Result<(String, Config)> {
        let Some(warmup) = self.config.get("warmup") else {
            if self.config.contains_key("warmup_start_factor") {
                return Err(Error::config(
                    "scheduler",
                    "warmup_start_factor without warmup: set warmup = N (the warm-up steps) too, or remove it",
                ));
            }
            return Ok((self.name.clone(), self.config.clone()));
        };
        let steps = match warmup {
            Value::Int(n) if *n >= 1 => *n,
            other => {
                return Err(invalid(
                    "scheduler.warmup",
                    other,
                    "must be a whole number of steps >= 1 (epochs, or batches with interval = \"batch\")",
                ))
            }
        };
        if matches!(self.name.as_str(), "sequential" | "chained") {
            return Err(Error::config(
                "scheduler",
                format!(
                    "warmup on {}: put a {{ name = \"linear\", ... }} schedule first in its schedulers instead",
                    self.name
                ),
            ));
        }
        let start = self.config.get("warmup_start_factor").cloned().unwrap_or(Value::Float(1.0 / 3.0));
        let linear = Config::from([
            ("name".to_string(), Value::Str("linear".into())),
            ("start_factor".to_string(), start),
            ("end_factor".to_string(), Value::Float(1.0)),
            ("total_iters".to_string(), Value::Int(steps)),
        ]);
        let mut main: Config =
            self.config.iter().filter(|(k, _)| !k.starts_with("warmup")).map(|(k, v)| (k.clone(), v.clone())).collect();
        main.insert("name".into(), Value::Str(self.name.clone()));
        let config = Config::from([
            ("milestones".to_string(), Value::List(vec![Value::Int(steps)])),
            ("schedulers".to_string(), Value::List(vec![Value::Table(linear), Value::Table(main)])),
        ]);
        Ok(("sequential".into(), config))
    }
}

/// Where the examples come from.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataConfig {
    /// Four IDX files (MNIST layout); images are scaled to [0, 1].
    Idx { train_images: String, train_labels: String, test_images: String, test_labels: String },
    /// Fashion-MNIST from `dir`, Debian's folder, or the embedded subset.
    FashionMnist {
        #[serde(default)]
        dir: Option<String>,
    },
    /// MNIST from `dir`.
    Mnist {
        #[serde(default)]
        dir: Option<String>,
    },
    /// A numeric table (CSV, TSV or any one-character delimiter, optionally gzipped):
    /// one `path` split by `eval_split`, or `train` and `test` files. `target` names the
    /// target column (or a list: multi-output regression, multi-label 0/1 targets);
    /// `features` the input columns (default: every other column); `classes = true` reads
    /// one target column as class labels, mapped to indices in sorted order as
    /// scikit-learn's `LabelEncoder` does. `standardize = true` scales every feature to
    /// mean 0 and standard deviation 1 with the training split's statistics.
    Csv {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        train: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test: Option<String>,
        target: Columns,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        features: Vec<String>,
        #[serde(default = "comma")]
        delimiter: String,
        #[serde(default)]
        classes: bool,
        /// The fraction of `path`'s rows held out for evaluation, drawn with `seed`.
        #[serde(default)]
        eval_split: f64,
        #[serde(default)]
        standardize: bool,
        /// What a missing value (`""`, `NA`, `NaN`, ...) in a used column does:
        /// `"error"` (default, naming the line and column), `"drop"` (leave the row out)
        /// or `"mean"` (fill a feature with its column's mean).
        #[serde(default)]
        missing: MissingValues,
        /// The seed of the `eval_split` draw; default: the run's seed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u64>,
    },
    /// A Parquet table, with the `csv` kind's keys (no `delimiter`): numeric, boolean and
    /// label columns; a column of images (Hugging Face's Image feature, or PNG/JPEG
    /// bytes) as the only feature gives `[C, H, W]` inputs.
    Parquet {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        train: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test: Option<String>,
        target: Columns,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        features: Vec<String>,
        #[serde(default)]
        classes: bool,
        #[serde(default)]
        eval_split: f64,
        #[serde(default)]
        standardize: bool,
        #[serde(default)]
        missing: MissingValues,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u64>,
    },
    /// Any Hugging Face dataset, through its parquet conversion (the revision
    /// `refs/convert/parquet` of the dataset repository, which the hub keeps for every
    /// dataset): `repo = "owner/name"`, `config` (default `"default"`), `split` (default
    /// `"train"`), with the `parquet` kind's column keys. `test_split` names the evaluation
    /// split; without it `eval_split` holds out part of `split`. Files are read from the
    /// Hugging Face cache (`HF_HUB_CACHE` / `HF_HOME`) and downloaded into it when missing;
    /// `HF_HUB_OFFLINE=1` reads the cache alone.
    Hub {
        repo: String,
        #[serde(default = "default_hub_config")]
        config: String,
        #[serde(default = "default_hub_split")]
        split: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test_split: Option<String>,
        /// The revision holding the parquet files.
        #[serde(default = "default_hub_revision")]
        revision: String,
        target: Columns,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        features: Vec<String>,
        #[serde(default)]
        classes: bool,
        #[serde(default)]
        eval_split: f64,
        #[serde(default)]
        standardize: bool,
        #[serde(default)]
        missing: MissingValues,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u64>,
    },
    /// Named input and target tensors of safetensors files (`safetensors.torch.save_file
    /// ({"x": X, "y": Y}, path)`): one `path` split by `eval_split`, or `train` and `test`
    /// files. Integer targets are class indices (as i64); float targets are compared with
    /// the output as they are.
    Safetensors {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        train: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test: Option<String>,
        /// The inputs' tensor name (default `inputs`).
        #[serde(default = "inputs_name")]
        inputs: String,
        /// The targets' tensor name (default `targets`).
        #[serde(default = "targets_name")]
        targets: String,
        #[serde(default)]
        eval_split: f64,
        /// The seed of the `eval_split` draw; default: the run's seed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u64>,
    },
    /// torchvision's `ImageFolder` layout: a folder per class (sorted names are the class
    /// indices) holding PNG or JPEG images: one `path` split by `eval_split`, or `train`
    /// and `test` folders (the test folder must have the same classes). `size = [H, W]`
    /// resizes (bilinear), `mean`/`std` normalise per channel after scaling to [0, 1],
    /// `channels` converts (1 grey, 3 RGB); `crop_padding` (random crop after zero
    /// padding) and `flip` (random horizontal flip) augment training batches only, drawn
    /// from the seed, the epoch and the image, so a resumed run sees the same batches.
    ImageFolder {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        train: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<[usize; 2]>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mean: Vec<f64>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        std: Vec<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channels: Option<usize>,
        #[serde(default)]
        crop_padding: usize,
        #[serde(default)]
        flip: bool,
        #[serde(default)]
        eval_split: f64,
        /// The seed of the `eval_split` draw and of the augmentation; default: the run's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u64>,
    },
    /// Gaussian blobs, one per class: quick runs and tests.
    Synthetic {
        #[serde(default = "n_train")]
        n_train: usize,
        #[serde(default = "n_eval")]
        n_eval: usize,
        features: usize,
        classes: usize,
        #[serde(default)]
        seed: u64,
    },
}

impl DataConfig {
    /// Makes every file and folder path absolute (relative to the working directory), so
    /// a checkpoint's stored config still finds its data when resumed from elsewhere.
    pub fn make_absolute(&mut self) {
        let abs = |p: &mut String| {
            if let Ok(a) = std::path::absolute(&*p) {
                *p = a.display().to_string();
            }
        };
        match self {
            DataConfig::Idx { train_images, train_labels, test_images, test_labels } => {
                [train_images, train_labels, test_images, test_labels].into_iter().for_each(abs)
            }
            DataConfig::FashionMnist { dir } | DataConfig::Mnist { dir } => dir.iter_mut().for_each(abs),
            DataConfig::Csv { path, train, test, .. }
            | DataConfig::Parquet { path, train, test, .. }
            | DataConfig::Safetensors { path, train, test, .. }
            | DataConfig::ImageFolder { path, train, test, .. } => {
                [path, train, test].into_iter().flatten().for_each(abs)
            }
            DataConfig::Synthetic { .. } | DataConfig::Hub { .. } => {}
        }
    }

    /// Gives a table's `eval_split` draw the run's seed when the data names none (so the
    /// stored config fixes the split).
    pub fn default_seed(&mut self, run_seed: u64) {
        if let DataConfig::Csv { seed: seed @ None, .. }
        | DataConfig::Parquet { seed: seed @ None, .. }
        | DataConfig::Hub { seed: seed @ None, .. }
        | DataConfig::Safetensors { seed: seed @ None, .. }
        | DataConfig::ImageFolder { seed: seed @ None, .. } = self
        {
            *seed = Some(run_seed);
        }
    }

    /// The folder the MNIST-family data is read from, if one is set.
    pub fn dir_mut(&mut self) -> Option<&mut Option<String>> {
        match self {
            DataConfig::FashionMnist { dir } | DataConfig::Mnist { dir } => Some(dir),
            _ => None,
        }
    }
}

/// One column name or several (`target = "price"` or `target = ["a", "b"]`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Columns {
    One(String),
    Many(Vec<String>),
}

impl Columns {
    pub fn names(&self) -> Vec<String> {
        match self {
            Columns::One(c) => vec![c.clone()],
            Columns::Many(c) => c.clone(),
        }
    }
}

fn inputs_name() -> String {
    "inputs".into()
}

fn targets_name() -> String {
    "targets".into()
}

fn default_hub_config() -> String {
    "default".into()
}

fn default_hub_split() -> String {
    "train".into()
}

fn default_hub_revision() -> String {
    "refs/convert/parquet".into()
}

fn comma() -> String {
    ",".into()
}

fn n_train() -> usize {
    512
}

fn n_eval() -> usize {
    256
}

/// Early stopping on a metric.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    /// A column of `metrics.csv` ([`Metric`]).
    pub metric: Metric,
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// `min` (lower is better) or `max`; by default the metric's own direction (max for
    /// accuracies, F1 and R², min for losses and errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Smallest change that counts as an improvement.
    #[serde(default)]
    pub min_delta: f64,
}

/// Training settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    #[serde(default = "epochs")]
    pub epochs: usize,
    #[serde(default = "batch_size")]
    pub batch_size: usize,
    #[serde(default = "yes")]
    pub shuffle: bool,
    #[serde(default)]
    pub drop_last: bool,
    /// `f32` or `f64`.
    #[serde(default)]
    pub dtype: Precision,
    /// Clip the global gradient norm to this value.
    #[serde(default)]
    pub clip_grad_norm: Option<f64>,
    /// `2` or `inf`.
    #[serde(default)]
    pub clip_norm_type: NormType,
    /// Clamp every gradient entry to ±this value.
    #[serde(default)]
    pub clip_grad_value: Option<f64>,
    /// Mini-batches whose gradients are accumulated per optimizer step.
    #[serde(default = "one")]
    pub accumulate: usize,
    /// Splits every batch into this many fixed blocks of rows (a power of two) whose
    /// gradients are computed apart and summed in one fixed pairwise order. A run then
    /// gives bit-identical weights on 1 process and on any number of data-parallel ranks
    /// that divides it (each rank takes whole blocks). Unset: one pass over the batch
    /// (or over each rank's share), the fastest. Layers that see the whole batch
    /// (batch norm's statistics) see one block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<usize>,
    #[serde(default)]
    pub early_stopping: Option<EarlyStopping>,
    /// Epoch checkpoints to keep (the best is kept as well).
    #[serde(default = "keep_last")]
    pub keep_last: usize,
    /// The metric that picks `best.safetensors` (default eval_acc, or the first of
    /// `metrics` when the targets are not class indices; its direction decides).
    #[serde(default)]
    pub best_metric: Option<Metric>,
    /// Metrics computed over the whole evaluation set after each epoch, by registered
    /// name with options: `["accuracy", "top_k_accuracy:k=5", "f1:average=macro", "r2"]`.
    /// Each is a `metrics.csv` column `eval_LABEL` ([`metric_label`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<String>,
    /// Weights to start from (fine-tuning): a safetensors file with PyTorch names (an
    /// exported model, `safetensors.torch.save_file(model.state_dict())`) or an Ember
    /// checkpoint. Ignored when resuming (the checkpoint holds the weights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<String>,
    /// With `init_from`: whether every model tensor must be in the file and every file
    /// tensor in the model (PyTorch's `strict`). With `false`, what matched is loaded and
    /// the rest is listed.
    #[serde(default = "yes")]
    pub strict: bool,
    /// Parameter-name globs (`"0.*"`, `"*.bias"`) kept fixed: no gradient, no optimizer
    /// state, no regularization (PyTorch's `requires_grad_(False)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<String>,
    /// Weight averaging (`[train.average]`): an EMA or SWA copy of the weights, kept in
    /// every checkpoint, used for evaluation and `best.safetensors` when `eval = true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average: Option<AverageConfig>,
    /// TensorBoard event files in the run directory (`events.out.tfevents.*`): every
    /// metric per epoch, the training loss and learning rate per step, the config as
    /// hyperparameters (the HParams tab).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub tensorboard: bool,
    /// With `tensorboard`: a histogram of every parameter after each epoch, and of its
    /// gradient at the epoch's last step (off by default: it reads every weight back).
    #[serde(default, skip_serializing_if = "is_false")]
    pub histograms: bool,
    /// `report.html` in the run directory, rewritten after each epoch.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub report: bool,
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Weight averaging (`[train.average]`), PyTorch's `torch.optim.swa_utils.AveragedModel`:
/// `kind = "ema"` (`multi_avg_fn = get_ema_multi_avg_fn(decay)`) or `"swa"` (the default
/// running mean). The average is updated after every optimizer step (`interval =
/// "step"`, EMA's default) or after every epoch's training (`"epoch"`, SWA's default),
/// from epoch `start_epoch + 1` on (SWA's `swa_start`). Checkpoints hold it (`average/`
/// tensors, PyTorch names); `ember export --averaged` writes it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AverageConfig {
    pub kind: AverageKind,
    /// EMA's decay (weight of the old average), in [0, 1]; default 0.999.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay: Option<f64>,
    /// When the average is updated: `"step"` or `"epoch"` (default: step for EMA, epoch
    /// for SWA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    /// Epochs trained before averaging starts (updates begin in epoch `start_epoch + 1`).
    #[serde(default)]
    pub start_epoch: usize,
    /// Average the buffers (batch norm's running statistics) too; otherwise they are
    /// copied from the model at each update (PyTorch's `use_buffers`, default false).
    #[serde(default)]
    pub use_buffers: bool,
    /// Evaluate (and pick `best.safetensors`) with the averaged weights once averaging
    /// has started.
    #[serde(default = "yes")]
    pub eval: bool,
    /// Before evaluating the averaged weights, recompute batch norm's running statistics
    /// for them (PyTorch's `update_bn`): the statistics are reset, then one pass over the
    /// training set (in order, in training mode, no augmentation) folds every batch into
    /// a cumulative average. Checkpoints and `ember export --averaged` hold the
    /// recomputed statistics. Costs a forward pass over the training set per evaluation.
    #[serde(default)]
    pub update_bn: bool,
}

impl AverageConfig {
    /// The averaging and its update interval, checked.
    pub fn settings(&self) -> Result<(ember_nn::Averaging, Interval)> {
        let averaging =
            match (self.kind, self.decay) {
                (AverageKind::Ema, decay) => {
                    let decay = decay.unwrap_or(0.999);
                    if !(0.0..=1.0).contains(&decay) {
                        return Err(invalid(
                            "train.average.decay",
                            decay,
                            "must be in [0, 1] (the weight of the old average; 0.999 is usual)",
                        ));
                    }
                    ember_nn::Averaging::Ema { decay }
                }
                (AverageKind::Swa, None) => ember_nn::Averaging::Swa,
                (AverageKind::Swa, Some(d)) => return Err(invalid(
                    "train.average.decay",
                    d,
                    "applies to kind = \"ema\" only (SWA is the equal-weight mean); remove it or set kind = \"ema\"",
                )),
            };
        if self.update_bn && self.use_buffers {
            return Err(Error::config(
                "train.average",
                "update_bn recomputes the batch norm statistics of the averaged weights, and use_buffers averages them: choose one (update_bn is SWA's usual recipe)",
            ));
        }
        let interval = self.interval.unwrap_or(match self.kind {
            AverageKind::Ema => Interval::Step,
            AverageKind::Swa => Interval::Epoch,
        });
        Ok((averaging, interval))
    }
}

fn epochs() -> usize {
    10
}
fn batch_size() -> usize {
    256
}
fn one() -> usize {
    1
}
fn keep_last() -> usize {
    3
}

impl Default for TrainConfig {
    fn default() -> Self {
        toml::from_str("").expect("every field has a default")
    }
}

/// The metrics a run records, by name.
pub const METRICS: [&str; 4] = ["train_loss", "train_acc", "eval_loss", "eval_acc"];

/// A config option whose value is one of a few strings (`dtype = "f32"`,
/// `best_metric = "eval_acc"`): a Rust enum with `#[derive(ParamEnum)]` (the same
/// derive as plugins' closed choices) that reads and writes exactly those strings; any
/// other string is an error naming the key, the value and the valid values.
pub trait ClosedOption: ParamEnum + Copy {
    /// The valid values, as the error for another value words them: `must be "f32" or
    /// "f64"`, `must be one of train_loss, train_acc, eval_loss, eval_acc`.
    fn rule() -> String {
        match Self::CHOICES {
            [a, b] => format!("must be {a:?} or {b:?}"),
            all => format!("must be one of {}", all.join(", ")),
        }
    }

    /// The value `text` names, or an [`Error::InvalidValue`] for `key`:
    /// `train.dtype = "f16" is invalid: must be "f32" or "f64"`.
    fn parse(key: &str, text: &str) -> Result<Self> {
        Self::from_choice(text).ok_or_else(|| Error::InvalidValue {
            path: key.to_string(),
            value: format!("{text:?}"),
            rule: Self::rule(),
        })
    }
}

/// Implements [`ClosedOption`], an inherent `as_str`, serde (as the strings) and, for
/// values written in code (`"eval_loss".into()`), `From<&str>` and comparison with
/// strings for a `ParamEnum`.
macro_rules! closed_option {
    ($ty:ident) => {
        impl ClosedOption for $ty {}

        impl $ty {
            /// The string this value is written as in a config.
            pub fn as_str(self) -> &'static str {
                <Self as ParamEnum>::as_str(&self)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                <Self as ParamEnum>::from_choice(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!("{text:?} is invalid: {}", <Self as ClosedOption>::rule()))
                })
            }
        }

        /// For values written in code; panics on a string that names no value (parse
        /// input with [`ClosedOption::parse`]).
        impl From<&str> for $ty {
            fn from(text: &str) -> Self {
                match <Self as ClosedOption>::parse(stringify!($ty), text) {
                    Ok(v) => v,
                    Err(e) => panic!("{e}"),
                }
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

/// The floating-point type of the model and the inputs (`train.dtype`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, ParamEnum)]
pub enum Precision {
    #[default]
    F32,
    F64,
}

closed_option!(Precision);

impl Precision {
    /// The candle dtype.
    pub fn dtype(self) -> candle_core::DType {
        match self {
            Precision::F32 => candle_core::DType::F32,
            Precision::F64 => candle_core::DType::F64,
        }
    }
}

closed_option!(NormType);

/// `train.average.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ParamEnum)]
pub enum AverageKind {
    Ema,
    Swa,
}

closed_option!(AverageKind);

/// A metric a run records per epoch, by its `metrics.csv` column: one of [`METRICS`]
/// (`train_loss`, `train_acc`, `eval_loss`, `eval_acc`) or `eval_` and the label of a
/// metric in `train.metrics` (`eval_f1[average=macro]`, which may be named `eval_f1` when
/// only one `f1` is listed). What `train.best_metric`, `train.early_stopping.metric` and
/// `scheduler.monitor` name; the Learner checks it against the run's metrics.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Metric(String);

impl Metric {
    pub const TRAIN_LOSS: &'static str = "train_loss";
    pub const TRAIN_ACC: &'static str = "train_acc";
    pub const EVAL_LOSS: &'static str = "eval_loss";
    pub const EVAL_ACC: &'static str = "eval_acc";

    pub fn new(name: impl Into<String>) -> Self {
        Metric(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is computed on the evaluation set.
    pub fn is_eval(&self) -> bool {
        self.0.starts_with("eval_")
    }
}

impl From<&str> for Metric {
    fn from(name: &str) -> Self {
        Metric(name.to_string())
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for Metric {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Whether lower (`min`) or higher (`max`) is better (`train.early_stopping.mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, ParamEnum)]
pub enum Mode {
    #[default]
    Min,
    Max,
}

closed_option!(Mode);

/// `data.missing` of a table: what a missing value does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, ParamEnum)]
pub enum MissingValues {
    #[default]
    Error,
    Drop,
    Mean,
}

closed_option!(MissingValues);

impl MissingValues {
    /// The table reader's policy.
    pub fn policy(self) -> ember_data::csv::Missing {
        match self {
            MissingValues::Error => ember_data::csv::Missing::Error,
            MissingValues::Drop => ember_data::csv::Missing::Drop,
            MissingValues::Mean => ember_data::csv::Missing::Mean,
        }
    }
}

/// Checks every closed option of a config tree (parsed TOML or JSON, read with `get`),
/// in the order [`RunConfig::validate`] checked them: the first value outside its set is
/// an error naming the key.
fn check_options(get: impl Fn(&[&str]) -> Option<String>) -> Result<()> {
    fn check<T: ClosedOption>(get: &dyn Fn(&[&str]) -> Option<String>, path: &[&str]) -> Result<()> {
        match get(path) {
            Some(text) => T::parse(&path.join("."), &text).map(drop),
            None => Ok(()),
        }
    }
    check::<Precision>(&get, &["train", "dtype"])?;
    check::<NormType>(&get, &["train", "clip_norm_type"])?;
    check::<Mode>(&get, &["train", "early_stopping", "mode"])?;
    check::<MissingValues>(&get, &["data", "missing"])
}

/// Parses TOML into a config type; errors give the line, column and valid keys, and a
/// string outside a closed set is worded as the other invalid values are.
fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, origin: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        if let Ok(table) = text.parse::<toml::Table>() {
            let tree = toml::Value::Table(table);
            let options = check_options(|path| {
                path.iter().try_fold(&tree, |v, k| v.get(k)).and_then(|v| v.as_str()).map(str::to_string)
            });
            if let Err(bad) = options {
                return bad.context(origin);
            }
        }
        Error::input(e).context(origin)
    })
}

/// A number outside its range: `train.epochs = 0 is invalid: must be >= 1`.
fn invalid(path: &str, value: impl std::fmt::Display, rule: &str) -> Error {
    Error::InvalidValue { path: path.to_string(), value: value.to_string(), rule: rule.to_string() }
}

impl RunConfig {
    /// Parses a TOML run description; errors give the line, column and valid keys.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let config: RunConfig = parse_toml(text, origin)?;
        config.validate().context(origin)?;
        Ok(config)
    }

    /// Reads and parses a run file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = ember_core::memory::read_capped(path, 16 << 20, "a run config")?;
        let text = String::from_utf8(bytes)
            .map_err(|e| Error::corrupt(path, format!("not UTF-8 text: {e}; a run config is a TOML file")))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Fixes what a config leaves to its run, as a new run stores it: file paths made
    /// absolute (data and `train.init_from`) and a table's split seed defaulted to the
    /// run's. A CONFIG given beside `--resume` is settled the same way before it is
    /// compared with the stored one.
    pub fn settle(&mut self) {
        self.data.make_absolute();
        self.data.default_seed(self.seed);
        if let Some(p) = self.train.init_from.as_mut() {
            if let Ok(a) = std::path::absolute(&*p) {
                *p = a.display().to_string();
            }
        }
    }

    /// The training settings: everything but the model and the data.
    pub fn spec(&self) -> TrainSpec {
        TrainSpec {
            seed: self.seed,
            loss: self.loss.clone(),
            optimizer: self.optimizer.clone(),
            scheduler: self.scheduler.clone(),
            regularizers: self.regularizers.clone(),
            train: self.train.clone(),
        }
    }

    /// Checks settings that are consistent only together.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.spec().validate()?;
        let files = match &self.data {
            DataConfig::Csv { path, train, test, eval_split, .. }
            | DataConfig::Parquet { path, train, test, eval_split, .. }
            | DataConfig::Safetensors { path, train, test, eval_split, .. }
            | DataConfig::ImageFolder { path, train, test, eval_split, .. } => Some((path, train, test, eval_split)),
            _ => None,
        };
        if let Some((path, train, test, eval_split)) = files {
            match (path, train, test) {
                (Some(_), None, None) | (None, Some(_), _) => {}
                _ => {
                    return Err(Error::config(
                        "data",
                        "give `path = \"FILE\"` (split by eval_split) or `train = \"...\"` with an optional `test = \"...\"`, not both",
                    ))
                }
            }
            if !(0.0..1.0).contains(eval_split) || (train.is_some() && *eval_split > 0.0) {
                return Err(invalid(
                    "data.eval_split",
                    eval_split,
                    "must be in [0, 1) and is used with `path` (with train/test files the test file is the evaluation set)",
                ));
            }
        }
        if let DataConfig::Hub { repo, test_split, eval_split, .. } = &self.data {
            if repo.trim().is_empty() || repo.split('/').count() > 2 {
                return Err(invalid(
                    "data.repo",
                    format!("{repo:?}"),
                    "must name a dataset repository, \"owner/name\"",
                ));
            }
            if !(0.0..1.0).contains(eval_split) || (test_split.is_some() && *eval_split > 0.0) {
                return Err(invalid(
                    "data.eval_split",
                    eval_split,
                    "must be in [0, 1) and is used without `test_split` (with a test split, that split is the evaluation set)",
                ));
            }
        }
        if let DataConfig::Csv { delimiter, .. } = &self.data {
            if delimiter.chars().count() != 1 {
                return Err(invalid(
                    "data.delimiter",
                    format!("{delimiter:?}"),
                    "must be one character (\",\", \";\", \"\\t\")",
                ));
            }
        }
        if let DataConfig::Synthetic { features, classes, n_train, .. } = &self.data {
            if *features == 0 || *classes < 2 || *n_train == 0 {
                return Err(Error::config(
                    "data",
                    format!(
                        "synthetic data needs features >= 1, classes >= 2 and n_train >= 1 (got {features}, {classes}, {n_train})"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The configuration as JSON (stored in checkpoints).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a run config serializes")
    }

    /// The run stored in a checkpoint.
    pub fn from_json(text: &str) -> Result<Self> {
        const UNREADABLE: &str = "the checkpoint's run config is unreadable";
        serde_json::from_str(text).map_err(|e| {
            let tree = serde_json::from_str::<serde_json::Value>(text).unwrap_or_default();
            let options = check_options(|path| {
                path.iter().try_fold(&tree, |v, k| v.get(k)).and_then(|v| v.as_str()).map(str::to_string)
            });
            match options {
                Err(bad) => bad.context(UNREADABLE),
                Ok(()) => Error::input(format!("{UNREADABLE}: {e}")),
            }
        })
    }

    /// Warnings for a final activation that does not fit the loss (the seed's pairing
    /// table), each naming the right pairing.
    pub fn pairing_warnings(&self) -> Vec<String> {
        let out = self.model.output_activation.as_deref();
        let loss = self.loss.name.as_str();
        let mut w = Vec::new();
        match (out, loss) {
            (Some("softmax"), "cross_entropy") => w.push(
                "model.output_activation = \"softmax\" before loss \"cross_entropy\" applies softmax twice: cross_entropy takes raw scores (logits); remove the output activation, or use log_softmax with \"nll\"".into(),
            ),
            (o, "nll") if o != Some("log_softmax") => w.push(format!(
                "loss \"nll\" expects log-probabilities, but the model's output activation is {}; set model.output_activation = \"log_softmax\", or use \"cross_entropy\" on raw scores",
                o.map_or("none".to_string(), |o| format!("\"{o}\""))
            )),
            (o, "bce") if o != Some("sigmoid") => w.push(format!(
                "loss \"bce\" expects probabilities, but the model's output activation is {}; set model.output_activation = \"sigmoid\", or use \"bce_with_logits\" on raw scores",
                o.map_or("none".to_string(), |o| format!("\"{o}\""))
            )),
            (Some("sigmoid"), "bce_with_logits") => w.push(
                "model.output_activation = \"sigmoid\" before loss \"bce_with_logits\" applies the sigmoid twice: bce_with_logits takes raw scores; remove the output activation, or use \"bce\"".into(),
            ),
            _ => {}
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[model]
sizes = [4, 3]
[loss]
name = "cross_entropy"
[optimizer]
name = "sgd"
[scheduler]
name = "reduce_on_plateau"
[data]
kind = "synthetic"
features = 4
classes = 3
[train]
"#;

    fn parse(extra: &str) -> Result<RunConfig> {
        RunConfig::from_toml(&format!("{BASE}{extra}\n"), "run.toml")
    }

    #[test]
    fn closed_options_read_and_write_their_strings() {
        let c = parse("dtype = \"f64\"\nclip_norm_type = \"inf\"\nbest_metric = \"train_acc\"\nearly_stopping = { metric = \"eval_loss\", patience = 2, mode = \"max\" }").unwrap();
        assert_eq!(c.train.dtype, Precision::F64);
        assert_eq!(c.train.dtype.dtype(), candle_core::DType::F64);
        assert_eq!(c.train.clip_norm_type, NormType::Inf);
        assert_eq!(c.train.best_metric, Some(Metric::from("train_acc")));
        let es = c.train.early_stopping.as_ref().unwrap();
        assert_eq!((&es.metric, es.mode), (&Metric::from("eval_loss"), Some(Mode::Max)));
        let json = c.to_json();
        for s in [
            "\"dtype\":\"f64\"",
            "\"clip_norm_type\":\"inf\"",
            "\"best_metric\":\"train_acc\"",
            "\"metric\":\"eval_loss\"",
            "\"mode\":\"max\"",
            "\"interval\":\"epoch\"",
        ] {
            assert!(json.contains(s), "{s} in {json}");
        }
        assert_eq!(RunConfig::from_json(&json).unwrap(), c);
        let d = parse("").unwrap();
        assert_eq!((d.train.dtype, d.train.clip_norm_type), (Precision::F32, NormType::L2));
        assert!(d.to_json().contains("\"dtype\":\"f32\",") && d.to_json().contains("\"clip_norm_type\":\"2\","));
        assert_eq!(Metric::from("eval_acc"), Metric::EVAL_ACC);
        assert!(Mode::Min == "min" && format!("{}", Precision::F64) == "f64");
    }

    #[test]
    fn a_value_outside_the_set_names_the_key_the_value_and_the_choices() {
        let err = |extra: &str| parse(extra).unwrap_err();
        for (extra, want) in [
            ("dtype = \"f16\"", "run.toml: train.dtype = \"f16\" is invalid: must be \"f32\" or \"f64\""),
            ("clip_norm_type = \"1\"", "run.toml: train.clip_norm_type = \"1\" is invalid: must be \"2\" or \"inf\""),
            (
                "early_stopping = { metric = \"eval_acc\", patience = 1, mode = \"maximum\" }",
                "run.toml: train.early_stopping.mode = \"maximum\" is invalid: must be \"min\" or \"max\"",
            ),
        ] {
            let e = err(extra);
            assert_eq!(e.to_string(), want);
            assert!(matches!(e.root(), Error::InvalidValue { .. }), "{e:?}");
        }
        // A value of the wrong type is serde's error, as before.
        let e = err("dtype = 32").to_string();
        assert!(e.contains("invalid type: integer `32`, expected a string") && e.contains("line"), "{e}");
        // A stored config with a bad value names it too.
        let json = parse("").unwrap().to_json().replace("\"dtype\":\"f32\"", "\"dtype\":\"f8\"");
        assert_eq!(
            RunConfig::from_json(&json).unwrap_err().to_string(),
            "the checkpoint's run config is unreadable: train.dtype = \"f8\" is invalid: must be \"f32\" or \"f64\""
        );
    }

    #[test]
    fn validation_errors_keep_their_text_and_type() {
        let e = parse("epochs = 0").unwrap_err();
        assert_eq!(e.to_string(), "run.toml: train.epochs = 0 is invalid: must be >= 1");
        assert!(matches!(e.root(), Error::InvalidValue { path, .. } if path == "train.epochs"));
        assert!(std::error::Error::source(&e).is_some());
        let e = parse("clip_grad_norm = -1.0").unwrap_err();
        assert_eq!(e.to_string(), "run.toml: train.clip_grad_norm = -1 is invalid: must be > 0");
        let e = RunConfig::from_toml(&BASE.replace("classes = 3", "classes = 1"), "run.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "run.toml: data: synthetic data needs features >= 1, classes >= 2 and n_train >= 1 (got 4, 1, 512)"
        );
        assert!(matches!(e.root(), Error::Config { key, .. } if key == "data"));
    }
}
