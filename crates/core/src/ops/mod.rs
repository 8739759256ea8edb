//! Numerical building blocks shared by plugin crates (which never depend on each
//! other): elementwise functions given by a scalar formula and its derivative, and the
//! softmax / log-softmax normalisation, both as CPU kernels wired into candle's autograd.

pub mod fused;
pub mod linear;
pub mod normalize;
pub mod pointwise;
pub mod ternary;
