//! `multilabel_soft_margin`: one-vs-all logistic loss over C labels (PyTorch
//! `nn.MultiLabelSoftMarginLoss`).

use candle_core::Tensor;
use ember_core::ops::composed::pick;
use ember_core::ops::pointwise::Real;
use ember_core::ops::ternary::{apply2, Ternary};
use ember_core::params::FloatTensor;
use ember_core::{Error, Hyperparams, Loss, Result};

use crate::inputs::{broadcast_with_input, elementwise_target};
use crate::reduction::Reduction;

/// For input and 0/1 target of shape (N, C) or (C): per sample,
/// -(1/C) Σ_c w_c (y_c logσ(x_c) + (1 - y_c) logσ(-x_c)); then `reduction` over the N
/// samples (`none` gives N values). `weight` is a tensor that broadcasts with the input, as
/// in PyTorch: `[C]` per class, `[N, 1]` per sample, `[N, C]` per element. Like PyTorch,
/// a weight of more dimensions than the input (`[K, N, C]` for an (N, C) input) makes the
/// per-element losses `[K, N, C]`, summed over dimension 1 (the input's class dimension)
/// into K·C values.
#[derive(Clone, Debug, Default, PartialEq, Hyperparams)]
#[plugin(
    loss = "multilabel_soft_margin",
    summary = "multi-label one-vs-all logistic loss, averaged over classes (nn.MultiLabelSoftMarginLoss)"
)]
pub struct MultilabelSoftMargin {
    /// rescaling weight, a tensor that broadcasts with the input (C values: one per class)
    pub weight: Option<FloatTensor>,
    /// none: per-element losses; mean; sum
    #[param(default = "mean")]
    pub reduction: Reduction,
}

/// PyTorch's log_sigmoid and its derivative.
fn log_sigmoid<T: Real>(x: T) -> T {
    x.min(T::zero()) - (-x.abs()).exp().ln_1p()
}

/// [`log_sigmoid`] in candle ops.
fn log_sigmoid_composed(x: &Tensor) -> candle_core::Result<Tensor> {
    x.minimum(0.0)?.sub(&x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?)
}

/// [`log_sigmoid_grad`] in candle ops.
fn log_sigmoid_grad_composed(x: &Tensor) -> candle_core::Result<Tensor> {
    let z = x.abs()?.neg()?.exp()?;
    let s = z.div(&z.affine(1.0, 1.0)?)?;
    pick(&x.lt(0.0)?, &s.affine(-1.0, 1.0)?, &s)
}

fn log_sigmoid_grad<T: Real>(x: T) -> T {
    let z = (-x.abs()).exp();
    if x < T::zero() {
        T::one() - z / (T::one() + z)
    } else {
        z / (T::one() + z)
    }
}

#[derive(Clone, Copy, Debug)]
struct Kernel;

impl Ternary for Kernel {
    const NAME: &'static str = "multilabel_soft_margin";

    fn fwd<T: Real>(&self, x: T, y: T, _: T) -> T {
        -(y * log_sigmoid(x) + (T::one() - y) * log_sigmoid(-x))
    }

    fn dfdx<T: Real>(&self, x: T, y: T, _: T) -> T {
        -(y * log_sigmoid_grad(x) - (T::one() - y) * log_sigmoid_grad(-x))
    }

    fn fwd_composed(&self, x: &Tensor, y: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        let pos = y.mul(&log_sigmoid_composed(x)?)?;
        let neg = y.affine(-1.0, 1.0)?.mul(&log_sigmoid_composed(&x.neg()?)?)?;
        pos.add(&neg)?.neg()
    }

    fn dfdx_composed(&self, x: &Tensor, y: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        let pos = y.mul(&log_sigmoid_grad_composed(x)?)?;
        let neg = y.affine(-1.0, 1.0)?.mul(&log_sigmoid_grad_composed(&x.neg()?)?)?;
        pos.sub(&neg)?.neg()
    }
}

impl Loss for MultilabelSoftMargin {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        let target = elementwise_target("multilabel_soft_margin", input, target)?;
        if !matches!(input.rank(), 1 | 2) {
            return Err(Error::input(format!(
                "multilabel_soft_margin: input must be (C) or (N, C), got shape {:?}",
                input.dims()
            )));
        }
        let class_dim = input.rank() - 1;
        let mut loss = apply2(&Kernel, input, &target)?;
        if let Some(w) = &self.weight {
            loss = loss.broadcast_mul(&broadcast_with_input("multilabel_soft_margin", "weight", w, input)?)?;
        }
        let classes = input.dim(class_dim)? as f64;
        let per_sample = loss.sum(class_dim)?.affine(1.0 / classes, 0.0)?;
        self.reduction.apply(per_sample)
    }
}
