//! CPU threading. Ember's parallel kernels (the linear layer's products, the fused
//! optimizers) run on candle's barrier pool, whose size is `RAYON_NUM_THREADS` (every core
//! by default). After each task candle's helpers spin 25,000 times before they sleep; on
//! small machines that spinning takes the cycles the calling thread needs for the
//! single-threaded work between parallel operations (measured on two cores: the dropout
//! MLP epoch takes 1.13 s with the default spin and 0.73 s with 100).
//!
//! Both are process environment variables that candle reads, and setting environment
//! variables is only sound before other threads run: so the library never sets them.
//! [`process_env`] says what a program's `main` should set first thing (the `ember`
//! binary does, through `ember_cli::main`).

/// The spin count Ember asks candle's barrier pool for, unless
/// `CANDLE_BARRIER_POOL_SPIN_LIMIT` is already set.
pub const SPIN_LIMIT: &str = "100";

/// The environment variables a program should set at the start of `main`, before any
/// thread starts, for Ember's CPU kernels: `RAYON_NUM_THREADS` (pinned to `threads`, or
/// to every core: without it candle parses `/proc/cpuinfo` on every operation) and
/// candle's spin limit, each unless already set (an explicit `threads` always wins).
/// `get` reads the current environment.
pub fn process_env(threads: Option<usize>, get: impl Fn(&str) -> Option<String>) -> Vec<(&'static str, String)> {
    let mut vars = Vec::new();
    if get("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        vars.push(("CANDLE_BARRIER_POOL_SPIN_LIMIT", SPIN_LIMIT.to_string()));
    }
    match threads {
        Some(n) => vars.push(("RAYON_NUM_THREADS", n.max(1).to_string())),
        None if get("RAYON_NUM_THREADS").is_none() => {
            vars.push(("RAYON_NUM_THREADS", candle_core::utils::get_num_threads().to_string()))
        }
        None => {}
    }
    vars
}

/// The number of threads tensor operations use (read once).
pub fn count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(candle_core::utils::get_num_threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_threads_win_and_set_variables_are_kept() {
        let none = |_: &str| None;
        let vars = process_env(Some(3), none);
        assert!(vars.contains(&("RAYON_NUM_THREADS", "3".to_string())));
        assert!(vars.contains(&("CANDLE_BARRIER_POOL_SPIN_LIMIT", SPIN_LIMIT.to_string())));
        let set = |_: &str| Some("7".to_string());
        assert!(process_env(None, set).is_empty());
        assert_eq!(process_env(Some(0), set), [("RAYON_NUM_THREADS", "1".to_string())]);
    }
}
