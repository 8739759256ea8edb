//! Elementwise functions of an input and up to two constant tensors, differentiable in
//! the input: the shape of most losses (`l1(x, target)`, `bce_with_logits(x, target,
//! pos_weight)`). Each is given by its scalar formula and its derivative in x, computed
//! by CPU kernels in PyTorch's order of operations; off the CPU (or under
//! [`Kernels::Composed`](crate::ops::Kernels)) by [`Ternary::fwd_composed`] and
//! [`Ternary::dfdx_composed`] in candle ops.

use std::fmt::Debug;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use crate::ops::composed::{attach, in_compute_dtype, via_cpu};
use crate::ops::pointwise::{check_float, map3, Fn3, Map3, Real};
use crate::{Error, Result};

/// f(x, a, b), differentiable in x only (a and b are targets or weights).
pub trait Ternary: Clone + Debug + Send + Sync + 'static {
    /// The plugin name, used in error messages.
    const NAME: &'static str;
    /// f(x, a, b).
    fn fwd<T: Real>(&self, x: T, a: T, b: T) -> T;
    /// ∂f/∂x at (x, a, b).
    fn dfdx<T: Real>(&self, x: T, a: T, b: T) -> T;

    /// f(x, a, b) in candle ops, for the device-generic path (x, a and b: one shape, f32
    /// or f64, none tracking a graph). The default runs [`fwd`](Self::fwd) on host copies.
    fn fwd_composed(&self, x: &Tensor, a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
        via_cpu(&[x, a, b], |t| t[0].apply_op3_no_bwd(&t[1], &t[2], &Map3(Forward(self.clone()))))
    }

    /// [`dfdx`](Self::dfdx) in candle ops, for the device-generic path. The default runs
    /// `dfdx` on host copies.
    fn dfdx_composed(&self, x: &Tensor, a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
        via_cpu(&[x, a, b], |t| t[0].apply_op3_no_bwd(&t[1], &t[2], &Map3(Derivative(self.clone()))))
    }
}

/// Applies `op` to `x` with `a` and `b` (converted to x's dtype and broadcast to its
/// shape); the result has x's shape and carries a gradient to x only.
pub fn apply<P: Ternary>(op: &P, x: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    check_float(P::NAME, x)?;
    let fused = crate::ops::fused_on(x.device());
    let prepare = |t: &Tensor| -> Result<Tensor> {
        let t = t.detach().to_dtype(x.dtype())?.to_device(x.device())?;
        t.broadcast_as(x.shape())
            .map_err(|_| {
                Error::input(format!(
                    "{}: cannot broadcast shape {:?} to the input's shape {:?}",
                    P::NAME,
                    t.dims(),
                    x.dims()
                ))
            })?
            .contiguous()
            .map_err(Error::from)
    };
    let (a, b) = (prepare(a)?, prepare(b)?);
    if fused {
        return Ok(x.contiguous()?.apply_op3(&a, &b, Forward(op.clone()))?);
    }
    Ok(in_compute_dtype(x, |x| {
        let (a, b) = (a.to_dtype(x.dtype())?, b.to_dtype(x.dtype())?);
        let y = op.fwd_composed(&x.detach(), &a, &b)?;
        let op = op.clone();
        attach(&y, x, move |x, _y, g| op.dfdx_composed(x, &a, &b)?.mul(g))
    })?)
}

/// [`apply`] for functions of x and one other tensor.
pub fn apply2<P: Ternary>(op: &P, x: &Tensor, a: &Tensor) -> Result<Tensor> {
    apply(op, x, a, a)
}

#[derive(Debug)]
struct Forward<P>(P);

impl<P: Ternary> Fn3 for Forward<P> {
    const NAME: &'static str = P::NAME;

    fn call<T: Real>(&self, x: T, a: T, b: T) -> T {
        self.0.fwd(x, a, b)
    }
}

impl<P: Ternary> CustomOp3 for Forward<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        as_: &CpuStorage,
        al: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        map3(P::NAME, self, (xs, xl), (as_, al), (bs, bl))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d =
            x.contiguous()?.apply_op3_no_bwd(&a.contiguous()?, &b.contiguous()?, &Map3(Derivative(self.0.clone())))?;
        Ok((Some(d.mul(grad)?), None, None))
    }
}

#[derive(Debug)]
struct Derivative<P>(P);

impl<P: Ternary> Fn3 for Derivative<P> {
    const NAME: &'static str = P::NAME;

    fn call<T: Real>(&self, x: T, a: T, b: T) -> T {
        self.0.dfdx(x, a, b)
    }
}
