//! CPU threading. Ember's parallel kernels (the linear layer's products, the fused
//! optimizers) run on candle's barrier pool, whose size is `RAYON_NUM_THREADS` (every core
//! by default). After each task candle's helpers spin 25,000 times before they sleep; on
//! small machines that spinning takes the cycles the calling thread needs for the
//! single-threaded work between parallel operations (measured on two cores: the dropout
//! MLP epoch takes 1.13 s with the default spin and 0.73 s with 100).

/// The spin count Ember asks candle's barrier pool for, unless
/// `CANDLE_BARRIER_POOL_SPIN_LIMIT` is already set.
pub const SPIN_LIMIT: &str = "100";

/// Configures candle's barrier pool for Ember's use. Call it before the first tensor
/// operation (the pool reads its settings when it starts); later calls do nothing.
pub fn configure() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
            std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", SPIN_LIMIT);
        }
    });
}

/// The number of threads tensor operations use.
pub fn count() -> usize {
    candle_core::utils::get_num_threads()
}
