//! `ember bench`: timings printed as a JSON object on the last line, to be compared with
//! PyTorch's timings (`bench/*.py`) measured in the same run on the same machine.

use std::io::Write;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use ember_core::{BuildContext, Config, StepContext};
use serde_json::json;

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
    let opt = if composed {
        ember_optimizers::composed(name, &config)?
    } else {
        ember_core::optimizer(name, &config, &BuildContext::default())?
    };
    if numel == 0 || steps == 0 {
        anyhow::bail!("--numel and --steps must be at least 1");
    }
    let param = Var::from_tensor(&Tensor::randn(0f32, 1.0, numel, &Device::Cpu)?)?;
    let grad = Tensor::randn(0f32, 1.0, numel, &Device::Cpu)?.to_dtype(DType::F32)?;
    let mut state = opt.init_state(param.as_tensor())?;
    let ctx = StepContext::new(opt.lr());
    for _ in 0..2 {
        opt.step(&param, &grad, &mut state, &ctx)?;
    }
    let start = Instant::now();
    for _ in 0..steps {
        opt.step(&param, &grad, &mut state, &ctx)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let ns_per_element = seconds * 1e9 / (steps as f64 * numel as f64);
    let summary = json!({
        "name": name,
        "numel": numel,
        "steps": steps,
        "path": if composed { "composed" } else { "default" },
        "seconds": seconds,
        "ns_per_element": ns_per_element,
    });
    writeln!(out, "{summary}")?;
    Ok(())
}
