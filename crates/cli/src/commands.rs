//! `ember train`, `ember export`, `ember inspect`, `ember predict`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ember_nn::{load_state_dict, Context, Module};
use ember_train::rundir::{self, Existing};
use ember_train::{build_model, checkpoint, learner::dtype_of, Learner, Reporter, RunConfig};

/// Options of `ember train` (parsed by clap; the doc comments are the `--help` text).
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// The run config (default: the seed's dropout MLP on Fashion-MNIST).
    pub config: Option<PathBuf>,
    /// The device: `cpu`, `cuda` or `cuda:N`, `metal` or `metal:N`, or `auto`.
    #[arg(long, default_value = "cpu", help = "cpu, cuda[:N], metal[:N] or auto")]
    pub device: String,
    /// Total epochs of the run (a resumed run trains up to this many).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// The run directory (default runs/CONFIG_NAME, or the next free runs/CONFIG_NAME-N).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from a checkpoint file or a run directory (its newest readable checkpoint).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Override the config's seed (with --resume: must equal the run's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Train on fashion_mnist or mnist instead of the config's data.
    #[arg(long)]
    pub dataset: Option<String>,
    /// A folder with the four IDX files, raw or `.gz`; with `--resume`, where the run's
    /// data is now.
    #[arg(
        long,
        help = "A folder with the four IDX files (train-images-idx3-ubyte[.gz], ...); with --resume, where the run's data is now"
    )]
    pub data_dir: Option<PathBuf>,
    /// CPU threads for tensor operations (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Replace the run that the run directory already holds (its checkpoints, metrics
    /// and plots); without it such a directory is refused.
    #[arg(long)]
    pub overwrite: bool,
}

/// The main job's run: the seed's dropout MLP on Fashion-MNIST.
pub const DEFAULT_CONFIG: &str = include_str!("../../../examples/configs/fashion_mnist_dropout.toml");

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

/// Trains; the last stdout line is a JSON summary. Under `mpirun -np N` (a build with
/// the `mpi` feature) the N processes train one run data-parallel: rank 0 writes the run
/// directory and prints; the other ranks train into an empty scratch directory of
/// their own, removed at the end.
pub fn train(args: TrainArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    use ember_train::distributed::{device_for_rank, launched_by_mpirun, local_rank, Collective, Solo};
    // The ranks: several when mpirun/mpiexec started this process among others.
    let launched = launched_by_mpirun().unwrap_or(1);
    // One GPU per rank: a bare `--device cuda` is the rank's local rank's GPU.
    let spec = if launched > 1 { device_for_rank(&args.device, local_rank()) } else { args.device.clone() };
    let device = ember_core::device::parse(&spec)?;
    #[cfg(feature = "mpi")]
    let mpi = if launched > 1 { Some(ember_train::distributed::Mpi::init()?) } else { None };
    #[cfg(feature = "nccl")]
    let collective: Box<dyn Collective> = match &mpi {
        // Gradients of CUDA ranks are summed on the GPUs with NCCL.
        // A rank that cannot join ends them all (the others wait for it in NCCL's set-up).
        Some(m) if device.is_cuda() => match ember_train::distributed::Nccl::init(m.clone(), &device) {
            Ok(nccl) => Box::new(nccl),
            Err(e) => {
                eprintln!("error (rank {} of {}): {e}", m.rank(), m.size());
                m.abort(1)
            }
        },
        Some(m) => Box::new(m.clone()),
        None => Box::new(Solo),
    };
    #[cfg(all(feature = "mpi", not(feature = "nccl")))]
    let collective: Box<dyn Collective> = match &mpi {
        Some(m) => Box::new(m.clone()),
        None => Box::new(Solo),
    };
    #[cfg(not(feature = "mpi"))]
    let collective: Box<dyn Collective> = if launched > 1 {
        anyhow::bail!(
            "mpirun started {launched} processes, but this ember was built without the `mpi` feature, so each would train alone: cargo build --release --features mpi"
        )
    } else {
        Box::new(Solo)
    };
    let rank = collective.rank();
    // Ranks other than 0 write nothing, but a Learner holds (locks) a directory.
    let scratch = std::env::temp_dir().join(format!("ember-rank{rank}-{}", std::process::id()));
    let result = train_rank(args, device, collective, &scratch, out);
    if rank != 0 {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    #[cfg(feature = "mpi")]
    if let (Err(e), Some(mpi)) = (&result, &mpi) {
        // The other ranks may be waiting for this one in a collective, and finalizing MPI
        // would wait for them: end every rank now.
        eprintln!("error (rank {rank} of {}): {e}", mpi.size());
        mpi.abort(1);
    }
    result
}

/// [`train`] on one rank of `collective`; ranks other than 0 train into `scratch`.
fn train_rank(
    args: TrainArgs,
    device: Device,
    collective: Box<dyn ember_train::Collective>,
    scratch: &Path,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let rank = collective.rank();
    let reporter = if args.quiet || rank != 0 { Reporter::Quiet } else { Reporter::Stderr };
    let learner = match &args.resume {
        Some(path) => {
            if args.overwrite {
                anyhow::bail!("--overwrite starts a new run; it does not combine with --resume, which continues one");
            }
            // A CONFIG given beside --resume must be the run's own config.
            let given = match &args.config {
                Some(p) => Some((RunConfig::from_file(p)?, p.clone())),
                None => None,
            };
            let to = if rank == 0 { args.out.clone() } else { Some(scratch.to_path_buf()) };
            Learner::resume_with(path, device, to, reporter, |stored| {
                edit_resumed(stored, &args, given, path).map_err(|e| ember_core::Error::input(e.to_string()))
            })?
        }
        None => {
            let (mut config, name) = match &args.config {
                Some(path) => (RunConfig::from_file(path)?, stem(path)),
                None => (
                    RunConfig::from_toml(DEFAULT_CONFIG, "fashion_mnist_dropout.toml")?,
                    "fashion_mnist_dropout".into(),
                ),
            };
            override_data(&mut config, args.dataset.as_deref(), args.data_dir.as_deref())?;
            if let Some(e) = args.epochs {
                config.train.epochs = e;
            }
            if let Some(s) = args.seed {
                config.seed = s;
            }
            config.validate()?;
            let existing = if args.overwrite { Existing::Overwrite } else { Existing::Refuse };
            let (dir, existing) = match &args.out {
                _ if rank != 0 => (scratch.to_path_buf(), Existing::Overwrite),
                Some(d) => (d.clone(), existing),
                None if args.overwrite => (PathBuf::from("runs").join(&name), existing),
                None => {
                    // Never into an earlier run: the next free runs/NAME-2, runs/NAME-3, ...
                    let base = PathBuf::from("runs").join(&name);
                    let dir = rundir::next_free(&base);
                    if dir != base && !args.quiet {
                        eprintln!(
                            "note: {} holds an earlier run; this run goes to {} (to continue the earlier one: ember train --resume {}; to replace it: --overwrite)",
                            base.display(),
                            dir.display(),
                            base.display()
                        );
                    }
                    (dir, existing)
                }
            };
            Learner::start(config, device, dir, existing, reporter)?
        }
    };
    let mut learner = learner.with_collective(collective)?;
    let summary = learner.fit()?;
    if rank == 0 {
        let line = summary.to_json();
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Applies the command line to a resumed run's stored config: `--epochs`, a CONFIG that
/// must match the stored one, `--seed` that must match, `--dataset` that must match, and
/// `--data-dir` for data that moved.
fn edit_resumed(
    stored: &mut RunConfig,
    args: &TrainArgs,
    given: Option<(RunConfig, PathBuf)>,
    file: &Path,
) -> anyhow::Result<()> {
    if let Some(s) = args.seed.filter(|s| *s != stored.seed) {
        anyhow::bail!(
            "--seed {s} differs from the seed of the run in {} ({}): a resumed run keeps its seed, which fixes its data order and dropout masks; drop --seed, or start a new run with it",
            file.display(),
            stored.seed
        );
    }
    if let Some((mut config, path)) = given {
        config.settle();
        let (a, b) = (serde_json::to_value(&config)?, serde_json::to_value(&*stored)?);
        let mut diffs = Vec::new();
        differences("", &a, &b, &mut diffs);
        diffs.retain(|d| !d.starts_with("train.epochs "));
        if !diffs.is_empty() {
            anyhow::bail!(
                "{} differs from the config of the run in {}:\n  {}\nA resumed run continues with its own config: drop {} to continue it as saved, or train {} as a new run (--out NEW_DIR)",
                path.display(),
                file.display(),
                diffs.join("\n  "),
                path.display(),
                path.display()
            );
        }
        stored.train.epochs = config.train.epochs;
    }
    if let Some(d) = &args.dataset {
        use ember_train::config::DataConfig;
        let stored_name = match &stored.data {
            DataConfig::FashionMnist { .. } => "fashion_mnist",
            DataConfig::Mnist { .. } => "mnist",
            DataConfig::Idx { .. } => "idx",
            DataConfig::Csv { .. } => "csv",
            DataConfig::Parquet { .. } => "parquet",
            DataConfig::Hub { .. } => "hub",
            DataConfig::Safetensors { .. } => "safetensors",
            DataConfig::ImageFolder { .. } => "image_folder",
            DataConfig::Synthetic { .. } => "synthetic",
        };
        if d.replace('-', "_") != stored_name {
            anyhow::bail!(
                "--dataset {d}: the run in {} trains on {stored_name}, and a resumed run keeps its data; drop --dataset, or start a new run with it",
                file.display()
            );
        }
    }
    if let Some(dir) = &args.data_dir {
        let Some(slot) = stored.data.dir_mut() else {
            anyhow::bail!(
                "--data-dir applies to fashion_mnist and mnist runs; the run in {} reads {:?}",
                file.display(),
                stored.data
            );
        };
        *slot = Some(std::path::absolute(dir).unwrap_or_else(|_| dir.clone()).display().to_string());
    }
    if let Some(e) = args.epochs {
        stored.train.epochs = e;
    }
    Ok(())
}

/// The dotted keys where JSON values `a` (given) and `b` (stored) differ, with both values.
fn differences(at: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    let key = |k: &str| if at.is_empty() { k.to_string() } else { format!("{at}.{k}") };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let null = Value::Null;
                differences(&key(k), x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null), out);
            }
        }
        _ if a == b => {}
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        _ => out.push(format!("{at} = {a} in the config, {b} in the checkpoint")),
    }
}

/// The CPU thread count tensor operations use.
pub(crate) fn ember_core_threads() -> usize {
    candle_core::utils::get_num_threads()
}

fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "run".into())
}

/// Weights only, PyTorch names, from a checkpoint. Never over the checkpoint itself, nor
/// (without `force`) over any other Ember checkpoint.
pub fn export(
    checkpoint_path: &Path,
    dest: &Path,
    force: bool,
    averaged: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let src = checkpoint::resolve(checkpoint_path)?;
    if std::fs::canonicalize(dest).ok().is_some_and(|d| std::fs::canonicalize(&src).ok() == Some(d)) {
        anyhow::bail!(
            "--out {} is the checkpoint being exported: exporting over it would replace the checkpoint (optimizer state, progress) with bare weights; choose another --out",
            dest.display()
        );
    }
    if dest.is_file() && !force {
        if let Ok(meta) = checkpoint::read_metadata(dest) {
            if meta.get("format").is_some_and(|f| f.starts_with("ember-checkpoint")) {
                anyhow::bail!(
                    "--out {} is an Ember checkpoint{}: exporting over it would replace it with bare weights; choose another --out, or pass --force to replace it",
                    dest.display(),
                    meta.get("epoch").map(|e| format!(" (epoch {e})")).unwrap_or_default()
                );
            }
        }
    }
    let ckpt = checkpoint::read(&src)?;
    let weights = if averaged {
        let weights = ckpt.section("average/");
        if weights.is_empty() {
            anyhow::bail!(
                "{}: holds no averaged weights (no average/ tensors): the run had no train.average (or averaging had not started by this epoch) and its optimizer has no evaluation point; export without --averaged for the trained weights",
                ckpt.path.display()
            );
        }
        weights
    } else {
        ckpt.section("model/")
    };
    if weights.is_empty() {
        anyhow::bail!(
            "{}: holds no model weights (no model/ tensors); is it an Ember checkpoint?",
            ckpt.path.display()
        );
    }
    // Through a temporary beside the destination, so a failed write leaves it as it was.
    let name = dest.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "weights".into());
    let tmp = dest.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let written = candle_core::safetensors::save(&weights, &tmp)
        .map_err(ember_core::Error::from)
        .map_err(|e| e.to_string())
        .and_then(|()| std::fs::rename(&tmp, dest).map_err(|e| e.to_string()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        anyhow::bail!("{}: cannot write: {e}", dest.display());
    }
    let which = match ckpt.metadata.get("average") {
        Some(kind) if averaged => format!(" (averaged: {kind})"),
        Some(kind) => format!("; the checkpoint also holds averaged weights ({kind}): pass --averaged to export those"),
        None => String::new(),
    };
    writeln!(out, "wrote {} tensors to {}{which}", weights.len(), dest.display())?;
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

/// Runs the model in evaluation mode on new inputs (see `ember predict --help`), writing
/// the outputs as safetensors or the predictions as CSV.
pub fn predict(
    weights: &Path,
    config: Option<&Path>,
    input_path: &Path,
    dest: &Path,
    device: &str,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let device = ember_core::device::parse(device)?;
    let file = checkpoint::resolve(weights)?;
    let ckpt = checkpoint::read(&file)?;
    let config = match config {
        Some(c) => RunConfig::from_file(c)?,
        None => RunConfig::from_json(ckpt.meta("config").map_err(|_| {
            anyhow::anyhow!("{}: plain weights carry no config; pass --config RUN.toml", file.display())
        })?)?,
    };
    let stored = |key: &str| -> Vec<String> {
        ckpt.metadata.get(key).and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default()
    };
    // The run's input scaling as stored at training time (`standardize = true`); older
    // checkpoints and plain weights have none, and predict recomputes it from the data.
    let scaling = ckpt
        .metadata
        .get(ember_train::data::SCALING_KEY)
        .map(|text| ember_train::data::Scaling::from_json(text, &file))
        .transpose()?;
    let (x, ids) = read_inputs(&config, input_path, &stored("feature_names"), scaling.as_ref())?;
    let x = x.to_device(&device)?.to_dtype(dtype_of(&config))?;
    if x.rank() == 0 {
        anyhow::bail!("{}: 'input' is a scalar; give a batch of examples [N, ...]", input_path.display());
    }
    // A model of layers is built for the examples' shape (the batch dimension left out).
    let (model, _) = build_model(&config, &x.dims()[1..], dtype_of(&config), &device)
        .map_err(|e| anyhow::anyhow!("{}: {e}", input_path.display()))?;
    let section = ckpt.section("model/");
    let dict: HashMap<String, Tensor> = if section.is_empty() { ckpt.tensors.clone() } else { section };
    load_state_dict(&model, &dict).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let y = model.forward(&x, &mut Context::eval())?.to_device(&Device::Cpu)?;
    let dims = y.dims().to_vec();
    let is_csv = dest.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        let names = stored("class_names");
        let loss = ember_core::registry::loss(&config.loss.name, &config.loss.config, &Default::default())?;
        let text = predictions_csv(&y, &ids, loss.targets().takes_classes(), &names, &config)?;
        ember_train::checkpoint::write_file_atomic(dest, text.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", dest.display()))?;
        writeln!(out, "wrote {} predictions to {}", ids.len(), dest.display())?;
        return Ok(());
    }
    candle_core::safetensors::save(&HashMap::from([("output".to_string(), y)]), dest)
        .map_err(|e| anyhow::anyhow!("{}: cannot write: {}", dest.display(), ember_core::Error::from(e)))?;
    writeln!(out, "wrote output {dims:?} to {}", dest.display())?;
    Ok(())
}

/// The inputs of `ember predict` and an id per example: a safetensors file's `input`
/// (ids 0..N), a CSV or Parquet table's feature columns (ids: the data rows, from 1), or
/// an image folder's images (ids: their paths under the folder). Table rows and
/// safetensors inputs get the run's input scaling: `scaling` as the checkpoint stores it,
/// else recomputed from the run's data ([`ember_train::data::scale_for_prediction`]).
fn read_inputs(
    config: &RunConfig,
    input: &Path,
    trained_on: &[String],
    scaling: Option<&ember_train::data::Scaling>,
) -> anyhow::Result<(Tensor, Vec<String>)> {
    use ember_data::Dataset;
    use ember_train::config::DataConfig;
    let scale = |x: &Tensor| ember_train::data::scale_for_prediction(scaling, &config.data, x);
    let name = input.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let numbered = |n: usize, from: usize| (from..n + from).map(|i| i.to_string()).collect::<Vec<_>>();
    if input.is_dir() {
        let DataConfig::ImageFolder { size, mean, std, channels, .. } = &config.data else {
            anyhow::bail!(
                "{}: a folder of images predicts for image_folder runs; this run's data is {:?}",
                input.display(),
                config.data
            );
        };
        let spec = ember_data::image_folder::ImageSpec {
            size: size.map(|[h, w]| (h, w)),
            mean: mean.clone(),
            std: std.clone(),
            channels: *channels,
            ..Default::default()
        };
        let folder = ember_data::image_folder::ImageFolder::open(input, spec)?;
        let all: Vec<u32> = (0..folder.len() as u32).collect();
        let ids =
            folder.files().iter().map(|(p, _)| p.strip_prefix(input).unwrap_or(p).display().to_string()).collect();
        return Ok((folder.batch(&all)?.0, ids));
    }
    let parquet = name.ends_with(".parquet");
    let table = parquet || [".csv", ".tsv", ".csv.gz", ".tsv.gz", ".txt"].iter().any(|e| name.ends_with(e));
    if table {
        let (target, features, delimiter) = match &config.data {
            DataConfig::Csv { target, features, delimiter, .. } => {
                (target.names(), features, delimiter.chars().next().unwrap_or(','))
            }
            DataConfig::Parquet { target, features, .. } | DataConfig::Hub { target, features, .. } => {
                (target.names(), features, ',')
            }
            _ => anyhow::bail!(
                "{}: a table predicts for csv, parquet and hub runs (their feature columns); this run's data is {:?}",
                input.display(),
                config.data
            ),
        };
        let delimiter = if name.contains(".tsv") { '\t' } else { delimiter };
        let spec = ember_data::csv::TableSpec {
            delimiter,
            // The target columns may be absent from new rows: never read, never required.
            target: Vec::new(),
            // The columns the model was trained on, by name, in training order.
            features: if !trained_on.is_empty() { trained_on.to_vec() } else { features.clone() },
            exclude: target,
            ..Default::default()
        };
        let t = if parquet { read_parquet(input, &spec)? } else { ember_data::csv::read_table(input, &spec)? };
        let x = scale(&t.inputs)?;
        let n = t.len();
        return Ok((x, numbered(n, 1)));
    }
    let inputs = checkpoint::read(input)?;
    let x = inputs
        .tensors
        .get("input")
        .ok_or_else(|| anyhow::anyhow!("{}: no tensor named 'input'", input.display()))?
        .clone();
    let n = if x.rank() == 0 { 0 } else { x.dim(0)? };
    let x = scale(&x)?;
    Ok((x, numbered(n, 0)))
}

/// A Parquet table of new rows for `ember predict` (the `hub` feature's reader).
#[cfg(feature = "hub")]
fn read_parquet(input: &Path, spec: &ember_data::csv::TableSpec) -> anyhow::Result<ember_data::csv::Table> {
    Ok(ember_data::parquet_table::read_parquet_table(input, spec)?)
}

/// Without the `hub` feature there is no Parquet reader.
#[cfg(not(feature = "hub"))]
fn read_parquet(input: &Path, _spec: &ember_data::csv::TableSpec) -> anyhow::Result<ember_data::csv::Table> {
    anyhow::bail!(
        "{}: reading Parquet needs the `hub` feature (on by default); rebuild without --no-default-features (or with --features hub)",
        input.display()
    )
}

/// One CSV row per example: `id,prediction` and, for class targets, `p_CLASS` columns
/// (softmax of the outputs: the class probabilities for logits and for log-probabilities
/// alike); for float targets the output columns, named by the run's target columns when
/// it has them.
fn predictions_csv(
    y: &Tensor,
    ids: &[String],
    classes: bool,
    names: &[String],
    config: &RunConfig,
) -> anyhow::Result<String> {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let y = y.to_dtype(candle_core::DType::F64)?;
    let y = if y.rank() == 1 { y.unsqueeze(1)? } else { y.flatten_from(1)? };
    let k = y.dim(1)?;
    let mut text = String::from("id");
    if classes {
        let label = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
        text += ",prediction";
        for c in 0..k {
            text += &format!(",p_{}", quote(&label(c)));
        }
        text += "\n";
        let p = softmax_rows(&y)?;
        for (id, row) in ids.iter().zip(p.to_vec2::<f64>()?) {
            let best = row.iter().enumerate().fold(0, |b, (i, v)| if *v > row[b] { i } else { b });
            text += &format!("{},{}", quote(id), quote(&label(best)));
            for v in row {
                text += &format!(",{v}");
            }
            text += "\n";
        }
    } else {
        let cols: Vec<String> = match &config.data {
            ember_train::config::DataConfig::Csv { target, .. }
            | ember_train::config::DataConfig::Parquet { target, .. }
            | ember_train::config::DataConfig::Hub { target, .. }
                if target.names().len() == k =>
            {
                target.names()
            }
            _ if k == 1 => vec!["prediction".into()],
            _ => (0..k).map(|c| format!("output_{c}")).collect(),
        };
        for c in &cols {
            text += &format!(",{}", quote(c));
        }
        text += "\n";
        for (id, row) in ids.iter().zip(y.to_vec2::<f64>()?) {
            text += &quote(id);
            for v in row {
                text += &format!(",{v}");
            }
            text += "\n";
        }
    }
    Ok(text)
}

/// Row-wise softmax of `[N, K]` scores.
fn softmax_rows(y: &Tensor) -> anyhow::Result<Tensor> {
    let max = y.max_keepdim(1)?;
    let e = y.broadcast_sub(&max)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(1)?)?)
}
