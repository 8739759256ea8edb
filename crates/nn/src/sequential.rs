//! `Sequential`: layers applied in order, named like PyTorch's `nn.Sequential`.

use candle_core::{Tensor, Var};
use ember_core::Result;

use ember_core::module::{Context, Module};

/// Layers applied in order. Layer i's parameters are named `{i}.{name}` (or
/// `{label}.{name}` for a labelled layer), as in PyTorch's state_dict.
#[derive(Debug, Default)]
pub struct Sequential {
    layers: Vec<(String, Box<dyn Module>)>,
}

impl Sequential {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a layer named by its index.
    pub fn push(mut self, layer: impl Module + 'static) -> Self {
        let label = self.layers.len().to_string();
        self.layers.push((label, Box::new(layer)));
        self
    }

    /// Appends a boxed layer with an explicit label.
    pub fn push_named(mut self, label: impl Into<String>, layer: Box<dyn Module>) -> Self {
        self.layers.push((label.into(), layer));
        self
    }

    pub fn len(&self) -> usize {
        self.layers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The layers with their labels.
    pub fn layers(&self) -> impl Iterator<Item = (&str, &dyn Module)> {
        self.layers.iter().map(|(l, m)| (l.as_str(), m.as_ref()))
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Tensor, ctx: &mut Context) -> Result<Tensor> {
        let mut x = x.clone();
        for (_, layer) in &self.layers {
            x = layer.forward(&x, ctx)?;
        }
        Ok(x)
    }

    fn named_parameters(&self) -> Vec<(String, Var)> {
        self.layers
            .iter()
            .flat_map(|(label, layer)| {
                layer.named_parameters().into_iter().map(move |(n, v)| (format!("{label}.{n}"), v))
            })
            .collect()
    }

    fn named_buffers(&self) -> Vec<(String, Var)> {
        self.layers
            .iter()
            .flat_map(|(label, layer)| layer.named_buffers().into_iter().map(move |(n, v)| (format!("{label}.{n}"), v)))
            .collect()
    }
}
