//! `embedding`: PyTorch's `nn.Embedding`, a lookup table of learned vectors.

use candle_core::{DType, Tensor, Var};
use ember_core::module::{Context, Module};
use ember_core::{check, Built, Error, Hyperparams, Layer, LayerContext, Result};

/// `nn.Embedding`: each index in the input becomes row `index` of `weight`.
#[derive(Clone, Debug, Hyperparams)]
#[plugin(layer = "embedding", summary = "lookup table of learned vectors for class indices (nn.Embedding)")]
pub struct Embedding {
    #[param(doc = "size of the table (indices are 0..num_embeddings)", check = check::at_least(1))]
    pub num_embeddings: usize,
    #[param(doc = "size of each vector", check = check::at_least(1))]
    pub embedding_dim: usize,
    #[param(doc = "an index whose row stays zero and gets no gradient (negative counts from the end)")]
    pub padding_idx: Option<i64>,
    #[param(doc = "must be None: renormalising rows is not supported")]
    pub max_norm: Option<f64>,
    #[param(default = 2.0, doc = "the norm of max_norm (unused without it)")]
    pub norm_type: f64,
    #[param(default = false, doc = "must be false")]
    pub scale_grad_by_freq: bool,
    #[param(default = false, doc = "must be false: gradients are dense")]
    pub sparse: bool,
}

impl Layer for Embedding {
    fn build(&self, input: &[usize], ctx: &mut LayerContext) -> Result<Built> {
        if self.max_norm.is_some() || self.scale_grad_by_freq || self.sparse {
            return Err(ctx.error(
                "max_norm, scale_grad_by_freq and sparse are not supported; leave them out (None, false, false)",
            ));
        }
        let n = self.num_embeddings as i64;
        let padding = match self.padding_idx {
            None => None,
            Some(p) if (-n..n).contains(&p) => Some(if p < 0 { p + n } else { p } as usize),
            Some(p) => {
                return Err(ctx.error(format!(
                    "padding_idx = {p} is outside the table of num_embeddings = {n}; use an index in -{n}..{n}"
                )))
            }
        };
        let weight = ctx.normal(&[self.num_embeddings, self.embedding_dim])?;
        // The padding row starts at zero (PyTorch's reset_parameters) and gets no gradient.
        let mask = match padding {
            Some(p) => {
                let rows: Vec<f64> = (0..self.num_embeddings).map(|i| if i == p { 0.0 } else { 1.0 }).collect();
                let mask = Tensor::from_vec(rows, (self.num_embeddings, 1), &candle_core::Device::Cpu)?
                    .to_dtype(ctx.dtype)?
                    .to_device(&ctx.device)?;
                weight.set(&weight.as_tensor().broadcast_mul(&mask)?)?;
                Some(mask)
            }
            None => None,
        };
        let mut output = input.to_vec();
        output.push(self.embedding_dim);
        Ok(Built::new(EmbeddingModule { weight, mask }, output))
    }
}

/// The embedding module: `weight` `[num_embeddings, embedding_dim]`.
#[derive(Debug)]
pub struct EmbeddingModule {
    weight: Var,
    /// 0 on the padding row, 1 elsewhere (`[num_embeddings, 1]`).
    mask: Option<Tensor>,
}

impl Module for EmbeddingModule {
    fn forward(&self, x: &Tensor, _ctx: &mut Context) -> Result<Tensor> {
        // Inputs arrive in the model's dtype from data loaders: whole numbers as floats.
        let idx = if x.dtype().is_float() { x.to_dtype(DType::I64)? } else { x.clone() };
        let (v, d) = self.weight.dims2()?;
        let flat = idx.flatten_all()?;
        // The range check reads two numbers back to the host: on the CPU only, so that a
        // GPU's forward pass makes no round trip.
        if flat.elem_count() > 0 && flat.device().is_cpu() {
            let (lo, hi) = (flat.min(0)?.to_scalar::<i64>()?, flat.max(0)?.to_scalar::<i64>()?);
            if lo < 0 || hi >= v as i64 {
                return Err(Error::input(format!(
                    "embedding: indices {lo}..={hi} are outside the table of num_embeddings = {v}"
                )));
            }
        }
        let w = self.weight.as_tensor();
        // The padding row's values pass through, its gradient does not: w·m + stop(w)·(1-m).
        let table = match &self.mask {
            Some(m) => (w.broadcast_mul(m)? + w.detach().broadcast_mul(&m.affine(-1.0, 1.0)?)?)?,
            None => w.clone(),
        };
        let mut dims = x.dims().to_vec();
        dims.push(d);
        Ok(table.index_select(&flat, 0)?.reshape(dims)?)
    }

    fn named_parameters(&self) -> Vec<(String, Var)> {
        vec![("weight".to_string(), self.weight.clone())]
    }
}
