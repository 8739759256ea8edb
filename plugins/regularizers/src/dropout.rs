//! `dropout`: inverted dropout with reproducible masks.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use ember_core::rng::{at, unit_f32};
use ember_core::{check, Error, Hyperparams, Regularizer, RegularizerRole, Result};

/// In training mode, zeroes each element with probability p and scales the others by
/// 1/(1 - p), so the expected value is unchanged; identity in evaluation mode. Element
/// i of the mask depends only on (seed, i), so a run is reproducible whatever the thread
/// count. p = 1 gives zeros.
#[derive(Clone, Copy, Debug, PartialEq, Hyperparams)]
#[plugin(
    regularizer = "dropout",
    summary = "inverted dropout: zero each element with probability p in training, scale the rest by 1/(1-p)"
)]
pub struct Dropout {
    /// probability of zeroing an element; in [0, 1]
    #[param(check = check::probability)]
    pub p: f64,
}

impl Dropout {
    /// The scaled keep-mask for `n` elements: 0 or 1/(1 - p).
    pub fn mask(&self, n: usize, seed: u64) -> Vec<f32> {
        let keep_scale = if self.p >= 1.0 { 0.0 } else { (1.0 / (1.0 - self.p)) as f32 };
        let p = self.p as f32;
        (0..n as u64).map(|i| if unit_f32(at(seed, i)) < p { 0.0 } else { keep_scale }).collect()
    }
}

impl Regularizer for Dropout {
    fn role(&self) -> RegularizerRole {
        RegularizerRole::Noise
    }

    fn noise(&self, input: &Tensor, train: bool, seed: u64) -> Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(input.clone());
        }
        if !matches!(input.dtype(), DType::F32 | DType::F64 | DType::F16 | DType::BF16) {
            return Err(Error::input(format!("dropout: expected a float tensor, got {:?}", input.dtype())));
        }
        if self.p >= 1.0 {
            // input * 0, as PyTorch (a gradient of zeros flows back).
            return Ok(input.affine(0.0, 0.0)?);
        }
        let mask = self.mask(input.elem_count(), seed);
        if ember_core::ops::fused_on(input.device()) && matches!(input.dtype(), DType::F32 | DType::F64) {
            // One op that remembers its mask: the backward pass multiplies the gradient
            // by it, where a composed `input * mask` would also compute (and accumulate
            // into zeros) a gradient for the mask itself.
            return Ok(input.contiguous()?.apply_op1(MaskMul { mask: Arc::new(mask) })?);
        }
        let mask = Tensor::from_vec(mask, input.shape(), input.device())?.to_dtype(input.dtype())?;
        Ok(input.mul(&mask)?)
    }
}

/// `x * mask` elementwise for a contiguous CPU tensor; its gradient is `grad * mask`.
#[derive(Clone, Debug)]
struct MaskMul {
    mask: Arc<Vec<f32>>,
}

impl MaskMul {
    fn apply<T: Copy + std::ops::Mul<Output = T>>(&self, x: &[T], cast: impl Fn(f32) -> T) -> Vec<T> {
        x.iter().zip(self.mask.iter()).map(|(&v, &m)| v * cast(m)).collect()
    }
}

impl CustomOp1 for MaskMul {
    fn name(&self) -> &'static str {
        "ember-dropout"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("dropout: expected a contiguous tensor".into()))?;
        if end - start != self.mask.len() {
            return Err(candle_core::Error::Msg(format!(
                "dropout: mask of {} elements for a tensor of {}",
                self.mask.len(),
                end - start
            )));
        }
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(self.apply(&v[start..end], |m| m)),
            CpuStorage::F64(v) => CpuStorage::F64(self.apply(&v[start..end], f64::from)),
            _ => return Err(candle_core::Error::Msg("dropout: expected f32 or f64".into())),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(self)?))
    }
}
