//! The Learner for a model written in Rust and data held in code: the same loop, run
//! directory, checkpoints, resume, metrics and plots as `ember train`, configured by the
//! registry names and options a run config uses.
//!
//! ```no_run
//! # use ember_train::Learner;
//! # fn demo(model: ember_nn::Sequential, train: ember_data::TensorDataset, test: ember_data::TensorDataset) -> ember_core::Result<()> {
//! let summary = Learner::builder(model)
//!     .train_data(train)
//!     .eval_data(test)
//!     .loss("cross_entropy")
//!     .optimizer("adam:lr=0.001,weight_decay=0.0001")
//!     .metrics(["accuracy", "f1:average=macro"])
//!     .epochs(5)
//!     .batch_size(128)
//!     .out("runs/mine")
//!     .fit()?;
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::Device;
use ember_core::metric::parse_spec;
use ember_core::{Config, Context as _, Error, Module, Result, Value};
use ember_data::Dataset;

use crate::checkpoint;
use crate::config::{
    EarlyStopping, Interval, Metric, OptimizerConfig, PluginConfig, Precision, SchedulerConfig, TrainConfig, TrainSpec,
};
use crate::hooks::{Callback, StepArgs, StepOutput, TrainStep};
use crate::learner::{Learner, Parts, Reporter, Summary};
use crate::rundir::{self, Existing};

/// Builds a [`Learner`] around a model written in Rust. Plugins are named as in run
/// configs, with scalar options in the `name:key=value,...` form of metric specs
/// (`"adamw:lr=0.001,weight_decay=0.01"`); list-valued options (`betas`, a loss's
/// `weight`) go through the `_config` methods with a [`Config`], or [`LearnerBuilder::spec`].
pub struct LearnerBuilder<M: Module + 'static> {
    model: Arc<M>,
    seed: u64,
    loss: Option<PluginConfig>,
    optimizer: Option<OptimizerConfig>,
    scheduler: Option<SchedulerConfig>,
    regularizers: Vec<Config>,
    train_config: TrainConfig,
    train: Option<Arc<dyn Dataset>>,
    eval: Option<Arc<dyn Dataset>>,
    device: Device,
    out: Option<PathBuf>,
    existing: Existing,
    reporter: Reporter,
    data_source: String,
    class_names: Vec<String>,
    step_fn: Option<Box<dyn TrainStep>>,
    callbacks: Vec<Box<dyn Callback>>,
    errors: Vec<Error>,
}

/// A plugin spec `name:key=value,...` as a name and its config, or the error naming
/// `what` (`optimizer`, `loss`).
fn plugin(what: &str, spec: &str) -> Result<(String, Config)> {
    parse_spec(spec).map_err(|e| e.context(what))
}

impl<M: Module + 'static> LearnerBuilder<M> {
    pub(crate) fn new(model: M) -> Self {
        LearnerBuilder {
            model: Arc::new(model),
            seed: 0,
            loss: None,
            optimizer: None,
            scheduler: None,
            regularizers: Vec::new(),
            train_config: TrainConfig::default(),
            train: None,
            eval: None,
            device: Device::Cpu,
            out: None,
            existing: Existing::Refuse,
            reporter: Reporter::Stderr,
            data_source: "in-memory data".into(),
            class_names: Vec::new(),
            step_fn: None,
            callbacks: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Every training setting at once, e.g. from [`TrainSpec::from_toml`]; later calls
    /// (`.epochs(3)`) change single settings of it.
    pub fn spec(mut self, spec: TrainSpec) -> Self {
        self.seed = spec.seed;
        self.loss = Some(spec.loss);
        self.optimizer = Some(spec.optimizer);
        self.scheduler = spec.scheduler;
        self.regularizers = spec.regularizers;
        self.train_config = spec.train;
        self
    }

    /// The seed of shuffling and dropout (the model's initialisation is the caller's).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The training examples: any [`Dataset`] of (input, target) pairs.
    pub fn train_data(mut self, data: impl Dataset + 'static) -> Self {
        self.train = Some(Arc::new(data));
        self
    }

    /// The evaluation examples (loss, accuracy and metrics after each epoch).
    pub fn eval_data(mut self, data: impl Dataset + 'static) -> Self {
        self.eval = Some(Arc::new(data));
        self
    }

    /// What the progress output and the JSON summary say the data is.
    pub fn data_source(mut self, text: impl Into<String>) -> Self {
        self.data_source = text.into();
        self
    }

    /// The names of the classes, index k naming class k: stored in checkpoints, written by
    /// `ember predict`.
    pub fn class_names<S: AsRef<str>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.class_names = names.into_iter().map(|s| s.as_ref().to_string()).collect();
        self
    }

    /// The loss by registered name with options: `"cross_entropy:label_smoothing=0.1"`.
    pub fn loss(mut self, spec: &str) -> Self {
        match plugin("loss", spec) {
            Ok((name, config)) => self.loss = Some(PluginConfig { name, config }),
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// The loss by name with a config map (for list-valued options such as `weight`).
    pub fn loss_config(mut self, name: &str, config: Config) -> Self {
        self.loss = Some(PluginConfig { name: name.into(), config });
        self
    }

    /// The optimizer by registered name with options: `"sgd:lr=0.1,momentum=0.9"`.
    pub fn optimizer(mut self, spec: &str) -> Self {
        match plugin("optimizer", spec) {
            Ok((name, config)) => self.optimizer = Some(OptimizerConfig { name, groups: Vec::new(), config }),
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// The optimizer by name with a config map (for list-valued options such as `betas`).
    pub fn optimizer_config(mut self, name: &str, config: Config) -> Self {
        self.optimizer = Some(OptimizerConfig { name: name.into(), groups: Vec::new(), config });
        self
    }

    /// A parameter group, as an `[[optimizer.groups]]` table: `params` (name globs) and
    /// the options that differ from the optimizer's (`weight_decay = 0.0`).
    pub fn param_group(mut self, params: &[&str], options: Config) -> Self {
        let mut table = options;
        table.insert("params".into(), Value::List(params.iter().map(|p| Value::Str(p.to_string())).collect()));
        match &mut self.optimizer {
            Some(o) => o.groups.push(table),
            None => self.errors.push(Error::input("param_group: set the optimizer first (.optimizer(\"adamw\"))")),
        }
        self
    }

    /// The learning-rate scheduler by registered name with options, stepped per epoch:
    /// `"step:step_size=10,gamma=0.5"`.
    pub fn scheduler(self, spec: &str) -> Self {
        self.scheduler_every(spec, Interval::Epoch)
    }

    /// The scheduler, stepped per epoch or per optimizer step (`one_cycle`, warm-ups).
    pub fn scheduler_every(mut self, spec: &str, interval: Interval) -> Self {
        match plugin("scheduler", spec) {
            Ok((name, config)) => self.scheduler = Some(SchedulerConfig { name, interval, monitor: None, config }),
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// The scheduler as a `[scheduler]` table.
    pub fn scheduler_config(mut self, scheduler: SchedulerConfig) -> Self {
        self.scheduler = Some(scheduler);
        self
    }

    /// A regularizer by registered name with options (`"l1:weight=0.0001"`), on every
    /// parameter, or on the parameters matching `params` globs when given.
    pub fn regularizer(mut self, spec: &str, params: &[&str]) -> Self {
        match plugin("regularizer", spec) {
            Ok((name, mut table)) => {
                table.insert("name".into(), Value::Str(name));
                if !params.is_empty() {
                    table.insert(
                        "params".into(),
                        Value::List(params.iter().map(|p| Value::Str(p.to_string())).collect()),
                    );
                }
                self.regularizers.push(table);
            }
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// Metrics over the evaluation set by registered name with options (`"accuracy"`,
    /// `"top_k_accuracy:k=5"`, `"f1:average=macro"`, `"r2"`), appended to those given.
    pub fn metrics<S: AsRef<str>>(mut self, specs: impl IntoIterator<Item = S>) -> Self {
        self.train_config.metrics.extend(specs.into_iter().map(|s| s.as_ref().to_string()));
        self
    }

    /// Every `[train]` setting at once.
    pub fn train_config(mut self, config: TrainConfig) -> Self {
        self.train_config = config;
        self
    }

    pub fn epochs(mut self, n: usize) -> Self {
        self.train_config.epochs = n;
        self
    }

    pub fn batch_size(mut self, n: usize) -> Self {
        self.train_config.batch_size = n;
        self
    }

    pub fn shuffle(mut self, on: bool) -> Self {
        self.train_config.shuffle = on;
        self
    }

    pub fn drop_last(mut self, on: bool) -> Self {
        self.train_config.drop_last = on;
        self
    }

    /// The dtype inputs are converted to (the model's own dtype is the caller's).
    pub fn dtype(mut self, dtype: Precision) -> Self {
        self.train_config.dtype = dtype;
        self
    }

    /// Mini-batches whose gradients are summed per optimizer step.
    pub fn accumulate(mut self, n: usize) -> Self {
        self.train_config.accumulate = n;
        self
    }

    /// Fixed blocks per batch, summed in a fixed order (`train.blocks`): the same weights
    /// on one process and on any number of ranks that divides `k` (a power of two).
    pub fn blocks(mut self, k: usize) -> Self {
        self.train_config.blocks = Some(k);
        self
    }

    pub fn clip_grad_norm(mut self, max: f64) -> Self {
        self.train_config.clip_grad_norm = Some(max);
        self
    }

    pub fn clip_grad_value(mut self, max: f64) -> Self {
        self.train_config.clip_grad_value = Some(max);
        self
    }

    /// Stops when `metric` (a `metrics.csv` column) has not improved for `patience`
    /// epochs, in the metric's own direction.
    pub fn early_stopping(mut self, metric: &str, patience: usize) -> Self {
        self.train_config.early_stopping =
            Some(EarlyStopping { metric: Metric::from(metric), patience, mode: None, min_delta: 0.0 });
        self
    }

    /// The `metrics.csv` column that picks `best.safetensors`.
    pub fn best_metric(mut self, metric: &str) -> Self {
        self.train_config.best_metric = Some(Metric::from(metric));
        self
    }

    /// Epoch checkpoints to keep.
    pub fn keep_last(mut self, n: usize) -> Self {
        self.train_config.keep_last = n;
        self
    }

    /// Starts from the weights in a safetensors file (PyTorch names or an Ember
    /// checkpoint); `strict = false` loads what matches and lists the rest.
    pub fn init_from(mut self, path: impl Into<PathBuf>, strict: bool) -> Self {
        let path: PathBuf = path.into();
        let path = std::path::absolute(&path).unwrap_or(path);
        self.train_config.init_from = Some(path.display().to_string());
        self.train_config.strict = strict;
        self
    }

    /// Keeps the parameters whose names match these globs fixed.
    pub fn freeze<S: AsRef<str>>(mut self, globs: impl IntoIterator<Item = S>) -> Self {
        self.train_config.freeze.extend(globs.into_iter().map(|s| s.as_ref().to_string()));
        self
    }

    /// The device (`ember_core::device::parse("cuda")`); the model must already be on it.
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// The run directory (default `runs/learner`): metrics.csv, plots, checkpoints.
    pub fn out(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out = Some(dir.into());
        self
    }

    /// Replaces a run already in the output directory instead of refusing.
    pub fn overwrite(mut self, on: bool) -> Self {
        self.existing = if on { Existing::Overwrite } else { Existing::Refuse };
        self
    }

    /// No progress output.
    pub fn quiet(mut self) -> Self {
        self.reporter = Reporter::Quiet;
        self
    }

    /// A custom training step over the model's concrete type: compute the loss from the
    /// model and the batch yourself (several outputs, auxiliary losses); the Learner
    /// still accumulates, clips, steps the optimizer, evaluates and checkpoints.
    pub fn train_step<F>(mut self, mut f: F) -> Self
    where
        F: FnMut(&M, StepArgs<'_>) -> Result<StepOutput> + Send + 'static,
    {
        let model = Arc::clone(&self.model);
        self.step_fn = Some(Box::new(move |args: StepArgs<'_>| f(&model, args)));
        self
    }

    /// Runs user code at step and epoch ends ([`crate::hooks::on_epoch_end`], or any
    /// [`Callback`]).
    pub fn callback(mut self, callback: impl Callback + 'static) -> Self {
        self.callbacks.push(Box::new(callback));
        self
    }

    /// The settings collected so far, checked.
    fn take_spec(&mut self) -> Result<TrainSpec> {
        if let Some(e) = self.errors.drain(..).next() {
            return Err(e);
        }
        let loss = self.loss.clone().ok_or_else(|| {
            Error::input("Learner::builder: no loss; call .loss(\"cross_entropy\") (any registered loss name)")
        })?;
        let optimizer = self.optimizer.clone().ok_or_else(|| {
            Error::input(
                "Learner::builder: no optimizer; call .optimizer(\"adam:lr=0.001\") (any registered optimizer)",
            )
        })?;
        Ok(TrainSpec {
            seed: self.seed,
            loss,
            optimizer,
            scheduler: self.scheduler.clone(),
            regularizers: self.regularizers.clone(),
            train: self.train_config.clone(),
        })
    }

    fn parts(&mut self, resuming: bool) -> Result<Parts> {
        let spec = self.take_spec()?;
        let train = self.train.clone().ok_or_else(|| {
            Error::input("Learner::builder: no training data; call .train_data(dataset) (any ember_data::Dataset)")
        })?;
        Ok(Parts {
            spec,
            run: None,
            model: self.model.clone(),
            loss: None,
            train,
            eval: self.eval.clone(),
            device: self.device.clone(),
            out: self.out.clone().unwrap_or_else(|| PathBuf::from("runs").join("learner")),
            reporter: std::mem::replace(&mut self.reporter, Reporter::Quiet),
            data_source: self.data_source.clone(),
            data_notice: None,
            class_names: self.class_names.clone(),
            feature_names: Vec::new(),
            // A user's Dataset comes as the user scaled it: nothing to store.
            input_scaling: None,
            step_fn: self.step_fn.take(),
            callbacks: std::mem::take(&mut self.callbacks),
            resuming,
        })
    }

    /// A new run in the output directory (refused if it holds a run, unless
    /// [`LearnerBuilder::overwrite`]).
    pub fn build(mut self) -> Result<Learner> {
        let existing = self.existing;
        let parts = self.parts(false)?;
        if existing == Existing::Refuse && rundir::existing_run(&parts.out).is_some() {
            rundir::prepare_new(&rundir::lock(&parts.out)?, Existing::Refuse)?;
        }
        Learner::assemble(parts)?.begin(existing)
    }

    /// Builds a new run and trains it.
    pub fn fit(self) -> Result<Summary> {
        self.build()?.fit()
    }

    /// Continues the run saved in `path` (a checkpoint file, or a run directory meaning
    /// its newest readable checkpoint) with this model, data and settings: weights,
    /// optimizer and scheduler state and progress come from the checkpoint, so the run
    /// continues bit for bit when the settings are those it was started with. The run
    /// continues in the checkpoint's run directory unless [`LearnerBuilder::out`] names
    /// another (which must not hold a run).
    pub fn resume(mut self, path: impl Into<PathBuf>) -> Result<Learner> {
        let path = path.into();
        let (ckpt, skipped) = checkpoint::open_for_resume(&path)?;
        let file = ckpt.path.clone();
        let home = crate::learner::run_dir_of(&file);
        let out = self.out.clone().unwrap_or_else(|| home.clone());
        self.out = Some(out.clone());
        let lock = rundir::lock(&out)?;
        if !crate::learner::same_dir(&out, &home) {
            rundir::prepare_new(&lock, Existing::Refuse)?;
        }
        checkpoint::remove_stale_temporaries(&out.join("checkpoints"));
        checkpoint::remove_stale_temporaries(&out);
        let parts = self.parts(true)?;
        if let Ok(stored) = ckpt.meta("spec") {
            if let Ok(stored) = serde_json::from_str::<TrainSpec>(stored) {
                check_same_run(&stored, &parts.spec).with_context(|| file.display())?;
            }
        }
        Learner::assemble(parts)?.continue_from(lock, ckpt, skipped)
    }
}

/// A resume must continue the same run: the settings that shape its state and data order
/// must match the checkpoint's (epochs, metrics, early stopping and the like may change).
fn check_same_run(stored: &TrainSpec, given: &TrainSpec) -> Result<()> {
    let pairs = [
        ("seed", stored.seed.to_string(), given.seed.to_string()),
        ("optimizer", stored.optimizer.name.clone(), given.optimizer.name.clone()),
        ("batch_size", stored.train.batch_size.to_string(), given.train.batch_size.to_string()),
        ("freeze", format!("{:?}", stored.train.freeze), format!("{:?}", given.train.freeze)),
    ];
    for (what, a, b) in pairs {
        if a != b {
            return Err(Error::input(format!(
                "the checkpoint's run has {what} {a}, this builder {b}; a resume continues the run it was started as (start a new run for other settings)"
            )));
        }
    }
    Ok(())
}
