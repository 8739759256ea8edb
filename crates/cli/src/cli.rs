//! The `ember` command line, as a library function so tests can run it in-process (and
//! see plugins that only the test binary links).

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ember_core::registry::{all_plugins, plugins, Kind, PluginInfo};
use ember_core::{DefaultValue, ParamType};
use serde_json::json;

use ember_parity as parity;

/// Ember: train models in Rust with plugins picked by name.
#[derive(Debug, Parser)]
#[command(name = "ember", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every registered plugin with its hyperparameters and defaults.
    Plugins {
        /// Only this kind: activation, loss, optimizer, scheduler or regularizer.
        #[arg(long, value_parser = parse_kind)]
        kind: Option<Kind>,
        /// Print a JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Train a model from a run config (TOML); the last line printed is a JSON summary.
    Train(crate::commands::TrainArgs),
    /// Write a checkpoint's weights (PyTorch names) as a safetensors file.
    Export {
        checkpoint: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Replace FILE even if it is an Ember checkpoint.
        #[arg(long)]
        force: bool,
        /// Export the averaged weights (`train.average`: EMA or SWA; or a schedule-free
        /// optimizer's evaluation point) instead of the trained ones.
        #[arg(long)]
        averaged: bool,
    },
    /// List a safetensors file's tensors (name, dtype, shape) and metadata.
    Inspect { file: PathBuf },
    /// Compare training runs: one row per run with its date, epochs, best metric, seconds
    /// per epoch and how its config differs from the first run's; or with --plot one chart
    /// of a metrics.csv column across the runs.
    Runs {
        /// Run directories, or directories of runs (`ember runs runs/` lists every run in
        /// it; default: runs).
        dirs: Vec<PathBuf>,
        /// Print a JSON array instead of the table.
        #[arg(long)]
        json: bool,
        /// Draw this metrics.csv column (eval_loss, train_acc, eval_f1[average=macro], ...)
        /// for every run, one line each, into one chart.
        #[arg(long, value_name = "METRIC")]
        plot: Option<String>,
        /// The chart file, .png or .svg (default runs-METRIC.png).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Run a trained model in evaluation mode on new inputs: the tensor `input` of a
    /// safetensors file, a CSV/TSV or Parquet table (the run's feature columns; the
    /// standardisation stored in the checkpoint applied), or an image folder in the
    /// training layout. `--out FILE.csv` writes one row per example (id, prediction, and
    /// per-class probabilities for classifiers); any other name writes the raw outputs
    /// as a safetensors tensor `output`.
    Predict {
        /// A checkpoint, a run directory, or plain weights (with --config).
        weights: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        /// A .safetensors file, a .csv/.tsv (.gz) or .parquet table, or an image folder.
        #[arg(long)]
        input: PathBuf,
        /// A .csv file (predictions) or a .safetensors file (raw outputs).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Generate a new plugin crate (compiles and passes its tests as generated).
    NewPlugin {
        /// activation, loss, optimizer, scheduler or regularizer.
        #[arg(value_parser = parse_kind)]
        kind: Kind,
        /// The plugin's registry name (snake_case), also its module's.
        name: String,
        /// The crate's package name (default NAME), e.g. ember-my_opt; the binary is
        /// ember-NAME either way.
        #[arg(long = "crate", value_name = "CRATE")]
        crate_name: Option<String>,
        /// Where to create the crate (default ./CRATE).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Ember's source directory, for the path dependencies (default: this Ember's).
        #[arg(long)]
        ember_path: Option<PathBuf>,
    },
    /// Time a component; the last line printed is a JSON object.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Check plugins against reference numbers in parity files (see PARITY.md).
    Parity {
        /// Parity files (`ember-parity/1` JSON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Run only the cases whose id contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// Print one JSON object per case and a summary object.
        #[arg(long)]
        json: bool,
        /// Where the cases run: cpu, cuda[:N], metal[:N] or auto. With
        /// EMBER_KERNELS=composed the CPU runs the device-generic path too.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Train a run config (default: the main job) and report the time per epoch and its
    /// split into phases.
    Train {
        config: Option<PathBuf>,
        #[arg(long, default_value_t = 3)]
        epochs: usize,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// CPU threads for tensor operations (default: every core).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Time reading a CSV table into tensors (`bench/tables.py` times pandas and polars on
    /// the same file).
    Table {
        file: PathBuf,
        /// The target column.
        #[arg(long)]
        target: String,
        /// Timed reads (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// Time training epochs over an image folder (one sub-directory per class): reading,
    /// decoding, random crop, flip and normalisation (mean 0.5, std 0.5) of shuffled
    /// batches (`bench/images.py` times torchvision's ImageFolder and DataLoader on the same
    /// folder).
    Images {
        /// The folder: DIR/CLASS/IMAGE.jpg or .png.
        dir: PathBuf,
        /// Resize every image to H,W (`--size 32,32`, `--size 32 32`, or `--size 32` for a
        /// square); default: the images' own size (every image must have it).
        #[arg(long, num_args = 1..=2, value_name = "H,W")]
        size: Vec<String>,
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        /// Timed epochs (the median is reported, and every epoch's time).
        #[arg(long, default_value_t = 3)]
        epochs: usize,
        /// Black pixels padded on each side before the random crop (0: no crop).
        #[arg(long, default_value_t = 4)]
        crop_padding: usize,
        /// Random horizontal flips (`--flip false`: none).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        flip: bool,
        /// CPU threads decoding the images (default: every core).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Time optimizer steps on one f32 parameter of NUMEL elements.
    Optimizer {
        /// A registered optimizer (`adam`, `sgd`, ...).
        name: String,
        /// Elements in the parameter.
        #[arg(long, default_value_t = 1 << 24)]
        numel: usize,
        /// Timed steps (after two warm-up steps).
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// The optimizer's config as a JSON object, e.g. '{"lr": 0.01}'.
        #[arg(long, default_value = "{}")]
        config: String,
        /// Time the composed-op reference path instead of the fused CPU kernel.
        #[arg(long)]
        composed: bool,
    },
}

/// The value of `--threads N` or `--threads=N` in `args`, if there is a valid one (clap
/// reports bad ones).
fn threads_arg(args: &[OsString]) -> Option<usize> {
    let args: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    args.iter().enumerate().find_map(|(i, a)| match a.strip_prefix("--threads") {
        Some("") => args.get(i + 1)?.parse().ok(),
        Some(v) => v.strip_prefix('=')?.parse().ok(),
        None => None,
    })
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    s.parse::<Kind>().map_err(|e| e.to_string())
}

/// The whole `ember` command line: parses the process arguments, runs, and exits. A
/// binary that links extra plugin crates is the full CLI with those plugins registered:
///
/// ```text
/// use my_optimizer as _;   // link the plugin crate, so its registrations exist
///
/// fn main() {
///     ember_cli::main()
/// }
/// ```
pub fn main() -> ! {
    let args: Vec<OsString> = std::env::args_os().collect();
    // The one place Ember sets environment variables (candle reads its thread count and
    // spin limit from them): here, first thing, before any thread starts.
    for (key, value) in ember_core::threads::process_env(threads_arg(&args), |k| std::env::var(k).ok()) {
        std::env::set_var(key, value);
    }
    ember_core::memory::keep_freed_buffers();
    let code = run(args, &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(code)
}

/// Runs the CLI with `args` (the first is the program name); returns the exit status.
pub fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match ember_core::ops::Kernels::from_env().and_then(|k| ember_core::env::check().map(|()| k)) {
        Ok(kernels) => ember_core::ops::set_kernels(kernels),
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 2;
        }
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let text = e.render().to_string();
            let code = e.exit_code();
            let _ = if e.use_stderr() { write!(err, "{text}") } else { write!(out, "{text}") };
            return code;
        }
    };
    let result = match cli.command {
        Command::Plugins { kind, json } => list_plugins(kind, json, out).map_err(anyhow::Error::from),
        Command::Train(args) => crate::commands::train(args, out),
        Command::NewPlugin { kind, name, crate_name, dir, ember_path } => {
            let krate = crate_name.as_deref().unwrap_or(&name);
            crate::scaffold::new_plugin(kind, &name, Some(krate), dir.as_deref(), ember_path.as_deref()).and_then(
                |root| {
                    writeln!(
                        out,
                        "created {} ({kind} plugin `{name}`, crate `{krate}`); next: cd {} && cargo test",
                        root.display(),
                        root.display()
                    )?;
                    Ok(())
                },
            )
        }
        Command::Export { checkpoint, out: dest, force, averaged } => {
            crate::commands::export(&checkpoint, &dest, force, averaged, out)
        }
        Command::Inspect { file } => crate::commands::inspect(&file, out),
        Command::Runs { dirs, json, plot, out: dest } => {
            crate::runs::runs(&dirs, json, plot.as_deref(), dest.as_deref(), out)
        }
        Command::Predict { weights, config, input, out: dest, device } => {
            crate::commands::predict(&weights, config.as_deref(), &input, &dest, &device, out)
        }
        Command::Bench { what: BenchCommand::Train { config, epochs, data_dir, device, threads: _ } } => {
            crate::bench::train(config.as_deref(), epochs, data_dir.as_deref(), &device, out)
        }
        Command::Bench { what: BenchCommand::Table { file, target, repeat } } => {
            crate::bench::table(&file, &target, repeat, out)
        }
        Command::Bench {
            what: BenchCommand::Images { dir, size, batch_size, epochs, crop_padding, flip, threads: _ },
        } => crate::bench::images(&dir, &size, batch_size, epochs, crop_padding, flip, out),
        Command::Bench { what: BenchCommand::Optimizer { name, numel, steps, config, composed } } => {
            crate::bench::optimizer(&name, numel, steps, &config, composed, out)
        }
        Command::Parity { files, filter, json, device } => match ember_core::device::parse(&device) {
            Ok(device) => return parity::run_files(&files, filter.as_deref(), json, &device, out, err),
            Err(e) => Err(e.into()),
        },
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            1
        }
    }
}

fn list_plugins(kind: Option<Kind>, json: bool, out: &mut dyn Write) -> std::io::Result<()> {
    let list = match kind {
        Some(k) => plugins(k),
        None => all_plugins(),
    };
    if json {
        let items: Vec<_> = list.iter().map(plugin_json).collect();
        return writeln!(out, "{}", serde_json::to_string_pretty(&items)?);
    }
    let kinds: Vec<Kind> = kind.map_or_else(|| Kind::ALL.to_vec(), |k| vec![k]);
    for (i, k) in kinds.into_iter().enumerate() {
        let of_kind: Vec<&PluginInfo> = list.iter().filter(|p| p.kind == k).collect();
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{} ({})", k.plural(), of_kind.len())?;
        if of_kind.is_empty() {
            writeln!(out, "  (none registered)")?;
        }
        let width = of_kind.iter().map(|p| p.name.len()).max().unwrap_or(0);
        for p in of_kind {
            writeln!(out, "  {:<width$}  {}", p.name, p.summary)?;
            for s in p.params {
                writeln!(out, "  {:<width$}    {}: {} = {}  ({})", "", s.name, s.ty, s.default, s.doc)?;
            }
        }
        if k == Kind::Layer {
            let activations: Vec<&str> = plugins(Kind::Activation).iter().map(|p| p.name).collect();
            writeln!(out, "  and every activation, with its keys: {}", activations.join(", "))?;
        }
    }
    Ok(())
}

fn plugin_json(p: &PluginInfo) -> serde_json::Value {
    let params: Vec<_> = p
        .params
        .iter()
        .map(|s| {
            let (ty, choices) = match s.ty {
                ParamType::Float => ("float", None),
                ParamType::Int => ("int", None),
                ParamType::Bool => ("bool", None),
                ParamType::Choice(c) => ("str", Some(c)),
                ParamType::FloatList => ("list[float]", None),
                ParamType::FloatTensor => ("tensor[float]", None),
                ParamType::IntList => ("list[int]", None),
                ParamType::IntOrList => ("int|list[int]", None),
                ParamType::TableList => ("list[table]", None),
            };
            let default = match s.default {
                DefaultValue::Float(x) | DefaultValue::NullableFloat(x) => json!(x),
                DefaultValue::Int(i) => json!(i),
                DefaultValue::Bool(b) => json!(b),
                DefaultValue::Str(v) => json!(v),
                DefaultValue::FloatList(l) => json!(l),
                DefaultValue::IntList(l) => json!(l),
                DefaultValue::None | DefaultValue::Required => serde_json::Value::Null,
            };
            let mut o = json!({ "name": s.name, "type": ty, "default": default, "doc": s.doc });
            if let Some(c) = choices {
                o["choices"] = json!(c);
            }
            if s.default == DefaultValue::Required {
                o["required"] = json!(true);
            }
            o
        })
        .collect();
    json!({
        "kind": p.kind.as_str(),
        "name": p.name,
        "summary": p.summary,
        "module": p.module,
        "params": params,
    })
}
