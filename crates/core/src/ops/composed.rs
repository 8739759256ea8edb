//! The device-generic path of the ops that have fused CPU kernels: the forward value is
//! computed with ordinary candle ops (which run on every device), and the gradient is the
//! op's own backward formula, also in candle ops, attached with [`attach`]. Composing
//! the forward through candle's autograd instead would give candle's gradients at the
//! edge points (relu at 0, clamps at their bounds), not PyTorch's.

use std::cell::Cell;

use candle_core::backend::{BackendDevice, BackendStorage};
use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor};

/// The gradient of an attached value: `(x, y, g) -> dL/dx` for input x, output y and
/// output gradient g (all of x's shape, none tracking a graph).
pub type GradFn = dyn Fn(&Tensor, &Tensor, &Tensor) -> candle_core::Result<Tensor> + Send + Sync;

/// `value` (computed from `x` without a graph) as a differentiable function of `x` whose
/// input gradient is `grad(x, value, g)`. When `x` tracks no graph, `value` itself.
pub fn attach(
    value: &Tensor,
    x: &Tensor,
    grad: impl Fn(&Tensor, &Tensor, &Tensor) -> candle_core::Result<Tensor> + Send + Sync + 'static,
) -> candle_core::Result<Tensor> {
    if !x.track_op() {
        return Ok(value.clone());
    }
    value.apply_op2(x, WithGrad(Box::new(grad)))
}

/// Runs `f` in f32 for f16 and bf16 inputs (PyTorch's math type for half floats),
/// converting the result back; f32 and f64 run as they are.
pub fn in_compute_dtype(
    x: &Tensor,
    f: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    match x.dtype() {
        DType::F16 | DType::BF16 => f(&x.to_dtype(DType::F32)?)?.to_dtype(x.dtype()),
        _ => f(x),
    }
}

/// A tensor of x's shape, dtype and device filled with `v`.
pub fn full_like(x: &Tensor, v: f64) -> candle_core::Result<Tensor> {
    x.ones_like()?.affine(0.0, v)
}

/// `on_true` where `mask` (a comparison result) is set, else `on_false`.
pub fn pick(mask: &Tensor, on_true: &Tensor, on_false: &Tensor) -> candle_core::Result<Tensor> {
    mask.where_cond(on_true, on_false)
}

thread_local! {
    static HOST_ROUND_TRIPS: Cell<usize> = const { Cell::new(0) };
}

/// How many times this thread has computed through [`via_cpu`]: the tests check that the
/// built-in plugins' composed paths never do.
pub fn host_round_trips() -> usize {
    HOST_ROUND_TRIPS.with(Cell::get)
}

/// Runs `f` on CPU copies of `args` and moves its result back to the first one's device:
/// the fallback of ops without a composed form.
pub fn via_cpu(
    args: &[&Tensor],
    f: impl FnOnce(&[Tensor]) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    HOST_ROUND_TRIPS.with(|c| c.set(c.get() + 1));
    let device = args.first().map_or(Device::Cpu, |t| t.device().clone());
    let host = args.iter().map(|t| t.to_device(&Device::Cpu)?.contiguous()).collect::<candle_core::Result<Vec<_>>>()?;
    f(&host)?.to_device(&device)
}

/// The op behind [`attach`]: its forward copies the value, its backward is the closure.
struct WithGrad(Box<GradFn>);

/// A contiguous copy of a storage, on any back end.
fn copy_out<S: BackendStorage<Device = D>, D: BackendDevice<Storage = S>>(
    s: &S,
    l: &Layout,
) -> candle_core::Result<(S, Shape)> {
    let shape = l.shape().clone();
    // Safety: copy_strided_src below writes every element of the new storage.
    let mut out = unsafe { s.device().alloc_uninit(&shape, s.dtype())? };
    s.copy_strided_src(&mut out, 0, l)?;
    Ok((out, shape))
}

impl CustomOp2 for WithGrad {
    fn name(&self) -> &'static str {
        "ember-composed"
    }

    fn cpu_fwd(
        &self,
        s: &CpuStorage,
        l: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        copy_out(s, l)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        copy_out(s, l)
    }

    #[cfg(feature = "metal")]
    fn metal_fwd(
        &self,
        s: &candle_core::MetalStorage,
        l: &Layout,
        _: &candle_core::MetalStorage,
        _: &Layout,
    ) -> candle_core::Result<(candle_core::MetalStorage, Shape)> {
        copy_out(s, l)
    }

    fn bwd(
        &self,
        _value: &Tensor,
        x: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((None, Some((self.0)(&x.detach(), &res.detach(), grad)?)))
    }
}
