//! Weights in and out: a model's parameters as a state_dict of PyTorch-named tensors,
//! saved to and loaded from safetensors files that `safetensors.torch` reads and writes.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor, Var};
use ember_core::{Context, Error, Result};

use ember_core::module::Module;

/// The model's parameters and buffers by PyTorch name (values shared with the model):
/// what PyTorch's `state_dict()` holds.
pub fn state_dict(model: &dyn Module) -> HashMap<String, Tensor> {
    named_state(model).into_iter().map(|(n, v, _)| (n, v.as_tensor().clone())).collect()
}

/// Every tensor of the state_dict, with whether it is a buffer.
fn named_state(model: &dyn Module) -> Vec<(String, Var, bool)> {
    let mut all: Vec<_> = model.named_parameters().into_iter().map(|(n, v)| (n, v, false)).collect();
    all.extend(model.named_buffers().into_iter().map(|(n, v)| (n, v, true)));
    all
}

/// Saves the parameters and buffers to a safetensors file, PyTorch names, shapes and dtypes, so
/// `model.load_state_dict(safetensors.torch.load_file(path), strict=True)` succeeds on
/// the equivalent PyTorch model.
pub fn save_safetensors(model: &dyn Module, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let dict: HashMap<String, Tensor> = state_dict(model)
        .into_iter()
        .map(|(n, t)| Ok((n, t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<Result<_>>()?;
    candle_core::safetensors::save(&dict, path).with_context(|| format!("{}: cannot write weights", path.display()))
}

/// Loads a state_dict into the model. Strict, like PyTorch's `load_state_dict`: every
/// missing, unexpected and wrong-shaped tensor is listed in one error, and nothing is
/// changed unless everything fits. Values are converted to each parameter's dtype and
/// device.
pub fn load_state_dict(model: &dyn Module, dict: &HashMap<String, Tensor>) -> Result<()> {
    let state = named_state(model);
    let mut problems = Vec::new();
    for (name, var, buffer) in &state {
        match dict.get(name) {
            None => problems.push(format!("missing: {name} (shape {:?})", var.dims())),
            Some(t) if t.dims() != var.dims() => problems.push(format!(
                "wrong shape: {name} is {:?} in the file, {:?} in the model",
                t.dims(),
                var.dims()
            )),
            // Floating-point weights convert to the model's dtype (as PyTorch's
            // load_state_dict copies them); integer or boolean data is not weights. An
            // integer buffer (a batch count) takes integers.
            Some(t) if t.dtype().is_float() != var.dtype().is_float() => problems.push(if *buffer {
                format!(
                    "wrong dtype: {name} is {:?} in the file; this buffer holds {}",
                    t.dtype(),
                    if var.dtype().is_float() { "floating point values" } else { "integers (i64)" }
                )
            } else {
                format!(
                    "wrong dtype: {name} is {:?} in the file; weights must be floating point (f16, bf16, f32 or f64)",
                    t.dtype()
                )
            }),
            Some(_) => {}
        }
    }
    let mut unexpected: Vec<&String> = dict.keys().filter(|k| !state.iter().any(|(n, _, _)| n == *k)).collect();
    unexpected.sort();
    problems.extend(unexpected.into_iter().map(|k| format!("unexpected: {k} (shape {:?})", dict[k].dims())));
    if !problems.is_empty() {
        return Err(Error::input(format!("the weights do not fit the model:\n  {}", problems.join("\n  "))));
    }
    for (name, var, _) in &state {
        let t = dict[name].to_device(var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}

/// What a non-strict load did: the tensors it set, the model's tensors the file lacks,
/// and the file's tensors the model lacks (each sorted).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    pub loaded: Vec<String>,
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
}

/// Loads what fits and lists the rest, as PyTorch's `load_state_dict(strict=False)`:
/// missing and unexpected names are reported, not errors; a tensor present in both with
/// another shape or a non-float dtype is still an error (listing every one), and then
/// nothing is changed.
pub fn load_state_dict_partial(model: &dyn Module, dict: &HashMap<String, Tensor>) -> Result<LoadReport> {
    let state = named_state(model);
    let mut report = LoadReport::default();
    let mut problems = Vec::new();
    for (name, var, _) in &state {
        match dict.get(name) {
            None => report.missing.push(name.clone()),
            Some(t) if t.dims() != var.dims() => problems.push(format!(
                "wrong shape: {name} is {:?} in the file, {:?} in the model",
                t.dims(),
                var.dims()
            )),
            Some(t) if t.dtype().is_float() != var.dtype().is_float() => problems.push(format!(
                "wrong dtype: {name} is {:?} in the file, {:?} in the model",
                t.dtype(),
                var.dtype()
            )),
            Some(_) => report.loaded.push(name.clone()),
        }
    }
    if !problems.is_empty() {
        return Err(Error::input(format!("the weights do not fit the model:\n  {}", problems.join("\n  "))));
    }
    report.unexpected = dict.keys().filter(|k| !state.iter().any(|(n, _, _)| n == *k)).cloned().collect();
    for (name, var, _) in &state {
        if let Some(t) = dict.get(name) {
            var.set(&t.to_device(var.device())?.to_dtype(var.dtype())?)?;
        }
    }
    report.loaded.sort();
    report.missing.sort();
    report.unexpected.sort();
    Ok(report)
}

/// Loads weights from a safetensors file (e.g. written by `safetensors.torch.save_file`
/// from a PyTorch state_dict) into the model, strictly (see [`load_state_dict`]).
pub fn load_safetensors(model: &dyn Module, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let dict = candle_core::safetensors::load(path, &Device::Cpu)
        .with_context(|| format!("{}: cannot read weights", path.display()))?;
    load_state_dict(model, &dict).context(path.display())
}
