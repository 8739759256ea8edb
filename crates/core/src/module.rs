//! The `Module` trait (a layer or a model) and the forward-pass context (training or
//! evaluation mode). The `layer` plugin kind builds modules; `ember-nn` holds the
//! containers and the weights I/O.

use std::fmt::Debug;

use candle_core::{Tensor, Var};

use crate::rng;
use crate::Result;

/// What a forward pass needs besides its input: the mode (training turns dropout on)
/// and a seed from which each random layer draws a fresh, reproducible stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    train: bool,
    seed: u64,
    draws: u64,
    cumulative: bool,
    /// This pass's rows of a larger batch: (first row, rows in the whole batch).
    rows: Option<(usize, usize)>,
    /// Whether layers with running statistics fold this pass's batch into them.
    statistics: bool,
}

impl Context {
    /// Evaluation mode: dropout is the identity.
    pub fn eval() -> Self {
        Context { train: false, seed: 0, draws: 0, cumulative: false, rows: None, statistics: true }
    }

    /// Training mode; random layers draw their masks from `seed` (give a new seed, e.g.
    /// derived from the run seed and the step, to every forward pass).
    pub fn train(seed: u64) -> Self {
        Context { train: true, seed, draws: 0, cumulative: false, rows: None, statistics: true }
    }

    /// The same context, with layers that keep running statistics (batch norm) folding
    /// each batch into a cumulative average instead of their momentum's exponential one:
    /// what PyTorch's `update_bn` does by setting every batch norm's `momentum = None`
    /// after resetting its statistics.
    pub fn with_cumulative_statistics(mut self) -> Self {
        self.cumulative = true;
        self
    }

    /// The same context for a pass over rows `first..first + n` of a batch of `total`
    /// rows (a data-parallel rank's shard): random layers draw the masks of the whole
    /// batch and keep these rows, so the shards of all ranks together see exactly the
    /// masks one process would draw for the whole batch.
    pub fn with_rows(mut self, first: usize, total: usize) -> Self {
        self.rows = Some((first, total));
        self
    }

    /// The same context, with layers that keep running statistics (batch norm) leaving
    /// them as they are: a pass over a piece of a batch other than the piece that holds
    /// its first row (data-parallel ranks, `train.blocks`), so that the running
    /// statistics are updated once per batch, from that first piece, on any number of
    /// ranks (what PyTorch's DistributedDataParallel keeps: rank 0's, broadcast).
    pub fn without_statistics_update(mut self) -> Self {
        self.statistics = false;
        self
    }

    /// Whether a training pass folds its batch into running statistics
    /// ([`Context::without_statistics_update`]).
    pub fn updates_statistics(&self) -> bool {
        self.statistics
    }

    /// The shard this pass covers ([`Context::with_rows`]): (first row, rows in the
    /// whole batch); `None` for a whole batch.
    pub fn rows(&self) -> Option<(usize, usize)> {
        self.rows
    }

    /// Whether running statistics are a cumulative average in this pass
    /// ([`Context::with_cumulative_statistics`]).
    pub fn cumulative_statistics(&self) -> bool {
        self.cumulative
    }

    pub fn is_train(&self) -> bool {
        self.train
    }

    /// A fresh seed for the next random layer of this pass.
    pub fn next_seed(&mut self) -> u64 {
        self.draws += 1;
        rng::at(self.seed, self.draws)
    }
}

/// A layer or a model: a differentiable function with named, learnable parameters.
pub trait Module: Send + Sync + Debug {
    /// Applies the module to `input`.
    fn forward(&self, input: &Tensor, ctx: &mut Context) -> Result<Tensor>;

    /// The learnable parameters, named as PyTorch's state_dict names them (relative to
    /// this module: `weight`, `bias`; a `Sequential` prefixes each layer's index).
    fn named_parameters(&self) -> Vec<(String, Var)> {
        Vec::new()
    }

    /// The state that is not learned but saved with the weights (PyTorch's buffers:
    /// batch norm's `running_mean`, `running_var` and `num_batches_tracked`), named as in
    /// PyTorch's state_dict. The module updates them in place during training-mode
    /// forward passes; optimizers never see them.
    fn named_buffers(&self) -> Vec<(String, Var)> {
        Vec::new()
    }
}
