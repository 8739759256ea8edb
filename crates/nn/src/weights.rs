//! Weights in and out: a model's parameters as a state_dict of PyTorch-named tensors,
//! saved to and loaded from safetensors files that `safetensors.torch` reads and writes.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use ember_core::{Context, Error, Result};

use crate::module::Module;

/// The model's parameters by PyTorch name (values shared with the model).
pub fn state_dict(model: &dyn Module) -> HashMap<String, Tensor> {
    model.named_parameters().into_iter().map(|(n, v)| (n, v.as_tensor().clone())).collect()
}

/// Saves the parameters to a safetensors file, PyTorch names, shapes and dtypes, so
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
    let params = model.named_parameters();
    let mut problems = Vec::new();
    for (name, var) in &params {
        match dict.get(name) {
            None => problems.push(format!("missing: {name} (shape {:?})", var.dims())),
            Some(t) if t.dims() != var.dims() => problems.push(format!(
                "wrong shape: {name} is {:?} in the file, {:?} in the model",
                t.dims(),
                var.dims()
            )),
            // Floating-point weights convert to the model's dtype (as PyTorch's
            // load_state_dict copies them); integer or boolean data is not weights.
            Some(t) if !t.dtype().is_float() => problems.push(format!(
                "wrong dtype: {name} is {:?} in the file; weights must be floating point (f16, bf16, f32 or f64)",
                t.dtype()
            )),
            Some(_) => {}
        }
    }
    let mut unexpected: Vec<&String> = dict.keys().filter(|k| !params.iter().any(|(n, _)| n == *k)).collect();
    unexpected.sort();
    problems.extend(unexpected.into_iter().map(|k| format!("unexpected: {k} (shape {:?})", dict[k].dims())));
    if !problems.is_empty() {
        return Err(Error::input(format!("the weights do not fit the model:\n  {}", problems.join("\n  "))));
    }
    for (name, var) in &params {
        let t = dict[name].to_device(var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}

/// Loads weights from a safetensors file (e.g. written by `safetensors.torch.save_file`
/// from a PyTorch state_dict) into the model, strictly (see [`load_state_dict`]).
pub fn load_safetensors(model: &dyn Module, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let dict = candle_core::safetensors::load(path, &Device::Cpu)
        .with_context(|| format!("{}: cannot read weights", path.display()))?;
    load_state_dict(model, &dict).context(path.display())
}
