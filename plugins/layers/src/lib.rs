//! Ember's built-in layers, registered by name with PyTorch's constructor arguments,
//! defaults, initialisation and `state_dict` names (buffers included):
//!
//! | name | PyTorch |
//! |---|---|
//! | `linear` | `nn.Linear` |
//! | `conv1d`, `conv2d` | `nn.Conv1d`, `nn.Conv2d` (stride, padding, dilation, groups, bias; `padding_mode = "zeros"`) |
//! | `max_pool2d`, `avg_pool2d` | `nn.MaxPool2d`, `nn.AvgPool2d` (ceil_mode, count_include_pad, divisor_override) |
//! | `adaptive_avg_pool2d` | `nn.AdaptiveAvgPool2d` |
//! | `batch_norm1d`, `batch_norm2d` | `nn.BatchNorm1d`, `nn.BatchNorm2d` (running statistics, `momentum = None`, eval mode, `num_batches_tracked`) |
//! | `layer_norm`, `group_norm` | `nn.LayerNorm`, `nn.GroupNorm` |
//! | `embedding` | `nn.Embedding` (padding_idx) |
//! | `flatten`, `dropout`, `identity` | `nn.Flatten`, `nn.Dropout`, `nn.Identity` |
//! | `sequential` | `nn.Sequential` (nested: `layers = [...]`) |
//! | `residual` | `body(x) + shortcut(x)` ([`ember_nn::Residual`]) |
//!
//! Every registered activation is a layer too (`ember_nn::build_layer` falls back to the
//! activation registry). Arguments the input shape implies (`in_features`,
//! `in_channels`, `num_features`, `num_channels`, `normalized_shape` of a 1-d input) may be
//! left out; given, they are checked against the shape.
//!
//! Convolutions and pooling are composed from candle ops (padding, strided window views,
//! one batched matrix product), so they run on every device and stay there, and their
//! gradients come from candle's autograd.
//!
//! A program gets these registrations by linking the crate: the `ember` facade does;
//! otherwise write `use ember_layers as _;`.

mod containers;
mod conv;
mod embedding;
mod linear;
mod norm;
mod pool;
mod shape;
mod window;

pub use containers::{Residual, Sequential};
pub use conv::{conv2d, conv2d_composed, Conv, Conv1d, Conv2d, PaddingMode};
pub use embedding::Embedding;
pub use linear::Linear;
pub use norm::{BatchNorm, BatchNormArgs, GroupNorm, LayerNorm};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
pub use shape::{Dropout, Flatten, Identity};
pub use window::Geometry;
