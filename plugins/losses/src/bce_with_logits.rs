//! `bce_with_logits`: sigmoid + binary cross-entropy in one stable formula (PyTorch
//! `nn.BCEWithLogitsLoss`).

use candle_core::Tensor;
use ember_core::ops::pointwise::Real;
use ember_core::ops::ternary::{apply, Ternary};
use ember_core::params::FloatTensor;
use ember_core::{Hyperparams, Loss, Result};

use crate::inputs::{broadcast_to_input, elementwise_target};
use crate::reduction::Reduction;

/// With l = (pos_weight - 1) y + 1: (1 - y) x - l · logsigmoid(x), where
/// logsigmoid(x) = min(x, 0) - log1p(exp(-|x|)); finite and exact for logits of ±100
/// and beyond. Gradient (pos_weight y + 1 - y) σ(x) - pos_weight y (σ(x) - y without
/// pos_weight). `weight` and `pos_weight` are tensors that broadcast to the input's shape,
/// as in PyTorch: `[C]` applies along the last (class) dimension, `[N, C]` per element,
/// `[C, 1, 1]` per channel of a (N, C, H, W) input.
#[derive(Clone, Debug, Default, PartialEq, Hyperparams)]
#[plugin(
    loss = "bce_with_logits",
    summary = "binary cross-entropy on raw scores (logits), stable for large logits (nn.BCEWithLogitsLoss)"
)]
pub struct BceWithLogits {
    /// rescaling weight, a tensor that broadcasts to the input's shape (C values: one per entry of the last dimension)
    pub weight: Option<FloatTensor>,
    /// weight of positive examples, a tensor that broadcasts to the input's shape (C values: one per class of the last dimension)
    pub pos_weight: Option<FloatTensor>,
    /// none: per-element losses; mean; sum
    #[param(default = "mean")]
    pub reduction: Reduction,
}

#[derive(Clone, Copy, Debug)]
struct Kernel {
    pos_weighted: bool,
}

impl Ternary for Kernel {
    const NAME: &'static str = "bce_with_logits";

    /// (x, y, pos_weight).
    fn fwd<T: Real>(&self, x: T, y: T, pw: T) -> T {
        let log_sigmoid = x.min(T::zero()) - (-x.abs()).exp().ln_1p();
        let log_weight = if self.pos_weighted { (pw - T::one()) * y + T::one() } else { T::one() };
        (T::one() - y) * x - log_weight * log_sigmoid
    }

    fn dfdx<T: Real>(&self, x: T, y: T, pw: T) -> T {
        let sigmoid = T::one() / (T::one() + (-x).exp());
        if self.pos_weighted {
            let t = pw * y;
            (t + T::one() - y) * sigmoid - t
        } else {
            sigmoid - y
        }
    }

    fn fwd_composed(&self, x: &Tensor, y: &Tensor, pw: &Tensor) -> candle_core::Result<Tensor> {
        let log_sigmoid = x.minimum(0.0)?.sub(&x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?)?;
        let weighted = if self.pos_weighted {
            pw.affine(1.0, -1.0)?.mul(y)?.affine(1.0, 1.0)?.mul(&log_sigmoid)?
        } else {
            log_sigmoid
        };
        y.affine(-1.0, 1.0)?.mul(x)?.sub(&weighted)
    }

    fn dfdx_composed(&self, x: &Tensor, y: &Tensor, pw: &Tensor) -> candle_core::Result<Tensor> {
        let sigmoid = x.neg()?.exp()?.affine(1.0, 1.0)?.recip()?;
        if self.pos_weighted {
            let t = pw.mul(y)?;
            t.add(&y.affine(-1.0, 1.0)?)?.mul(&sigmoid)?.sub(&t)
        } else {
            sigmoid.sub(y)
        }
    }
}

impl Loss for BceWithLogits {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        const NAME: &str = "bce_with_logits";
        let target = elementwise_target(NAME, input, target)?;
        let mut loss = match &self.pos_weight {
            Some(pw) => {
                let pw = broadcast_to_input(NAME, "pos_weight", pw, input)?;
                apply(&Kernel { pos_weighted: true }, input, &target, &pw)?
            }
            None => apply(&Kernel { pos_weighted: false }, input, &target, &target)?,
        };
        if let Some(w) = &self.weight {
            loss = loss.broadcast_mul(&broadcast_to_input(NAME, "weight", w, input)?)?;
        }
        self.reduction.apply(loss)
    }
}
