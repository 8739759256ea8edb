//! The Learner: epochs of mini-batches with a loss, an optimizer (and groups), an
//! optional scheduler, regularizers, gradient clipping and accumulation; metrics per
//! epoch in `metrics.csv`; atomic checkpoints after each epoch; early stopping; and a
//! resume that continues bit for bit.
//!
//! Every random choice derives from the run seed and a counter (data order from the
//! epoch, dropout masks from the global batch index), so a checkpoint's counters are
//! its whole random state.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use ember_core::rng;
use ember_core::{
    registry, BuildContext, Config, Context as _, Direction, Error, IoContext, LayerContext, Loss, LossArg, Result,
    Scheduler, Value,
};
use ember_data::{DataLoader, Dataset};
use ember_nn::{
    build_layers, load_state_dict, mlp, state_dict, ActivationLayer, AveragedWeights, Context, Module, Sequential,
};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, FORMAT};
use crate::clip::{clip_grad_norm, clip_grad_value};
use crate::config::{metric_label, Interval, Metric, Mode, RunConfig, TrainSpec};
use crate::distributed::{Collective, Solo};
use crate::hooks::{Callback, Control, StepArgs, StepEnd, StepOutput, TrainStep};
use crate::optim::{load_scheduler_state, scheduler_state_dict, OptimizerDriver, ParamGroupSpec};
use crate::regularize::{Regularization, RegularizerSpec};
use crate::rundir::{self, Existing, RunLock};
use ember_core::module::{RowSum, RowSync};

/// Separates the dropout stream from the other streams drawn from the run seed.
const DROPOUT_STREAM: u64 = 0xD0_D0_D0_D0;

/// One epoch's metrics. Accuracies are NaN when the targets are not class indices.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    #[serde(with = "nonfinite")]
    pub train_loss: f64,
    #[serde(with = "nonfinite")]
    pub train_acc: f64,
    #[serde(with = "nonfinite")]
    pub eval_loss: f64,
    #[serde(with = "nonfinite")]
    pub eval_acc: f64,
    /// The run's metrics (`train.metrics`) over the evaluation set, by label, in the
    /// order given: `metrics.csv` column `eval_LABEL`. NaN when undefined.
    #[serde(default, with = "nonfinite::pairs", skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<(String, f64)>,
    #[serde(with = "nonfinite")]
    pub lr: f64,
    #[serde(with = "nonfinite")]
    pub seconds: f64,
}

/// JSON has no NaN or infinity (serde_json writes them as `null` and refuses `null` back
/// as a number): these are stored as the strings `"NaN"`, `"inf"` and `"-inf"`, and a
/// `null` from an older checkpoint reads as NaN.
mod nonfinite {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Num(f64),
        Text(String),
        Null(()),
    }

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        match *x {
            x if x.is_finite() => s.serialize_f64(x),
            x if x.is_nan() => s.serialize_str("NaN"),
            x if x > 0.0 => s.serialize_str("inf"),
            _ => s.serialize_str("-inf"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Option::<Repr>::deserialize(d)? {
            Some(Repr::Num(x)) => Ok(x),
            Some(Repr::Text(t)) => from_text(&t).map_err(serde::de::Error::custom),
            Some(Repr::Null(())) | None => Ok(f64::NAN),
        }
    }

    fn from_text(t: &str) -> Result<f64, String> {
        match t {
            "NaN" => Ok(f64::NAN),
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            other => Err(format!("expected a number, \"NaN\", \"inf\" or \"-inf\", got {other:?}")),
        }
    }

    /// The same for labelled values, written as a JSON object in their order.
    pub mod pairs {
        use serde::de::{MapAccess, Visitor};
        use serde::ser::SerializeMap;
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        struct Value(f64);

        impl Serialize for Value {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                super::serialize(&self.0, s)
            }
        }

        impl<'de> Deserialize<'de> for Value {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                super::deserialize(d).map(Value)
            }
        }

        pub fn serialize<S: Serializer>(v: &[(String, f64)], s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(v.len()))?;
            for (k, x) in v {
                map.serialize_entry(k, &Value(*x))?;
            }
            map.end()
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, f64)>, D::Error> {
            struct Pairs;
            impl<'de> Visitor<'de> for Pairs {
                type Value = Vec<(String, f64)>;

                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object of metric values")
                }

                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                    let mut out = Vec::new();
                    while let Some((k, v)) = map.next_entry::<String, Value>()? {
                        out.push((k, v.0));
                    }
                    Ok(out)
                }
            }
            d.deserialize_map(Pairs)
        }
    }

    /// The same for `Option<f64>` (`null` is `None`).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            match x {
                Some(x) => super::serialize(x, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
            match Option::<super::Repr>::deserialize(d)? {
                None | Some(super::Repr::Null(())) => Ok(None),
                Some(super::Repr::Num(x)) => Ok(Some(x)),
                Some(super::Repr::Text(t)) => super::from_text(&t).map(Some).map_err(serde::de::Error::custom),
            }
        }
    }
}

impl EpochRecord {
    /// The value of a `metrics.csv` column (`eval_loss`, `eval_f1[average=macro]`), if
    /// the record has it.
    pub fn get(&self, column: &str) -> Option<f64> {
        match column {
            Metric::TRAIN_LOSS => Some(self.train_loss),
            Metric::TRAIN_ACC => Some(self.train_acc),
            Metric::EVAL_LOSS => Some(self.eval_loss),
            Metric::EVAL_ACC => Some(self.eval_acc),
            other => {
                let label = other.strip_prefix("eval_")?;
                self.metrics.iter().find(|(l, _)| l == label).map(|(_, v)| *v)
            }
        }
    }

    fn metric(&self, column: &str) -> f64 {
        self.get(column).unwrap_or(f64::NAN)
    }
}

/// Counters and history: everything besides tensors that a checkpoint restores.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Progress {
    /// Completed epochs.
    pub epoch: usize,
    /// Optimizer steps taken.
    pub step: u64,
    /// Mini-batches seen (drives the dropout seeds).
    pub batches: u64,
    pub history: Vec<EpochRecord>,
    /// The best value of the best metric so far.
    #[serde(default, with = "nonfinite::option")]
    pub best: Option<f64>,
    /// The epoch that reached [`Progress::best`]: the one `best.safetensors` holds.
    #[serde(default)]
    pub best_epoch: Option<usize>,
    pub bad_epochs: usize,
    pub stopped_early: bool,
}

/// What `fit` returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub epochs: usize,
    pub last: Option<EpochRecord>,
    pub seconds_per_epoch: f64,
    pub stopped_early: bool,
    pub checkpoint: Option<PathBuf>,
    /// Elements in the model's parameters, and in those that train (not frozen).
    pub parameters: usize,
    pub trainable: usize,
    /// The run directory and where the data came from.
    pub out: PathBuf,
    pub data: String,
}

impl Summary {
    /// The summary as `ember train` prints it (its last stdout line) and every run
    /// writes to `summary.json`: the last epoch's values (null when not computed), the
    /// metrics by column, the parameter counts, timing, and where things are.
    pub fn to_json(&self) -> serde_json::Value {
        let num = |f: fn(&EpochRecord) -> f64| self.last.as_ref().map(f).filter(|x| x.is_finite());
        let metrics: serde_json::Map<String, serde_json::Value> = self
            .last
            .iter()
            .flat_map(|r| &r.metrics)
            .map(|(l, v)| (format!("eval_{l}"), serde_json::json!(v.is_finite().then_some(*v))))
            .collect();
        serde_json::json!({
            "epochs": self.epochs,
            "train_loss": num(|r| r.train_loss),
            "train_acc": num(|r| r.train_acc),
            "eval_loss": num(|r| r.eval_loss),
            "eval_acc": num(|r| r.eval_acc),
            "metrics": metrics,
            "parameters": self.parameters,
            "trainable_parameters": self.trainable,
            "seconds_per_epoch": self.seconds_per_epoch,
            "stopped_early": self.stopped_early,
            "out": self.out.display().to_string(),
            "data": self.data,
            "threads": candle_core::utils::get_num_threads(),
            "checkpoint": self.checkpoint.as_ref().map(|p| p.display().to_string()),
        })
    }
}

/// Where progress lines go.
pub enum Reporter {
    /// One summary line per epoch on stderr.
    Stderr,
    Quiet,
}

/// A column that early stopping, the best checkpoint or a scheduler watches, with the
/// direction in which it improves.
#[derive(Clone, Debug, PartialEq)]
struct Watch {
    column: String,
    direction: Direction,
}

/// A training run. See the module docs.
pub struct Learner {
    spec: TrainSpec,
    /// The run config when the run was described by one (`ember train`): checkpoints
    /// store it, so `ember train --resume` rebuilds the model and the data.
    run: Option<RunConfig>,
    model: Arc<dyn Module>,
    loss: Box<dyn Loss>,
    optimizer: OptimizerDriver,
    scheduler: Option<Box<dyn Scheduler>>,
    regularization: Regularization,
    metrics: Vec<(String, Box<dyn ember_core::Metric>)>,
    train: Arc<dyn Dataset>,
    eval: Option<Arc<dyn Dataset>>,
    /// Whether the targets are class indices for a loss that takes them (accuracy).
    class_targets: bool,
    loader: DataLoader,
    out: PathBuf,
    progress: Progress,
    reporter: Reporter,
    data_source: String,
    data_notice: Option<String>,
    class_names: Vec<String>,
    feature_names: Vec<String>,
    /// The input scaling the data applied (stored in checkpoints for `ember predict`).
    input_scaling: Option<crate::data::Scaling>,
    phases: Phases,
    phase_history: Vec<Phases>,
    /// The run directory's lock, held while the Learner lives.
    _lock: Option<RunLock>,
    /// Warnings and notes to print once when training starts.
    notes: Vec<String>,
    /// The checkpoint a resumed run continues.
    resumed_from: Option<PathBuf>,
    /// The parameters that train, and the frozen ones (no gradient, no optimizer state).
    trainable: Vec<Var>,
    frozen: Vec<Var>,
    parameters: usize,
    best: Watch,
    stop_on: Option<(Watch, f64, usize)>,
    monitor: String,
    step_fn: Option<Box<dyn TrainStep>>,
    callbacks: Vec<Box<dyn Callback>>,
    stop_requested: bool,
    /// Weight averaging (`train.average`), when configured.
    average: Option<Average>,
    /// The data-parallel ranks this run is spread over ([`Solo`] by default).
    collective: Arc<dyn Collective>,
    /// TensorBoard events (`train.tensorboard`), opened when training starts.
    events: Option<Events>,
    /// The last evaluation's confusion matrix (class targets), for the report.
    confusion: Option<Vec<Vec<u64>>>,
    /// With `train.histograms`: each parameter's gradient at the epoch's last optimizer
    /// step (after the all-reduce, before clipping), logged as `grads/NAME`.
    last_grads: Vec<(String, Vec<f64>)>,
}

/// The run's TensorBoard event file, and the last step each tag already has in the run
/// directory's files (a resumed run writes only later steps: nothing twice).
struct Events {
    writer: crate::tensorboard::EventWriter,
    written: HashMap<String, u64>,
}

impl Events {
    /// Whether `tag` at `step` is new: past the last step an earlier session wrote.
    fn fresh(&self, tag: &str, step: u64) -> bool {
        self.written.get(tag).is_none_or(|&last| step > last)
    }

    fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<()> {
        if value.is_finite() && self.fresh(tag, step) {
            self.writer.scalar(tag, step, value)?;
        }
        Ok(())
    }

    fn histogram(&mut self, tag: &str, step: u64, values: &[f64]) -> Result<()> {
        if !values.is_empty() && values.iter().all(|v| v.is_finite()) && self.fresh(tag, step) {
            self.writer.histogram(tag, step, values)?;
        }
        Ok(())
    }
}

/// A tensor's values, flattened, as f64 (for histograms).
fn f64_values(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?)
}

/// A run's weight averaging: the averaged copy and when it moves.
struct Average {
    weights: AveragedWeights,
    interval: Interval,
    start_epoch: usize,
    eval: bool,
    update_bn: bool,
    /// The batch norm statistics `update_bn` computed for the current average (until
    /// the average moves again): what checkpoints store with it.
    bn_buffers: std::sync::Mutex<Option<HashMap<String, Tensor>>>,
}

/// Separates `update_bn`'s dropout stream from the other streams drawn from the run seed.
const UPDATE_BN_STREAM: u64 = 0xB7_B7_B7_B7;

/// Checkpoint key of the averaged weights' update count (a 0-d f64 tensor).
const N_AVERAGED: &str = "averaging/n_averaged";

/// Seconds spent per phase in one epoch (`ember bench train` reports them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Phases {
    /// Gathering batches and moving them to the device.
    pub data: f64,
    pub forward: f64,
    pub loss: f64,
    pub backward: f64,
    /// Clipping, the optimizer step, constraints, per-step scheduling.
    pub optimizer: f64,
    pub eval: f64,
    /// metrics.csv, plots, checkpoints.
    pub output: f64,
    /// TensorBoard events (per step and per epoch) and report.html.
    pub logging: f64,
}

/// The loss and metrics of one pass over the evaluation set.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    /// Top-1 accuracy; NaN unless the targets are class indices.
    pub acc: f64,
    /// The run's metrics by label.
    pub metrics: Vec<(String, f64)>,
    /// For class-index targets, the confusion matrix: `confusion[true][predicted]` counts
    /// (top-1 predictions), over as many classes as the outputs have.
    pub confusion: Option<Vec<Vec<u64>>>,
}

/// The model a run config describes, for examples of shape `input` (the batch dimension
/// left out; the MLP shorthand ignores it), with weights initialised from the run's seed;
/// and the shape of one output.
pub fn build_model(
    config: &RunConfig,
    input: &[usize],
    dtype: DType,
    device: &Device,
) -> Result<(Sequential, Vec<usize>)> {
    let m = &config.model;
    m.validate()?;
    let (mut model, output) = match m.mlp_config() {
        Some(mlp_config) => {
            let output = vec![*mlp_config.sizes.last().unwrap_or(&0)];
            (mlp(&mlp_config, config.seed, dtype, device).context("model")?, output)
        }
        None => {
            let mut ctx = LayerContext::new(device.clone(), dtype, config.seed);
            build_layers(&m.layers, input, &mut ctx, "layers")?
        }
    };
    if let Some(name) = &m.output_activation {
        let layer = ActivationLayer::new(name, &Config::new(), &BuildContext::new(device.clone(), dtype))
            .context("model.output_activation")?;
        let label = model.len().to_string();
        model = model.push_named(label, Box::new(layer));
    }
    Ok((model, output))
}

/// The dtype a run config names.
pub fn dtype_of(config: &RunConfig) -> DType {
    config.train.dtype.dtype()
}

/// Everything a Learner is assembled from, whether a run config or the builder gave it.
pub(crate) struct Parts {
    pub spec: TrainSpec,
    pub run: Option<RunConfig>,
    pub model: Arc<dyn Module>,
    /// The loss, when the caller already built it (to check the data against it).
    pub loss: Option<Box<dyn Loss>>,
    pub train: Arc<dyn Dataset>,
    pub eval: Option<Arc<dyn Dataset>>,
    pub device: Device,
    pub out: PathBuf,
    pub reporter: Reporter,
    pub data_source: String,
    pub data_notice: Option<String>,
    /// Names of the classes, index k naming class k (may be empty).
    pub class_names: Vec<String>,
    /// A table's feature columns (may be empty).
    pub feature_names: Vec<String>,
    /// The input scaling the data applied (`standardize = true`), if any.
    pub input_scaling: Option<crate::data::Scaling>,
    pub step_fn: Option<Box<dyn TrainStep>>,
    pub callbacks: Vec<Box<dyn Callback>>,
    /// A resumed run takes its weights from the checkpoint, not from `init_from`.
    pub resuming: bool,
}

impl Learner {
    /// A new run in the directory `out`, refused if `out` already holds a run (see
    /// [`crate::rundir`]). The directory is locked for this process while the Learner
    /// lives.
    pub fn new(config: RunConfig, device: Device, out: impl Into<PathBuf>, reporter: Reporter) -> Result<Self> {
        Self::start(config, device, out, Existing::Refuse, reporter)
    }

    /// A run of `model` written in Rust, configured in code: see [`LearnerBuilder`](crate::builder::LearnerBuilder).
    pub fn builder<M: Module + 'static>(model: M) -> crate::builder::LearnerBuilder<M> {
        crate::builder::LearnerBuilder::new(model)
    }

    /// [`Learner::new`], with `existing` saying what to do when `out` already holds a run:
    /// refuse, or remove the old run's files (only after every part of the new run was
    /// built, so a config error does not cost the old run).
    pub fn start(
        mut config: RunConfig,
        device: Device,
        out: impl Into<PathBuf>,
        existing: Existing,
        reporter: Reporter,
    ) -> Result<Self> {
        let out = out.into();
        // A quick refusal before the data is loaded; the check under the lock decides.
        if existing == Existing::Refuse && rundir::existing_run(&out).is_some() {
            rundir::prepare_new(&rundir::lock(&out)?, Existing::Refuse)?;
        }
        config.settle();
        let learner = Self::build(config, device, out, reporter, false)?;
        learner.begin(existing)
    }

    /// Takes the run directory for a new run.
    pub(crate) fn begin(mut self, existing: Existing) -> Result<Self> {
        let lock = rundir::lock(&self.out)?;
        rundir::prepare_new(&lock, existing)?;
        self.adopt(lock);
        Ok(self)
    }

    /// Builds every part of a run config's run; `out` is the run directory (not touched
    /// here).
    fn build(config: RunConfig, device: Device, out: PathBuf, reporter: Reporter, resuming: bool) -> Result<Self> {
        config.validate()?;
        let dtype = dtype_of(&config);
        let crate::data::Loaded { train, eval, source, notice, origins, class_names, feature_names, scaling } =
            crate::data::load(&config.data).context("data")?;
        crate::data::check_data(train.as_ref(), eval.as_ref(), &origins)?;
        let ctx = BuildContext::new(device.clone(), dtype);
        let loss = registry::loss(&config.loss.name, &config.loss.config, &ctx).context("loss")?;
        check_loss_arguments(loss.as_ref(), &config.loss.name, false, false)?;
        // The loss says what targets it takes; the data and the model must fit them.
        let class_targets = loss.targets().takes_classes();
        if !class_targets && train.batch(&[0])?.1.dtype().is_int() {
            return Err(Error::input(format!(
                "loss '{}' compares the output with float targets of its shape, but {} holds class indices; use cross_entropy (or nll after log_softmax) for class labels",
                config.loss.name, origins.train_targets
            )));
        }
        let (model, output) = build_model(&config, &crate::data::example_shape(train.as_ref())?, dtype, &device)?;
        crate::data::check_fits(&config.model, &output, train.as_ref(), eval.as_ref(), &origins, class_targets)?;
        Self::assemble(Parts {
            spec: config.spec(),
            run: Some(config),
            model: Arc::new(model),
            loss: Some(loss),
            eval: (!eval.is_empty()).then_some(eval),
            train,
            device,
            out,
            reporter,
            data_source: source,
            data_notice: notice,
            class_names,
            feature_names,
            input_scaling: scaling,
            step_fn: None,
            callbacks: Vec::new(),
            resuming,
        })
    }

    /// Builds the optimizer, scheduler, regularizers, metrics and loader around a model
    /// and its data.
    pub(crate) fn assemble(parts: Parts) -> Result<Self> {
        let Parts {
            spec,
            run,
            model,
            loss,
            train,
            eval,
            device,
            out,
            reporter,
            data_source,
            data_notice,
            class_names,
            feature_names,
            input_scaling,
            step_fn,
            callbacks,
            resuming,
        } = parts;
        spec.validate()?;
        let dtype = spec.train.dtype.dtype();
        let ctx = BuildContext::new(device.clone(), dtype);
        let loss = match loss {
            Some(l) => l,
            None => registry::loss(&spec.loss.name, &spec.loss.config, &ctx).context("loss")?,
        };
        if train.is_empty() {
            return Err(Error::input("data: the training set is empty"));
        }
        let eval = eval.filter(|e| !e.is_empty());
        check_loss_arguments(loss.as_ref(), &spec.loss.name, step_fn.is_some(), eval.is_some())?;
        if step_fn.is_some() && spec.train.blocks.is_some_and(|k| k > 1) {
            return Err(Error::input(format!(
                "train.blocks = {} with a custom training step is not supported: the Learner scales each block's loss by its share of the batch, which a custom step's loss may not be; leave train.blocks unset",
                spec.train.blocks.unwrap_or(1)
            )));
        }
        let (_, first) = train.batch(&[0])?;
        let class_targets = loss.targets().takes_classes() && first.dtype().is_int();
        if !loss.targets().takes_classes() && first.dtype().is_int() {
            return Err(Error::input(format!(
                "loss '{}' compares the output with float targets of its shape, but the training targets are class indices ({:?}); use cross_entropy (or nll after log_softmax) for class labels, or give float targets",
                spec.loss.name,
                first.dtype()
            )));
        }
        let mut metrics = Vec::new();
        for (i, m) in spec.train.metrics.iter().enumerate() {
            let (name, config) = ember_core::metric::parse_spec(m)?;
            let metric = registry::metric(&name, &config, &ctx).context(format!("train.metrics[{i}]"))?;
            metrics.push((metric_label(m)?, metric));
        }
        let mut notes = Vec::new();
        if eval.is_none() {
            notes.push(no_evaluation(&spec)?);
        }
        // Parameters to train and to keep fixed.
        let named = model.named_parameters();
        let parameters = named.iter().map(|(_, v)| v.elem_count()).sum();
        for (i, pattern) in spec.train.freeze.iter().enumerate() {
            if !named.iter().any(|(n, _)| crate::glob::matches(pattern, n)) {
                let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).take(12).collect();
                return Err(Error::input(format!(
                    "train.freeze[{i}] = {pattern:?} matches no parameter; the model's parameters are {}{} (globs: * any run of characters, ? one)",
                    names.join(", "),
                    if named.len() > names.len() { ", ..." } else { "" }
                )));
            }
        }
        let (frozen_named, trainable_named): (Vec<_>, Vec<_>) =
            named.into_iter().partition(|(n, _)| spec.train.freeze.iter().any(|p| crate::glob::matches(p, n)));
        if trainable_named.is_empty() {
            return Err(Error::input(
                "train.freeze leaves no parameter to train; freeze fewer parameters (e.g. \"0.*\" for the first layer only)",
            ));
        }
        if !frozen_named.is_empty() {
            let count: usize = frozen_named.iter().map(|(_, v)| v.elem_count()).sum();
            notes.push(format!(
                "note: train.freeze keeps {} tensors ({count} parameters) fixed; {} of {parameters} parameters train",
                frozen_named.len(),
                parameters - count
            ));
        }
        if !resuming {
            if let Some(path) = &spec.train.init_from {
                notes.push(init_weights(model.as_ref(), Path::new(path), spec.train.strict)?);
            }
        }
        let groups = spec
            .optimizer
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| ParamGroupSpec::from_table(i, g))
            .collect::<Result<Vec<_>>>()?;
        let mut optimizer =
            OptimizerDriver::new(&spec.optimizer.name, &spec.optimizer.config, &groups, trainable_named.clone())
                .context("optimizer")?;
        if optimizer.needs_closure() {
            let t = &spec.train;
            let refused = [
                (
                    t.accumulate > 1,
                    "train.accumulate > 1 (it re-evaluates one batch; accumulate over a larger batch_size instead)",
                ),
                (t.clip_grad_norm.is_some(), "train.clip_grad_norm (its line search needs the true gradient)"),
                (t.clip_grad_value.is_some(), "train.clip_grad_value (its line search needs the true gradient)"),
                (
                    t.blocks.is_some_and(|k| k > 1),
                    "train.blocks > 1 (it re-evaluates the whole batch at once; leave train.blocks unset)",
                ),
            ];
            if let Some((_, what)) = refused.iter().find(|(on, _)| *on) {
                return Err(Error::input(format!(
                    "optimizer '{}' re-evaluates the loss within each step (PyTorch's step(closure)) and does not combine with {what}; remove it",
                    spec.optimizer.name
                )));
            }
        }
        let scheduler = match &spec.scheduler {
            Some(s) => {
                let (name, config) = s.resolved()?;
                let mut sched = registry::scheduler(&name, &config, &ctx).context("scheduler")?;
                if let (Some(m), false) = (&s.monitor, sched.needs_metric()) {
                    return Err(Error::input(format!(
                        "scheduler.monitor = {:?} has no effect: scheduler '{}' does not watch a metric; remove `monitor` (it applies to metric-driven schedulers such as reduce_on_plateau)",
                        m.as_str(),
                        s.name
                    )));
                }
                optimizer.start_schedule(sched.as_mut()).context("scheduler")?;
                Some(sched)
            }
            None => None,
        };
        let specs = spec
            .regularizers
            .iter()
            .enumerate()
            .map(|(i, t)| RegularizerSpec::from_table(i, t))
            .collect::<Result<Vec<_>>>()?;
        let regularization = Regularization::new(&specs, trainable_named.clone())?;
        let t = &spec.train;
        let average = match &t.average {
            Some(a) => {
                let (averaging, interval) = a.settings()?;
                let weights = AveragedWeights::new(averaging, a.use_buffers)?;
                Some(Average {
                    weights,
                    interval,
                    start_epoch: a.start_epoch,
                    eval: a.eval,
                    update_bn: a.update_bn,
                    bn_buffers: Default::default(),
                })
            }
            None => None,
        };
        let loader = DataLoader::new(t.batch_size, t.shuffle, t.drop_last, spec.seed, device, dtype)?;
        if loader.batches(train.len()) == 0 {
            return Err(Error::input(format!(
                "train.batch_size = {} with drop_last leaves no batch from {} training examples",
                t.batch_size,
                train.len()
            )));
        }
        // The watched columns, checked against what the run records.
        let has_eval = eval.is_some();
        let watch = |key: &str, m: &Metric| resolve(key, m, &metrics, class_targets);
        let best = match &t.best_metric {
            Some(m) => watch("train.best_metric", m)?,
            None if !has_eval => Watch { column: Metric::TRAIN_LOSS.into(), direction: Direction::Min },
            None if class_targets => Watch { column: Metric::EVAL_ACC.into(), direction: Direction::Max },
            None => match metrics.first() {
                Some((label, m)) => Watch { column: format!("eval_{label}"), direction: m.direction() },
                None => Watch { column: Metric::EVAL_LOSS.into(), direction: Direction::Min },
            },
        };
        let stop_on = match &t.early_stopping {
            Some(es) => {
                let mut w = watch("train.early_stopping.metric", &es.metric)?;
                if let Some(mode) = es.mode {
                    w.direction = if mode == Mode::Max { Direction::Max } else { Direction::Min };
                }
                Some((w, es.min_delta, es.patience))
            }
            None => None,
        };
        let monitor = match spec.scheduler.as_ref().and_then(|s| s.monitor.as_ref()) {
            Some(m) => watch("scheduler.monitor", m)?.column,
            None if !has_eval => Metric::TRAIN_LOSS.into(),
            None => Metric::EVAL_LOSS.into(),
        };
        Ok(Learner {
            spec,
            run,
            model,
            loss,
            optimizer,
            scheduler,
            regularization,
            metrics,
            train,
            eval,
            class_targets,
            loader,
            out,
            progress: Progress::default(),
            reporter,
            data_source,
            data_notice,
            class_names,
            feature_names,
            input_scaling,
            phases: Phases::default(),
            phase_history: Vec::new(),
            _lock: None,
            notes,
            resumed_from: None,
            trainable: trainable_named.into_iter().map(|(_, v)| v).collect(),
            frozen: frozen_named.into_iter().map(|(_, v)| v).collect(),
            parameters,
            best,
            stop_on,
            monitor,
            step_fn,
            callbacks,
            stop_requested: false,
            average,
            collective: Arc::new(Solo),
            events: None,
            confusion: None,
            last_grads: Vec::new(),
        })
    }

    /// Spreads the run over `collective`'s ranks (data-parallel, e.g. MPI under
    /// `mpirun`): every rank builds the same Learner (same config and seed, checked here
    /// across ranks), takes its contiguous share of each global batch (`batch_size` stays
    /// the global batch), and the gradients of all ranks are summed before each optimizer
    /// step, so the run computes what one process computes, up to the summation order
    /// (`train.blocks` fixes that order: the same bits on any number of ranks that
    /// divides it). Dropout masks are drawn for the whole batch, so they do not depend on
    /// the number of ranks; batch norm sums its statistics over every rank's rows
    /// (SyncBatchNorm), and rank 0's running statistics reach the other ranks after
    /// each epoch's training. Evaluation is sharded by batches (rank r runs batches r, r + n, ...) and
    /// every rank then folds all batches' losses, outputs and targets in batch order, so
    /// evaluation metrics are exactly one process's for the same weights. Rank 0 alone prints and
    /// writes metrics, plots, checkpoints and the summary (give the other ranks a
    /// directory of their own: it stays empty).
    pub fn with_collective(mut self, collective: Box<dyn Collective>) -> Result<Self> {
        if collective.size() > 1 {
            if self.optimizer.needs_closure() {
                return Err(Error::input(format!(
                    "optimizer '{}' re-evaluates the loss within its step; data-parallel training ({}) does not support it yet: train it in one process",
                    self.optimizer.name(),
                    collective.describe()
                )));
            }
            if self.step_fn.is_some() {
                return Err(Error::input(format!(
                    "a custom training step with data-parallel training ({}) is not supported yet: the Learner scales each rank's loss by its share of the batch, which a custom step's loss may not be",
                    collective.describe()
                )));
            }
            if let Some(k) = self.spec.train.blocks.filter(|k| k % collective.size() != 0) {
                return Err(Error::input(format!(
                    "train.blocks = {k} splits each batch into {k} blocks, which {} cannot share evenly; start a number of ranks that divides {k} (1, 2, 4, ...: blocks are a power of two, so the ranks must be too)",
                    collective.describe()
                )));
            }
            // Batch norm sums its statistics over the ranks in every training pass, so every
            // rank must take part in every batch: no empty shard (which skips the pass).
            let t = &self.spec.train;
            let (n, ranks) = (self.train.len(), collective.size());
            let last = if t.drop_last { 0 } else { n % t.batch_size };
            let smallest = if n < t.batch_size {
                n
            } else if last > 0 {
                last
            } else {
                t.batch_size
            };
            if t.blocks.is_none() && smallest < ranks && !self.model.named_buffers().is_empty() {
                return Err(Error::input(format!(
                    "the model's batch norm sums its statistics over the {ranks} ranks in every batch, but a batch of {smallest} rows (train.batch_size = {}, {n} training examples) leaves some ranks without rows; set train.drop_last = true, another batch_size, or start at most {smallest} ranks",
                    t.batch_size
                )));
            }
            // The same run on every rank: rank 0's settings and progress, compared.
            let mine = format!(
                "{}\n{}\n{}",
                self.spec.to_json(),
                self.run.as_ref().map(RunConfig::to_json).unwrap_or_default(),
                serde_json::to_string(&self.progress).expect("progress serializes")
            );
            let mut theirs = mine.clone().into_bytes();
            collective.broadcast_bytes(0, &mut theirs)?;
            let mut differs = vec![0.0f64; collective.size()];
            differs[collective.rank()] = if theirs == mine.as_bytes() { 0.0 } else { 1.0 };
            collective.all_reduce_sum_f64(&mut differs)?;
            let ranks: Vec<String> =
                differs.iter().enumerate().filter(|(_, d)| **d != 0.0).map(|(r, _)| r.to_string()).collect();
            if !ranks.is_empty() {
                return Err(Error::input(format!(
                    "rank(s) {} of {} were started with another config, seed or checkpoint than rank 0; every rank must run the same command on the same files",
                    ranks.join(", "),
                    collective.describe()
                )));
            }
            if collective.rank() != 0 {
                self.reporter = Reporter::Quiet;
            }
        }
        self.collective = Arc::from(collective);
        Ok(self)
    }

    /// Whether this process writes the run's files (rank 0, or the only process).
    fn writes(&self) -> bool {
        self.collective.rank() == 0
    }

    /// Keeps the run directory's lock for the Learner's lifetime.
    fn adopt(&mut self, lock: RunLock) {
        if let Some(pid) = lock.taken_over_from {
            self.notes.push(format!(
                "note: {} was last held by process {pid}, which ended without releasing it (killed?); this run took it over",
                self.out.display()
            ));
        }
        self._lock = Some(lock);
    }

    /// Continues the run saved in `path` (a checkpoint file, or a run directory meaning
    /// its newest readable checkpoint). The checkpoint's config is used; `epochs`
    /// overrides the total; `out` (default: the checkpoint's run directory) receives the
    /// continued run.
    pub fn resume(
        path: &Path,
        device: Device,
        out: Option<PathBuf>,
        epochs: Option<usize>,
        reporter: Reporter,
    ) -> Result<Self> {
        Self::resume_with(path, device, out, reporter, |config| {
            if let Some(e) = epochs {
                config.train.epochs = e;
            }
            Ok(())
        })
    }

    /// [`Learner::resume`] where `edit` sees the checkpoint's config before the run is
    /// rebuilt from it, and may change it (the total epochs, a data folder that moved) or
    /// refuse the resume with an error.
    pub fn resume_with(
        path: &Path,
        device: Device,
        out: Option<PathBuf>,
        reporter: Reporter,
        edit: impl FnOnce(&mut RunConfig) -> Result<()>,
    ) -> Result<Self> {
        let (ckpt, skipped) = checkpoint::open_for_resume(path)?;
        let file = ckpt.path.clone();
        if !ckpt.metadata.contains_key("config") && ckpt.metadata.contains_key("spec") {
            return Err(Error::input(format!(
                "{}: this run was built in Rust code (Learner::builder), so the checkpoint holds no model or data description; resume it from that code with LearnerBuilder::resume",
                file.display()
            )));
        }
        let mut config = RunConfig::from_json(ckpt.meta("config")?).with_context(|| file.display())?;
        edit(&mut config)?;
        let home = run_dir_of(&file);
        let out = out.unwrap_or_else(|| home.clone());
        let lock = rundir::lock(&out)?;
        if !same_dir(&out, &home) {
            // Continuing into another directory is a new run there.
            rundir::prepare_new(&lock, Existing::Refuse)?;
        }
        checkpoint::remove_stale_temporaries(&out.join("checkpoints"));
        checkpoint::remove_stale_temporaries(&out);
        let learner = Learner::build(config, device, out, reporter, true)?;
        learner.continue_from(lock, ckpt, skipped)
    }

    /// Loads a checkpoint into a freshly built Learner that holds the run directory's
    /// lock, and notes what a resume should say.
    pub(crate) fn continue_from(
        mut self,
        lock: RunLock,
        ckpt: checkpoint::Checkpoint,
        skipped: Vec<String>,
    ) -> Result<Self> {
        self.adopt(lock);
        self.notes.extend(skipped);
        self.load(&ckpt)?;
        let later: Vec<usize> = checkpoint::epoch_files(&self.out.join("checkpoints"))?
            .into_iter()
            .map(|(e, _)| e)
            .filter(|&e| e > self.progress.epoch)
            .collect();
        if let (Some(first), Some(last)) = (later.first(), later.last()) {
            self.notes.push(format!(
                "warning: resuming from epoch {} while {} holds checkpoints of epochs {first} to {last}; this run replaces them as it reaches those epochs (until then `--resume {}` would pick the newest of the old ones)",
                self.progress.epoch,
                self.out.display(),
                self.out.display()
            ));
        }
        self.resumed_from = Some(ckpt.path.clone());
        self.reconcile_best()?;
        Ok(self)
    }

    /// Restores weights, optimizer, scheduler and progress from a checkpoint.
    fn load(&mut self, ckpt: &checkpoint::Checkpoint) -> Result<()> {
        let at = |e: Error| e.context(ckpt.path.display());
        load_state_dict(self.model.as_ref(), &ckpt.section("model/")).map_err(at)?;
        let opt: HashMap<String, Tensor> = ckpt
            .tensors
            .iter()
            .filter(|(k, _)| k.starts_with("optimizer/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // The scheduler first: the momentum it sets decides which buffers the
        // optimizer's state must hold (SGD's momentum_buffer).
        if let Some(s) = &mut self.scheduler {
            load_scheduler_state(s.as_mut(), &ckpt.tensors).map_err(at)?;
            self.optimizer.follow(s.as_ref()).map_err(at)?;
        }
        self.optimizer.load_state_dict(&opt).map_err(at)?;
        if let Some(avg) = &mut self.average {
            match ckpt.tensors.get(N_AVERAGED) {
                Some(n) => {
                    let n = n.to_dtype(DType::F64)?.to_scalar::<f64>().map_err(|e| at(e.into()))?;
                    if !(n >= 0.0 && n.fract() == 0.0) {
                        return Err(at(Error::input(format!("{N_AVERAGED} = {n}: not a count of updates"))));
                    }
                    avg.weights
                        .restore(n as u64, &ckpt.section("average/"), self.model.as_ref())
                        .map_err(|e| at(e.context("averaged weights (average/)")))?;
                }
                None => self.notes.push(format!(
                    "note: {} holds no averaged weights (the run did not average them); averaging ({}) starts now",
                    ckpt.path.display(),
                    avg.weights.averaging().name()
                )),
            }
        }
        self.progress = serde_json::from_str(ckpt.meta("progress")?)
            .map_err(|e| Error::corrupt(&ckpt.path, format!("unreadable progress: {e}")))?;
        Ok(())
    }

    /// Makes `best.safetensors` hold the epoch the progress records as best: a crash
    /// between writing `epoch-N` and `best` leaves `best` one improvement behind. It is
    /// rewritten from the epoch checkpoint when that is still kept; otherwise a warning
    /// says which epoch `best.safetensors` holds.
    fn reconcile_best(&mut self) -> Result<()> {
        let Some(want) = self.progress.best_epoch else { return Ok(()) };
        let dir = self.out.join("checkpoints");
        let best = dir.join("best.safetensors");
        let holds = checkpoint::read_metadata(&best).ok().and_then(|m| m.get("epoch")?.parse::<usize>().ok());
        if holds == Some(want) {
            return Ok(());
        }
        let name = format!("epoch-{want:04}.safetensors");
        let source =
            [self.resumed_from.as_deref().and_then(Path::parent).map(|d| d.join(&name)), Some(dir.join(&name))]
                .into_iter()
                .flatten()
                .find(|p| p.is_file());
        let was = holds.map_or_else(|| "was missing".to_string(), |e| format!("held epoch {e}"));
        match source {
            Some(src) => {
                checkpoint::copy_atomic(&src, &best)?;
                self.notes.push(format!(
                    "note: {} {was}, but the best {} was reached at epoch {want}; rewrote it from {}",
                    best.display(),
                    self.best.column,
                    src.display()
                ));
            }
            None => self.notes.push(format!(
                "warning: {} {was}, but the best {} was reached at epoch {want}, whose checkpoint is no longer kept; best.safetensors is left as it is",
                best.display(),
                self.best.column
            )),
        }
        Ok(())
    }

    /// The model being trained.
    pub fn model(&self) -> &dyn Module {
        self.model.as_ref()
    }

    /// The training settings.
    pub fn spec(&self) -> &TrainSpec {
        &self.spec
    }

    /// The run config, when the run was described by one.
    pub fn run_config(&self) -> Option<&RunConfig> {
        self.run.as_ref()
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    pub fn out_dir(&self) -> &Path {
        &self.out
    }

    /// The time split of each epoch trained by this Learner (not restored on resume).
    pub fn phase_history(&self) -> &[Phases] {
        &self.phase_history
    }

    /// Where the data came from (a directory, "synthetic", the embedded subset, or what
    /// the builder was told).
    pub fn data_source(&self) -> &str {
        &self.data_source
    }

    /// The `metrics.csv` column that picks `best.safetensors`, and its direction.
    pub fn best_metric(&self) -> (&str, Direction) {
        (&self.best.column, self.best.direction)
    }

    /// Trains until `train.epochs` epochs are complete (or early stopping, or a callback
    /// stops it).
    pub fn fit(&mut self) -> Result<Summary> {
        if self._lock.is_none() {
            let lock = rundir::lock(&self.out)?;
            self.adopt(lock);
        }
        if let Some(run) = &self.run {
            for w in run.pairing_warnings() {
                self.report(&format!("warning: {w}"));
            }
        }
        if let Some(n) = &self.data_notice {
            self.report(n);
        }
        for n in std::mem::take(&mut self.notes) {
            self.report(&n);
        }
        if self.writes() && self.spec.train.tensorboard && self.events.is_none() {
            self.events = Some(self.open_events()?);
        }
        let mut last_ckpt = None;
        if let Some(from) = &self.resumed_from {
            let p = &self.progress;
            if p.stopped_early || p.epoch >= self.spec.train.epochs {
                let why = if p.stopped_early {
                    format!("the run stopped early at epoch {} (early stopping)", p.epoch)
                } else {
                    format!("the run has already trained {} of {} epochs", p.epoch, self.spec.train.epochs)
                };
                self.report(&format!(
                    "nothing to do: {why}; {} is unchanged. To train further, pass a larger --epochs{}",
                    from.display(),
                    if p.stopped_early { " (early stopping will stop it again unless the config changes)" } else { "" }
                ));
                last_ckpt = Some(from.clone());
            }
        }
        while self.progress.epoch < self.spec.train.epochs && !self.progress.stopped_early {
            let record = self.epoch()?;
            self.progress.history.push(record.clone());
            self.progress.epoch += 1;
            let t = Instant::now();
            if self.writes() {
                self.write_metrics()?;
                crate::plot::draw(&self.out, &self.progress.history)?;
            }
            self.phases.output += t.elapsed().as_secs_f64();
            self.report(&self.epoch_line(&record));
            let t = Instant::now();
            self.log_epoch(&record)?;
            self.phases.logging += t.elapsed().as_secs_f64();
            let improved = self.track_best(&record);
            self.early_stopping(&record);
            self.epoch_callbacks(&record)?;
            let t = Instant::now();
            if self.writes() {
                last_ckpt = Some(self.save_checkpoint(improved)?);
            }
            self.phases.output += t.elapsed().as_secs_f64();
            if self.writes() && self.spec.train.report {
                let t = Instant::now();
                self.write_report()?;
                self.phases.logging += t.elapsed().as_secs_f64();
            }
            self.phase_history.push(std::mem::take(&mut self.phases));
        }
        if let Some(events) = &mut self.events {
            events.writer.session_end(true)?;
        }
        let secs: Vec<f64> = self.progress.history.iter().map(|r| r.seconds).collect();
        let summary = Summary {
            epochs: self.progress.epoch,
            last: self.progress.history.last().cloned(),
            seconds_per_epoch: median(&secs),
            stopped_early: self.progress.stopped_early,
            checkpoint: last_ckpt,
            parameters: self.parameters,
            trainable: self.trainable.iter().map(|v| v.elem_count()).sum(),
            out: self.out.clone(),
            data: self.data_source.clone(),
        };
        if self.writes() {
            let path = self.out.join("summary.json");
            let text = serde_json::to_string_pretty(&summary.to_json()).expect("a summary serializes") + "\n";
            checkpoint::write_file_atomic(&path, text.as_bytes()).at(&path, "write")?;
        }
        Ok(summary)
    }

    /// The progress line of an epoch.
    fn epoch_line(&self, r: &EpochRecord) -> String {
        let mut line = format!("epoch {}/{}  train_loss {:.4}", r.epoch, self.spec.train.epochs, r.train_loss);
        if self.class_targets {
            line += &format!("  train_acc {:.4}", r.train_acc);
        }
        line += &format!("  eval_loss {:.4}", r.eval_loss);
        if self.class_targets {
            line += &format!("  eval_acc {:.4}", r.eval_acc);
        }
        for (label, v) in &r.metrics {
            line += &format!("  eval_{label} {v:.4}");
        }
        line + &format!("  lr {:.4e}  {:.2}s", r.lr, r.seconds)
    }

    /// Runs the callbacks' epoch ends; a stop request ends the run after this epoch.
    fn epoch_callbacks(&mut self, record: &EpochRecord) -> Result<()> {
        let mut callbacks = std::mem::take(&mut self.callbacks);
        let mut stop = false;
        let result = callbacks
            .iter_mut()
            .try_for_each(|c| c.on_epoch_end(record, &mut Control { optimizer: &mut self.optimizer, stop: &mut stop }));
        self.callbacks = callbacks;
        result?;
        if (stop || self.stop_requested) && !self.progress.stopped_early {
            self.progress.stopped_early = true;
            self.report(&format!("a callback stopped training after epoch {}", record.epoch));
        }
        Ok(())
    }

    /// A progress bar with rate and ETA, only when reporting to a terminal.
    fn progress_bar(&self, batches: usize, epoch: usize) -> Option<indicatif::ProgressBar> {
        use std::io::IsTerminal;
        if !matches!(self.reporter, Reporter::Stderr) || !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = indicatif::ProgressBar::new(batches as u64);
        let style = indicatif::ProgressStyle::with_template(&format!(
            "epoch {epoch}/{} [{{bar:30}}] {{pos}}/{{len}} batches  ETA {{eta}}  {{msg}}",
            self.spec.train.epochs
        ))
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        Some(bar)
    }

    fn report(&self, line: &str) {
        if let Reporter::Stderr = self.reporter {
            eprintln!("{line}");
        }
    }

    fn epoch(&mut self) -> Result<EpochRecord> {
        let start = Instant::now();
        let epoch = self.progress.epoch;
        let n = self.train.len();
        let order = self.loader.order(n, epoch as u64);
        let batches = self.loader.batches(n);
        let accumulate = self.spec.train.accumulate;
        let (mut loss_sum, mut correct, mut seen, mut counted) = (0.0, 0usize, 0usize, true);
        let mut acc: Option<GradStore> = None;
        let params = self.trainable.clone();
        let bar = self.progress_bar(batches, epoch + 1);
        let ranks = self.collective.size();
        // Data-parallel: what this rank's share adds to the step's loss and penalty, summed
        // over the ranks before the step to decide, on every rank alike, whether it diverged.
        let mut step_check = 0.0f64;
        // The step's loss over its rows (all ranks), for the per-step TensorBoard scalar.
        let (mut step_loss, mut step_rows) = (0.0f64, 0.0f64);
        let mean_reduction = !matches!(self.spec.loss.config.get("reduction"), Some(Value::Str(r)) if r == "sum");
        // Fixed blocks (`train.blocks`): the epoch's loss sum over every rank, batch by batch.
        let blocks = self.spec.train.blocks.is_some();
        let mut block_loss_sum = 0.0f64;
        // Batch norm's statistics over every rank's rows (SyncBatchNorm), without blocks.
        let sync = (ranks > 1 && !blocks).then(|| RowSync(Arc::new(RankSums(Arc::clone(&self.collective)))));
        for b in 0..batches {
            let t = Instant::now();
            let (x_all, y_all) = self.loader.train_batch(self.train.as_ref(), &order, b, epoch as u64)?;
            let total_rows = x_all.dim(0)?;
            // This rank's pieces of the global batch: its contiguous share (data-parallel),
            // its fixed blocks (`train.blocks`), or the whole batch.
            let pieces = self.pieces(total_rows)?;
            self.phases.data += t.elapsed().as_secs_f64();
            let seed = rng::at(self.spec.seed ^ DROPOUT_STREAM, self.progress.batches);
            self.progress.batches += 1;
            let mut piece_grads = Vec::with_capacity(pieces.len());
            // Per piece: its loss times its rows, and that plus the penalty (the check).
            let mut piece_loss = Vec::with_capacity(pieces.len());
            let mut piece_check = Vec::with_capacity(pieces.len());
            let mut closure_start = None;
            let mut batch_rows = 0usize;
            for (i, share) in pieces.iter().enumerate() {
                let (x, y) = match share {
                    None => (x_all.clone(), y_all.clone()),
                    Some((first, rows)) => (x_all.narrow(0, *first, *rows)?, y_all.narrow(0, *first, *rows)?),
                };
                // Dropout masks are drawn for the whole batch; a piece takes its rows.
                // Running statistics (batch norm) follow the piece that holds the batch's
                // first row; rank 0 gives its buffers to the others before evaluation.
                let mut ctx = match share {
                    None => Context::train(seed),
                    Some((0, _)) => Context::train(seed).with_rows(0, total_rows),
                    Some((first, _)) => Context::train(seed).with_rows(*first, total_rows).without_statistics_update(),
                };
                if let Some(sync) = &sync {
                    ctx = ctx.with_sync(sync.clone());
                }
                let empty = share.is_some() && y.dim(0)? == 0;
                let (out, loss) = match &mut self.step_fn {
                    // A piece with no rows (a rank's share of a short last batch) adds
                    // nothing (zero gradients).
                    _ if empty => (None, self.zero_loss(&params)?),
                    None => {
                        let t = Instant::now();
                        let out = self.model.forward(&x, &mut ctx)?;
                        self.phases.forward += t.elapsed().as_secs_f64();
                        let t = Instant::now();
                        let loss = self.loss.forward(&out, &y)?;
                        self.phases.loss += t.elapsed().as_secs_f64();
                        (Some(out), loss)
                    }
                    Some(step) => {
                        let t = Instant::now();
                        let args = StepArgs {
                            model: self.model.as_ref(),
                            inputs: &x,
                            targets: &y,
                            ctx: &mut ctx,
                            loss: self.loss.as_ref(),
                        };
                        let StepOutput { loss, output } = step.step(args).context("the custom training step")?;
                        self.phases.forward += t.elapsed().as_secs_f64();
                        if loss.elem_count() != 1 {
                            return Err(Error::input(format!(
                                "the custom training step returned a loss of shape {:?}; it must be one number (reduce it with mean or sum)",
                                loss.dims()
                            )));
                        }
                        (output, loss.flatten_all()?.squeeze(0)?)
                    }
                };
                let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                if ranks == 1 && !value.is_finite() {
                    return Err(self.diverged(&format!("the loss is {value}"), b, batches)?);
                }
                let rows = y.dim(0)?;
                seen += rows;
                batch_rows += rows;
                piece_loss.push(value * rows as f64);
                let mut check = value * rows as f64;
                match out.as_ref().filter(|_| self.class_targets) {
                    _ if empty => {}
                    Some(out) => match top1(out, &y)? {
                        Some(c) => correct += c,
                        None => counted = false,
                    },
                    None => counted = false,
                }
                let mut total = loss;
                if share.is_some() && mean_reduction {
                    // This piece's mean over its rows, weighted by its share of the batch:
                    // the pieces' gradients then sum to the gradient of the whole batch's mean.
                    total = total.affine(rows as f64 / total_rows as f64, 0.0)?;
                }
                // The penalty once per step: with the first piece, on rank 0 (the sum over
                // pieces and ranks counts it once).
                let penalty = if i == 0 && self.collective.rank() == 0 { self.regularization.penalty()? } else { None };
                if let Some(p) = penalty {
                    let penalty = p.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                    check += penalty;
                    if ranks == 1 && !penalty.is_finite() {
                        let what = format!("the regularizers' penalty is {penalty} (the loss is {value})");
                        return Err(self.diverged(&what, b, batches)?);
                    }
                    total = total.add(&p.to_dtype(total.dtype())?)?;
                }
                piece_check.push(check);
                if accumulate > 1 {
                    total = total.affine(1.0 / accumulate as f64, 0.0)?;
                }
                // What an optimizer that re-evaluates the loss (L-BFGS) starts from (one
                // piece: such optimizers refuse blocks and ranks).
                if self.optimizer.needs_closure() {
                    closure_start = Some(total.to_dtype(DType::F64)?.to_scalar::<f64>()?);
                }
                let t = Instant::now();
                let mut grads = total.backward()?;
                for v in &self.frozen {
                    grads.remove(v.as_tensor());
                }
                self.phases.backward += t.elapsed().as_secs_f64();
                piece_grads.push(grads);
            }
            // The batch's mean loss (this rank's rows; with blocks, every rank's).
            let batch_loss;
            let grads = if blocks {
                // Fixed blocks: summed pairwise, then over the ranks in the same pairwise
                // order, batch by batch, so that the sums (and the losses) are the same
                // bits on any number of ranks.
                let mut grads = tree_sum_grads(piece_grads, &params)?;
                let mut sums = [tree_sum(&piece_check), tree_sum(&piece_loss)];
                if ranks > 1 {
                    let t = Instant::now();
                    self.collective.all_reduce_tree_f64(&mut sums)?;
                    grads = self.all_reduce_gradients(grads, &params, true)?;
                    self.phases.optimizer += t.elapsed().as_secs_f64();
                }
                step_check += sums[0];
                step_loss += sums[1];
                step_rows += total_rows as f64;
                block_loss_sum += sums[1];
                batch_loss = sums[1] / total_rows as f64;
                grads
            } else {
                let sum = piece_loss.iter().sum::<f64>();
                step_check += piece_check.iter().sum::<f64>();
                step_loss += sum;
                step_rows += batch_rows as f64;
                batch_loss = sum / batch_rows.max(1) as f64;
                piece_grads.pop().expect("one piece")
            };
            loss_sum += piece_loss.iter().sum::<f64>();
            acc = Some(match acc.take() {
                None => grads,
                Some(mut a) => {
                    add_grads(&mut a, &grads, &params)?;
                    a
                }
            });
            if (b + 1) % accumulate == 0 || b + 1 == batches {
                let mut grads = acc.take().expect("gradients accumulated");
                // The rate this step uses (a per-step schedule moves it after the step).
                let step_lr = self.optimizer.lrs()[0];
                let t = Instant::now();
                if ranks > 1 {
                    // With blocks, the batches' sums are already over every rank.
                    let mut check = [step_check, step_loss, step_rows];
                    if !blocks {
                        self.collective.all_reduce_sum_f64(&mut check)?;
                    }
                    step_check = 0.0;
                    (step_loss, step_rows) = (check[1], check[2]);
                    if !check[0].is_finite() {
                        let what = format!(
                            "the loss (with the regularizers' penalty) summed over {ranks} ranks is {}",
                            check[0]
                        );
                        return Err(self.diverged(&what, b, batches)?);
                    }
                    if !blocks {
                        grads = self.all_reduce_gradients(grads, &params, false)?;
                    }
                }
                if self.spec.train.histograms && self.events.is_some() && b + 1 == batches {
                    self.last_grads = self.gradient_values(&grads)?;
                }
                match closure_start {
                    None => self.optimizer_step(&mut grads, &params)?,
                    Some(start) => {
                        // PyTorch's `optimizer.step(closure)`: the closure runs the same
                        // batch again (forward, loss, penalty, backward) at the moved
                        // weights; its dropout masks come from this batch's seed and the
                        // evaluation count, so a resumed run draws the same ones.
                        let (model, loss_fn, regularization, frozen) =
                            (&self.model, &self.loss, &self.regularization, &self.frozen);
                        let step_fn = &mut self.step_fn;
                        let mut evaluations = 0u64;
                        let mut closure = || -> Result<(f64, GradStore)> {
                            evaluations += 1;
                            let mut ctx = Context::train(rng::at(seed, evaluations));
                            let loss = match step_fn.as_mut() {
                                None => loss_fn.forward(&model.forward(&x_all, &mut ctx)?, &y_all)?,
                                Some(step) => {
                                    let args = StepArgs {
                                        model: model.as_ref(),
                                        inputs: &x_all,
                                        targets: &y_all,
                                        ctx: &mut ctx,
                                        loss: loss_fn.as_ref(),
                                    };
                                    step.step(args)
                                        .context("the custom training step")?
                                        .loss
                                        .flatten_all()?
                                        .sum_all()?
                                }
                            };
                            let total = match regularization.penalty()? {
                                Some(p) => loss.add(&p.to_dtype(loss.dtype())?)?,
                                None => loss,
                            };
                            let value = total.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                            let mut grads = total.backward()?;
                            for v in frozen {
                                grads.remove(v.as_tensor());
                            }
                            Ok((value, grads))
                        };
                        self.optimizer.step_closure(start, &grads, &mut closure)?;
                        self.after_optimizer_step()?;
                    }
                }
                self.phases.optimizer += t.elapsed().as_secs_f64();
                if let Some(events) = &mut self.events {
                    let t = Instant::now();
                    let step = self.progress.step;
                    events.scalar("step/train_loss", step, step_loss / step_rows.max(1.0))?;
                    events.scalar("step/lr", step, step_lr)?;
                    self.phases.logging += t.elapsed().as_secs_f64();
                }
                (step_loss, step_rows) = (0.0, 0.0);
                if !self.callbacks.is_empty() {
                    let end =
                        StepEnd { epoch: epoch + 1, step: self.progress.step, batch: b + 1, batches, loss: batch_loss };
                    self.step_callbacks(&end)?;
                }
            }
            if let Some(bar) = &bar {
                bar.inc(1);
                // Examples per second (of the whole batch, all ranks), and the run's ETA:
                // this epoch's rest plus the epochs after it at this epoch's pace.
                let elapsed = start.elapsed().as_secs_f64();
                let done = (b + 1) as f64 / batches as f64;
                let per_epoch = elapsed / done;
                let left = self.spec.train.epochs.saturating_sub(epoch + 1) as f64;
                let run_eta = per_epoch * (1.0 - done) + per_epoch * left;
                bar.set_message(format!(
                    "{:.0} examples/s  run ETA {}  loss {:.4}",
                    (seen * ranks) as f64 / elapsed.max(1e-9),
                    human_seconds(run_eta),
                    loss_sum / seen as f64
                ));
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        if ranks > 1 {
            // The epoch's sums over every rank's rows: exactly one process's.
            let mut sums = [loss_sum, correct as f64, seen as f64, if counted { 1.0 } else { 0.0 }];
            self.collective.all_reduce_sum_f64(&mut sums)?;
            loss_sum = sums[0];
            correct = sums[1] as usize;
            seen = sums[2] as usize;
            counted = sums[3] == ranks as f64;
        }
        if blocks {
            // Summed batch by batch in the blocks' fixed order: the same on any number of ranks.
            loss_sum = block_loss_sum;
        }
        if ranks > 1 {
            self.sync_buffers()?;
        }
        self.update_average(Interval::Epoch)?;
        let lr = self.optimizer.lrs()[0];
        let t = Instant::now();
        let mut ev = self.evaluate()?;
        self.confusion = ev.confusion.take();
        self.phases.eval += t.elapsed().as_secs_f64();
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss: loss_sum / seen as f64,
            train_acc: if counted { correct as f64 / seen as f64 } else { f64::NAN },
            eval_loss: ev.loss,
            eval_acc: ev.acc,
            metrics: ev.metrics,
            lr,
            seconds: start.elapsed().as_secs_f64(),
        };
        if let (Some(s), Some(cfg)) = (&mut self.scheduler, &self.spec.scheduler) {
            if cfg.interval == Interval::Epoch {
                let metric = s.needs_metric().then(|| record.metric(&self.monitor));
                self.optimizer.step_schedule(s.as_mut(), metric)?;
            }
        }
        Ok(record)
    }

    fn step_callbacks(&mut self, end: &StepEnd) -> Result<()> {
        let mut callbacks = std::mem::take(&mut self.callbacks);
        let mut stop = false;
        let result = callbacks
            .iter_mut()
            .try_for_each(|c| c.on_step_end(end, &mut Control { optimizer: &mut self.optimizer, stop: &mut stop }));
        self.callbacks = callbacks;
        self.stop_requested |= stop;
        result
    }

    /// The error that stops a run whose loss or penalty is not finite, naming where and
    /// the last good checkpoint.
    fn diverged(&self, what: &str, batch: usize, batches: usize) -> Result<Error> {
        Ok(Error::Diverged(format!(
            "{what} at epoch {}, step {} (batch {} of {batches}); training stopped. {}",
            self.progress.epoch + 1,
            self.progress.step + 1,
            batch + 1,
            match checkpoint::epoch_files(&self.out.join("checkpoints"))?.last() {
                Some((_, p)) => format!("The last good checkpoint is {}", p.display()),
                None => "No checkpoint was written before this point".to_string(),
            }
        )))
    }

    fn optimizer_step(&mut self, grads: &mut GradStore, params: &[Var]) -> Result<()> {
        let refs: Vec<&Var> = params.iter().collect();
        if let Some(max) = self.spec.train.clip_grad_norm {
            clip_grad_norm(grads, &refs, max, self.spec.train.clip_norm_type)?;
        }
        if let Some(v) = self.spec.train.clip_grad_value {
            clip_grad_value(grads, &refs, v)?;
        }
        self.optimizer.step(grads)?;
        self.after_optimizer_step()
    }

    /// Constraints, the step count, a per-step average and a per-step schedule: what
    /// follows every optimizer step.
    fn after_optimizer_step(&mut self) -> Result<()> {
        self.regularization.constrain()?;
        self.progress.step += 1;
        self.update_average(Interval::Step)?;
        if let (Some(s), Some(cfg)) = (&mut self.scheduler, &self.spec.scheduler) {
            if cfg.interval == Interval::Step {
                self.optimizer.step_schedule(s.as_mut(), None)?;
            }
        }
        Ok(())
    }

    /// Opens the run's TensorBoard event file; a new run records its config as
    /// hyperparameters (the HParams tab).
    fn open_events(&self) -> Result<Events> {
        use crate::tensorboard::{flatten_config, read_scalars, EventWriter};
        let mut written: HashMap<String, u64> = HashMap::new();
        for (tag, step, _) in read_scalars(&self.out).context("TensorBoard events already in the run directory")? {
            let last = written.entry(tag).or_insert(step);
            *last = (*last).max(step);
        }
        let mut writer = EventWriter::create(&self.out)?;
        if self.progress.epoch == 0 && written.is_empty() {
            let config = match &self.run {
                Some(run) => run.to_json(),
                None => self.spec.to_json(),
            };
            let json: serde_json::Value = serde_json::from_str(&config).expect("a config serializes to JSON");
            writer.hparams(&flatten_config(&json), &[])?;
        }
        Ok(Events { writer, written })
    }

    /// An epoch's values in TensorBoard (`epoch/COLUMN` at the epoch number, every
    /// metrics.csv column) and, with `train.histograms`, each parameter's weights.
    fn log_epoch(&mut self, r: &EpochRecord) -> Result<()> {
        let Some(events) = &mut self.events else { return Ok(()) };
        let step = r.epoch as u64;
        let mut columns: Vec<(String, f64)> = vec![
            (Metric::TRAIN_LOSS.into(), r.train_loss),
            (Metric::TRAIN_ACC.into(), r.train_acc),
            (Metric::EVAL_LOSS.into(), r.eval_loss),
            (Metric::EVAL_ACC.into(), r.eval_acc),
        ];
        columns.extend(r.metrics.iter().map(|(label, v)| (format!("eval_{label}"), *v)));
        columns.push(("lr".into(), r.lr));
        columns.push(("seconds".into(), r.seconds));
        for (column, v) in columns {
            events.scalar(&format!("epoch/{column}"), step, v)?;
        }
        if self.spec.train.histograms {
            for (name, var) in self.model.named_parameters() {
                let tag = format!("weights/{name}");
                // Read the weights back only for a step not yet written.
                if events.fresh(&tag, step) {
                    events.histogram(&tag, step, &f64_values(var.as_tensor())?)?;
                }
            }
            for (name, values) in std::mem::take(&mut self.last_grads) {
                events.histogram(&format!("grads/{name}"), step, &values)?;
            }
        }
        events.writer.flush()
    }

    /// Every parameter's gradient in `grads`, by name, as f64 values (for histograms).
    fn gradient_values(&self, grads: &GradStore) -> Result<Vec<(String, Vec<f64>)>> {
        let mut out = Vec::new();
        for (name, var) in self.model.named_parameters() {
            if let Some(g) = grads.get(var.as_tensor()) {
                out.push((name, f64_values(g)?));
            }
        }
        Ok(out)
    }

    /// The pieces of a global batch of `total` rows that this rank computes, each
    /// `Some((first row, rows))` or `None` for the whole batch. In a single process without
    /// `train.blocks`: the whole batch. With n ranks: rank r takes rows r·total/n ..
    /// (r+1)·total/n. With k blocks: block j is rows j·total/k .. (j+1)·total/k, and rank r
    /// takes blocks r·k/n .. (r+1)·k/n (n divides k, checked when the ranks join).
    fn pieces(&self, total: usize) -> Result<Vec<Option<(usize, usize)>>> {
        let (r, n) = (self.collective.rank(), self.collective.size());
        Ok(match self.spec.train.blocks {
            Some(k) => {
                let per = k / n;
                (r * per..(r + 1) * per).map(|j| Some((j * total / k, (j + 1) * total / k - j * total / k))).collect()
            }
            None if n == 1 => vec![None],
            None => {
                let (first, end) = (r * total / n, (r + 1) * total / n);
                vec![Some((first, end - first))]
            }
        })
    }

    /// Gives every rank rank 0's model buffers (batch norm's running statistics, which
    /// only the piece holding each batch's first row updates), so that sharded evaluation
    /// and the checkpoint see the same statistics as one process.
    fn sync_buffers(&self) -> Result<()> {
        let buffers = self.model.named_buffers();
        if buffers.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        if self.collective.rank() == 0 {
            for (_, b) in &buffers {
                crate::distributed::write_tensor(b.as_tensor(), &mut bytes)?;
            }
        }
        self.collective.broadcast_bytes(0, &mut bytes)?;
        if self.collective.rank() != 0 {
            let mut at = 0;
            for (name, b) in &buffers {
                let t = crate::distributed::read_tensor(&bytes, &mut at)?;
                if t.dims() != b.dims() {
                    return Err(Error::input(format!(
                        "buffer {name}: rank 0 has shape {:?}, this rank {:?} (the ranks built different models)",
                        t.dims(),
                        b.dims()
                    )));
                }
                b.set(&t.to_dtype(b.dtype())?.to_device(b.device())?)?;
            }
        }
        Ok(())
    }

    /// A loss of 0 that depends on every trainable parameter (its gradients are zeros):
    /// what a rank with no rows of a batch contributes.
    fn zero_loss(&self, params: &[Var]) -> Result<Tensor> {
        let mut sum: Option<Tensor> = None;
        for p in params {
            let t = p.as_tensor().sum_all()?.affine(0.0, 0.0)?;
            sum = Some(match sum {
                None => t,
                Some(s) => s.add(&t.to_dtype(s.dtype())?)?,
            });
        }
        sum.ok_or_else(|| Error::input("the model has no trainable parameter"))
    }

    /// Sums every trainable parameter's gradient over the ranks, as one flat buffer per
    /// dtype (zeros where a rank has no gradient), so each rank steps with the gradient of
    /// the whole batch. `tree`: in the fixed pairwise order of ranks
    /// ([`Collective::all_reduce_tree_f32`]) instead of the MPI library's.
    fn all_reduce_gradients(&self, mut grads: GradStore, params: &[Var], tree: bool) -> Result<GradStore> {
        for dtype in [DType::F32, DType::F64] {
            let chosen: Vec<&Var> = params.iter().filter(|p| p.dtype() == dtype).collect();
            if chosen.is_empty() {
                continue;
            }
            let mut parts = Vec::with_capacity(chosen.len());
            for p in &chosen {
                parts.push(match grads.get(p.as_tensor()) {
                    Some(g) => g.to_dtype(dtype)?.flatten_all()?,
                    None => p.as_tensor().zeros_like()?.flatten_all()?,
                });
            }
            // A fresh buffer (cat of one part may be the gradient itself).
            let flat = if parts.len() == 1 { parts[0].copy()? } else { Tensor::cat(&parts, 0)? };
            // On the GPU when the collective sums device memory (NCCL); the fixed-order
            // tree sum goes through host memory.
            let on_device = !tree && self.collective.all_reduce_sum_device(&flat)?;
            let flat = if on_device { flat } else { flat.to_device(&Device::Cpu)? };
            let summed = match dtype {
                _ if on_device => flat,
                DType::F32 => {
                    let mut buf = flat.to_vec1::<f32>()?;
                    if tree {
                        self.collective.all_reduce_tree_f32(&mut buf)?;
                    } else {
                        self.collective.all_reduce_sum_f32(&mut buf)?;
                    }
                    Tensor::from_vec(buf, flat.dims(), &Device::Cpu)?
                }
                _ => {
                    let mut buf = flat.to_vec1::<f64>()?;
                    if tree {
                        self.collective.all_reduce_tree_f64(&mut buf)?;
                    } else {
                        self.collective.all_reduce_sum_f64(&mut buf)?;
                    }
                    Tensor::from_vec(buf, flat.dims(), &Device::Cpu)?
                }
            };
            let mut at = 0;
            for p in chosen {
                let n = p.elem_count();
                let g = summed.narrow(0, at, n)?.reshape(p.dims())?.to_device(p.device())?;
                grads.insert(p.as_tensor(), g);
                at += n;
            }
        }
        if let Some(p) = params.iter().find(|p| !matches!(p.dtype(), DType::F32 | DType::F64)) {
            return Err(Error::input(format!(
                "data-parallel training sums f32 and f64 gradients; a parameter is {:?}",
                p.dtype()
            )));
        }
        Ok(grads)
    }

    /// Moves the averaged weights, when the run averages them at `interval` and the
    /// current epoch is past `start_epoch`.
    fn update_average(&mut self, interval: Interval) -> Result<()> {
        if let Some(avg) = &mut self.average {
            if avg.interval == interval && self.progress.epoch >= avg.start_epoch {
                avg.weights.update(self.model.as_ref()).context("weight averaging")?;
                *avg.bn_buffers.lock().expect("not poisoned") = None;
            }
        }
        Ok(())
    }

    /// The weights evaluation uses when they are not the trained ones, by model name
    /// (parameters and buffers): the averaged weights (`train.average` with `eval`, once
    /// averaging has started), else the optimizer's evaluation point (schedule-free's
    /// average). `None`: the trained weights.
    fn eval_weights(&self) -> Result<Option<(&'static str, HashMap<String, Tensor>)>> {
        if let Some(avg) = self.average.as_ref().filter(|a| a.eval && a.weights.n_averaged() > 0) {
            return Ok(Some((avg.weights.averaging().name(), avg.weights.state_dict())));
        }
        let points = self.optimizer.eval_points()?;
        if points.is_empty() {
            return Ok(None);
        }
        let mut weights = state_dict(self.model.as_ref());
        for (i, t) in points {
            weights.insert(self.optimizer.params()[i].0.clone(), t);
        }
        Ok(Some(("optimizer", weights)))
    }

    /// Runs `f` with the model holding the evaluation weights ([`Learner::eval_weights`]),
    /// then puts the trained weights back (also when `f` fails).
    fn with_eval_weights<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let Some((kind, weights)) = self.eval_weights()? else { return f() };
        let vars: Vec<(String, Var)> =
            self.model.named_parameters().into_iter().chain(self.model.named_buffers()).collect();
        let mut saved = Vec::with_capacity(vars.len());
        for (name, var) in &vars {
            if let Some(t) = weights.get(name) {
                saved.push((var, var.as_tensor().copy()?));
                var.set(t)?;
            }
        }
        let averaged = self.average.as_ref().filter(|a| a.update_bn && kind != "optimizer");
        let result = (|| {
            if let Some(avg) = averaged {
                if self.update_bn().context("update_bn (train.average)")? {
                    let buffers = self
                        .model
                        .named_buffers()
                        .into_iter()
                        .map(|(n, v)| Ok((n, v.as_tensor().copy()?)))
                        .collect::<Result<HashMap<_, _>>>()?;
                    *avg.bn_buffers.lock().expect("not poisoned") = Some(buffers);
                }
            }
            f()
        })();
        for (var, t) in saved {
            var.set(&t)?;
        }
        result
    }

    /// PyTorch's `update_bn(train_loader, model)` on the weights the model holds: resets
    /// every batch norm's running statistics (buffers named `running_mean`, `running_var`,
    /// `num_batches_tracked`), then one training-mode pass over the training set in order
    /// folds each batch into a cumulative average. `false` when the model keeps no
    /// running statistics (nothing to do).
    fn update_bn(&self) -> Result<bool> {
        let buffers = self.model.named_buffers();
        let is = |name: &str, buffer: &str| name == buffer || name.ends_with(&format!(".{buffer}"));
        if !buffers.iter().any(|(n, _)| is(n, "running_mean")) {
            return Ok(false);
        }
        for (name, var) in &buffers {
            let t = var.as_tensor();
            if is(name, "running_var") {
                var.set(&t.ones_like()?)?;
            } else if is(name, "running_mean") || is(name, "num_batches_tracked") {
                var.set(&t.zeros_like()?)?;
            }
        }
        let n = self.train.len();
        let order: Vec<u32> = (0..n as u32).collect();
        let loader = DataLoader { shuffle: false, drop_last: false, ..self.loader.clone() };
        for b in 0..loader.batches(n) {
            let (x, _) = loader.batch(self.train.as_ref(), &order, b)?;
            let seed = rng::at(self.spec.seed ^ UPDATE_BN_STREAM, ((self.progress.epoch as u64) << 32) | b as u64);
            self.model.forward(&x, &mut Context::train(seed).with_cumulative_statistics())?;
        }
        Ok(true)
    }

    /// Loss, top-1 accuracy and the run's metrics over the evaluation set, in evaluation
    /// mode, with the evaluation weights (the averaged ones with `train.average`, or the
    /// optimizer's evaluation point: schedule-free's average). Metrics accumulate over the
    /// whole set (counts and sums), so their values do not depend on the batch size.
    pub fn evaluate(&self) -> Result<Evaluation> {
        self.with_eval_weights(|| self.evaluate_current())
    }

    /// [`Learner::evaluate`] with the weights the model holds.
    fn evaluate_current(&self) -> Result<Evaluation> {
        let nan = || Evaluation {
            loss: f64::NAN,
            acc: f64::NAN,
            metrics: self.metrics.iter().map(|(l, _)| (l.clone(), f64::NAN)).collect(),
            confusion: None,
        };
        let Some(eval) = &self.eval else { return Ok(nan()) };
        let n = eval.len();
        if n == 0 {
            return Ok(nan());
        }
        let order: Vec<u32> = (0..n as u32).collect();
        let loader = DataLoader { shuffle: false, drop_last: false, ..self.loader.clone() };
        let (mut loss_sum, mut correct, mut counted) = (0.0, 0usize, self.class_targets);
        let mut states: Vec<_> = self.metrics.iter().map(|(_, m)| m.start()).collect();
        // One batch's loss, top-1 count and metric updates, in batch order.
        let mut confusion: Vec<Vec<u64>> = Vec::new();
        let mut take = |loss: f64, out: &Tensor, y: &Tensor| -> Result<()> {
            loss_sum += loss * y.dim(0)? as f64;
            if counted {
                match top1(out, y)? {
                    Some(c) => {
                        correct += c;
                        confusion_update(&mut confusion, out, y)?;
                    }
                    None => counted = false,
                }
            }
            for ((label, _), state) in self.metrics.iter().zip(&mut states) {
                state.update(out, y).with_context(|| format!("metric {label}"))?;
            }
            Ok(())
        };
        // Data-parallel: rank r runs batches r, r + n, ...; every rank then takes every
        // batch's loss, output and targets in batch order, so the sums and metric states
        // are exactly one process's.
        let (rank, ranks) = (self.collective.rank(), self.collective.size());
        let batches = loader.batches(n);
        let mut mine = Vec::new();
        for b in (rank..batches).step_by(ranks) {
            let (x, y) = loader.batch(eval.as_ref(), &order, b)?;
            let out = self.model.forward(&x, &mut Context::eval())?;
            let loss = self.loss.forward(&out, &y)?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if ranks == 1 {
                take(loss, &out, &y)?;
            } else {
                mine.extend(loss.to_le_bytes());
                crate::distributed::write_tensor(&out, &mut mine)?;
                crate::distributed::write_tensor(&y, &mut mine)?;
            }
        }
        if ranks > 1 {
            let all = crate::distributed::all_gather_bytes(self.collective.as_ref(), mine)?;
            let mut at = vec![0usize; ranks];
            for b in 0..batches {
                let (buf, at) = (&all[b % ranks], &mut at[b % ranks]);
                let bytes = buf.get(*at..*at + 8).ok_or_else(|| {
                    Error::input("data-parallel evaluation: a rank sent fewer batches than it ran (a bug)")
                })?;
                let loss = f64::from_le_bytes(bytes.try_into().expect("8 bytes"));
                *at += 8;
                let out = crate::distributed::read_tensor(buf, at)?;
                let y = crate::distributed::read_tensor(buf, at)?;
                take(loss, &out, &y)?;
            }
        }
        let metrics = self
            .metrics
            .iter()
            .zip(&states)
            .map(|((label, _), s)| Ok((label.clone(), s.value()?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Evaluation {
            loss: loss_sum / n as f64,
            acc: if counted { correct as f64 / n as f64 } else { f64::NAN },
            metrics,
            confusion: counted.then_some(confusion),
        })
    }

    fn track_best(&mut self, r: &EpochRecord) -> bool {
        let v = r.metric(&self.best.column);
        let better = match self.progress.best {
            _ if v.is_nan() => false,
            None => true,
            Some(b) => self.best.direction.better(v, b),
        };
        if better {
            self.progress.best = Some(v);
            self.progress.best_epoch = Some(r.epoch);
        }
        better
    }

    fn early_stopping(&mut self, r: &EpochRecord) {
        let Some((watch, min_delta, patience)) = &self.stop_on else {
            return;
        };
        let hist = &self.progress.history[..self.progress.history.len() - 1];
        let max = watch.direction == Direction::Max;
        let v = r.metric(&watch.column);
        let best =
            hist.iter().map(|h| h.metric(&watch.column)).filter(|x| !x.is_nan()).fold(None, |acc: Option<f64>, x| {
                Some(match acc {
                    None => x,
                    Some(a) if max => a.max(x),
                    Some(a) => a.min(x),
                })
            });
        let improved = match best {
            None => !v.is_nan(),
            Some(b) if max => v > b + min_delta,
            Some(b) => v < b - min_delta,
        };
        if improved {
            self.progress.bad_epochs = 0;
        } else {
            self.progress.bad_epochs += 1;
            if self.progress.bad_epochs > *patience {
                self.progress.stopped_early = true;
                self.report(&format!(
                    "early stopping: {} has not improved for {} epochs (patience {patience})",
                    watch.column, self.progress.bad_epochs
                ));
            }
        }
    }

    /// The full state as one checkpoint's tensors and metadata.
    fn checkpoint_contents(&self) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
        let mut tensors: HashMap<String, Tensor> =
            state_dict(self.model.as_ref()).into_iter().map(|(k, v)| (format!("model/{k}"), v)).collect();
        tensors.extend(self.optimizer.state_dict()?);
        if let Some(avg) = &self.average {
            tensors.insert(N_AVERAGED.to_string(), Tensor::new(avg.weights.n_averaged() as f64, &Device::Cpu)?);
        }
        let averaged = match &self.average {
            // The running average whether or not evaluation uses it yet.
            Some(avg) if avg.weights.n_averaged() > 0 => {
                let mut weights = avg.weights.state_dict();
                if let Some(bn) = avg.bn_buffers.lock().expect("not poisoned").as_ref() {
                    weights.extend(bn.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                Some((avg.weights.averaging().name(), weights))
            }
            Some(_) => None,
            None => self.eval_weights()?,
        };
        if let Some((_, weights)) = &averaged {
            tensors.extend(weights.iter().map(|(k, v)| (format!("average/{k}"), v.clone())));
        }
        if let Some(s) = &self.scheduler {
            tensors.extend(scheduler_state_dict(s.as_ref())?);
        }
        let mut metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("spec".to_string(), self.spec.to_json()),
            ("progress".to_string(), serde_json::to_string(&self.progress).expect("progress serializes")),
            ("epoch".to_string(), self.progress.epoch.to_string()),
            ("step".to_string(), self.progress.step.to_string()),
        ]);
        if let Some(run) = &self.run {
            metadata.insert("config".to_string(), run.to_json());
        }
        if let Some((kind, _)) = averaged {
            metadata.insert("average".to_string(), kind.to_string());
        }
        for (key, names) in [("class_names", &self.class_names), ("feature_names", &self.feature_names)] {
            if !names.is_empty() {
                metadata.insert(key.to_string(), serde_json::to_string(names).expect("names serialize"));
            }
        }
        if let Some(s) = &self.input_scaling {
            metadata.insert(crate::data::SCALING_KEY.to_string(), s.to_json());
        }
        Ok((tensors, metadata))
    }

    /// Writes `checkpoints/epoch-NNNN.safetensors` (and `best.safetensors` when the
    /// best metric improved), then keeps only the last `keep_last` epoch files.
    fn save_checkpoint(&self, best: bool) -> Result<PathBuf> {
        let dir = self.out.join("checkpoints");
        let (tensors, metadata) = self.checkpoint_contents()?;
        let path = dir.join(format!("epoch-{:04}.safetensors", self.progress.epoch));
        checkpoint::write_atomic(&path, &tensors, metadata.clone())?;
        if best {
            checkpoint::write_atomic(&dir.join("best.safetensors"), &tensors, metadata)?;
        }
        // Prune among this run's epochs up to the current one: never the file just
        // written, never a later epoch (a run resumed from an earlier checkpoint
        // replaces those as it reaches them).
        let epoch = self.progress.epoch;
        let files: Vec<PathBuf> =
            checkpoint::epoch_files(&dir)?.into_iter().filter(|(e, _)| *e <= epoch).map(|(_, p)| p).collect();
        let keep = self.spec.train.keep_last.max(1);
        for old in files.iter().take(files.len().saturating_sub(keep)).filter(|p| **p != path) {
            let _ = std::fs::remove_file(old);
        }
        Ok(path)
    }

    /// Rewrites `report.html` (see [`crate::report`]): config, data, metrics and curves,
    /// the last evaluation's confusion matrix, time per phase, checkpoints.
    fn write_report(&self) -> Result<()> {
        let mut columns: Vec<String> =
            ["epoch", "train_loss", "train_acc", "eval_loss", "eval_acc"].map(String::from).to_vec();
        columns.extend(self.metrics.iter().map(|(label, _)| format!("eval_{label}")));
        columns.extend(["lr".to_string(), "seconds".to_string()]);
        let rows: Vec<Vec<f64>> = self
            .progress
            .history
            .iter()
            .map(|r| {
                let mut row = vec![r.epoch as f64, r.train_loss, r.train_acc, r.eval_loss, r.eval_acc];
                row.extend(self.metrics.iter().map(|(label, _)| r.metric(&format!("eval_{label}"))));
                row.extend([r.lr, r.seconds]);
                row
            })
            .collect();
        let best = match (self.progress.best, self.progress.best_epoch) {
            (Some(v), Some(e)) => Some((self.best.column.as_str(), v, e)),
            _ => None,
        };
        // The epochs this Learner trained, the current one included (its output time so
        // far: metrics, plots, checkpoint).
        let epochs: Vec<&Phases> = self.phase_history.iter().chain(std::iter::once(&self.phases)).collect();
        let n = epochs.len() as f64;
        let mean = |f: fn(&Phases) -> f64| epochs.iter().map(|p| f(p)).sum::<f64>() / n;
        let phases: Vec<(String, f64)> = [
            ("data", mean(|p| p.data)),
            ("forward", mean(|p| p.forward)),
            ("loss", mean(|p| p.loss)),
            ("backward", mean(|p| p.backward)),
            ("optimizer", mean(|p| p.optimizer)),
            ("eval", mean(|p| p.eval)),
            ("output", mean(|p| p.output)),
            ("logging", mean(|p| p.logging)),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .to_vec();
        let dir = self.out.join("checkpoints");
        let mut checkpoints: Vec<(String, Option<usize>, u64)> = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if !name.ends_with(".safetensors") || name.starts_with('.') {
                    continue;
                }
                let epoch = name
                    .strip_prefix("epoch-")
                    .and_then(|r| r.strip_suffix(".safetensors"))
                    .and_then(|n| n.parse().ok());
                checkpoints.push((name, epoch, e.metadata().map(|m| m.len()).unwrap_or(0)));
            }
        }
        checkpoints.sort();
        let config = match &self.run {
            Some(run) => serde_json::to_string_pretty(run).ok(),
            None => serde_json::to_string_pretty(&self.spec).ok(),
        };
        let title = self.out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "run".into());
        let generated = crate::report::now_utc();
        let html = crate::report::render(&crate::report::ReportData {
            title: &title,
            generated: &generated,
            config_json: config.as_deref(),
            data_source: &self.data_source,
            columns: &columns,
            rows: &rows,
            best,
            confusion: self.confusion.as_ref().map(|c| (c.as_slice(), self.class_names.as_slice())),
            phases: &phases,
            checkpoints: &checkpoints,
        });
        let path = self.out.join("report.html");
        checkpoint::write_file_atomic(&path, html.as_bytes()).at(&path, "write")
    }

    /// Rewrites `metrics.csv` from the history: one column per recorded value and per
    /// metric of the run. NaN is an empty field, infinities are `inf` and `-inf`.
    fn write_metrics(&self) -> Result<()> {
        let path = self.out.join("metrics.csv");
        let mut text = String::from("epoch,train_loss,train_acc,eval_loss,eval_acc");
        for (label, _) in &self.metrics {
            text += &format!(",eval_{label}");
        }
        text += ",lr,seconds\n";
        let f = |x: f64| {
            if x.is_nan() {
                String::new()
            } else {
                format!("{x}")
            }
        };
        for r in &self.progress.history {
            text += &format!("{},{},{},{},{}", r.epoch, f(r.train_loss), f(r.train_acc), f(r.eval_loss), f(r.eval_acc));
            for (label, _) in &self.metrics {
                text += &format!(",{}", f(r.metric(&format!("eval_{label}"))));
            }
            text += &format!(",{},{:.3}\n", r.lr, r.seconds);
        }
        checkpoint::write_file_atomic(&path, text.as_bytes()).at(&path, "write")
    }
}

/// The column a watched metric names, and its direction: the built-in columns, or
/// `eval_LABEL` of a metric of the run (`eval_NAME` when one metric has that name).
fn resolve(
    key: &str,
    m: &Metric,
    metrics: &[(String, Box<dyn ember_core::Metric>)],
    class_targets: bool,
) -> Result<Watch> {
    let name = m.as_str();
    let builtin = match name {
        Metric::TRAIN_LOSS | Metric::EVAL_LOSS => Some(Direction::Min),
        Metric::TRAIN_ACC | Metric::EVAL_ACC if class_targets => Some(Direction::Max),
        _ => None,
    };
    if let Some(direction) = builtin {
        return Ok(Watch { column: name.to_string(), direction });
    }
    if let Some(label) = name.strip_prefix("eval_") {
        let exact = metrics.iter().find(|(l, _)| l == label);
        let by_name: Vec<_> = metrics.iter().filter(|(l, _)| l.split('[').next() == Some(label)).collect();
        let found = exact.or(if by_name.len() == 1 { Some(by_name[0]) } else { None });
        if let Some((l, metric)) = found {
            return Ok(Watch { column: format!("eval_{l}"), direction: metric.direction() });
        }
    }
    let mut choices: Vec<String> = vec![Metric::TRAIN_LOSS.into(), Metric::EVAL_LOSS.into()];
    if class_targets {
        choices.extend([Metric::TRAIN_ACC.into(), Metric::EVAL_ACC.into()]);
    }
    choices.extend(metrics.iter().map(|(l, _)| format!("eval_{l}")));
    let hint = if matches!(name, Metric::TRAIN_ACC | Metric::EVAL_ACC) {
        " (accuracy needs class-index targets)".to_string()
    } else if metrics.is_empty() {
        "; list metrics in train.metrics (e.g. [\"f1:average=macro\"]) to watch them as eval_NAME".to_string()
    } else {
        String::new()
    };
    Err(Error::InvalidValue {
        path: key.to_string(),
        value: format!("{name:?}"),
        rule: format!("must be one of {}{hint}", choices.join(", ")),
    })
}

/// Loads `init_from` weights into a new run's model: an Ember checkpoint (its `model/`
/// tensors) or a file of PyTorch-named tensors. Returns the note that says what was
/// loaded.
fn init_weights(model: &dyn Module, path: &Path, strict: bool) -> Result<String> {
    let dict = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
        Error::input(format!(
            "train.init_from = {:?}: cannot read it as safetensors ({}); give a weights file written by `ember export`, safetensors.torch.save_file or an Ember checkpoint",
            path.display(),
            Error::from(e)
        ))
    })?;
    let ember =
        !dict.is_empty() && dict.keys().all(|k| k.contains('/')) && dict.keys().any(|k| k.starts_with("model/"));
    let dict: HashMap<String, Tensor> = if ember {
        dict.into_iter().filter_map(|(k, v)| Some((k.strip_prefix("model/")?.to_string(), v))).collect()
    } else {
        dict
    };
    let at = |e: Error| e.context(format!("train.init_from = {:?}", path.display()));
    if strict {
        load_state_dict(model, &dict).map_err(|e| {
            at(e.context("strict = true (set train.strict = false to load what matches and list the rest)"))
        })?;
        return Ok(format!("note: initialised all {} model tensors from {}", dict.len(), path.display()));
    }
    let r = ember_nn::load_state_dict_partial(model, &dict).map_err(at)?;
    let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    Ok(format!(
        "note: initialised from {} (strict = false): loaded {} tensors; missing (kept their initialisation): {}; unexpected (ignored): {}",
        path.display(),
        r.loaded.len(),
        list(&r.missing),
        list(&r.unexpected)
    ))
}

/// A loss of other tensors than a model output and a target (`margin_ranking`,
/// `triplet_margin`, ...: [`Loss::arguments`]) works only inside a custom training step,
/// which calls [`Loss::forward_args`] itself, and without an evaluation set: the default
/// step and the evaluation call `loss.forward(output, target)`.
fn check_loss_arguments(loss: &dyn Loss, name: &str, custom_step: bool, eval: bool) -> Result<()> {
    let args = loss.arguments();
    if args == LossArg::INPUT_TARGET {
        return Ok(());
    }
    let names = LossArg::names(args);
    if !custom_step {
        return Err(Error::input(format!(
            "loss '{name}' takes {names}, not a model output and a target, so the Learner's own step cannot compute it: give a custom training step (LearnerBuilder::train_step) that calls StepArgs.loss.forward_args(&[{names}]), or choose a loss of (output, target)"
        )));
    }
    if eval {
        return Err(Error::input(format!(
            "loss '{name}' takes {names}, but the evaluation after each epoch computes loss(output, target); train without an evaluation set, or choose a loss of (output, target)"
        )));
    }
    Ok(())
}

/// The warning for a run without an evaluation set, or an error when the settings ask
/// for an evaluation metric explicitly.
fn no_evaluation(spec: &TrainSpec) -> Result<String> {
    let t = &spec.train;
    let asked = [
        ("train.best_metric", t.best_metric.as_ref()),
        ("train.early_stopping.metric", t.early_stopping.as_ref().map(|e| &e.metric)),
        ("scheduler.monitor", spec.scheduler.as_ref().and_then(|s| s.monitor.as_ref())),
    ];
    if let Some((key, Some(m))) = asked.iter().find(|(_, m)| m.is_some_and(Metric::is_eval)) {
        return Err(Error::input(format!(
            "{key} = {:?}, but the evaluation set is empty; give evaluation data (e.g. data.n_eval > 0, or test files with examples) or watch a training metric such as \"train_loss\"",
            m.as_str()
        )));
    }
    let mut also = String::new();
    if t.best_metric.is_none() {
        also += "; best.safetensors follows train_loss";
    }
    if spec.scheduler.as_ref().is_some_and(|s| s.monitor.is_none()) {
        also += "; a metric-driven scheduler watches train_loss";
    }
    if !t.metrics.is_empty() {
        also += "; train.metrics are not computed";
    }
    Ok(format!("warning: the evaluation set is empty: eval_loss and eval_acc are not computed{also}"))
}

/// Whether two paths name the same directory (both made absolute; the same when either
/// cannot be resolved and they are equal as written).
pub(crate) fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => std::path::absolute(a).ok() == std::path::absolute(b).ok(),
    }
}

/// The run directory of a checkpoint file (`RUN/checkpoints/epoch-N.safetensors` → RUN).
pub(crate) fn run_dir_of(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new("."));
    if parent.file_name().is_some_and(|n| n == "checkpoints") {
        parent.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        parent.to_path_buf()
    }
}

/// Correct top-1 predictions when `y` holds class indices for `out` [N, C].
/// Batch statistics summed over the ranks of a collective ([`Context::with_sync`]).
#[derive(Debug)]
struct RankSums(Arc<dyn Collective>);

impl RowSum for RankSums {
    fn all_reduce_sum(&self, buf: &mut [f64]) -> Result<()> {
        self.0.all_reduce_sum_f64(buf)
    }
}

/// The sum of `values` in pairwise order: (v0 + v1) + (v2 + v3), and so on up.
fn tree_sum(values: &[f64]) -> f64 {
    match values.len() {
        0 => 0.0,
        1 => values[0],
        n => {
            let half = n.next_power_of_two() / 2;
            tree_sum(&values[..half]) + tree_sum(&values[half..])
        }
    }
}

/// Adds `b`'s gradient of each parameter of `params` to `a`'s (a missing one adds nothing).
fn add_grads(a: &mut GradStore, b: &GradStore, params: &[Var]) -> Result<()> {
    for p in params {
        if let Some(g) = b.get(p.as_tensor()) {
            let sum = match a.get(p.as_tensor()) {
                Some(prev) => prev.add(g)?,
                None => g.clone(),
            };
            a.insert(p.as_tensor(), sum);
        }
    }
    Ok(())
}

/// The gradients of `stores` summed per parameter of `params` in the pairwise order of
/// [`tree_sum`] (a missing gradient adds nothing).
fn tree_sum_grads(mut stores: Vec<GradStore>, params: &[Var]) -> Result<GradStore> {
    while stores.len() > 1 {
        let mut next = Vec::with_capacity(stores.len().div_ceil(2));
        let mut it = stores.into_iter();
        while let Some(mut a) = it.next() {
            if let Some(b) = it.next() {
                add_grads(&mut a, &b, params)?;
            }
            next.push(a);
        }
        stores = next;
    }
    stores.pop().ok_or_else(|| Error::input("a batch with no blocks (a bug)"))
}

fn top1(out: &Tensor, y: &Tensor) -> Result<Option<usize>> {
    if out.rank() != 2 || y.rank() != 1 || matches!(y.dtype(), DType::F32 | DType::F64 | DType::F16 | DType::BF16) {
        return Ok(None);
    }
    let pred = out.argmax(1)?.to_dtype(DType::I64)?;
    let hits = pred.eq(&y.to_dtype(DType::I64)?)?.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
    Ok(Some(hits as usize))
}

/// Adds a batch's top-1 predictions to `confusion[true][predicted]`, growing it to the
/// outputs' class count (and to any larger target index).
fn confusion_update(confusion: &mut Vec<Vec<u64>>, out: &Tensor, y: &Tensor) -> Result<()> {
    let pred = out.argmax(1)?.to_dtype(DType::I64)?.to_vec1::<i64>()?;
    let truth = y.to_dtype(DType::I64)?.to_vec1::<i64>()?;
    let classes = truth.iter().chain(&pred).map(|&c| c.max(0) as usize + 1).max().unwrap_or(0).max(out.dim(1)?);
    if confusion.len() < classes {
        confusion.iter_mut().for_each(|row| row.resize(classes, 0));
        confusion.resize(classes, vec![0; classes]);
    }
    for (&t, &p) in truth.iter().zip(&pred) {
        if t >= 0 {
            confusion[t as usize][p as usize] += 1;
        }
    }
    Ok(())
}

/// `95s` as `1m35s`, `3725s` as `1h02m`.
fn human_seconds(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}
