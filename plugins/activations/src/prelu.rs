//! `prelu`: x if x > 0, else weight * x with a learnable weight (PyTorch `nn.PReLU`).

use candle_core::{DType, Device, Tensor, Var};
use ember_core::{Activation, ActivationEntry, Error, ParamSpec, Result};

use ember_core::ops::pointwise::check_float;

/// Parametric ReLU: x if x > 0, else `weight * x`, where `weight` has `num_parameters`
/// entries (one shared slope, or one per channel along dim 1), initialised to `init`.
/// Gradients as PyTorch's: d/dx is 1 or weight (weight at x = 0); d/dweight sums x * g
/// over the elements with x <= 0.
///
/// Built from composed tensor ops (selects, not multiplications by masks), so it runs
/// on every device and an infinite input gives no NaN gradient.
#[derive(Debug)]
pub struct Prelu {
    weight: Var,
}

impl Prelu {
    /// A PReLU with `num_parameters` slopes set to `init`.
    pub fn new(num_parameters: usize, init: f64, dtype: DType, device: &Device) -> Result<Self> {
        let weight = Var::from_tensor(&Tensor::full(init, num_parameters, device)?.to_dtype(dtype)?)?;
        Ok(Self { weight })
    }

    /// A PReLU with the given slopes (shape `[num_parameters]`).
    pub fn from_weight(weight: Var) -> Self {
        Self { weight }
    }

    /// The learnable slopes, shape `[num_parameters]`.
    pub fn weight(&self) -> &Var {
        &self.weight
    }
}

impl Activation for Prelu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_float("prelu", x)?;
        let n = self.weight.elem_count();
        let rank = x.rank();
        let shape = if n == 1 {
            vec![1; rank]
        } else if rank >= 2 && x.dim(1)? == n {
            let mut s = vec![1; rank];
            s[1] = n;
            s
        } else {
            return Err(Error::input(format!(
                "prelu: num_parameters = {n} needs an input with {n} channels along dim 1, got shape {:?}; use num_parameters = 1 or match the channels",
                x.dims()
            )));
        };
        let w = self.weight.as_tensor().to_device(x.device())?.to_dtype(x.dtype())?.reshape(shape)?;
        let positive = x.gt(0.0)?;
        let zeros = x.zeros_like()?;
        let pos = positive.where_cond(x, &zeros)?;
        let neg = positive.where_cond(&zeros, x)?;
        Ok(pos.add(&neg.broadcast_mul(&w)?)?)
    }

    fn parameters(&self) -> Vec<(String, Var)> {
        vec![("weight".to_string(), self.weight.clone())]
    }
}

ember_core::inventory::submit! {
    ActivationEntry {
        name: "prelu",
        summary: "x if x > 0 else weight * x, with a learnable weight per channel (nn.PReLU)",
        params: &[
            ParamSpec::int("num_parameters", 1, "number of slopes: 1, or the channel count (dim 1 of the input)"),
            ParamSpec::float("init", 0.25, "initial value of every slope"),
        ],
        module: module_path!(),
        build: |p, ctx| {
            let n = p.int_where("num_parameters", |n| n >= 1, "must be >= 1")?;
            Ok(Box::new(Prelu::new(n as usize, p.float("init")?, ctx.dtype, &ctx.device)?))
        },
    }
}
