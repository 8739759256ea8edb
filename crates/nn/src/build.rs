//! Models declared as data: a list of layer tables (`name` and PyTorch's constructor
//! arguments) built into a [`Sequential`], each layer told the shape of its input.
//!
//! A name is looked up among the registered layers first, then among the activations,
//! so every activation is also a layer (`relu`, `gelu`, `prelu` with its weight).

use candle_core::{Tensor, Var};
use ember_core::module::{Context as Forward, Module};
use ember_core::registry::{self, Kind};
use ember_core::{Activation, Built, Config, Context, Error, Layer, LayerContext, Result, Value};

use crate::layers::ActivationLayer;
use crate::sequential::Sequential;

/// Builds the layer a table describes (`name = "conv2d"` and its arguments) for examples
/// of shape `input`. `ctx.path` names the table in errors (`model.layers[3]`).
pub fn build_layer(table: &Config, input: &[usize], ctx: &mut LayerContext) -> Result<Built> {
    let name = match table.get("name") {
        Some(Value::Str(n)) => n.clone(),
        Some(other) => {
            return Err(Error::input(format!(
                "{}.name = {other} is not a layer name; write name = \"conv2d\" (a string)",
                ctx.path
            )))
        }
        None => {
            return Err(Error::input(format!(
                "{}: no `name`; each layer table names its layer, e.g. name = \"linear\" (`ember plugins --kind layer` lists them)",
                ctx.path
            )))
        }
    };
    let config: Config = table.iter().filter(|(k, _)| *k != "name").map(|(k, v)| (k.clone(), v.clone())).collect();
    let outer = std::mem::replace(&mut ctx.name, name.clone());
    let built = build_named(&name, &config, input, ctx);
    ctx.name = outer;
    built
}

fn build_named(name: &str, config: &Config, input: &[usize], ctx: &mut LayerContext) -> Result<Built> {
    let is_layer = registry::entries::<dyn Layer>().iter().any(|e| e.name == name);
    let is_activation = registry::entries::<dyn Activation>().iter().any(|e| e.name == name);
    if is_layer || !is_activation {
        let layer = registry::layer(name, config, &ctx.build_context()).map_err(|e| unknown_or(e, name, ctx))?;
        let built = layer.build(input, ctx)?;
        if built.output.contains(&0) {
            return Err(ctx.error(format!(
                "its output would be empty (shape {:?}) for an input of shape {input:?}; use a smaller kernel, stride or dilation, or padding",
                built.output
            )));
        }
        return Ok(built);
    }
    let layer = ActivationLayer::new(name, config, &ctx.build_context()).context(ctx.at())?;
    Ok(Built::new(layer, input.to_vec()))
}

/// A layer-registry error, with the activations listed too when the name is unknown.
fn unknown_or(e: Error, name: &str, ctx: &LayerContext) -> Error {
    match e {
        Error::UnknownPlugin { known, suggestion, .. } => {
            let activations: Vec<String> =
                registry::entries::<dyn Activation>().iter().map(|e| e.name.to_string()).collect();
            let mut all = known.clone();
            all.extend(activations.iter().cloned());
            let suggestion = suggestion.or_else(|| ember_core::suggest(name, all.iter().map(String::as_str)));
            Error::Input(format!(
                "{}: unknown layer '{name}'; known layers: {}; and every activation: {}{}",
                ctx.path,
                known.join(", "),
                activations.join(", "),
                suggestion.map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default()
            ))
        }
        other => other.context(ctx.at()),
    }
}

/// Builds `tables` in order, each for the previous one's output, into a [`Sequential`]
/// labelled `0`, `1`, ... as `nn.Sequential` labels its children. `key` is the list's
/// name in errors (`model.layers[3]`, `model.layers[2].body[0]`). Returns the model and
/// the shape of one output.
pub fn build_layers(
    tables: &[Config],
    input: &[usize],
    ctx: &mut LayerContext,
    key: &str,
) -> Result<(Sequential, Vec<usize>)> {
    let parent = std::mem::take(&mut ctx.path);
    let mut shape = input.to_vec();
    let mut model = Sequential::new();
    let mut result = Ok(());
    let mut absorbed_by: Option<usize> = None;
    for (i, table) in tables.iter().enumerate() {
        if let Some(by) = absorbed_by.take() {
            let name = bare_name(table).unwrap_or_default();
            model = model.push_named(i.to_string(), Box::new(Absorbed { name, by }));
            continue;
        }
        ctx.path = if parent.is_empty() { format!("{key}[{i}]") } else { format!("{parent}.{key}[{i}]") };
        ctx.set_next(tables.get(i + 1).and_then(bare_name));
        let built = build_layer(table, &shape, ctx);
        if ctx.take_absorbed() {
            absorbed_by = Some(i);
        }
        match built {
            Ok(built) => {
                model = model.push_named(i.to_string(), built.module);
                shape = built.output;
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    ctx.set_next(None);
    ctx.path = parent;
    result.map(|()| (model, shape))
}

/// The name of a layer table that has no other key (`{ name = "relu" }`) and names an
/// activation, not a registered layer: what a layer may absorb
/// ([`LayerContext::absorb_next`]).
fn bare_name(table: &Config) -> Option<String> {
    match (table.len(), table.get("name")) {
        (1, Some(Value::Str(n))) if !registry::entries::<dyn Layer>().iter().any(|e| e.name == n) => Some(n.clone()),
        _ => None,
    }
}

/// A layer that the one before it applies in its own kernel (a `relu` after a batch
/// norm, see [`LayerContext::absorb_next`]): it passes its input through.
#[derive(Debug)]
pub struct Absorbed {
    /// The layer's registry name.
    pub name: String,
    /// The index of the layer that applies it.
    pub by: usize,
}

impl Module for Absorbed {
    fn forward(&self, x: &Tensor, _ctx: &mut Forward) -> Result<Tensor> {
        Ok(x.clone())
    }

    fn named_parameters(&self) -> Vec<(String, Var)> {
        Vec::new()
    }
}

/// `body(x) + shortcut(x)`, with the identity as the default shortcut: a residual block.
/// Its state_dict names are those of this PyTorch module (`body.0.weight`,
/// `shortcut.0.weight`), which `bench/residual.py` ships:
///
/// ```python
/// class Residual(nn.Module):
///     def __init__(self, body, shortcut=None):
///         super().__init__()
///         self.body = nn.Sequential(*body)
///         self.shortcut = nn.Sequential(*shortcut) if shortcut else None
///
///     def forward(self, x):
///         return self.body(x) + (x if self.shortcut is None else self.shortcut(x))
/// ```
#[derive(Debug)]
pub struct Residual {
    pub body: Sequential,
    pub shortcut: Option<Sequential>,
}

impl Module for Residual {
    fn forward(&self, x: &Tensor, ctx: &mut Forward) -> Result<Tensor> {
        let body = self.body.forward(x, ctx)?;
        let short = match &self.shortcut {
            Some(s) => s.forward(x, ctx)?,
            None => x.clone(),
        };
        Ok((body + short)?)
    }

    fn named_parameters(&self) -> Vec<(String, Var)> {
        prefixed(self.body.named_parameters(), self.shortcut.as_ref().map(|s| s.named_parameters()))
    }

    fn named_buffers(&self) -> Vec<(String, Var)> {
        prefixed(self.body.named_buffers(), self.shortcut.as_ref().map(|s| s.named_buffers()))
    }
}

fn prefixed(body: Vec<(String, Var)>, shortcut: Option<Vec<(String, Var)>>) -> Vec<(String, Var)> {
    let mut all: Vec<_> = body.into_iter().map(|(n, v)| (format!("body.{n}"), v)).collect();
    all.extend(shortcut.unwrap_or_default().into_iter().map(|(n, v)| (format!("shortcut.{n}"), v)));
    all
}

/// The names `ember plugins --kind layer` adds to the registered layers: every activation.
pub fn activation_layers() -> Vec<&'static str> {
    registry::plugins(Kind::Activation).iter().map(|p| p.name).collect()
}
