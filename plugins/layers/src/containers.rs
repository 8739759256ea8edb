//! Containers: `sequential` (nested layer lists) and `residual` (`body(x) + shortcut(x)`).

use ember_core::{Built, Config, Hyperparams, Layer, LayerContext, Result};
use ember_nn::build_layers;

/// `nn.Sequential`: its `layers`, in order; their state_dict names are prefixed by their
/// index (`3.0.weight` for the first layer of a sequential at index 3).
#[derive(Clone, Debug, Hyperparams)]
#[plugin(layer = "sequential", summary = "its layers applied in order (nn.Sequential)")]
pub struct Sequential {
    #[param(doc = "the layers: tables with name = \"...\" and the layer's arguments")]
    pub layers: Vec<Config>,
}

impl Layer for Sequential {
    fn build(&self, input: &[usize], ctx: &mut LayerContext) -> Result<Built> {
        let (model, output) = build_layers(&self.layers, input, ctx, "layers")?;
        Ok(Built::new(model, output))
    }
}

/// A residual block, `body(x) + shortcut(x)`, the shortcut being the identity unless
/// given; names `body.N...` and `shortcut.N...` ([`ember_nn::Residual`] shows the
/// equivalent PyTorch module).
#[derive(Clone, Debug, Hyperparams)]
#[plugin(
    layer = "residual",
    summary = "body(x) + shortcut(x), the shortcut the identity unless given (a residual block)"
)]
pub struct Residual {
    #[param(doc = "the block's layers: tables with name = \"...\" and the layer's arguments")]
    pub body: Vec<Config>,
    #[param(doc = "layers mapping the input to the body's output shape (default: the identity)")]
    pub shortcut: Option<Vec<Config>>,
}

impl Layer for Residual {
    fn build(&self, input: &[usize], ctx: &mut LayerContext) -> Result<Built> {
        let (body, out) = build_layers(&self.body, input, ctx, "body")?;
        let (shortcut, short_out) = match &self.shortcut {
            Some(s) if !s.is_empty() => {
                let (m, o) = build_layers(s, input, ctx, "shortcut")?;
                (Some(m), o)
            }
            _ => (None, input.to_vec()),
        };
        if out != short_out {
            let fix = if self.shortcut.is_some() {
                "make both produce the same shape"
            } else {
                "add a shortcut that maps the input to the body's output shape (e.g. a conv2d with kernel_size = 1 and the body's stride and out_channels), or keep the body's output shape equal to its input's"
            };
            return Err(ctx.error(format!(
                "the body's output shape {out:?} differs from the shortcut's {short_out:?} (input {input:?}); {fix}"
            )));
        }
        Ok(Built::new(ember_nn::Residual { body, shortcut }, out))
    }
}
