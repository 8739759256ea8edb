//! `bce`: binary cross-entropy on probabilities (PyTorch `nn.BCELoss`).

use candle_core::{DType, Tensor};
use ember_core::ops::pointwise::Real;
use ember_core::ops::ternary::{apply2, Ternary};
use ember_core::params::FloatTensor;
use ember_core::{Error, Hyperparams, Loss, Result};

use crate::inputs::{broadcast_to_input, elementwise_target};
use crate::reduction::Reduction;

/// -w (y log x + (1 - y) log(1 - x)) for probabilities x in [0, 1], with each log
/// clamped at -100 as PyTorch clamps it (so x = 0 or 1 gives 100, not inf); gradient
/// w (x - y) / max(x (1 - x), ε) with PyTorch's ε (1e-12 as f32). `weight` is a tensor
/// that broadcasts to the input's shape, as in PyTorch (`[C]` scales the last dimension,
/// `[N, 1]` each sample, `[N, C]` each element). Pair it with a `sigmoid` output, or use
/// `bce_with_logits` on raw scores.
#[derive(Clone, Debug, Default, PartialEq, Hyperparams)]
#[plugin(loss = "bce", summary = "binary cross-entropy on probabilities, logs clamped at -100 (nn.BCELoss)")]
pub struct Bce {
    /// rescaling weight, a tensor that broadcasts to the input's shape (C values: one per entry of the last dimension)
    pub weight: Option<FloatTensor>,
    /// none: per-element losses; mean; sum
    #[param(default = "mean")]
    pub reduction: Reduction,
}

#[derive(Clone, Copy, Debug)]
struct Kernel;

const EPSILON: f32 = 1e-12;

impl Ternary for Kernel {
    const NAME: &'static str = "bce";

    fn fwd<T: Real>(&self, x: T, y: T, _: T) -> T {
        let floor = T::of(-100.0);
        (y - T::one()) * (-x).ln_1p().max(floor) - y * x.ln().max(floor)
    }

    fn dfdx<T: Real>(&self, x: T, y: T, _: T) -> T {
        // PyTorch's EPSILON is the f32 nearest 1e-12, in every dtype.
        (x - y) / ((T::one() - x) * x).max(T::of(EPSILON as f64))
    }

    fn fwd_composed(&self, x: &Tensor, y: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        let log_1mx = x.affine(-1.0, 1.0)?.log()?.maximum(-100.0)?;
        let log_x = x.log()?.maximum(-100.0)?;
        y.affine(1.0, -1.0)?.mul(&log_1mx)?.sub(&y.mul(&log_x)?)
    }

    fn dfdx_composed(&self, x: &Tensor, y: &Tensor, _: &Tensor) -> candle_core::Result<Tensor> {
        x.sub(y)?.div(&x.affine(-1.0, 1.0)?.mul(x)?.maximum(EPSILON as f64)?)
    }
}

/// Errors unless every element of `t` lies in [0, 1].
fn check_unit_range(what: &str, t: &Tensor, hint: &str) -> Result<()> {
    let values = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !(0.0..=1.0).contains(*v)) {
        return Err(Error::input(format!(
            "bce: every {what} value must be in [0, 1], got {v} at flat index {i}{hint}"
        )));
    }
    Ok(())
}

impl Loss for Bce {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        let target = elementwise_target("bce", input, target)?;
        check_unit_range(
            "input",
            input,
            "; bce takes probabilities (apply sigmoid first, or use bce_with_logits on raw scores)",
        )?;
        check_unit_range("target", &target, "")?;
        let mut loss = apply2(&Kernel, input, &target)?;
        if let Some(w) = &self.weight {
            loss = loss.broadcast_mul(&broadcast_to_input("bce", "weight", w, input)?)?;
        }
        self.reduction.apply(loss)
    }
}
