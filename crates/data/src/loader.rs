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

    /// Batch `b` of `epoch`: inputs in the loader's dtype, both on its device.
    pub fn batch(&self, data: &dyn Dataset, order: &[u32], b: usize) -> Result<(Tensor, Tensor)> {
        let start = b * self.batch_size;
        let end = (start + self.batch_size).min(order.len());
        let (x, y) = data.batch(&order[start..end])?;
        let x = if x.dtype() == self.dtype { x } else { x.to_dtype(self.dtype)? };
        Ok((x.to_device(&self.device)?, y.to_device(&self.device)?))
    }
}
