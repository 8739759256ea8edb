//! CPU threading. Ember's parallel kernels (the linear layer's products, the fused
//! optimizers) run on candle's barrier pool, whose size is `RAYON_NUM_THREADS` (every core
//! by default). After each task candle's helpers spin 25,000 times before they sleep; on
//! small machines that spinning takes the cycles the calling thread needs for the
//! single-threaded work between parallel operations (measured on two cores: the dropout
//! MLP epoch takes 1.13 s with the default spin and 0.73 s with 100).

/// The spin count Ember asks candle's barrier pool for, unless
/// `CANDLE_BARRIER_POOL_SPIN_LIMIT` is already set.
pub const SPIN_LIMIT: &str = "100";

/// Configures candle's barrier pool for Ember's use, and pins the thread count: candle
/// asks for it on every operation, and without `RAYON_NUM_THREADS` each ask parses
/// `/proc/cpuinfo` (46 reads in a one-epoch run on the embedded subset). Call it before
/// the first tensor operation (the pool reads its settings when it starts); later calls
/// do nothing.
pub fn configure() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
            std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", SPIN_LIMIT);
        }
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            std::env::set_var("RAYON_NUM_THREADS", candle_core::utils::get_num_threads().to_string());
        }
    });
}

/// The number of threads tensor operations use (read once).
pub fn count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| {
        configure();
        candle_core::utils::get_num_threads()
    })
}
