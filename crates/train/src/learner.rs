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
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use ember_core::rng;
use ember_core::{
    registry, BuildContext, Config, Context as _, Error, IoContext, LayerContext, Loss, Result, Scheduler,
};
use ember_data::{DataLoader, Dataset, TensorDataset};
use ember_nn::{build_layers, load_state_dict, mlp, state_dict, ActivationLayer, Context, Module, Sequential};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, FORMAT};
use crate::clip::{clip_grad_norm, clip_grad_value};
use crate::config::{Interval, Metric, Mode, RunConfig};
use crate::optim::{load_scheduler_state, scheduler_state_dict, OptimizerDriver, ParamGroupSpec};
use crate::regularize::{Regularization, RegularizerSpec};
use crate::rundir::{self, Existing, RunLock};

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
    fn metric(&self, metric: Metric) -> f64 {
        match metric {
            Metric::TrainLoss => self.train_loss,
            Metric::TrainAcc => self.train_acc,
            Metric::EvalLoss => self.eval_loss,
            Metric::EvalAcc => self.eval_acc,
        }
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
}

/// Where progress lines go.
pub enum Reporter {
    /// One summary line per epoch on stderr.
    Stderr,
    Quiet,
}

/// A training run. See the module docs.
pub struct Learner {
    pub config: RunConfig,
    model: Sequential,
    loss: Box<dyn Loss>,
    optimizer: OptimizerDriver,
    scheduler: Option<Box<dyn Scheduler>>,
    regularization: Regularization,
    train: TensorDataset,
    eval: TensorDataset,
    loader: DataLoader,
    out: PathBuf,
    progress: Progress,
    reporter: Reporter,
    data_source: String,
    data_notice: Option<String>,
    phases: Phases,
    phase_history: Vec<Phases>,
    /// The run directory's lock, held while the Learner lives.
    _lock: Option<RunLock>,
    /// Warnings and notes to print once when training starts.
    notes: Vec<String>,
    /// The checkpoint a resumed run continues.
    resumed_from: Option<PathBuf>,
}

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

impl Learner {
    /// A new run in the directory `out`, refused if `out` already holds a run (see
    /// [`crate::rundir`]). The directory is locked for this process while the Learner
    /// lives.
    pub fn new(config: RunConfig, device: Device, out: impl Into<PathBuf>, reporter: Reporter) -> Result<Self> {
        Self::start(config, device, out, Existing::Refuse, reporter)
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
        config.data.make_absolute();
        let mut learner = Self::build(config, device, out, reporter)?;
        let lock = rundir::lock(&learner.out)?;
        rundir::prepare_new(&lock, existing)?;
        learner.adopt(lock);
        Ok(learner)
    }

    /// Builds every part of the run; `out` is the run directory (not touched here).
    fn build(config: RunConfig, device: Device, out: PathBuf, reporter: Reporter) -> Result<Self> {
        config.validate()?;
        let dtype = dtype_of(&config);
        let crate::data::Loaded { train, eval, source, notice, origins } =
            crate::data::load(&config.data).context("data")?;
        crate::data::check_data(&train, &eval, &origins)?;
        let ctx = BuildContext::new(device.clone(), dtype);
        let loss = registry::loss(&config.loss.name, &config.loss.config, &ctx).context("loss")?;
        // The loss says what targets it takes; the data and the model must fit them.
        let class_targets = loss.targets().takes_classes();
        if !class_targets && train.targets().dtype().is_int() {
            return Err(Error::input(format!(
                "loss '{}' compares the output with float targets of its shape, but {} holds class indices; use cross_entropy (or nll after log_softmax) for class labels",
                config.loss.name, origins.train_targets
            )));
        }
        let (model, output) = build_model(&config, &train.inputs().dims()[1..], dtype, &device)?;
        crate::data::check_fits(&config.model, &output, &train, &eval, &origins, class_targets)?;
        let mut notes = Vec::new();
        if eval.is_empty() {
            notes.push(no_evaluation(&config)?);
        }
        let groups = config
            .optimizer
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| ParamGroupSpec::from_table(i, g))
            .collect::<Result<Vec<_>>>()?;
        let mut optimizer =
            OptimizerDriver::new(&config.optimizer.name, &config.optimizer.config, &groups, model.named_parameters())
                .context("optimizer")?;
        let scheduler = match &config.scheduler {
            Some(s) => {
                let mut sched = registry::scheduler(&s.name, &s.config, &ctx).context("scheduler")?;
                if let (Some(m), false) = (s.monitor, sched.needs_metric()) {
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
        let specs = config
            .regularizers
            .iter()
            .enumerate()
            .map(|(i, t)| RegularizerSpec::from_table(i, t))
            .collect::<Result<Vec<_>>>()?;
        let regularization = Regularization::new(&specs, model.named_parameters())?;
        let t = &config.train;
        let loader = DataLoader::new(t.batch_size, t.shuffle, t.drop_last, config.seed, device, dtype)?;
        if loader.batches(train.len()) == 0 {
            return Err(Error::input(format!(
                "train.batch_size = {} with drop_last leaves no batch from {} training examples",
                t.batch_size,
                train.len()
            )));
        }
        Ok(Learner {
            config,
            model,
            loss,
            optimizer,
            scheduler,
            regularization,
            train,
            eval,
            loader,
            out,
            progress: Progress::default(),
            reporter,
            data_source: source,
            data_notice: notice,
            phases: Phases::default(),
            phase_history: Vec::new(),
            _lock: None,
            notes,
            resumed_from: None,
        })
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
        let mut learner = Learner::build(config, device, out, reporter)?;
        learner.adopt(lock);
        learner.notes.extend(skipped);
        learner.load(&ckpt)?;
        let later: Vec<usize> = checkpoint::epoch_files(&learner.out.join("checkpoints"))?
            .into_iter()
            .map(|(e, _)| e)
            .filter(|&e| e > learner.progress.epoch)
            .collect();
        if let (Some(first), Some(last)) = (later.first(), later.last()) {
            learner.notes.push(format!(
                "warning: resuming from epoch {} while {} holds checkpoints of epochs {first} to {last}; this run replaces them as it reaches those epochs (until then `--resume {}` would pick the newest of the old ones)",
                learner.progress.epoch,
                learner.out.display(),
                learner.out.display()
            ));
        }
        learner.resumed_from = Some(file);
        learner.reconcile_best()?;
        Ok(learner)
    }

    /// Restores weights, optimizer, scheduler and progress from a checkpoint.
    fn load(&mut self, ckpt: &checkpoint::Checkpoint) -> Result<()> {
        let at = |e: Error| e.context(ckpt.path.display());
        load_state_dict(&self.model, &ckpt.section("model/")).map_err(at)?;
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
                    self.best_metric().0,
                    src.display()
                ));
            }
            None => self.notes.push(format!(
                "warning: {} {was}, but the best {} was reached at epoch {want}, whose checkpoint is no longer kept; best.safetensors is left as it is",
                best.display(),
                self.best_metric().0
            )),
        }
        Ok(())
    }

    pub fn model(&self) -> &Sequential {
        &self.model
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

    /// Where the data came from (a directory, "synthetic", or the embedded subset).
    pub fn data_source(&self) -> &str {
        &self.data_source
    }

    /// Trains until `config.train.epochs` epochs are complete (or early stopping).
    pub fn fit(&mut self) -> Result<Summary> {
        if self._lock.is_none() {
            let lock = rundir::lock(&self.out)?;
            self.adopt(lock);
        }
        for w in self.config.pairing_warnings() {
            self.report(&format!("warning: {w}"));
        }
        if let Some(n) = &self.data_notice {
            self.report(n);
        }
        for n in std::mem::take(&mut self.notes) {
            self.report(&n);
        }
        let mut last_ckpt = None;
        if let Some(from) = &self.resumed_from {
            let p = &self.progress;
            if p.stopped_early || p.epoch >= self.config.train.epochs {
                let why = if p.stopped_early {
                    format!("the run stopped early at epoch {} (early stopping)", p.epoch)
                } else {
                    format!("the run has already trained {} of {} epochs", p.epoch, self.config.train.epochs)
                };
                self.report(&format!(
                    "nothing to do: {why}; {} is unchanged. To train further, pass a larger --epochs{}",
                    from.display(),
                    if p.stopped_early { " (early stopping will stop it again unless the config changes)" } else { "" }
                ));
                last_ckpt = Some(from.clone());
            }
        }
        while self.progress.epoch < self.config.train.epochs && !self.progress.stopped_early {
            let record = self.epoch()?;
            self.progress.history.push(record.clone());
            self.progress.epoch += 1;
            self.write_metrics()?;
            let t = Instant::now();
            crate::plot::draw(&self.out, &self.progress.history)?;
            self.phases.output += t.elapsed().as_secs_f64();
            self.report(&format!(
                "epoch {}/{}  train_loss {:.4}  train_acc {:.4}  eval_loss {:.4}  eval_acc {:.4}  lr {:.4e}  {:.2}s",
                record.epoch,
                self.config.train.epochs,
                record.train_loss,
                record.train_acc,
                record.eval_loss,
                record.eval_acc,
                record.lr,
                record.seconds
            ));
            let improved = self.track_best(&record);
            self.early_stopping(&record);
            let t = Instant::now();
            last_ckpt = Some(self.save_checkpoint(improved)?);
            self.phases.output += t.elapsed().as_secs_f64();
            self.phase_history.push(std::mem::take(&mut self.phases));
        }
        let secs: Vec<f64> = self.progress.history.iter().map(|r| r.seconds).collect();
        Ok(Summary {
            epochs: self.progress.epoch,
            last: self.progress.history.last().cloned(),
            seconds_per_epoch: median(&secs),
            stopped_early: self.progress.stopped_early,
            checkpoint: last_ckpt,
        })
    }

    /// A progress bar with rate and ETA, only when reporting to a terminal.
    fn progress_bar(&self, batches: usize, epoch: usize) -> Option<indicatif::ProgressBar> {
        use std::io::IsTerminal;
        if !matches!(self.reporter, Reporter::Stderr) || !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = indicatif::ProgressBar::new(batches as u64);
        let style = indicatif::ProgressStyle::with_template(&format!(
            "epoch {epoch}/{} [{{bar:30}}] {{pos}}/{{len}} batches  {{per_sec}}  ETA {{eta}}  {{msg}}",
            self.config.train.epochs
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
        let accumulate = self.config.train.accumulate;
        let (mut loss_sum, mut correct, mut seen, mut counted) = (0.0, 0usize, 0usize, true);
        let mut acc: Option<GradStore> = None;
        let params: Vec<candle_core::Var> = self.model.named_parameters().into_iter().map(|(_, v)| v).collect();
        let bar = self.progress_bar(batches, epoch + 1);
        for b in 0..batches {
            let t = Instant::now();
            let (x, y) = self.loader.batch(&self.train, &order, b)?;
            self.phases.data += t.elapsed().as_secs_f64();
            let seed = rng::at(self.config.seed ^ DROPOUT_STREAM, self.progress.batches);
            self.progress.batches += 1;
            let t = Instant::now();
            let out = self.model.forward(&x, &mut Context::train(seed))?;
            self.phases.forward += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let loss = self.loss.forward(&out, &y)?;
            self.phases.loss += t.elapsed().as_secs_f64();
            let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !value.is_finite() {
                return Err(self.diverged(&format!("the loss is {value}"), b, batches)?);
            }
            let rows = y.dim(0)?;
            loss_sum += value * rows as f64;
            seen += rows;
            match top1(&out, &y)? {
                Some(c) => correct += c,
                None => counted = false,
            }
            let mut total = loss;
            if let Some(p) = self.regularization.penalty()? {
                let penalty = p.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                if !penalty.is_finite() {
                    let what = format!("the regularizers' penalty is {penalty} (the loss is {value})");
                    return Err(self.diverged(&what, b, batches)?);
                }
                total = total.add(&p.to_dtype(total.dtype())?)?;
            }
            if accumulate > 1 {
                total = total.affine(1.0 / accumulate as f64, 0.0)?;
            }
            let t = Instant::now();
            let grads = total.backward()?;
            self.phases.backward += t.elapsed().as_secs_f64();
            acc = Some(match acc.take() {
                None => grads,
                Some(mut a) => {
                    for p in &params {
                        if let Some(g) = grads.get(p.as_tensor()) {
                            let sum = match a.get(p.as_tensor()) {
                                Some(prev) => prev.add(g)?,
                                None => g.clone(),
                            };
                            a.insert(p.as_tensor(), sum);
                        }
                    }
                    a
                }
            });
            if (b + 1) % accumulate == 0 || b + 1 == batches {
                let mut grads = acc.take().expect("gradients accumulated");
                let t = Instant::now();
                self.optimizer_step(&mut grads, &params)?;
                self.phases.optimizer += t.elapsed().as_secs_f64();
            }
            if let Some(bar) = &bar {
                bar.inc(1);
                bar.set_message(format!("loss {:.4}", loss_sum / seen as f64));
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let lr = self.optimizer.lrs()[0];
        let t = Instant::now();
        let (eval_loss, eval_acc) = self.evaluate()?;
        self.phases.eval += t.elapsed().as_secs_f64();
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss: loss_sum / seen as f64,
            train_acc: if counted { correct as f64 / seen as f64 } else { f64::NAN },
            eval_loss,
            eval_acc,
            lr,
            seconds: start.elapsed().as_secs_f64(),
        };
        let monitor = self.monitor();
        if let (Some(s), Some(cfg)) = (&mut self.scheduler, &self.config.scheduler) {
            if cfg.interval == Interval::Epoch {
                let metric = s.needs_metric().then(|| record.metric(monitor));
                self.optimizer.step_schedule(s.as_mut(), metric)?;
            }
        }
        Ok(record)
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

    fn optimizer_step(&mut self, grads: &mut GradStore, params: &[candle_core::Var]) -> Result<()> {
        let refs: Vec<&candle_core::Var> = params.iter().collect();
        if let Some(max) = self.config.train.clip_grad_norm {
            clip_grad_norm(grads, &refs, max, self.config.train.clip_norm_type)?;
        }
        if let Some(v) = self.config.train.clip_grad_value {
            clip_grad_value(grads, &refs, v)?;
        }
        self.optimizer.step(grads)?;
        self.regularization.constrain()?;
        self.progress.step += 1;
        if let (Some(s), Some(cfg)) = (&mut self.scheduler, &self.config.scheduler) {
            if cfg.interval == Interval::Step {
                self.optimizer.step_schedule(s.as_mut(), None)?;
            }
        }
        Ok(())
    }

    /// Loss and top-1 accuracy on the evaluation set, in evaluation mode.
    pub fn evaluate(&self) -> Result<(f64, f64)> {
        let n = self.eval.len();
        if n == 0 {
            return Ok((f64::NAN, f64::NAN));
        }
        let order: Vec<u32> = (0..n as u32).collect();
        let loader = DataLoader { shuffle: false, drop_last: false, ..self.loader.clone() };
        let (mut loss_sum, mut correct, mut counted) = (0.0, 0usize, true);
        for b in 0..loader.batches(n) {
            let (x, y) = loader.batch(&self.eval, &order, b)?;
            let out = self.model.forward(&x, &mut Context::eval())?;
            loss_sum += self.loss.forward(&out, &y)?.to_dtype(DType::F64)?.to_scalar::<f64>()? * y.dim(0)? as f64;
            match top1(&out, &y)? {
                Some(c) => correct += c,
                None => counted = false,
            }
        }
        Ok((loss_sum / n as f64, if counted { correct as f64 / n as f64 } else { f64::NAN }))
    }

    /// The metric that picks `best.safetensors` and whether higher is better: eval_acc by
    /// default, train_loss when there is no evaluation set.
    fn best_metric(&self) -> (Metric, bool) {
        match self.config.train.best_metric {
            Some(m) => (m, m.higher_is_better()),
            None if self.eval.is_empty() => (Metric::TrainLoss, false),
            None => (Metric::EvalAcc, true),
        }
    }

    /// The metric a metric-driven scheduler watches: `scheduler.monitor`, by default
    /// eval_loss (train_loss when there is no evaluation set).
    fn monitor(&self) -> Metric {
        match self.config.scheduler.as_ref().and_then(|s| s.monitor) {
            Some(m) => m,
            None if self.eval.is_empty() => Metric::TrainLoss,
            None => Metric::EvalLoss,
        }
    }

    fn track_best(&mut self, r: &EpochRecord) -> bool {
        let (metric, maximize) = self.best_metric();
        let v = r.metric(metric);
        let better = match self.progress.best {
            _ if v.is_nan() => false,
            None => true,
            Some(b) => (maximize && v > b) || (!maximize && v < b),
        };
        if better {
            self.progress.best = Some(v);
            self.progress.best_epoch = Some(r.epoch);
        }
        better
    }

    fn early_stopping(&mut self, r: &EpochRecord) {
        let Some(es) = &self.config.train.early_stopping else {
            return;
        };
        let hist = &self.progress.history[..self.progress.history.len() - 1];
        let v = r.metric(es.metric);
        let best =
            hist.iter().map(|h| h.metric(es.metric)).filter(|x| !x.is_nan()).fold(None, |acc: Option<f64>, x| {
                Some(match acc {
                    None => x,
                    Some(a) if es.mode == Mode::Max => a.max(x),
                    Some(a) => a.min(x),
                })
            });
        let improved = match best {
            None => !v.is_nan(),
            Some(b) if es.mode == Mode::Max => v > b + es.min_delta,
            Some(b) => v < b - es.min_delta,
        };
        if improved {
            self.progress.bad_epochs = 0;
        } else {
            self.progress.bad_epochs += 1;
            if self.progress.bad_epochs > es.patience {
                self.progress.stopped_early = true;
                self.report(&format!(
                    "early stopping: {} has not improved for {} epochs (patience {})",
                    es.metric, self.progress.bad_epochs, es.patience
                ));
            }
        }
    }

    /// The full state as one checkpoint's tensors and metadata.
    fn checkpoint_contents(&self) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
        let mut tensors: HashMap<String, Tensor> =
            state_dict(&self.model).into_iter().map(|(k, v)| (format!("model/{k}"), v)).collect();
        tensors.extend(self.optimizer.state_dict()?);
        if let Some(s) = &self.scheduler {
            tensors.extend(scheduler_state_dict(s.as_ref())?);
        }
        let metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("config".to_string(), self.config.to_json()),
            ("progress".to_string(), serde_json::to_string(&self.progress).expect("progress serializes")),
            ("epoch".to_string(), self.progress.epoch.to_string()),
            ("step".to_string(), self.progress.step.to_string()),
        ]);
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
        let keep = self.config.train.keep_last.max(1);
        for old in files.iter().take(files.len().saturating_sub(keep)).filter(|p| **p != path) {
            let _ = std::fs::remove_file(old);
        }
        Ok(path)
    }

    /// Rewrites `metrics.csv` from the history.
    fn write_metrics(&self) -> Result<()> {
        let path = self.out.join("metrics.csv");
        let mut text = String::from("epoch,train_loss,train_acc,eval_loss,eval_acc,lr,seconds\n");
        let f = |x: f64| {
            if x.is_nan() {
                String::new()
            } else {
                format!("{x}")
            }
        };
        for r in &self.progress.history {
            text += &format!(
                "{},{},{},{},{},{},{:.3}\n",
                r.epoch,
                f(r.train_loss),
                f(r.train_acc),
                f(r.eval_loss),
                f(r.eval_acc),
                r.lr,
                r.seconds
            );
        }
        checkpoint::write_file_atomic(&path, text.as_bytes()).at(&path, "write")
    }
}

/// The warning for a run without an evaluation set, or an error when the config asks
/// for an evaluation metric explicitly.
fn no_evaluation(config: &RunConfig) -> Result<String> {
    let t = &config.train;
    let asked = [
        ("train.best_metric", t.best_metric),
        ("train.early_stopping.metric", t.early_stopping.as_ref().map(|e| e.metric)),
        ("scheduler.monitor", config.scheduler.as_ref().and_then(|s| s.monitor)),
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
    if config.scheduler.as_ref().is_some_and(|s| s.monitor.is_none()) {
        also += "; a metric-driven scheduler watches train_loss";
    }
    Ok(format!("warning: the evaluation set is empty: eval_loss and eval_acc are not computed{also}"))
}

/// Whether two paths name the same directory (both made absolute; the same when either
/// cannot be resolved and they are equal as written).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => std::path::absolute(a).ok() == std::path::absolute(b).ok(),
    }
}

/// The run directory of a checkpoint file (`RUN/checkpoints/epoch-N.safetensors` → RUN).
fn run_dir_of(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new("."));
    if parent.file_name().is_some_and(|n| n == "checkpoints") {
        parent.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        parent.to_path_buf()
    }
}

/// Correct top-1 predictions when `y` holds class indices for `out` [N, C].
fn top1(out: &Tensor, y: &Tensor) -> Result<Option<usize>> {
    if out.rank() != 2 || y.rank() != 1 || matches!(y.dtype(), DType::F32 | DType::F64 | DType::F16 | DType::BF16) {
        return Ok(None);
    }
    let pred = out.argmax(1)?.to_dtype(DType::I64)?;
    let hits = pred.eq(&y.to_dtype(DType::I64)?)?.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
    Ok(Some(hits as usize))
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}
