//! Ember's datasets and data loaders: a [`Dataset`] trait, an in-memory
//! [`TensorDataset`], a [`DataLoader`] (batch size, seeded shuffling, drop_last, batches
//! on the chosen device), an [`idx`] reader for the MNIST family's files, and [`mnist`]:
//! Fashion-MNIST and MNIST found on disk, in the Hugging Face cache or on the hub
//! ([`hub`]), or an embedded Fashion-MNIST subset.

pub mod idx;
mod loader;
pub mod mnist;

pub use loader::{DataLoader, Dataset, TensorDataset};
#[cfg(feature = "hub")]
pub mod hub;
