//! The `Module` trait (a layer or a model) and the forward-pass context (training or
//! evaluation mode). The `layer` plugin kind builds modules; `ember-nn` holds the
//! containers and the weights I/O.

use std::fmt::Debug;
use std::sync::Arc;

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
    /// The other ranks computing the rest of the batch, for layers whose statistics
    /// span the whole batch (batch norm); `None` in one process.
    sync: Option<RowSync>,
}

impl Context {
    /// Evaluation mode: dropout is the identity.
    pub fn eval() -> Self {
        Context { train: false, seed: 0, draws: 0, cumulative: false, rows: None, statistics: true, sync: None }
    }

    /// Training mode; random layers draw their masks from `seed` (give a new seed, e.g.
    /// derived from the run seed and the step, to every forward pass).
    pub fn train(seed: u64) -> Self {
        Context { train: true, seed, draws: 0, cumulative: false, rows: None, statistics: true, sync: None }
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

    /// The same context, for a pass over one rank's rows ([`Context::with_rows`]) whose
    /// batch statistics must cover every rank's rows: batch norm sums its per-channel
    /// statistics (and, in the backward pass, their gradients) over the ranks through
    /// `sync` (PyTorch's SyncBatchNorm).
    pub fn with_sync(mut self, sync: RowSync) -> Self {
        self.sync = Some(sync);
        self
    }

    /// The ranks to sum batch statistics over ([`Context::with_sync`]).
    pub fn sync(&self) -> Option<&RowSync> {
        self.sync.as_ref()
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

/// Sums over the ranks of a data-parallel run, for layers whose statistics span the
/// whole batch: the Learner implements it over its collective.
pub trait RowSum: Send + Sync + Debug {
    /// Element-wise sum over all ranks, in place (every rank passes the same length, in
    /// the same order of calls).
    fn all_reduce_sum(&self, buf: &mut [f64]) -> Result<()>;
}

/// A shared [`RowSum`] in a [`Context`]; two handles are equal when they are the same one.
#[derive(Clone, Debug)]
pub struct RowSync(pub Arc<dyn RowSum>);

impl PartialEq for RowSync {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for RowSync {}

impl RowSync {
    /// `t` summed over the ranks (every rank gets the same values), differentiably: the
    /// gradient each rank receives for its `t` is the sum over the ranks of the
    /// gradients of their copies of the result, as PyTorch's SyncBatchNorm's backward
    /// all-reduces its statistics' gradients.
    pub fn sum(&self, t: &Tensor) -> Result<Tensor> {
        use candle_core::{DType, Device};
        let mut values = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        self.0.all_reduce_sum(&mut values)?;
        let total = Tensor::from_vec(values, t.shape(), &Device::Cpu)?.to_dtype(t.dtype())?.to_device(t.device())?;
        // total + (h - h): the value of `total` exactly, the gradient through `h`, whose
        // backward sums the incoming gradient over the ranks.
        let hooked = t.copy()?.apply_op1(SumGradients(self.0.clone()))?;
        Ok(total.add(&hooked.sub(&hooked.detach())?)?)
    }
}

/// The identity, whose gradient is summed over the ranks in the backward pass.
struct SumGradients(Arc<dyn RowSum>);

impl candle_core::CustomOp1 for SumGradients {
    fn name(&self) -> &'static str {
        "sum-gradients-over-ranks"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::CpuStorage as S;
        let Some((a, b)) = layout.contiguous_offsets() else {
            candle_core::bail!("sum-gradients-over-ranks: the input must be contiguous")
        };
        let out = match storage {
            S::F32(v) => S::F32(v[a..b].to_vec()),
            S::F64(v) => S::F64(v[a..b].to_vec()),
            S::F16(v) => S::F16(v[a..b].to_vec()),
            S::BF16(v) => S::BF16(v[a..b].to_vec()),
            _ => candle_core::bail!("sum-gradients-over-ranks: a float tensor is expected"),
        };
        Ok((out, layout.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, candle_core::Shape)> {
        use candle_core::backend::BackendStorage;
        // The input is a fresh copy: its storage is exactly its elements.
        Ok((storage.try_clone(layout)?, layout.shape().clone()))
    }

    #[cfg(feature = "metal")]
    fn metal_fwd(
        &self,
        storage: &candle_core::MetalStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::MetalStorage, candle_core::Shape)> {
        use candle_core::backend::BackendStorage;
        Ok((storage.try_clone(layout)?, layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        use candle_core::{DType, Device};
        let mut values = grad.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        self.0.all_reduce_sum(&mut values).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let g =
            Tensor::from_vec(values, grad.shape(), &Device::Cpu)?.to_dtype(grad.dtype())?.to_device(grad.device())?;
        Ok(Some(g))
    }
}
