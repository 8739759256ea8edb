//! `ember train`, `ember export`, `ember inspect`, `ember predict`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ember_nn::{load_state_dict, Context, Module};
use ember_train::{build_model, checkpoint, learner::dtype_of, Learner, Reporter, RunConfig};
use serde_json::json;

/// Options of `ember train`.
pub struct TrainArgs {
    pub config: Option<PathBuf>,
    pub device: String,
    pub epochs: Option<usize>,
    pub out: Option<PathBuf>,
    pub resume: Option<PathBuf>,
    pub seed: Option<u64>,
    pub quiet: bool,
    /// `fashion_mnist` or `mnist`: replaces the config's data source.
    pub dataset: Option<String>,
    /// A folder with the four IDX files.
    pub data_dir: Option<PathBuf>,
    /// The thread count the user chose with --threads (already applied).
    pub threads: Option<usize>,
}

/// The main job's run: the seed's dropout MLP on Fashion-MNIST.
pub const DEFAULT_CONFIG: &str = include_str!("../examples/configs/fashion_mnist_dropout.toml");

/// Applies `--dataset` and `--data-dir` to the config's data section.
fn override_data(config: &mut RunConfig, dataset: Option<&str>, dir: Option<&Path>) -> anyhow::Result<()> {
    use ember_train::config::DataConfig;
    if dataset.is_none() && dir.is_none() {
        return Ok(());
    }
    let current = match &config.data {
        DataConfig::FashionMnist { .. } => "fashion_mnist",
        DataConfig::Mnist { .. } => "mnist",
        _ => "",
    };
    let which = match dataset.unwrap_or(current) {
        "fashion_mnist" | "fashion-mnist" => "fashion_mnist",
        "mnist" => "mnist",
        "" => {
            anyhow::bail!("--data-dir applies to fashion_mnist and mnist runs; this config's data is {:?}", config.data)
        }
        other => anyhow::bail!("--dataset {other}: unknown dataset; use fashion_mnist or mnist"),
    };
    let dir = dir.map(|d| d.display().to_string());
    config.data = if which == "mnist" { DataConfig::Mnist { dir } } else { DataConfig::FashionMnist { dir } };
    Ok(())
}

/// Trains; the last stdout line is a JSON summary.
pub fn train(args: TrainArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    // A fresh run's config (a resumed run's comes from its checkpoint).
    let fresh = match (&args.resume, &args.config) {
        (Some(_), _) => None,
        (None, Some(path)) => Some((RunConfig::from_file(path)?, stem(path))),
        (None, None) => {
            Some((RunConfig::from_toml(DEFAULT_CONFIG, "fashion_mnist_dropout.toml")?, "fashion_mnist_dropout".into()))
        }
    };
    let device = crate::device::parse(&args.device)?;
    let reporter = if args.quiet { Reporter::Quiet } else { Reporter::Stderr };
    let mut learner = match &args.resume {
        Some(path) => {
            if args.seed.is_some() {
                anyhow::bail!(
                    "--seed cannot change a resumed run: the checkpoint's seed fixes its data order and dropout masks"
                );
            }
            Learner::resume(path, device, args.out.clone(), args.epochs, reporter)?
        }
        None => {
            let (mut config, name) = fresh.expect("a fresh run has a config");
            override_data(&mut config, args.dataset.as_deref(), args.data_dir.as_deref())?;
            if let Some(e) = args.epochs {
                config.train.epochs = e;
            }
            if let Some(s) = args.seed {
                config.seed = s;
            }
            config.validate()?;
            let dir = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(name));
            Learner::new(config, device, dir, reporter)?
        }
    };
    let summary = learner.fit()?;
    let last = summary.last.clone();
    let num = |f: fn(&ember_train::EpochRecord) -> f64| last.as_ref().map(f).filter(|x| x.is_finite());
    let line = json!({
        "epochs": summary.epochs,
        "train_loss": num(|r| r.train_loss),
        "train_acc": num(|r| r.train_acc),
        "eval_loss": num(|r| r.eval_loss),
        "eval_acc": num(|r| r.eval_acc),
        "seconds_per_epoch": summary.seconds_per_epoch,
        "stopped_early": summary.stopped_early,
        "out": learner.out_dir().display().to_string(),
        "data": learner.data_source(),
        "threads": ember_core_threads(),
        "checkpoint": summary.checkpoint.map(|p| p.display().to_string()),
    });
    writeln!(out, "{line}")?;
    Ok(())
}

/// The CPU thread count tensor operations use.
pub(crate) fn ember_core_threads() -> usize {
    candle_core::utils::get_num_threads()
}

fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "run".into())
}

/// Weights only, PyTorch names, from a checkpoint.
pub fn export(checkpoint_path: &Path, dest: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let ckpt = checkpoint::read(&checkpoint::resolve(checkpoint_path)?)?;
    let weights = ckpt.section("model/");
    if weights.is_empty() {
        anyhow::bail!(
            "{}: holds no model weights (no model/ tensors); is it an Ember checkpoint?",
            ckpt.path.display()
        );
    }
    candle_core::safetensors::save(&weights, dest)
        .map_err(|e| anyhow::anyhow!("{}: cannot write: {}", dest.display(), ember_core::Error::from(e)))?;
    writeln!(out, "wrote {} tensors to {}", weights.len(), dest.display())?;
    Ok(())
}

/// Each tensor's name, dtype and shape, and the metadata.
pub fn inspect(path: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let ckpt = checkpoint::read(path)?;
    let mut names: Vec<&String> = ckpt.tensors.keys().collect();
    names.sort();
    for n in names {
        let t = &ckpt.tensors[n];
        writeln!(out, "{n}\t{:?}\t{:?}", t.dtype(), t.dims())?;
    }
    let mut keys: Vec<&String> = ckpt.metadata.keys().collect();
    keys.sort();
    for k in keys {
        writeln!(out, "metadata {k} = {}", ckpt.metadata[k])?;
    }
    Ok(())
}

/// Runs the model in evaluation mode on tensor `input` of `input_path`, writing `output`.
pub fn predict(
    weights: &Path,
    config: Option<&Path>,
    input_path: &Path,
    dest: &Path,
    device: &str,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let device = crate::device::parse(device)?;
    let file = checkpoint::resolve(weights)?;
    let ckpt = checkpoint::read(&file)?;
    let config = match config {
        Some(c) => RunConfig::from_file(c)?,
        None => RunConfig::from_json(ckpt.meta("config").map_err(|_| {
            anyhow::anyhow!("{}: plain weights carry no config; pass --config RUN.toml", file.display())
        })?)?,
    };
    let model = build_model(&config, dtype_of(&config), &device)?;
    let section = ckpt.section("model/");
    let dict: HashMap<String, Tensor> = if section.is_empty() { ckpt.tensors.clone() } else { section };
    load_state_dict(&model, &dict).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let inputs = checkpoint::read(input_path)?;
    let x = inputs
        .tensors
        .get("input")
        .ok_or_else(|| anyhow::anyhow!("{}: no tensor named 'input'", input_path.display()))?
        .to_device(&device)?
        .to_dtype(dtype_of(&config))?;
    let y = model.forward(&x, &mut Context::eval())?.to_device(&Device::Cpu)?;
    let dims = y.dims().to_vec();
    candle_core::safetensors::save(&HashMap::from([("output".to_string(), y)]), dest)
        .map_err(|e| anyhow::anyhow!("{}: cannot write: {}", dest.display(), ember_core::Error::from(e)))?;
    writeln!(out, "wrote output {dims:?} to {}", dest.display())?;
    Ok(())
}
