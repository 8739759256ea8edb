//! Ember's layers and models, compatible with PyTorch's: `Linear` keeps PyTorch's
//! [out, in] weight layout and default initialisation, `Sequential` names parameters as
//! `nn.Sequential`'s state_dict does (`0.weight`, `3.bias`, ...), activation and dropout
//! layers come from the plugin registry by name, models declared as lists of layer tables
//! are built with [`build_layers`] (each layer told its input shape), and weights save to and load from
//! safetensors files that PyTorch reads and writes.

mod average;
mod build;
mod layers;
mod linear;
mod mlp;
mod sequential;
mod weights;

pub use average::{AveragedWeights, Averaging};
pub use build::{activation_layers, build_layer, build_layers, Absorbed, Residual};
pub use ember_core::module::{Context, Module};
pub use layers::{ActivationLayer, DropoutLayer, Flatten};
pub use linear::Linear;
pub use mlp::{mlp, MlpConfig};
pub use sequential::Sequential;
pub use weights::{
    load_safetensors, load_state_dict, load_state_dict_partial, save_safetensors, state_dict, LoadReport,
};
