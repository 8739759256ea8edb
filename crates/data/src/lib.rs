//! Ember's datasets and data loaders (IDX files, Fashion-MNIST, batching on a device).
//! Not written yet: this crate reserves the name and its place in the workspace; it
//! arrives with the data issue.
