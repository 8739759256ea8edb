//! `prelu`: x if x > 0, else weight * x with a learnable weight (PyTorch `nn.PReLU`).

use candle_core::{DType, Device, Tensor, Var};
use ember_core::{check, Activation, BuildContext, Error, Hyperparams, Result};

use ember_core::ops::pointwise::check_float;

/// Parametric ReLU: x if x > 0, else `weight * x`, where `weight` has `num_parameters`
/// entries (one shared slope, or one per channel along dim 1), initialised to `init`.
/// Gradients as PyTorch's: d/dx is 1 or weight (weight at x = 0); d/dweight sums x * g
/// over the elements with x <= 0.
///
/// Built from composed tensor ops (selects, not multiplications by masks), so it runs
/// on every device and an infinite input gives no NaN gradient.
///
/// The registry reads `num_parameters` and `init`, then creates the weight on the
/// [`BuildContext`]'s device and dtype. [`Hyperparams::from_params`] alone has no
/// context and leaves the weight uncreated: build with [`Prelu::new`],
/// [`Prelu::from_weight`] or the registry.
#[derive(Debug, Hyperparams)]
#[plugin(
    activation = "prelu",
    summary = "x if x > 0 else weight * x, with a learnable weight per channel (nn.PReLU)",
    build = Prelu::with_context
)]
pub struct Prelu {
    /// number of slopes: 1, or the channel count (dim 1 of the input)
    #[param(default = 1, check = check::at_least(1))]
    num_parameters: i64,
    /// initial value of every slope
    #[param(default = 0.25)]
    init: f64,
    /// The slopes, once created (always, except straight from `from_params`).
    #[param(skip)]
    weight: Option<Var>,
}

impl Prelu {
    /// A PReLU with `num_parameters` slopes set to `init`.
    pub fn new(num_parameters: usize, init: f64, dtype: DType, device: &Device) -> Result<Self> {
        let weight = Var::from_tensor(&Tensor::full(init, num_parameters, device)?.to_dtype(dtype)?)?;
        Ok(Self { num_parameters: num_parameters as i64, init, weight: Some(weight) })
    }

    /// A PReLU with the given slopes (shape `[num_parameters]`); `init` is then unknown
    /// (NaN) and unused.
    pub fn from_weight(weight: Var) -> Self {
        Self { num_parameters: weight.elem_count() as i64, init: f64::NAN, weight: Some(weight) }
    }

    /// The learnable slopes, shape `[num_parameters]`; `None` only for a `Prelu` straight
    /// from [`Hyperparams::from_params`], without the registry's [`BuildContext`].
    pub fn weight(&self) -> Option<&Var> {
        self.weight.as_ref()
    }

    /// The registry's hook: creates the weight on the context's device and dtype.
    fn with_context(self, ctx: &BuildContext) -> Result<Self> {
        Self::new(self.num_parameters as usize, self.init, ctx.dtype, &ctx.device)
    }
}

impl Activation for Prelu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_float("prelu", x)?;
        let Some(weight) = &self.weight else {
            return Err(Error::input(
                "prelu: the weight was never created; build it with Prelu::new, Prelu::from_weight or the registry",
            ));
        };
        let n = weight.elem_count();
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
        let w = weight.as_tensor().to_device(x.device())?.to_dtype(x.dtype())?.reshape(shape)?;
        let positive = x.gt(0.0)?;
        let zeros = x.zeros_like()?;
        let pos = positive.where_cond(x, &zeros)?;
        let neg = positive.where_cond(&zeros, x)?;
        Ok(pos.add(&neg.broadcast_mul(&w)?)?)
    }

    fn parameters(&self) -> Vec<(String, Var)> {
        self.weight.iter().map(|w| ("weight".to_string(), w.clone())).collect()
    }
}
