//! The shared machinery of elementwise activations: a CPU kernel that applies the
//! activation's scalar formula (in PyTorch's order of operations, so results match to the
//! last bits) and a backward kernel that applies its derivative, hooked into candle's
//! autograd as a custom op.
//!
//! Tensors on other devices (and every tensor under
//! [`Kernels::Composed`](crate::ops::Kernels)) take the composed path:
//! [`Pointwise::fwd_composed`] and [`Pointwise::bwd_composed`] in candle ops. Their
//! defaults run the CPU kernels on a host copy, so an activation that only gives its
//! scalar formula still works everywhere.

use std::fmt::Debug;

use crate::ops::composed::{attach, in_compute_dtype, via_cpu};
use crate::{Error, Result};
use candle_core::{backend::BackendStorage, CpuStorage, CustomOp1, CustomOp3, DType, Layout, Shape, Tensor};
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

    /// f(x) in candle ops, for the device-generic path. `x` is f32 or f64 and tracks no
    /// graph. The default runs [`fwd`](Self::fwd) on a host copy.
    fn fwd_composed(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        via_cpu(&[x], |t| t[0].apply_op1_no_bwd(&Forward(self.clone())))
    }

    /// [`bwd`](Self::bwd) in candle ops, for the device-generic path: the input gradient
    /// given x, y and g (one shape and dtype, none tracking a graph). The default runs
    /// `bwd` on host copies.
    fn bwd_composed(&self, x: &Tensor, y: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        via_cpu(&[x, y, g], |t| t[0].apply_op3_no_bwd(&t[1], &t[2], &Map3(Backward(self.clone()))))
    }
}

/// max(x, 0), with NaN passed through; gradient 1 where the output is > 0, else 0 (so 0
/// at x = 0, PyTorch's choice). The `relu` activation's formula, and the one batch
/// normalisation applies itself when a `relu` layer follows it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Relu;

impl Pointwise for Relu {
    const NAME: &'static str = "relu";

    // Selects, not branches: on real activations the sign is a coin toss.
    #[inline]
    fn fwd<T: Real>(&self, x: T) -> T {
        std::hint::select_unpredictable(x > T::zero() || x.is_nan(), x, T::zero())
    }

    #[inline]
    fn bwd<T: Real>(&self, _x: T, y: T, g: T) -> T {
        std::hint::select_unpredictable(y <= T::zero(), T::zero(), g)
    }

    fn fwd_composed(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        super::composed::pick(&x.le(0.0)?, &x.zeros_like()?, x)
    }

    fn bwd_composed(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        super::composed::pick(&y.le(0.0)?, &g.zeros_like()?, g)
    }
}

/// Applies `op` to `x`, differentiably: the fused CPU kernel where
/// [`fused_on`](crate::ops::fused_on) says so, else the composed path.
pub fn apply<P: Pointwise>(op: &P, x: &Tensor) -> Result<Tensor> {
    check_float(P::NAME, x)?;
    if crate::ops::fused_on(x.device()) {
        return Ok(x.contiguous()?.apply_op1(Forward(op.clone()))?);
    }
    Ok(in_compute_dtype(x, |x| {
        let y = op.fwd_composed(&x.detach())?;
        let op = op.clone();
        attach(&y, x, move |x, y, g| op.bwd_composed(x, y, g))
    })?)
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
            candle_core::bail!("internal error: elementwise kernel given a non-contiguous tensor")
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

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = map_float!(P::NAME, layout, storage, |x: T| self.0.fwd::<T>(x));
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = arg.contiguous()?.apply_op3_no_bwd(
            &res.contiguous()?,
            &grad_res.contiguous()?,
            &Map3(Backward(self.0.clone())),
        )?;
        Ok(Some(grad))
    }
}

#[derive(Debug)]
struct Backward<P>(P);

impl<P: Pointwise> Fn3 for Backward<P> {
    const NAME: &'static str = P::NAME;

    fn call<T: Real>(&self, x: T, y: T, g: T) -> T {
        self.0.bwd(x, y, g)
    }
}

/// An [`Fn3`] as a candle op without backward: the backward kernels of the elementwise
/// activations and losses.
#[derive(Debug)]
pub(crate) struct Map3<F>(pub F);

impl<F: Fn3> CustomOp3 for Map3<F> {
    fn name(&self) -> &'static str {
        F::NAME
    }

    fn cpu_fwd(
        &self,
        a: &CpuStorage,
        al: &Layout,
        b: &CpuStorage,
        bl: &Layout,
        c: &CpuStorage,
        cl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        map3(F::NAME, &self.0, (a, al), (b, bl), (c, cl))
    }
}

/// A scalar function of three arguments, generic over the compute type.
pub(crate) trait Fn3 {
    /// The plugin name, for error messages.
    const NAME: &'static str;
    fn call<T: Real>(&self, a: T, b: T, c: T) -> T;
}

/// Applies `f` elementwise over three contiguous storages of one dtype (f16 and bf16
/// computed in f32).
pub(crate) fn map3<F: Fn3>(
    name: &str,
    f: &F,
    (a, al): (&CpuStorage, &Layout),
    (b, bl): (&CpuStorage, &Layout),
    (c, cl): (&CpuStorage, &Layout),
) -> candle_core::Result<(CpuStorage, Shape)> {
    fn zip3<T: Copy, R>(a: &[T], b: &[T], c: &[T], f: impl Fn(T, T, T) -> R) -> Vec<R> {
        a.iter().zip(b).zip(c).map(|((&a, &b), &c)| f(a, b, c)).collect()
    }
    let out = match (a, b, c) {
        (CpuStorage::F32(a), CpuStorage::F32(b), CpuStorage::F32(c)) => {
            CpuStorage::F32(zip3(slice(a, al)?, slice(b, bl)?, slice(c, cl)?, |a, b, c| f.call(a, b, c)))
        }
        (CpuStorage::F64(a), CpuStorage::F64(b), CpuStorage::F64(c)) => {
            CpuStorage::F64(zip3(slice(a, al)?, slice(b, bl)?, slice(c, cl)?, |a, b, c| f.call(a, b, c)))
        }
        (CpuStorage::F16(a), CpuStorage::F16(b), CpuStorage::F16(c)) => {
            CpuStorage::F16(zip3(slice(a, al)?, slice(b, bl)?, slice(c, cl)?, |a, b, c| {
                f16::from_f32(f.call(a.to_f32(), b.to_f32(), c.to_f32()))
            }))
        }
        (CpuStorage::BF16(a), CpuStorage::BF16(b), CpuStorage::BF16(c)) => {
            CpuStorage::BF16(zip3(slice(a, al)?, slice(b, bl)?, slice(c, cl)?, |a, b, c| {
                bf16::from_f32(f.call(a.to_f32(), b.to_f32(), c.to_f32()))
            }))
        }
        _ => candle_core::bail!(
            "{name}: arguments of mismatched or unsupported dtypes {:?}, {:?}, {:?}",
            a.dtype(),
            b.dtype(),
            c.dtype()
        ),
    };
    if al.shape() != bl.shape() || al.shape() != cl.shape() {
        candle_core::bail!(
            "internal error: {name} kernel given shapes {:?}, {:?}, {:?}",
            al.shape(),
            bl.shape(),
            cl.shape()
        );
    }
    Ok((out, al.shape().clone()))
}
