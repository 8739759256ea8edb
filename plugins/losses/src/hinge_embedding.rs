//! `hinge_embedding`: x where y = 1, max(0, margin - x) where y = -1 (PyTorch
//! `nn.HingeEmbeddingLoss`).

use candle_core::Tensor;
use ember_core::ops::composed::{full_like, pick};
use ember_core::ops::pointwise::{check_float, Real};
use ember_core::ops::ternary::{apply2, Ternary};
use ember_core::{check, Error, Hyperparams, Loss, Result};

use crate::inputs::{host_values, same_shape};
use crate::reduction::Reduction;

/// For an input x (typically a distance between two embeddings, e.g. their L1 distance)
/// and labels y = ±1 of the same shape: x where y = 1 (similar pairs), max(0, margin - x)
/// where y = -1 (dissimilar pairs). Gradient 1 where y = 1; -1 where y = -1 and
/// margin - x > 0, else 0 (0 at the kink x = margin, as PyTorch). PyTorch would read
/// any other label as both kinds at once; Ember rejects it.
#[derive(Clone, Copy, Debug, PartialEq, Hyperparams)]
#[plugin(
    loss = "hinge_embedding",
    summary = "input where target = 1, max(0, margin - input) where target = -1 (nn.HingeEmbeddingLoss)"
)]
pub struct HingeEmbedding {
    /// how far dissimilar pairs (target -1) are pushed: the loss is max(0, margin - input)
    #[param(default = 1.0, check = check::finite)]
    pub margin: f64,
    /// none: per-element losses; mean; sum
    #[param(default = "mean")]
    pub reduction: Reduction,
}

impl Default for HingeEmbedding {
    fn default() -> Self {
        Self { margin: 1.0, reduction: Reduction::Mean }
    }
}

/// PyTorch's composite: where(y != 1, clamp_min(margin - x, 0), 0) + where(y != -1, x, 0).
#[derive(Clone, Copy, Debug)]
struct Kernel {
    margin: f64,
}

impl Ternary for Kernel {
    const NAME: &'static str = "hinge_embedding";

    fn fwd<T: Real>(&self, x: T, y: T, _: T) -> T {
        let m = T::of(self.margin) - x;
        let clamped = if m < T::zero() { T::zero() } else { m };
        let from_margin = if y != T::one() { clamped } else { T::zero() };
        let from_self = if y != -T::one() { x } else { T::zero() };
        from_margin + from_self
    }

    fn dfdx<T: Real>(&self, x: T, y: T, _: T) -> T {
        let m = T::of(self.margin) - x;
        let from_margin = if y != T::one() && m > T::zero() { -T::one() } else { T::zero() };
        let from_self = if y != -T::one() { T::one() } else { T::zero() };
        from_margin + from_self
    }

    fn fwd_composed(&self, x: &Tensor, y: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        let zero = x.zeros_like()?;
        let m = x.affine(-1.0, self.margin)?;
        let clamped = pick(&m.lt(0.0)?, &zero, &m)?;
        let from_margin = pick(&y.ne(1.0)?, &clamped, &zero)?;
        let from_self = pick(&y.ne(-1.0)?, x, &zero)?;
        from_margin.add(&from_self)
    }

    fn dfdx_composed(&self, x: &Tensor, y: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        let zero = x.zeros_like()?;
        let m = x.affine(-1.0, self.margin)?;
        let inside = pick(&m.gt(0.0)?, &full_like(x, -1.0)?, &zero)?;
        let from_margin = pick(&y.ne(1.0)?, &inside, &zero)?;
        let from_self = pick(&y.ne(-1.0)?, &full_like(x, 1.0)?, &zero)?;
        from_margin.add(&from_self)
    }
}

impl Loss for HingeEmbedding {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        check_float("hinge_embedding", input)?;
        same_shape("hinge_embedding", input, target)?;
        if let Some((i, v)) = host_values(target)?.into_iter().enumerate().find(|(_, v)| *v != 1.0 && *v != -1.0) {
            return Err(Error::input(format!(
                "hinge_embedding: every target must be 1 (similar) or -1 (dissimilar), got {v} at flat index {i}; map 0/1 labels to -1/1 with 2y - 1"
            )));
        }
        let target = target.to_dtype(input.dtype())?;
        self.reduction.apply(apply2(&Kernel { margin: self.margin }, input, &target)?)
    }
}
