//! `gelu`: x * Φ(x), exact or tanh-approximated (PyTorch `nn.GELU`).

use candle_core::Tensor;
use ember_core::{Activation, Hyperparams, ParamEnum, Result};

use ember_core::ops::pointwise::{apply, Pointwise, Real};

/// Which GELU formula (PyTorch's `approximate`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ParamEnum)]
pub enum Approximate {
    /// x * 0.5 * (1 + erf(x / √2)).
    #[default]
    None,
    /// 0.5 * x * (1 + tanh(√(2/π) * (x + 0.044715 x³))).
    Tanh,
}

/// GELU, with the formulas and derivative of PyTorch's CPU kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hyperparams)]
#[plugin(activation = "gelu", summary = "Gaussian error linear unit x * Phi(x), exact or tanh approximation (nn.GELU)")]
pub struct Gelu {
    /// "none": exact erf form; "tanh": tanh approximation
    #[param(default = "none")]
    pub approximate: Approximate,
}

const SQRT1_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
const TWO_SQRTPI: f64 = std::f64::consts::FRAC_2_SQRT_PI;
const SQRT2: f64 = std::f64::consts::SQRT_2;
const KAPPA: f64 = 0.044715;

impl Pointwise for Gelu {
    const NAME: &'static str = "gelu";

    fn fwd<T: Real>(&self, x: T) -> T {
        let half = T::of(0.5);
        match self.approximate {
            Approximate::None => x * half * (T::one() + (x * T::of(SQRT1_2)).erf()),
            Approximate::Tanh => {
                let beta = T::of(SQRT2 * TWO_SQRTPI * 0.5);
                let inner = beta * (x + T::of(KAPPA) * (x * x * x));
                half * x * (T::one() + inner.tanh())
            }
        }
    }

    fn bwd<T: Real>(&self, x: T, _y: T, g: T) -> T {
        let half = T::of(0.5);
        match self.approximate {
            Approximate::None => {
                let cdf = half * (T::one() + (x * T::of(SQRT1_2)).erf());
                let pdf = T::of(TWO_SQRTPI * SQRT1_2 * 0.5) * (x * x * T::of(-0.5)).exp();
                g * (cdf + x * pdf)
            }
            Approximate::Tanh => {
                let beta = T::of(SQRT2 * TWO_SQRTPI * 0.5);
                let kappa = T::of(KAPPA);
                let x_sq = x * x;
                let x_cube = x_sq * x;
                let inner = beta * (x + kappa * x_cube);
                let tanh_inner = inner.tanh();
                let left = half * x;
                let right = T::one() + tanh_inner;
                let left_derivative = half * right;
                let right_derivative = T::one() - tanh_inner * tanh_inner;
                let inner_derivative = beta * (T::one() + T::of(3.0) * kappa * x_sq);
                g * (left_derivative + left * right_derivative * inner_derivative)
            }
        }
    }

    fn fwd_composed(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self.approximate {
            Approximate::None => x.affine(0.5, 0.0)?.mul(&x.affine(SQRT1_2, 0.0)?.erf()?.affine(1.0, 1.0)?),
            Approximate::Tanh => {
                let inner = x.add(&x.sqr()?.mul(x)?.affine(KAPPA, 0.0)?)?.affine(SQRT2 * TWO_SQRTPI * 0.5, 0.0)?;
                x.affine(0.5, 0.0)?.mul(&inner.tanh()?.affine(1.0, 1.0)?)
            }
        }
    }

    fn bwd_composed(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        match self.approximate {
            Approximate::None => {
                let cdf = x.affine(SQRT1_2, 0.0)?.erf()?.affine(0.5, 0.5)?;
                let pdf = x.sqr()?.affine(-0.5, 0.0)?.exp()?.affine(TWO_SQRTPI * SQRT1_2 * 0.5, 0.0)?;
                g.mul(&cdf.add(&x.mul(&pdf)?)?)
            }
            Approximate::Tanh => {
                let beta = SQRT2 * TWO_SQRTPI * 0.5;
                let x_sq = x.sqr()?;
                let inner = x.add(&x_sq.mul(x)?.affine(KAPPA, 0.0)?)?.affine(beta, 0.0)?;
                let tanh_inner = inner.tanh()?;
                let right = tanh_inner.affine(1.0, 1.0)?;
                let left_derivative = right.affine(0.5, 0.0)?;
                let right_derivative = tanh_inner.sqr()?.affine(-1.0, 1.0)?;
                let inner_derivative = x_sq.affine(3.0 * KAPPA, 1.0)?.affine(beta, 0.0)?;
                let slope = x.affine(0.5, 0.0)?.mul(&right_derivative)?.mul(&inner_derivative)?;
                g.mul(&left_derivative.add(&slope)?)
            }
        }
    }
}

impl Activation for Gelu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        apply(self, x)
    }
}
