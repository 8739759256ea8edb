//! Saveable plugin state.

use std::collections::BTreeMap;

use candle_core::Tensor;

/// The state of an optimizer (per parameter) or a scheduler: named tensors plus
/// named scalars, the form checkpoints store in safetensors.
#[derive(Clone, Debug, Default)]
pub struct State {
    pub tensors: BTreeMap<String, Tensor>,
    pub scalars: BTreeMap<String, f64>,
}

impl State {
    pub fn new() -> Self {
        Self::default()
    }

    /// The tensor `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// The scalar `name`, if present.
    pub fn scalar(&self, name: &str) -> Option<f64> {
        self.scalars.get(name).copied()
    }
}
