//! `margin_ranking`: max(0, -target * (input1 - input2) + margin) (PyTorch
//! `nn.MarginRankingLoss`).

use candle_core::Tensor;
use ember_core::ops::pointwise::check_float;
use ember_core::{check, Error, Hyperparams, Loss, LossArg, Result};

use crate::inputs::{clamp_min_zero, compute_dtype, not_input_target, plus_minus_one, take};
use crate::reduction::Reduction;

const NAME: &str = "margin_ranking";
const ARGS: &[LossArg] = &[LossArg::grad("input1"), LossArg::grad("input2"), LossArg::data("target")];

/// For two scores x1, x2 and labels y = ±1, all of one shape: max(0, -y (x1 - x2) +
/// margin), so y = 1 asks for x1 ranked above x2 by at least `margin`, y = -1 for x2
/// above x1. Gradients -y and y where the term is > 0, else 0 (0 at the kink, as
/// PyTorch's). It takes three tensors (input1, input2, target): call
/// [`Loss::forward_args`], in a Learner from a custom training step. PyTorch would read
/// a label other than ±1 as a weight; Ember rejects it.
#[derive(Clone, Copy, Debug, PartialEq, Hyperparams)]
#[plugin(
    loss = "margin_ranking",
    summary = "max(0, -target * (input1 - input2) + margin) over (input1, input2, target = +-1) (nn.MarginRankingLoss)"
)]
pub struct MarginRanking {
    /// how far the preferred score must exceed the other one
    #[param(default = 0.0, check = check::finite)]
    pub margin: f64,
    /// none: per-element losses; mean; sum
    #[param(default = "mean")]
    pub reduction: Reduction,
}

impl Default for MarginRanking {
    fn default() -> Self {
        Self { margin: 0.0, reduction: Reduction::Mean }
    }
}

impl Loss for MarginRanking {
    fn forward(&self, _input: &Tensor, _target: &Tensor) -> Result<Tensor> {
        Err(not_input_target(NAME, ARGS))
    }

    fn arguments(&self) -> &'static [LossArg] {
        ARGS
    }

    fn forward_args(&self, args: &[&Tensor]) -> Result<Tensor> {
        let [x1, x2, target] = take::<3>(NAME, ARGS, args)?;
        check_float(NAME, x1)?;
        check_float(NAME, x2)?;
        if x1.dims() != x2.dims() || x1.dims() != target.dims() {
            return Err(Error::input(format!(
                "{NAME}: input1 {:?}, input2 {:?} and target {:?} must have one shape",
                x1.dims(),
                x2.dims(),
                target.dims()
            )));
        }
        plus_minus_one(NAME, target)?;
        let dtype = x1.dtype();
        let work = compute_dtype(dtype);
        let (x1, x2) = (x1.to_dtype(work)?, x2.to_dtype(work)?);
        let y = target.detach().to_dtype(work)?;
        // PyTorch's order: (-target * (input1 - input2) + margin).clamp_min_(0).
        let z = y.affine(-1.0, 0.0)?.mul(&x1.sub(&x2)?)?.affine(1.0, self.margin)?;
        Ok(self.reduction.apply(clamp_min_zero(&z)?)?.to_dtype(dtype)?)
    }
}
