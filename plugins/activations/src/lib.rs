//! Ember's built-in activations, registered by name with PyTorch's hyperparameter names,
//! defaults and numerics: `sigmoid`, `tanh`, `relu`, `leaky_relu`, `prelu`, `elu`,
//! `selu`, `gelu`, `silu`, `softplus`, `mish`, `hardtanh`, `softmax`, `log_softmax`.
//!
//! Each elementwise activation is its PyTorch scalar formula and derivative
//! ([`ember_core::ops::pointwise`]), run by a CPU kernel and wired into candle's autograd, so values
//! and gradients (including at kinks and for inputs of ±1000) are PyTorch's. On CUDA and
//! Metal (and on the CPU under `EMBER_KERNELS=composed`) the same formulas run as composed
//! candle ops, with the same backward formulas attached.
//!
//! A program gets these registrations by linking the crate: the `ember` facade does;
//! otherwise write `use ember_activations as _;`.

mod elu;
mod gelu;
mod hardtanh;
mod leaky_relu;
mod log_softmax;
mod mish;
mod prelu;
mod relu;
mod selu;
mod sigmoid;
mod silu;
mod softmax;
mod softplus;
mod tanh;

pub use elu::Elu;
pub use gelu::{Approximate, Gelu};
pub use hardtanh::Hardtanh;
pub use leaky_relu::LeakyRelu;
pub use log_softmax::LogSoftmax;
pub use mish::Mish;
pub use prelu::Prelu;
pub use relu::Relu;
pub use selu::{Selu, SELU_ALPHA, SELU_SCALE};
pub use sigmoid::Sigmoid;
pub use silu::Silu;
pub use softmax::Softmax;
pub use softplus::Softplus;
pub use tanh::Tanh;
