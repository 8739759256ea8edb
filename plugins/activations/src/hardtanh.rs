//! `hardtanh`: x clamped to [min_val, max_val] (PyTorch `nn.Hardtanh`).

use candle_core::Tensor;
use ember_core::{Activation, BuildContext, Error, Hyperparams, Result, Value};

use ember_core::ops::composed::{full_like, pick};
use ember_core::ops::pointwise::{apply, Pointwise, Real};

/// clamp(x, min_val, max_val), NaN passed through; gradient 1 strictly inside the range
/// and 0 on and beyond its ends (PyTorch's choice at the kinks).
#[derive(Clone, Copy, Debug, PartialEq, Hyperparams)]
#[plugin(activation = "hardtanh", summary = "x clamped to [min_val, max_val] (nn.Hardtanh)", build = Hardtanh::validate)]
pub struct Hardtanh {
    /// lower end of the linear region
    #[param(default = -1.0)]
    pub min_val: f64,
    /// upper end of the linear region; must be > min_val
    #[param(default = 1.0)]
    pub max_val: f64,
}

impl Hardtanh {
    /// The registry's cross-field rule: `max_val` above `min_val`.
    fn validate(self, _ctx: &BuildContext) -> Result<Self> {
        if self.min_val >= self.max_val {
            return Err(Error::InvalidValue {
                path: "hardtanh.max_val".into(),
                value: Value::Float(self.max_val).to_string(),
                rule: format!("must be greater than min_val ({:?})", self.min_val),
            });
        }
        Ok(self)
    }
}

impl Default for Hardtanh {
    fn default() -> Self {
        Self { min_val: -1.0, max_val: 1.0 }
    }
}

impl Pointwise for Hardtanh {
    const NAME: &'static str = "hardtanh";

    fn fwd<T: Real>(&self, x: T) -> T {
        let (lo, hi) = (T::of(self.min_val), T::of(self.max_val));
        if x < lo {
            lo
        } else if x > hi {
            hi
        } else {
            x
        }
    }

    fn bwd<T: Real>(&self, x: T, _y: T, g: T) -> T {
        if x <= T::of(self.min_val) || x >= T::of(self.max_val) {
            T::zero()
        } else {
            g
        }
    }

    fn fwd_composed(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (lo, hi) = (full_like(x, self.min_val)?, full_like(x, self.max_val)?);
        pick(&x.lt(self.min_val)?, &lo, &pick(&x.gt(self.max_val)?, &hi, x)?)
    }

    fn bwd_composed(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        let zero = g.zeros_like()?;
        pick(&x.le(self.min_val)?, &zero, &pick(&x.ge(self.max_val)?, &zero, g)?)
    }
}

impl Activation for Hardtanh {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        apply(self, x)
    }
}
