//! The environment variables Ember (and candle, on its behalf) reads, parsed with range
//! checks: a value that is not a number, or is out of range, is an error naming the
//! variable, the value and what is allowed, never a silent default or a panic.

use crate::{Error, Result};

/// The value of `name`, or `None` when it is unset or empty.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `name` as a whole number in `min..=max` (`None` when unset).
pub fn integer(name: &str, min: u64, max: u64) -> Result<Option<u64>> {
    let Some(text) = var(name) else { return Ok(None) };
    match text.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(Error::input(format!(
            "{name}={text:?} is invalid: must be a whole number from {min} to {max}; set a valid value or unset it"
        ))),
    }
}

/// Checks every numeric variable that tensor operations read, so that a bad value is an
/// error at start instead of a silent fallback deep inside candle: `RAYON_NUM_THREADS`
/// (1 to 4096), `CANDLE_BARRIER_POOL_SPIN_LIMIT` (0 to 10^9) and
/// `EMBER_GEMM_PARALLEL_MIN` (1 to 2^62).
pub fn check() -> Result<()> {
    integer("RAYON_NUM_THREADS", 1, 4096)?;
    integer("CANDLE_BARRIER_POOL_SPIN_LIMIT", 0, 1_000_000_000)?;
    integer("EMBER_GEMM_PARALLEL_MIN", 1, 1 << 62)?;
    Ok(())
}
