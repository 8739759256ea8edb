//! Ember's layers and models (`Module`, `Linear`, `Sequential`, an MLP builder), with
//! PyTorch's initialisation and state-dict names. Not written yet: this crate reserves
//! the name and its place in the workspace; it arrives with the modules issue.
