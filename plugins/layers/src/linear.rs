//! `linear`: PyTorch's `nn.Linear` ([`ember_nn::Linear`]) as a layer plugin.

use ember_core::{check, Built, Hyperparams, Layer, LayerContext, Result};

/// `nn.Linear`: y = x Wᵀ + b over the last dimension.
#[derive(Clone, Debug, Hyperparams)]
#[plugin(layer = "linear", summary = "fully connected layer over the last dimension (nn.Linear)")]
pub struct Linear {
    #[param(doc = "input features (the last dimension); inferred from the input when left out")]
    pub in_features: Option<usize>,
    #[param(doc = "output features", check = check::at_least(1))]
    pub out_features: usize,
    #[param(default = true, doc = "learn an additive bias")]
    pub bias: bool,
}

impl Layer for Linear {
    fn build(&self, input: &[usize], ctx: &mut LayerContext) -> Result<Built> {
        let Some(&last) = input.last() else {
            return Err(ctx.error("expects examples with at least one dimension, got a scalar"));
        };
        let fan_in = ctx.infer("in_features", self.in_features, last, input)?;
        if fan_in == 0 {
            return Err(ctx.error(format!("the input (shape {input:?}) has no features")));
        }
        let bound = 1.0 / (fan_in as f64).sqrt();
        let weight = ctx.uniform(&[self.out_features, fan_in], bound)?;
        let bias = if self.bias { Some(ctx.uniform(&[self.out_features], bound)?) } else { None };
        let mut output = input.to_vec();
        *output.last_mut().expect("non-empty") = self.out_features;
        Ok(Built::new(ember_nn::Linear::new(weight, bias)?, output))
    }
}
