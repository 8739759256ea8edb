//! Ember's built-in regularizers, registered by name: the penalties `l1`, `l2` and
//! `elastic_net` (added to the loss over chosen parameters), the constraint `max_norm`
//! (applied after each optimizer step), and the noise `dropout` (a layer active only in
//! training). Exact definitions: PARITY.md.
//!
//! A program gets these registrations by linking the crate: the `ember` facade does;
//! otherwise write `use ember_regularizers as _;`.

mod dropout;
mod elastic_net;
mod l1;
mod l2;
mod max_norm;
mod penalty;

pub use dropout::Dropout;
pub use elastic_net::ElasticNet;
pub use l1::L1;
pub use l2::L2;
pub use max_norm::MaxNorm;
