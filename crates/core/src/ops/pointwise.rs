//! The shared machinery of elementwise activations: a CPU kernel that applies the
//! activation's scalar formula (in PyTorch's order of operations, so results match to the
//! last bits) and a backward kernel that applies its derivative, hooked into candle's
//! autograd as a custom op.
//!
//! Tensors on other devices take a round trip through the CPU kernel, so every device
//! gets the same numbers.

use std::fmt::Debug;

use crate::{Error, Result};
use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp1, CustomOp3, DType, Device, Layout, Shape, Tensor,
};
use half::{bf16, f16};

/// Scalar types the kernels compute in: f32 and f64 (f16 and bf16 compute in f32, as
/// PyTorch does).
pub trait Real: num_traits::Float + Debug + Send + Sync + 'static {
    /// `v` rounded to this type (hyperparameters are stored as f64).
    fn of(v: f64) -> Self;
    /// The error function.
    fn erf(self) -> Self;
}

impl Real for f32 {
    fn of(v: f64) -> Self {
        v as f32
    }
    fn erf(self) -> Self {
        libm::erff(self)
    }
}

impl Real for f64 {
    fn of(v: f64) -> Self {
        v
    }
    fn erf(self) -> Self {
        libm::erf(self)
    }
}

/// An elementwise activation given by its scalar formula and derivative.
pub trait Pointwise: Clone + Debug + Send + Sync + 'static {
    /// The registry name, used in error messages.
    const NAME: &'static str;
    /// y = f(x).
    fn fwd<T: Real>(&self, x: T) -> T;
    /// The gradient with respect to x, given x, y = f(x) and the output gradient g.
    fn bwd<T: Real>(&self, x: T, y: T, g: T) -> T;
}

/// Applies `op` to `x`, differentiably.
pub fn apply<P: Pointwise>(op: &P, x: &Tensor) -> Result<Tensor> {
    check_float(P::NAME, x)?;
    on_cpu(x, |x| Ok(x.contiguous()?.apply_op1(Forward(op.clone()))?))
}

/// Runs `f` on a CPU copy of `x` when `x` lives elsewhere, moving the result back; the
/// moves are differentiable.
pub fn on_cpu(x: &Tensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    if x.device().is_cpu() {
        f(x)
    } else {
        Ok(f(&x.to_device(&Device::Cpu)?)?.to_device(x.device())?)
    }
}

/// The clear error for integer inputs.
pub fn check_float(name: &str, x: &Tensor) -> Result<()> {
    match x.dtype() {
        DType::F32 | DType::F64 | DType::F16 | DType::BF16 => Ok(()),
        other => Err(Error::input(format!(
            "{name}: expected a float tensor (f32, f64, f16 or bf16), got {other:?}; convert it with `to_dtype` first"
        ))),
    }
}

fn slice<'a, T>(v: &'a [T], layout: &Layout) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&v[start..end]),
        None => {
            candle_core::bail!("internal error: activation kernel given a non-contiguous tensor")
        }
    }
}

/// Maps `f` over a contiguous storage, computing f16/bf16 in f32.
macro_rules! map_float {
    ($name:expr, $layout:expr, $storage:expr, |$x:ident: $t:ident| $body:expr) => {{
        match $storage {
            CpuStorage::F32(v) => CpuStorage::F32(
                slice(v, $layout)?
                    .iter()
                    .map(|&$x| {
                        type $t = f32;
                        $body
                    })
                    .collect(),
            ),
            CpuStorage::F64(v) => CpuStorage::F64(
                slice(v, $layout)?
                    .iter()
                    .map(|&$x| {
                        type $t = f64;
                        $body
                    })
                    .collect(),
            ),
            CpuStorage::F16(v) => CpuStorage::F16(
                slice(v, $layout)?
                    .iter()
                    .map(|&h| {
                        let $x = h.to_f32();
                        type $t = f32;
                        f16::from_f32($body)
                    })
                    .collect(),
            ),
            CpuStorage::BF16(v) => CpuStorage::BF16(
                slice(v, $layout)?
                    .iter()
                    .map(|&h| {
                        let $x = h.to_f32();
                        type $t = f32;
                        bf16::from_f32($body)
                    })
                    .collect(),
            ),
            other => candle_core::bail!("{}: unsupported dtype {:?}", $name, other.dtype()),
        }
    }};
}

#[derive(Debug)]
struct Forward<P>(P);

impl<P: Pointwise> CustomOp1 for Forward<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = map_float!(P::NAME, layout, storage, |x: T| self.0.fwd::<T>(x));
        Ok((out, layout.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad = arg.contiguous()?.apply_op3_no_bwd(
            &res.contiguous()?,
            &grad_res.contiguous()?,
            &Backward(self.0.clone()),
        )?;
        Ok(Some(grad))
    }
}

#[derive(Debug)]
struct Backward<P>(P);

impl<P: Pointwise> CustomOp3 for Backward<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fn zip3<T: Copy, R>(x: &[T], y: &[T], g: &[T], f: impl Fn(T, T, T) -> R) -> Vec<R> {
            x.iter()
                .zip(y)
                .zip(g)
                .map(|((&x, &y), &g)| f(x, y, g))
                .collect()
        }
        let (x, y, g) = (xs, ys, gs);
        let out = match (x, y, g) {
            (CpuStorage::F32(x), CpuStorage::F32(y), CpuStorage::F32(g)) => CpuStorage::F32(zip3(
                slice(x, xl)?,
                slice(y, yl)?,
                slice(g, gl)?,
                |x, y, g| self.0.bwd(x, y, g),
            )),
            (CpuStorage::F64(x), CpuStorage::F64(y), CpuStorage::F64(g)) => CpuStorage::F64(zip3(
                slice(x, xl)?,
                slice(y, yl)?,
                slice(g, gl)?,
                |x, y, g| self.0.bwd(x, y, g),
            )),
            (CpuStorage::F16(x), CpuStorage::F16(y), CpuStorage::F16(g)) => CpuStorage::F16(zip3(
                slice(x, xl)?,
                slice(y, yl)?,
                slice(g, gl)?,
                |x, y, g| f16::from_f32(self.0.bwd(x.to_f32(), y.to_f32(), g.to_f32())),
            )),
            (CpuStorage::BF16(x), CpuStorage::BF16(y), CpuStorage::BF16(g)) => CpuStorage::BF16(
                zip3(slice(x, xl)?, slice(y, yl)?, slice(g, gl)?, |x, y, g| {
                    bf16::from_f32(self.0.bwd(x.to_f32(), y.to_f32(), g.to_f32()))
                }),
            ),
            _ => candle_core::bail!(
                "{} backward: mismatched dtypes {:?}, {:?}, {:?}",
                P::NAME,
                x.dtype(),
                y.dtype(),
                g.dtype()
            ),
        };
        Ok((out, xl.shape().clone()))
    }
}
