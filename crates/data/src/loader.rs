//! Datasets and the data loader.

use candle_core::{DType, Device, Tensor};
use ember_core::rng::Rng;
use ember_core::{Error, Result};

/// A finite collection of (input, target) examples that can be gathered in batches.
pub trait Dataset: Send + Sync {
    /// Number of examples.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The examples at `indices`, stacked: (inputs, targets).
    fn batch(&self, indices: &[u32]) -> Result<(Tensor, Tensor)>;

    /// The examples at `indices` as a training batch of epoch `epoch` (from 0): where a
    /// dataset augments its training examples (random crops, flips), it draws them from
    /// its seed, the epoch and each example's index, so a resumed run sees the same
    /// batches. The default is [`Dataset::batch`]; evaluation always uses `batch`.
    fn train_batch(&self, indices: &[u32], epoch: u64) -> Result<(Tensor, Tensor)> {
        let _ = epoch;
        self.batch(indices)
    }

    /// Every example's target, stacked: for the checks made before training (labels in
    /// range, shapes). The default gathers every example with [`Dataset::batch`]; a data
    /// set that decodes its inputs lazily should answer without decoding them.
    fn all_targets(&self) -> Result<Tensor> {
        let all: Vec<u32> = (0..self.len() as u32).collect();
        Ok(self.batch(&all)?.1)
    }
}

/// Inputs and targets held in memory (on the CPU); example i is row i of each.
#[derive(Clone, Debug)]
pub struct TensorDataset {
    inputs: Tensor,
    targets: Tensor,
}

impl TensorDataset {
    /// `inputs` and `targets` must have the same first dimension.
    pub fn new(inputs: Tensor, targets: Tensor) -> Result<Self> {
        if inputs.rank() == 0 || targets.rank() == 0 || inputs.dim(0)? != targets.dim(0)? {
            return Err(Error::input(format!(
                "dataset: inputs {:?} and targets {:?} must have the same number of examples (dim 0)",
                inputs.dims(),
                targets.dims()
            )));
        }
        Ok(TensorDataset { inputs: inputs.to_device(&Device::Cpu)?, targets: targets.to_device(&Device::Cpu)? })
    }

    pub fn inputs(&self) -> &Tensor {
        &self.inputs
    }

    pub fn targets(&self) -> &Tensor {
        &self.targets
    }
}

impl Dataset for TensorDataset {
    fn len(&self) -> usize {
        self.inputs.dim(0).unwrap_or(0)
    }

    fn batch(&self, indices: &[u32]) -> Result<(Tensor, Tensor)> {
        let idx = Tensor::from_slice(indices, indices.len(), &Device::Cpu)?;
        Ok((self.inputs.index_select(&idx, 0)?, self.targets.index_select(&idx, 0)?))
    }

    fn all_targets(&self) -> Result<Tensor> {
        Ok(self.targets.clone())
    }
}

/// Some examples of another data set, by index (a train/evaluation split of one folder).
/// Training batches keep the inner data set's augmentation, keyed by the inner index.
#[derive(Clone)]
pub struct Subset {
    inner: std::sync::Arc<dyn Dataset>,
    indices: Vec<u32>,
}

impl Subset {
    /// The examples of `inner` at `indices` (each must be < `inner.len()`).
    pub fn new(inner: std::sync::Arc<dyn Dataset>, indices: Vec<u32>) -> Result<Self> {
        if let Some(bad) = indices.iter().find(|&&i| i as usize >= inner.len()) {
            return Err(Error::input(format!(
                "subset: index {bad} is out of range for a data set of {} examples",
                inner.len()
            )));
        }
        Ok(Subset { inner, indices })
    }

    fn map(&self, indices: &[u32]) -> Vec<u32> {
        indices.iter().map(|&i| self.indices[i as usize]).collect()
    }
}

impl Dataset for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn batch(&self, indices: &[u32]) -> Result<(Tensor, Tensor)> {
        self.inner.batch(&self.map(indices))
    }

    fn train_batch(&self, indices: &[u32], epoch: u64) -> Result<(Tensor, Tensor)> {
        self.inner.train_batch(&self.map(indices), epoch)
    }

    fn all_targets(&self) -> Result<Tensor> {
        let all = self.inner.all_targets()?;
        let idx = Tensor::from_slice(&self.indices, self.indices.len(), &Device::Cpu)?;
        Ok(all.index_select(&idx, 0)?)
    }
}

/// Iterates a dataset in mini-batches. With `shuffle`, each epoch's order is a
/// permutation drawn from (seed, epoch), so a run is reproducible and an epoch can be
/// replayed exactly when resuming.
#[derive(Clone, Debug)]
pub struct DataLoader {
    pub batch_size: usize,
    pub shuffle: bool,
    pub drop_last: bool,
    pub seed: u64,
    pub device: Device,
    /// Inputs are converted to this dtype (targets keep theirs).
    pub dtype: DType,
}

impl DataLoader {
    pub fn new(
        batch_size: usize,
        shuffle: bool,
        drop_last: bool,
        seed: u64,
        device: Device,
        dtype: DType,
    ) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::InvalidValue {
                path: "train.batch_size".into(),
                value: "0".into(),
                rule: "must be >= 1".into(),
            });
        }
        Ok(DataLoader { batch_size, shuffle, drop_last, seed, device, dtype })
    }

    /// The example order of `epoch` (0-based).
    pub fn order(&self, len: usize, epoch: u64) -> Vec<u32> {
        let mut order: Vec<u32> = (0..len as u32).collect();
        if self.shuffle {
            // Fisher-Yates with a generator seeded from (seed, epoch).
            let mut rng = Rng::new(ember_core::rng::at(self.seed, epoch));
            for i in (1..len).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
        }
        order
    }

    /// Number of batches per epoch.
    pub fn batches(&self, len: usize) -> usize {
        if self.drop_last {
            len / self.batch_size
        } else {
            len.div_ceil(self.batch_size)
        }
    }

    /// Batch `b` of an epoch's `order`: inputs in the loader's dtype, both on its device.
    pub fn batch(&self, data: &dyn Dataset, order: &[u32], b: usize) -> Result<(Tensor, Tensor)> {
        let start = b * self.batch_size;
        let end = (start + self.batch_size).min(order.len());
        self.place(data.batch(&order[start..end])?)
    }

    /// Batch `b` of epoch `epoch`'s `order` as a training batch ([`Dataset::train_batch`]:
    /// augmented where the dataset augments).
    pub fn train_batch(&self, data: &dyn Dataset, order: &[u32], b: usize, epoch: u64) -> Result<(Tensor, Tensor)> {
        let start = b * self.batch_size;
        let end = (start + self.batch_size).min(order.len());
        self.place(data.train_batch(&order[start..end], epoch)?)
    }

    fn place(&self, (x, y): (Tensor, Tensor)) -> Result<(Tensor, Tensor)> {
        let x = if x.dtype() == self.dtype { x } else { x.to_dtype(self.dtype)? };
        Ok((x.to_device(&self.device)?, y.to_device(&self.device)?))
    }
}
