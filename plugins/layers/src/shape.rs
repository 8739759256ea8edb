//! Layers without parameters: `flatten`, `dropout` and `identity`.

use ember_core::{check, Built, Config, Hyperparams, Layer, LayerContext, Result, Value};

/// `nn.Flatten`: dimensions `start_dim..=end_dim` (batch dimension included) into one.
#[derive(Clone, Debug, Hyperparams)]
#[plugin(layer = "flatten", summary = "flattens dimensions start_dim..=end_dim into one (nn.Flatten)")]
pub struct Flatten {
    #[param(default = 1, doc = "first dimension flattened (0 is the batch)")]
    pub start_dim: i64,
    #[param(default = -1, doc = "last dimension flattened (negative counts from the end)")]
    pub end_dim: i64,
}

impl Layer for Flatten {
    fn build(&self, input: &[usize], ctx: &mut LayerContext) -> Result<Built> {
        let module = ember_nn::Flatten { start_dim: self.start_dim, end_dim: self.end_dim };
        // The batch dimension is dimension 0 of the module's input.
        let (s, e) = module.range(input.len() + 1).map_err(|m| ctx.error(m))?;
        if s == 0 {
            return Err(ctx.error(format!(
                "start_dim = {} flattens the batch dimension; start at 1 (the default)",
                self.start_dim
            )));
        }
        let mut output = input[..s - 1].to_vec();
        output.push(input[s - 1..e].iter().product());
        output.extend_from_slice(&input[e..]);
        Ok(Built::new(module, output))
    }
}

/// `nn.Dropout`: zeroes each element with probability `p` in training mode, scaling the
/// rest by 1/(1-p); the identity in evaluation mode (the `dropout` regularizer as a layer).
#[derive(Clone, Debug, Hyperparams)]
#[plugin(layer = "dropout", summary = "zeroes elements with probability p in training (nn.Dropout)")]
pub struct Dropout {
    #[param(default = 0.5, doc = "probability of zeroing an element", check = check::unit_interval)]
    pub p: f64,
    #[param(default = false, doc = "accepted for PyTorch compatibility; Ember never overwrites its input")]
    pub inplace: bool,
}

impl Layer for Dropout {
    fn build(&self, input: &[usize], ctx: &mut LayerContext) -> Result<Built> {
        let config: Config = [("p".to_string(), Value::Float(self.p))].into_iter().collect();
        let module = ember_nn::DropoutLayer::new("dropout", &config).map_err(|e| ctx.error(e))?;
        Ok(Built::new(module, input.to_vec()))
    }
}

/// `nn.Identity`: its input, unchanged (a residual block's explicit shortcut).
#[derive(Clone, Debug, Hyperparams)]
#[plugin(layer = "identity", summary = "returns its input (nn.Identity)")]
pub struct Identity;

impl Layer for Identity {
    fn build(&self, input: &[usize], _ctx: &mut LayerContext) -> Result<Built> {
        Ok(Built::new(ember_nn::Sequential::new(), input.to_vec()))
    }
}
