//! Parameter-free layers and registry-built layers: `Flatten`, activation layers and
//! dropout layers.

use candle_core::{Tensor, Var};
use ember_core::{registry, Activation, BuildContext, Config, Error, Regularizer, RegularizerRole, Result};

use crate::module::{Context, Module};

/// Flattens dimensions 1.. into one (PyTorch `nn.Flatten()`): (N, 1, 28, 28) → (N, 784).
#[derive(Clone, Copy, Debug, Default)]
pub struct Flatten;

impl Module for Flatten {
    fn forward(&self, x: &Tensor, _ctx: &mut Context) -> Result<Tensor> {
        if x.rank() < 2 {
            return Ok(x.clone());
        }
        Ok(x.flatten_from(1)?)
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
        self.noise.noise(x, true, seed)
    }
}
