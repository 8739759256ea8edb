//! Ember: a deep-learning training framework on [candle], in the spirit of Burn.
//!
//! This facade re-exports the member crates and links every built-in plugin crate, so a
//! program that depends on `ember` finds every built-in activation, loss, optimizer,
//! scheduler, regularizer, layer and metric by name:
//!
//! ```
//! let relu = ember::core::activation("relu", &Default::default(), &Default::default())?;
//! # let _ = relu;
//! # Ok::<(), ember::core::Error>(())
//! ```
//!
//! [candle]: https://github.com/huggingface/candle

//! The command line (`ember train`, `ember parity`, ...) lives in `ember-cli`, the parity
//! checker in `ember-parity`; this crate is the library.

pub use ember_core as core;
pub use ember_core::device;
pub use ember_data as data;
pub use ember_nn as nn;
pub use ember_train as train;

/// The built-in activations (`relu`, `gelu`, `softmax`, ...). Naming the crate here links
/// its registrations into every program that uses `ember`.
pub use ember_activations as activations;

/// The built-in losses (`mse`, `cross_entropy`, `bce_with_logits`, ...).
pub use ember_losses as losses;

/// The built-in optimizers (`sgd`, `adam`, `adamw`, `rmsprop`, ...).
pub use ember_optimizers as optimizers;

/// The built-in learning-rate schedulers (`step`, `cosine`, `one_cycle`, ...).
pub use ember_schedulers as schedulers;

/// The built-in regularizers (`l1`, `l2`, `elastic_net`, `max_norm`, `dropout`).
pub use ember_regularizers as regularizers;

/// The built-in layers (`linear`, `conv2d`, `max_pool2d`, `batch_norm2d`, `sequential`,
/// `residual`, ...).
pub use ember_layers as layers;

/// The built-in metrics (`accuracy`, `top_k_accuracy`, `precision`, `recall`, `f1`,
/// `mae`, `mse`, `rmse`, `r2`), with scikit-learn's formulas.
pub use ember_metrics as metrics;
