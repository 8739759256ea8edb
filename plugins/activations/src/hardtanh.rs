//! `hardtanh`: x clamped to [min_val, max_val] (PyTorch `nn.Hardtanh`).

use candle_core::Tensor;
use ember_core::{Activation, ActivationEntry, ParamSpec, Result};

use ember_core::ops::composed::{full_like, pick};
use ember_core::ops::pointwise::{apply, Pointwise, Real};

/// clamp(x, min_val, max_val), NaN passed through; gradient 1 strictly inside the range
/// and 0 on and beyond its ends (PyTorch's choice at the kinks).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hardtanh {
    pub min_val: f64,
    pub max_val: f64,
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

ember_core::inventory::submit! {
    ActivationEntry {
        name: "hardtanh",
        summary: "x clamped to [min_val, max_val] (nn.Hardtanh)",
        params: &[
            ParamSpec::float("min_val", -1.0, "lower end of the linear region"),
            ParamSpec::float("max_val", 1.0, "upper end of the linear region; must be > min_val"),
        ],
        module: module_path!(),
        build: |p, _| {
            let min_val = p.float("min_val")?;
            let max_val = p.float("max_val")?;
            if min_val >= max_val {
                return Err(p.invalid("max_val", format!("must be greater than min_val ({min_val:?})")));
            }
            Ok(Box::new(Hardtanh { min_val, max_val }))
        },
    }
}
