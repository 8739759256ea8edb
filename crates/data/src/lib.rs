//! Ember's datasets and data loaders: a [`Dataset`] trait, an in-memory
//! [`TensorDataset`], a [`DataLoader`] (batch size, seeded shuffling, drop_last, batches
//! on the chosen device), and an [`idx`] reader for the MNIST family's files.

pub mod idx;
mod loader;

pub use loader::{DataLoader, Dataset, TensorDataset};
