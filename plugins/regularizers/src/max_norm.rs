//! `max_norm`: rescale every slice whose L2 norm exceeds max_norm (as `torch.renorm`).

use candle_core::{DType, Tensor};
use ember_core::{check, Error, Hyperparams, Regularizer, RegularizerRole, Result};

/// After each optimizer step, every slice along `dim` (each output row of a Linear
/// weight [out, in] for dim = 0) with L2 norm above `max_norm` is scaled by
/// max_norm / (norm + 1e-7), as `torch.renorm(w, 2, dim, max_norm)` does.
#[derive(Clone, Copy, Debug, PartialEq, Hyperparams)]
#[plugin(
    regularizer = "max_norm",
    summary = "max-norm constraint: rescale slices along dim whose L2 norm exceeds max_norm (torch.renorm)"
)]
pub struct MaxNorm {
    /// largest allowed L2 norm of a slice; > 0
    #[param(check = check::positive)]
    pub max_norm: f64,
    /// the dimension whose slices are constrained (0: each output row of a Linear weight)
    #[param(default = 0)]
    pub dim: i64,
}

impl Regularizer for MaxNorm {
    fn role(&self) -> RegularizerRole {
        RegularizerRole::Constraint
    }

    fn constrain(&self, weight: &Tensor) -> Result<Tensor> {
        let rank = weight.rank() as i64;
        if rank == 0 || self.dim < -rank || self.dim >= rank {
            return Err(Error::input(format!(
                "max_norm: dim {} is out of range for a weight of shape {:?}; use a dim in [{}, {}]",
                self.dim,
                weight.dims(),
                -rank,
                rank - 1
            )));
        }
        let dim = self.dim.rem_euclid(rank) as usize;
        // Norms over every dimension but `dim`, computed in f64.
        let others: Vec<usize> = (0..weight.rank()).filter(|&d| d != dim).collect();
        let sq = weight.to_dtype(DType::F64)?.sqr()?;
        let norms = if others.is_empty() { sq.abs()? } else { sq.sum_keepdim(others)? }.sqrt()?;
        let over = norms.gt(self.max_norm)?;
        let factor = norms.affine(1.0, 1e-7)?.recip()?.affine(self.max_norm, 0.0)?;
        let factor = over.where_cond(&factor, &factor.ones_like()?)?.to_dtype(weight.dtype())?;
        Ok(weight.broadcast_mul(&factor)?)
    }
}
