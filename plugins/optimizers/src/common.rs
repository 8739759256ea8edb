//! Pieces specific to this crate's optimizers: Adam's moment update (shared by `adam`,
//! `nadam` and `radam`), PyTorch's `betas` hyperparameter, and the error for a state
//! that lacks a buffer this configuration needs. The tensor primitives themselves
//! (`lerp`, `addcmul`, ...) are `ember_core::optim`'s.

use candle_core::Tensor;
use ember_core::optim::{addcmul, lerp};
use ember_core::{Error, Result};

/// Adam's moment updates: m ← lerp(m, g, 1-β1), v ← β2·v + (1-β2)·g², from the state
/// buffers `exp_avg` (m) and `exp_avg_sq` (v); the caller stores them back.
pub fn adam_moments(
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    g: &Tensor,
    (b1, b2): (f64, f64),
) -> Result<(Tensor, Tensor)> {
    let m = lerp(exp_avg, g, 1.0 - b1)?;
    let v = addcmul(&exp_avg_sq.affine(b2, 0.0)?, g, g, 1.0 - b2)?;
    Ok((m, v))
}

/// The error for a state without the buffer `name` that this configuration needs (a
/// state saved by another optimizer or configuration).
pub fn missing(optimizer: &str, name: &str) -> Error {
    Error::input(format!(
        "{optimizer}: the optimizer state has no '{name}' buffer (state saved by another optimizer or configuration?)"
    ))
}

pub use ember_core::optim::Betas;
