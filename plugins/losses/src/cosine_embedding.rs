//! `cosine_embedding`: 1 - cos(x1, x2) for similar pairs, max(0, cos(x1, x2) - margin)
//! for dissimilar ones (PyTorch `nn.CosineEmbeddingLoss`).

use candle_core::Tensor;
use ember_core::ops::pointwise::check_float;
use ember_core::{check, Error, Hyperparams, Loss, LossArg, Result};

use crate::inputs::{clamp_min_zero, compute_dtype, not_input_target, plus_minus_one, take};
use crate::reduction::Reduction;

const NAME: &str = "cosine_embedding";
const ARGS: &[LossArg] = &[LossArg::grad("input1"), LossArg::grad("input2"), LossArg::data("target")];

/// Added to each squared norm inside the cosine: ATen's `constexpr float EPSILON = 1e-12`
/// in `Loss.cpp`, a float, so f64 inputs get 1e-12 rounded to f32 (9.99999996e-13).
const EPSILON: f64 = 1e-12_f32 as f64;

/// For embeddings x1, x2 of shape (N, D) with labels y = ±1 of shape (N), or (D) with a
/// 0-d label: per pair the cosine, in ATen's form Σ x1 x2 / sqrt((Σ x1² + ε)(Σ x2² + ε))
/// with ε = 1e-12 (so a zero vector has cosine 0), then 1 - cos where y = 1 (similar) and
/// max(0, cos - margin) where y = -1 (dissimilar; gradient 0 at the kink, as PyTorch's).
/// It takes three tensors (input1, input2, target): call [`Loss::forward_args`], in a
/// Learner from a custom training step. PyTorch would read a label other than ±1 as
/// neither kind (loss 0); Ember rejects it.
#[derive(Clone, Copy, Debug, PartialEq, Hyperparams)]
#[plugin(
    loss = "cosine_embedding",
    summary = "1 - cos(input1, input2) where target = 1, max(0, cos - margin) where target = -1 (nn.CosineEmbeddingLoss)"
)]
pub struct CosineEmbedding {
    /// the cosine below which dissimilar pairs (target -1) cost nothing; PyTorch suggests 0 to 0.5
    #[param(default = 0.0, check = check::finite)]
    pub margin: f64,
    /// none: per-pair losses; mean; sum
    #[param(default = "mean")]
    pub reduction: Reduction,
}

impl Default for CosineEmbedding {
    fn default() -> Self {
        Self { margin: 0.0, reduction: Reduction::Mean }
    }
}

impl Loss for CosineEmbedding {
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
        let fits = x1.dims() == x2.dims()
            && match (x1.dims(), target.dims()) {
                ([n, _], [m]) => n == m,
                ([_], []) => true,
                _ => false,
            };
        if !fits {
            return Err(Error::input(format!(
                "{NAME}: needs input1 and input2 of one shape (N, D) with a target of shape (N), or (D) with a 0-d target; got input1 {:?}, input2 {:?}, target {:?}",
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
        let dim = x1.rank() - 1;
        // ATen's cosine_embedding_loss, operation by operation.
        let prod = x1.mul(&x2)?.sum(dim)?;
        let mag1 = x1.mul(&x1)?.sum(dim)?.affine(1.0, EPSILON)?;
        let mag2 = x2.mul(&x2)?.sum(dim)?.affine(1.0, EPSILON)?;
        let cos = prod.div(&mag1.mul(&mag2)?.sqrt()?)?;
        let similar = cos.affine(-1.0, 1.0)?;
        let dissimilar = clamp_min_zero(&cos.affine(1.0, -self.margin)?)?;
        let loss = y.eq(1.0)?.where_cond(&similar, &dissimilar)?;
        Ok(self.reduction.apply(loss)?.to_dtype(dtype)?)
    }
}
