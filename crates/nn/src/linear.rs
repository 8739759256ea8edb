//! `Linear`: y = x Wᵀ + b with PyTorch's layout and initialisation.

use candle_core::{DType, Device, Tensor, Var};
use ember_core::rng::Rng;
use ember_core::{Error, Result};

use ember_core::module::{Context, Module};

/// A fully connected layer, y = x·Wᵀ + b, with W of shape [out, in] (PyTorch's
/// `nn.Linear`). Accepts inputs of shape (..., in).
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Var,
    bias: Option<Var>,
}

impl Linear {
    /// A layer from existing tensors: `weight` `[out, in]`, `bias` `[out]`.
    pub fn new(weight: Var, bias: Option<Var>) -> Result<Self> {
        if weight.rank() != 2 {
            return Err(Error::input(format!("Linear: weight must be [out, in], got shape {:?}", weight.dims())));
        }
        if let Some(b) = &bias {
            if b.dims() != [weight.dim(0)?] {
                return Err(Error::input(format!(
                    "Linear: bias must have shape [{}], got {:?}",
                    weight.dim(0)?,
                    b.dims()
                )));
            }
        }
        Ok(Linear { weight, bias })
    }

    /// A layer initialised as PyTorch initialises `nn.Linear(in_features, out_features)`:
    /// weight and bias uniform in ±1/√in (kaiming-uniform with a = √5 for the weight),
    /// drawn from `rng`.
    pub fn init(
        in_features: usize,
        out_features: usize,
        bias: bool,
        rng: &mut Rng,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        if in_features == 0 || out_features == 0 {
            return Err(Error::input(format!(
                "Linear: in_features and out_features must be >= 1, got {in_features} and {out_features}"
            )));
        }
        let bound = 1.0 / (in_features as f64).sqrt();
        let mut uniform = |n: usize| -> Vec<f64> { (0..n).map(|_| rng.uniform_in(-bound, bound)).collect() };
        let weight = Tensor::from_vec(uniform(in_features * out_features), (out_features, in_features), device)?
            .to_dtype(dtype)?;
        let bias = if bias {
            Some(Var::from_tensor(&Tensor::from_vec(uniform(out_features), out_features, device)?.to_dtype(dtype)?)?)
        } else {
            None
        };
        Linear::new(Var::from_tensor(&weight)?, bias)
    }

    pub fn weight(&self) -> &Var {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Var> {
        self.bias.as_ref()
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor, _ctx: &mut Context) -> Result<Tensor> {
        let in_features = self.weight.dim(1)?;
        if x.rank() == 0 || x.dim(x.rank() - 1)? != in_features {
            return Err(Error::input(format!(
                "Linear: expected input of shape (..., {in_features}), got {:?}",
                x.dims()
            )));
        }
        let bias = self.bias.as_ref().map(|b| b.as_tensor());
        ember_core::ops::linear::linear(x, self.weight.as_tensor(), bias)
    }

    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut p = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            p.push(("bias".to_string(), b.clone()));
        }
        p
    }
}
