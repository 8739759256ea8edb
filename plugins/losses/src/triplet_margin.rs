//! `triplet_margin`: max(0, margin + d(anchor, positive) - d(anchor, negative)) (PyTorch
//! `nn.TripletMarginLoss`).

use candle_core::Tensor;
use ember_core::ops::pointwise::check_float;
use ember_core::{check, Error, Hyperparams, Loss, LossArg, Result};

use crate::inputs::{clamp_min_zero, compute_dtype, not_input_target, take};
use crate::reduction::Reduction;

const NAME: &str = "triplet_margin";
const ARGS: &[LossArg] = &[LossArg::grad("anchor"), LossArg::grad("positive"), LossArg::grad("negative")];

/// For embeddings anchor a, positive p and negative n of one shape (N, D), or (D): per
/// triplet max(0, margin + d(a, p) - d(a, n)), where d is PyTorch's
/// `pairwise_distance`, ‖x - y + eps‖_p over the last dimension (eps is added to the
/// difference, not to the norm). With `swap`, d(a, n) becomes min(d(a, n), d(p, n)) (the
/// gradient split in half where they tie, as PyTorch's). Gradient 0 at the kink and where
/// a distance is 0, as PyTorch's. It takes three tensors (anchor, positive, negative):
/// call [`Loss::forward_args`], in a Learner from a custom training step.
#[derive(Clone, Copy, Debug, PartialEq, Hyperparams)]
#[plugin(
    loss = "triplet_margin",
    summary = "max(0, margin + d(anchor, positive) - d(anchor, negative)), d the p-norm distance (nn.TripletMarginLoss)"
)]
pub struct TripletMargin {
    /// how much closer the positive must be to the anchor than the negative; > 0
    #[param(default = 1.0, check = check::positive)]
    pub margin: f64,
    /// the norm degree of the distance; >= 1
    #[param(default = 2.0, check = norm_degree)]
    pub p: f64,
    /// added to every difference before its norm (pairwise_distance's eps)
    #[param(default = 1e-6, check = check::finite)]
    pub eps: f64,
    /// use min(d(anchor, negative), d(positive, negative)) as the negative distance
    #[param(default = false)]
    pub swap: bool,
    /// none: per-triplet losses; mean; sum
    #[param(default = "mean")]
    pub reduction: Reduction,
}

impl Default for TripletMargin {
    fn default() -> Self {
        Self { margin: 1.0, p: 2.0, eps: 1e-6, swap: false, reduction: Reduction::Mean }
    }
}

/// A p-norm: finite and at least 1 (PyTorch also takes p < 1, which is no norm).
fn norm_degree(v: &f64) -> check::Check {
    if v.is_finite() && *v >= 1.0 {
        Ok(())
    } else {
        Err("must be a finite number >= 1".into())
    }
}

impl TripletMargin {
    /// PyTorch's `pairwise_distance(x, y, p, eps)`: ‖x - y + eps‖_p over the last
    /// dimension, with `norm`'s gradient: sgn(d) |d|^(p-1) / ‖d‖^(p-1), 0 where ‖d‖ = 0.
    fn distance(&self, x: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
        let d = x.sub(y)?.affine(1.0, self.eps)?;
        let last = d.rank() - 1;
        // |d| differentiated as PyTorch's sgn(d): 0 at 0 (candle's abs gives 1 there).
        let abs = || -> candle_core::Result<Tensor> { d.mul(&d.sign()?.detach()) };
        if self.p == 1.0 {
            return abs()?.sum(last);
        }
        let s = if self.p == 2.0 { d.sqr()?.sum(last)? } else { abs()?.powf(self.p)?.sum(last)? };
        // Where the norm is 0 its gradient is 0 (PyTorch masks it), not 0/0: the root is
        // taken of 1 there and the result replaced by 0.
        let zero = s.eq(0.0)?;
        let safe = zero.where_cond(&s.ones_like()?, &s)?;
        let norm = if self.p == 2.0 { safe.sqrt()? } else { safe.powf(1.0 / self.p)? };
        zero.where_cond(&s.zeros_like()?, &norm)
    }
}

impl Loss for TripletMargin {
    fn forward(&self, _input: &Tensor, _target: &Tensor) -> Result<Tensor> {
        Err(not_input_target(NAME, ARGS))
    }

    fn arguments(&self) -> &'static [LossArg] {
        ARGS
    }

    fn forward_args(&self, args: &[&Tensor]) -> Result<Tensor> {
        let [a, p, n] = take::<3>(NAME, ARGS, args)?;
        for t in [a, p, n] {
            check_float(NAME, t)?;
        }
        if a.rank() == 0 || a.rank() > 2 || a.dims() != p.dims() || a.dims() != n.dims() {
            return Err(Error::input(format!(
                "{NAME}: anchor {:?}, positive {:?} and negative {:?} must have one shape, (N, D) or (D)",
                a.dims(),
                p.dims(),
                n.dims()
            )));
        }
        let dtype = a.dtype();
        let work = compute_dtype(dtype);
        let (a, p, n) = (a.to_dtype(work)?, p.to_dtype(work)?, n.to_dtype(work)?);
        let d_pos = self.distance(&a, &p)?;
        let mut d_neg = self.distance(&a, &n)?;
        if self.swap {
            // at::min of two tensors: candle's minimum, which also splits a tie's gradient.
            d_neg = d_neg.minimum(&self.distance(&p, &n)?)?;
        }
        let z = d_pos.affine(1.0, self.margin)?.sub(&d_neg)?;
        Ok(self.reduction.apply(clamp_min_zero(&z)?)?.to_dtype(dtype)?)
    }
}
