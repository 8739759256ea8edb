//! Ember's datasets and data loaders: a [`Dataset`] trait, an in-memory
//! [`TensorDataset`], a [`DataLoader`] (batch size, seeded shuffling, drop_last, batches
//! on the chosen device), an [`idx`] reader for the MNIST family's files, [`mnist`]:
//! Fashion-MNIST and MNIST found on disk, in the Hugging Face cache or on the hub
//! ([`hub`]), or an embedded Fashion-MNIST subset; and [`csv`]: numeric tables in CSV or
//! TSV files (features and regression targets or class labels).

pub mod csv;
pub mod idx;
mod loader;
pub mod mnist;

pub use loader::{DataLoader, Dataset, TensorDataset};
#[cfg(feature = "hub")]
pub mod hub;
