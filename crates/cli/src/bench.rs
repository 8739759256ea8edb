//! `ember bench`: timings printed as a JSON object on the last line, to be compared with
//! PyTorch's timings (`bench/*.py`) measured in the same run on the same machine.

use std::io::Write;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use ember_core::ops::{self, Kernels};
use ember_core::{registry, BuildContext, Config, StepContext};
use serde_json::json;

/// Times reading a CSV file into an f32 feature matrix and targets, `repeat` times.
pub fn table(file: &std::path::Path, target: &str, repeat: usize, out: &mut dyn Write) -> anyhow::Result<()> {
    let spec = ember_data::csv::TableSpec { target: vec![target.to_string()], ..Default::default() };
    let mut times = Vec::new();
    let mut shape = Vec::new();
    for _ in 0..repeat.max(1) {
        let start = Instant::now();
        let t = ember_data::csv::read_table(file, &spec)?;
        times.push(start.elapsed().as_secs_f64());
        shape = t.inputs.dims().to_vec();
    }
    times.sort_by(f64::total_cmp);
    let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let line = json!({
        "reader": "ember",
        "file": file.display().to_string(),
        "bytes": bytes,
        "shape": shape,
        "seconds": times[times.len() / 2],
        "mb_per_second": bytes as f64 / 1e6 / times[times.len() / 2],
    });
    writeln!(out, "{line}")?;
    Ok(())
}

/// Times `epochs` training epochs over the image folder `dir`, as training reads it: each
/// epoch a shuffled order, then every batch through [`ember_data::DataLoader::train_batch`]
/// (read, decode, random crop with `crop_padding`, flip, normalisation with mean and std
/// 0.5), the batch summed so nothing is left undone. `ImageFolder::open` only lists the
/// files and reads the first image; the images are decoded per batch, inside the epochs.
/// Prints `open_seconds`, every epoch's seconds, the median and images per second.
pub fn images(
    dir: &std::path::Path,
    size: &[String],
    batch_size: usize,
    epochs: usize,
    crop_padding: usize,
    flip: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    use ember_data::image_folder::{ImageFolder, ImageSpec};
    use ember_data::{DataLoader, Dataset};
    let size = parse_size(size)?;
    if batch_size == 0 || epochs == 0 {
        anyhow::bail!("--batch-size and --epochs must be at least 1");
    }
    let spec = ImageSpec { size, mean: vec![0.5], std: vec![0.5], crop_padding, flip, seed: 0, channels: Some(3) };
    let start = Instant::now();
    let folder = ImageFolder::open(dir, spec)?;
    let open_seconds = start.elapsed().as_secs_f64();
    let loader = DataLoader::new(batch_size, true, false, 0, Device::Cpu, DType::F32)?;
    let n = folder.len();
    let mut epoch_seconds = Vec::with_capacity(epochs);
    let mut checksum = 0f64;
    for epoch in 0..epochs as u64 {
        let start = Instant::now();
        let order = loader.order(n, epoch);
        let mut seen = 0;
        for b in 0..loader.batches(n) {
            let (x, y) = loader.train_batch(&folder, &order, b, epoch)?;
            seen += y.dim(0)?;
            checksum += x.sum_all()?.to_scalar::<f32>()? as f64;
        }
        epoch_seconds.push(start.elapsed().as_secs_f64());
        if seen != n {
            anyhow::bail!("bench images: epoch {epoch} served {seen} of {n} images");
        }
    }
    let mut sorted = epoch_seconds.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let (height, width) = folder.size();
    let line = json!({
        "loader": "ember",
        "dir": dir.display().to_string(),
        "images": n,
        "classes": folder.classes().len(),
        "shape": [folder.channels(), height, width],
        "batch_size": batch_size,
        "crop_padding": crop_padding,
        "flip": flip,
        "threads": crate::commands::ember_core_threads(),
        "open_seconds": open_seconds,
        "epoch_seconds": epoch_seconds,
        "seconds_per_epoch": median,
        "images_per_second": n as f64 / median,
        "checksum": checksum,
    });
    writeln!(out, "{line}")?;
    Ok(())
}

/// `--size`: `H,W`, `H W`, `HxW` or one number (a square); none: `None`.
fn parse_size(values: &[String]) -> anyhow::Result<Option<(usize, usize)>> {
    if values.is_empty() {
        return Ok(None);
    }
    let bad = || {
        anyhow::anyhow!(
            "--size {}: give the height and width as H,W (e.g. --size 32,32), H W, or one number for a square",
            values.join(" ")
        )
    };
    let numbers = values
        .iter()
        .flat_map(|v| v.split([',', 'x']))
        .map(|s| s.trim().parse::<usize>().map_err(|_| bad()))
        .collect::<anyhow::Result<Vec<usize>>>()?;
    match numbers[..] {
        [n] => Ok(Some((n, n))),
        [h, w] => Ok(Some((h, w))),
        _ => Err(bad()),
    }
}

/// Times `steps` optimizer steps of `name` on one f32 parameter of `numel` elements.
pub fn optimizer(
    name: &str,
    numel: usize,
    steps: usize,
    config: &str,
    composed: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let config: Config = serde_json::from_str(config)
        .map_err(|e| anyhow::anyhow!("--config must be a JSON object of hyperparameters: {e}"))?;
    let (opt, lr) = registry::optimizer_with_lr(name, &config, &BuildContext::default())?;
    if opt.closure_optimizer().is_some() {
        anyhow::bail!(
            "optimizer '{name}' steps all parameters together and re-evaluates the loss (a closure), so it has no per-element cost to time; time it in training with `ember bench train CONFIG`"
        );
    }
    // The one kernel switch: --composed runs every optimizer's composed path.
    let kernels = if composed { Kernels::Composed } else { ops::kernels() };
    if numel == 0 || steps == 0 {
        anyhow::bail!("--numel and --steps must be at least 1");
    }
    // The parameter, its gradient and up to two state buffers, f32.
    ember_core::memory::check(
        &format!("--numel {numel} (an f32 parameter, its gradient and two optimizer buffers)"),
        ember_core::memory::product(&[numel as u64, 4, 4]),
        "use a smaller --numel",
    )?;
    let param = Var::from_tensor(&Tensor::randn(0f32, 1.0, numel, &Device::Cpu)?)?;
    let grad = Tensor::randn(0f32, 1.0, numel, &Device::Cpu)?.to_dtype(DType::F32)?;
    let mut state = opt.init_state(param.as_tensor())?;
    let ctx = StepContext::new(lr);
    let (seconds, fused) = ops::with_kernels(kernels, || -> ember_core::Result<(f64, u64)> {
        for _ in 0..2 {
            opt.step(&param, &grad, &mut state, &ctx)?;
        }
        let before = ops::fused::fused_updates();
        let start = Instant::now();
        for _ in 0..steps {
            opt.step(&param, &grad, &mut state, &ctx)?;
        }
        Ok((start.elapsed().as_secs_f64(), ops::fused::fused_updates() - before))
    })?;
    let ns_per_element = seconds * 1e9 / (steps as f64 * numel as f64);
    let summary = json!({
        "name": name,
        "numel": numel,
        "steps": steps,
        // The path that ran: every step through a fused kernel, or none.
        "path": if fused >= steps as u64 { "fused" } else { "composed" },
        "seconds": seconds,
        "ns_per_element": ns_per_element,
    });
    writeln!(out, "{summary}")?;
    Ok(())
}

/// Trains `config` (default: the main job) for `epochs` and prints the median seconds per
/// epoch after the first, the training steps per second, the final test accuracy and the
/// mean time per phase (after the first epoch) as the last line.
pub fn train(
    config: Option<&std::path::Path>,
    epochs: usize,
    data_dir: Option<&std::path::Path>,
    device: &str,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    use ember_train::config::DataConfig;
    let mut run = match config {
        Some(p) => ember_train::RunConfig::from_file(p)?,
        None => ember_train::RunConfig::from_toml(crate::commands::DEFAULT_CONFIG, "fashion_mnist_dropout.toml")?,
    };
    if let Some(d) = data_dir {
        let dir = Some(d.display().to_string());
        run.data = match run.data {
            DataConfig::Mnist { .. } => DataConfig::Mnist { dir },
            _ => DataConfig::FashionMnist { dir },
        };
    }
    if epochs == 0 {
        anyhow::bail!("--epochs must be at least 1");
    }
    run.train.epochs = epochs;
    let dir = std::env::temp_dir().join(format!("ember-bench-{}", std::process::id()));
    let mut learner =
        ember_train::Learner::new(run, ember_core::device::parse(device)?, &dir, ember_train::Reporter::Stderr)?;
    let summary = learner.fit();
    let phases = learner.phase_history().to_vec();
    let history = learner.progress().history.clone();
    let _ = std::fs::remove_dir_all(&dir);
    let summary = summary?;
    let steady: Vec<&ember_train::Phases> =
        if phases.len() > 1 { phases[1..].iter().collect() } else { phases.iter().collect() };
    let n = steady.len().max(1) as f64;
    let mean = |f: fn(&ember_train::Phases) -> f64| steady.iter().map(|p| f(p)).sum::<f64>() / n;
    let mut secs: Vec<f64> = history.iter().skip(if history.len() > 1 { 1 } else { 0 }).map(|r| r.seconds).collect();
    secs.sort_by(|a, b| a.total_cmp(b));
    let median = secs.get(secs.len() / 2).copied().unwrap_or(f64::NAN);
    let train_time = mean(|p| p.data + p.forward + p.loss + p.backward + p.optimizer);
    let steps = learner.progress().step as f64 / history.len().max(1) as f64;
    let line = json!({
        "epochs": summary.epochs,
        "seconds_per_epoch": median,
        "steps_per_second": steps / train_time,
        "eval_acc": summary.last.as_ref().map(|r| r.eval_acc),
        "data": learner.data_source(),
        "threads": crate::commands::ember_core_threads(),
        "phases": {
            "data": mean(|p| p.data),
            "forward": mean(|p| p.forward),
            "loss": mean(|p| p.loss),
            "backward": mean(|p| p.backward),
            "optimizer": mean(|p| p.optimizer),
            "eval": mean(|p| p.eval),
            "output": mean(|p| p.output),
            "logging": mean(|p| p.logging),
        },
    });
    writeln!(out, "{line}")?;
    Ok(())
}
