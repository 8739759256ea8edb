//! What every schedule keeps: the step counter (PyTorch's `last_epoch`) and the base
//! learning rates, saved as scalars.

use ember_core::{Error, Result, State};

/// `last_epoch` and `base_lrs`, as PyTorch's `LRScheduler` keeps them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    pub last_epoch: i64,
    pub base_lrs: Vec<f64>,
}

impl Progress {
    /// Captures the base learning rates (PyTorch's `initial_lr`) at construction.
    pub fn start(lrs: &[f64]) -> Self {
        Progress { last_epoch: 0, base_lrs: lrs.to_vec() }
    }

    /// The state as scalars: `last_epoch`, `base_lr.0`, `base_lr.1`, ...
    pub fn to_state(&self) -> State {
        let mut state = State::new();
        state.scalars.insert("last_epoch".into(), self.last_epoch as f64);
        for (i, lr) in self.base_lrs.iter().enumerate() {
            state.scalars.insert(format!("base_lr.{i}"), *lr);
        }
        state
    }

    /// Restores what [`Progress::to_state`] wrote.
    pub fn load(name: &str, state: &State) -> Result<Self> {
        let last_epoch = scalar(name, state, "last_epoch")? as i64;
        let base_lrs = (0..).map_while(|i| state.scalar(&format!("base_lr.{i}"))).collect();
        Ok(Progress { last_epoch, base_lrs })
    }

    /// The base learning rate of group `i`.
    pub fn base(&self, i: usize) -> Result<f64> {
        self.base_lrs.get(i).copied().ok_or_else(|| {
            Error::input(format!(
                "scheduler initialised with {} parameter groups, stepped with more",
                self.base_lrs.len()
            ))
        })
    }
}

/// A saved scalar, or an error naming it.
pub fn scalar(name: &str, state: &State, key: &str) -> Result<f64> {
    state.scalar(key).ok_or_else(|| Error::input(format!("{name}: the saved scheduler state has no '{key}'")))
}
