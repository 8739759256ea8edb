//! Parameter-free layers and registry-built layers: `Flatten`, activation layers and
//! dropout layers.

use candle_core::{Tensor, Var};
use ember_core::{registry, Activation, BuildContext, Config, Error, Regularizer, RegularizerRole, Result};

use ember_core::module::{Context, Module};

/// Flattens dimensions `start_dim..=end_dim` into one (PyTorch `nn.Flatten`, whose
/// default (1, -1) turns (N, 1, 28, 28) into (N, 784)). Negative dimensions count from
/// the end.
#[derive(Clone, Copy, Debug)]
pub struct Flatten {
    pub start_dim: i64,
    pub end_dim: i64,
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten { start_dim: 1, end_dim: -1 }
    }
}

impl Flatten {
    /// The dimensions flattened for an input of `rank` (batch dimension included), or why
    /// they do not exist.
    pub fn range(&self, rank: usize) -> std::result::Result<(usize, usize), String> {
        let resolve = |d: i64| -> Option<usize> {
            let d = if d < 0 { d + rank as i64 } else { d };
            (0..rank as i64).contains(&d).then_some(d as usize)
        };
        match (resolve(self.start_dim), resolve(self.end_dim)) {
            (Some(s), Some(e)) if s <= e => Ok((s, e)),
            _ => Err(format!(
                "start_dim = {} and end_dim = {} do not name dimensions start <= end of an input with {rank} dimensions (batch included)",
                self.start_dim, self.end_dim
            )),
        }
    }
}

impl Module for Flatten {
    fn forward(&self, x: &Tensor, _ctx: &mut Context) -> Result<Tensor> {
        if x.rank() < 2 {
            return Ok(x.clone());
        }
        let (s, e) = self.range(x.rank()).map_err(Error::input)?;
        Ok(x.flatten(s, e)?)
    }
}

/// An activation from the registry as a layer (PReLU's learnable `weight` included).
#[derive(Debug)]
pub struct ActivationLayer {
    pub name: String,
    activation: Box<dyn Activation>,
}

impl ActivationLayer {
    /// The registered activation `name` with `config`.
    pub fn new(name: &str, config: &Config, ctx: &BuildContext) -> Result<Self> {
        Ok(ActivationLayer { name: name.to_string(), activation: registry::activation(name, config, ctx)? })
    }
}

impl Module for ActivationLayer {
    fn forward(&self, x: &Tensor, _ctx: &mut Context) -> Result<Tensor> {
        self.activation.forward(x)
    }

    fn named_parameters(&self) -> Vec<(String, Var)> {
        self.activation.parameters()
    }
}

/// A noise regularizer from the registry (normally `dropout`) as a layer: active in
/// training mode, the identity in evaluation mode.
#[derive(Debug)]
pub struct DropoutLayer {
    noise: Box<dyn Regularizer>,
}

impl DropoutLayer {
    /// The registered regularizer `name` (a noise regularizer) with `config`.
    pub fn new(name: &str, config: &Config) -> Result<Self> {
        let noise = registry::regularizer(name, config, &BuildContext::default())?;
        if noise.role() != RegularizerRole::Noise {
            return Err(Error::input(format!(
                "regularizer '{name}' is a {:?}, not a noise layer; use it as a penalty or constraint",
                noise.role()
            )));
        }
        Ok(DropoutLayer { noise })
    }
}

impl Module for DropoutLayer {
    fn forward(&self, x: &Tensor, ctx: &mut Context) -> Result<Tensor> {
        if !ctx.is_train() {
            return Ok(x.clone());
        }
        let seed = ctx.next_seed();
        match ctx.rows() {
            // A shard of a larger batch: the noise of the whole batch (the shard placed
            // among zero rows), then the shard's rows, so every rank draws what one
            // process would draw for those rows.
            Some((first, total)) if x.rank() > 0 && total != x.dim(0)? => {
                let n = x.dim(0)?;
                if first + n > total {
                    return Err(Error::input(format!("dropout: rows {first}..{} of a batch of {total}", first + n)));
                }
                let pad = |rows: usize| -> Result<Tensor> {
                    let mut dims = x.dims().to_vec();
                    dims[0] = rows;
                    Ok(Tensor::zeros(dims, x.dtype(), x.device())?)
                };
                let mut parts = Vec::with_capacity(3);
                if first > 0 {
                    parts.push(pad(first)?);
                }
                parts.push(x.clone());
                if total > first + n {
                    parts.push(pad(total - first - n)?);
                }
                let whole = Tensor::cat(&parts, 0)?;
                Ok(self.noise.noise(&whole, true, seed)?.narrow(0, first, n)?)
            }
            _ => self.noise.noise(x, true, seed),
        }
    }
}
