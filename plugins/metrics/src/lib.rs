//! Ember's built-in metrics, registered by name, each with the formula of the
//! scikit-learn function it is named after (checked against scikit-learn by
//! `tests/parity/gen_metrics.py`):
//!
//! | metric | scikit-learn | direction |
//! |---|---|---|
//! | `accuracy` | `accuracy_score` (multi-label: exact rows) | max |
//! | `top_k_accuracy` (`k`) | `top_k_accuracy_score` | max |
//! | `precision`, `recall`, `f1` (`average`, `label`, `zero_division`, `threshold`) | `precision_score`, `recall_score`, `f1_score` | max |
//! | `mae` | `mean_absolute_error` | min |
//! | `mse` | `mean_squared_error` | min |
//! | `rmse` | `root_mean_squared_error` | min |
//! | `r2` (`force_finite`) | `r2_score` | max |
//!
//! Every metric accumulates counts or sums over a whole data set, so its value does not
//! depend on the batch size. Multi-output regression averages the per-column values
//! (scikit-learn's `multioutput="uniform_average"`).
//!
//! A program gets these registrations by linking the crate: the `ember` facade does;
//! otherwise write `use ember_metrics as _;`.

mod classification;
mod regression;

pub use classification::{Accuracy, Average, ClassScore, Ratio, TopKAccuracy};
pub use regression::{Mae, Mse, Rmse, R2};
