//! The Lion optimizer (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms")
//! as an Ember plugin, registered as `lion`. This crate is the example of a third-party
//! optimizer crate: see its README for the walkthrough.
//!
//! A program gets the registration by linking the crate: `use ember_lion as _;`.

mod lion;

pub use lion::Lion;
