//! One TOML file describes a run: model, loss, optimizer (and groups), scheduler,
//! regularizers, data, training settings and seed. Structural keys are checked here
//! (unknown keys are rejected with the valid choices); plugin keys are checked by each
//! plugin when it is built.

use std::path::Path;

use ember_core::{Config, Error, Result};
use serde::{Deserialize, Serialize};

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

/// The model: an MLP.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Input size, hidden sizes..., output size.
    pub sizes: Vec<usize>,
    #[serde(default = "relu")]
    pub activation: String,
    /// Hyperparameters of the hidden activation.
    #[serde(default)]
    pub activation_config: Config,
    /// Dropout after each hidden layer: one value for all or one per hidden layer.
    #[serde(default)]
    pub dropout: Vec<f64>,
    #[serde(default = "yes")]
    pub flatten: bool,
    #[serde(default = "yes")]
    pub bias: bool,
    /// An activation applied to the output (e.g. `log_softmax` before `nll`).
    #[serde(default)]
    pub output_activation: Option<String>,
}

impl ModelConfig {
    /// The MLP these settings describe.
    pub fn mlp_config(&self) -> ember_nn::MlpConfig {
        ember_nn::MlpConfig {
            sizes: self.sizes.clone(),
            activation: self.activation.clone(),
            activation_config: self.activation_config.clone(),
            dropout: self.dropout.clone(),
            flatten: self.flatten,
            bias: self.bias,
        }
    }
}

fn relu() -> String {
    "relu".into()
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
    pub monitor: Option<String>,
    #[serde(flatten)]
    pub config: Config,
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
            DataConfig::Synthetic { .. } => {}
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
    /// `train_loss`, `train_acc`, `eval_loss` or `eval_acc`.
    pub metric: String,
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// `min` (lower is better) or `max`.
    #[serde(default = "min")]
    pub mode: String,
    /// Smallest change that counts as an improvement.
    #[serde(default)]
    pub min_delta: f64,
}

fn min() -> String {
    "min".into()
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
    #[serde(default = "f32")]
    pub dtype: String,
    /// Clip the global gradient norm to this value.
    #[serde(default)]
    pub clip_grad_norm: Option<f64>,
    /// `2` or `inf`.
    #[serde(default = "two")]
    pub clip_norm_type: String,
    /// Clamp every gradient entry to ±this value.
    #[serde(default)]
    pub clip_grad_value: Option<f64>,
    /// Mini-batches whose gradients are accumulated per optimizer step.
    #[serde(default = "one")]
    pub accumulate: usize,
    #[serde(default)]
    pub early_stopping: Option<EarlyStopping>,
    /// Epoch checkpoints to keep (the best is kept as well).
    #[serde(default = "keep_last")]
    pub keep_last: usize,
    /// The metric that picks `best.safetensors` (default eval_acc, max).
    #[serde(default)]
    pub best_metric: Option<String>,
}

fn epochs() -> usize {
    10
}
fn batch_size() -> usize {
    256
}
fn f32() -> String {
    "f32".into()
}
fn two() -> String {
    "2".into()
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

impl RunConfig {
    /// Parses a TOML run description; errors give the line, column and valid keys.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let config: RunConfig = toml::from_str(text).map_err(|e| Error::input(format!("{origin}: {e}")))?;
        config.validate().map_err(|e| Error::input(format!("{origin}: {e}")))?;
        Ok(config)
    }

    /// Reads and parses a run file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = ember_core::memory::read_capped(path, 16 << 20, "a run config")?;
        let text = String::from_utf8(bytes).map_err(|e| {
            Error::input(format!("{}: not UTF-8 text: {e}; a run config is a TOML file", path.display()))
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Checks settings that are consistent only together.
    pub fn validate(&self) -> Result<()> {
        self.model.mlp_config().validate()?;
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
            return Err(Error::input(
                "train.keep_last = 0 is invalid: must be >= 1 (the newest checkpoint is the one --resume continues from)",
            ));
        }
        if t.epochs == 0 {
            return Err(Error::input("train.epochs = 0 is invalid: must be >= 1"));
        }
        if t.batch_size == 0 {
            return Err(Error::input("train.batch_size = 0 is invalid: must be >= 1"));
        }
        if t.accumulate == 0 {
            return Err(Error::input("train.accumulate = 0 is invalid: must be >= 1"));
        }
        if !["f32", "f64"].contains(&t.dtype.as_str()) {
            return Err(Error::input(format!("train.dtype = {:?} is invalid: must be \"f32\" or \"f64\"", t.dtype)));
        }
        if !["2", "inf"].contains(&t.clip_norm_type.as_str()) {
            return Err(Error::input(format!(
                "train.clip_norm_type = {:?} is invalid: must be \"2\" or \"inf\"",
                t.clip_norm_type
            )));
        }
        for (key, v) in [("clip_grad_norm", t.clip_grad_norm), ("clip_grad_value", t.clip_grad_value)] {
            if let Some(v) = v {
                if v.is_nan() || v <= 0.0 {
                    return Err(Error::input(format!("train.{key} = {v} is invalid: must be > 0")));
                }
            }
        }
        if let Some(es) = &t.early_stopping {
            check_metric("train.early_stopping.metric", &es.metric)?;
            if !es.min_delta.is_finite() || es.min_delta < 0.0 {
                return Err(Error::input(format!(
                    "train.early_stopping.min_delta = {} is invalid: must be a finite number >= 0",
                    es.min_delta
                )));
            }
            if !["min", "max"].contains(&es.mode.as_str()) {
                return Err(Error::input(format!(
                    "train.early_stopping.mode = {:?} is invalid: must be \"min\" or \"max\"",
                    es.mode
                )));
            }
        }
        if let Some(m) = &t.best_metric {
            check_metric("train.best_metric", m)?;
        }
        if let Some(s) = &self.scheduler {
            if let Some(m) = &s.monitor {
                check_metric("scheduler.monitor", m)?;
            }
        }
        if let DataConfig::Synthetic { features, classes, n_train, .. } = &self.data {
            if *features == 0 || *classes < 2 || *n_train == 0 {
                return Err(Error::input(format!(
                    "data: synthetic data needs features >= 1, classes >= 2 and n_train >= 1 (got {features}, {classes}, {n_train})"
                )));
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
        serde_json::from_str(text).map_err(|e| Error::input(format!("the checkpoint's run config is unreadable: {e}")))
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

fn check_metric(key: &str, m: &str) -> Result<()> {
    if METRICS.contains(&m) {
        Ok(())
    } else {
        Err(Error::input(format!("{key} = {m:?} is invalid: must be one of {}", METRICS.join(", "))))
    }
}
