//! Ember's integration tests, one module per area, linked into one test binary (each
//! binary links the whole stack, and CI builds the suite twice: CPU and `--features
//! cuda`). Run one area with `cargo test --test suite learner::`.
//!
//! Kept apart: `tests/registry.rs` (it links the fixture plugin crates, whose extra
//! registrations would show in every listing here), `tests/gpu.rs` (the GPU smoke tests)
//! and `tests/new_plugin.rs` (it builds a generated crate with its own cargo).

#[path = "../common/mod.rs"]
mod common;

mod activations;
mod average;
mod composed;
mod data;
mod device;
mod examples;
mod fuzz_corpus;
mod hub;
mod layers;
mod learner;
mod linear;
mod loss_broadcast;
mod losses;
mod metrics;
mod nn;
mod optimizers;
mod parity;
mod runs;
mod tasks;
mod visibility;
