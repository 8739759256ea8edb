//! Ember's datasets and data loaders: a [`Dataset`] trait, an in-memory
//! [`TensorDataset`], a [`DataLoader`] (batch size, seeded shuffling, drop_last, batches
//! on the chosen device), an [`idx`] reader for the MNIST family's files, [`mnist`]:
//! Fashion-MNIST and MNIST found on disk, in the Hugging Face cache or on the hub
//! ([`hub`]), or an embedded Fashion-MNIST subset; [`csv`]: numeric tables in CSV or
//! TSV files (features and regression targets or class labels); [`image_folder`]:
//! PNG and JPEG images in one sub-directory per class, like torchvision's `ImageFolder`
//! (resizing, normalisation, seeded random crops and flips for training); and, with the
//! `hub` feature, [`parquet_table`]: the same tables read from Parquet files (numeric,
//! boolean and text-label columns, or one column of PNG or JPEG images such as Hugging
//! Face datasets store).

pub mod csv;
pub mod idx;
pub mod image_folder;
mod loader;
pub mod mnist;

pub use loader::{DataLoader, Dataset, Subset, TensorDataset};
#[cfg(feature = "hub")]
pub mod hub;
#[cfg(feature = "hub")]
pub mod parquet_table;
