//! The `average` kind: weight averaging (`ember_nn::AveragedWeights`) against PyTorch's
//! `torch.optim.swa_utils.AveragedModel` fed the same sequence of model states.

use std::collections::HashMap;

use candle_core::Tensor;
use ember_core::Value;
use ember_nn::{AveragedWeights, Averaging};
use serde_json::Value as Json;

use super::{compare, parse_data, to_tensor, Case, CaseResultInner, Diff};

/// `name` `ema` (config `decay`, default 0.999) or `swa`; config `use_buffers` (default
/// false). Inputs `params` (and optionally `buffers`): one object of named tensors per
/// update, in the model's order. Expected `average`: the averaged state (parameters and
/// buffers) after each update.
pub(super) fn average_case(c: &Case, diff: &mut Diff) -> CaseResultInner<()> {
    c.check_expected_keys(&["average"])?;
    let expected = c.expected.get("average").and_then(Json::as_array).ok_or(
        "expected.average must be a list (one entry per update) of objects of named tensors (the averaged state_dict)",
    )?;
    for key in c.config.keys() {
        if !matches!(key.as_str(), "decay" | "use_buffers") {
            return Err(format!("config.{key} is not an averaging option; use decay (ema) and use_buffers"));
        }
    }
    let averaging = match c.name {
        "ema" => Averaging::Ema {
            decay: match c.config.get("decay") {
                None => 0.999,
                Some(Value::Float(d)) => *d,
                Some(Value::Int(d)) => *d as f64,
                Some(other) => return Err(format!("config.decay must be a number, got {other}")),
            },
        },
        "swa" if c.config.contains_key("decay") => return Err("config.decay applies to ema only".into()),
        "swa" => Averaging::Swa,
        other => return Err(format!("unknown averaging '{other}'; use ema or swa")),
    };
    let use_buffers = match c.config.get("use_buffers") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(format!("config.use_buffers must be true or false, got {other}")),
    };
    let mut avg = AveragedWeights::new(averaging, use_buffers).map_err(|e| e.to_string())?;
    let params = states(c, "params")?;
    let buffers = match c.inputs.get("buffers") {
        None => vec![Vec::new(); params.len()],
        Some(_) => states(c, "buffers")?,
    };
    if buffers.len() != params.len() || expected.len() != params.len() {
        return Err(format!(
            "inputs.params has {} updates, inputs.buffers {} and expected.average {}; give one entry per update in each",
            params.len(),
            buffers.len(),
            expected.len()
        ));
    }
    for (k, ((p, b), exp)) in params.iter().zip(&buffers).zip(expected).enumerate() {
        avg.update_from(p, b).map_err(|e| format!("update {}: {e}", k + 1))?;
        let exp = exp.as_object().ok_or_else(|| format!("expected.average[{k}] must be an object of named tensors"))?;
        let got: HashMap<String, Tensor> = avg.state_dict();
        if got.len() != exp.len() || got.keys().any(|n| !exp.contains_key(n)) {
            let mut have: Vec<&String> = got.keys().collect();
            have.sort();
            return Err(format!("expected.average[{k}] names other tensors than the average holds ({have:?})"));
        }
        let mut names: Vec<&String> = got.keys().collect();
        names.sort();
        for name in names {
            let e = parse_data(&exp[name]).map_err(|e| format!("expected.average[{k}].{name}: {e}"))?;
            compare(&format!("update {}: {name}", k + 1), &got[name], &e, c.rtol, c.atol, diff)?;
        }
    }
    Ok(())
}

/// `inputs.<key>`: a list of objects of named tensors, kept in the file's order.
fn states(c: &Case, key: &str) -> CaseResultInner<Vec<Vec<(String, Tensor)>>> {
    let list = c
        .inputs
        .get(key)
        .and_then(Json::as_array)
        .ok_or_else(|| format!("inputs.{key} must be a list (one entry per update) of objects of named tensors"))?;
    list.iter()
        .enumerate()
        .map(|(k, s)| {
            let obj = s.as_object().ok_or_else(|| format!("inputs.{key}[{k}] must be an object of named tensors"))?;
            obj.iter()
                .map(|(name, v)| {
                    let d = parse_data(v).map_err(|e| format!("inputs.{key}[{k}].{name}: {e}"))?;
                    Ok((name.clone(), to_tensor(&d, c.dtype, c.device)?))
                })
                .collect()
        })
        .collect()
}
