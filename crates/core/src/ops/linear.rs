//! Fully connected layers, `y = x W^T + b`, as one CPU operation.
//!
//! Composed from candle ops, a linear layer costs a matmul, a broadcast add, and in the
//! backward pass gradients for every operand: candle's matmul backward always computes the
//! input gradient, even for a data batch that needs none (a third of a first layer's
//! backward arithmetic), and each gradient starts as a tensor of zeros that is then added
//! to. Here the bias is written into the output before the product accumulates onto it,
//! the backward pass skips the input gradient when the input tracks no graph, the bias
//! gradient is one pass over the output gradient, and each product calls gemm directly,
//! splitting it across threads only when it is large enough to gain from that.
//!
//! Other devices, dtypes and ranks take the composed path, which [`linear_composed`] also
//! exposes so that tests can hold the two against each other.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Storage, Tensor};
use gemm::Parallelism;

use super::fused::CpuFloat;
use super::SendPtr;

use crate::Result;

/// Products with at least this many multiply-adds (rows x columns x depth) are split across
/// threads; below it one thread is faster (thread start and synchronisation dominate).
/// `EMBER_GEMM_PARALLEL_MIN` overrides it.
pub const PARALLEL_MIN: usize = 1 << 24;

fn threads_for(m: usize, n: usize, k: usize) -> usize {
    static MIN: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let min = *MIN.get_or_init(|| {
        std::env::var("EMBER_GEMM_PARALLEL_MIN").ok().and_then(|v| v.parse().ok()).unwrap_or(PARALLEL_MIN)
    });
    if m.saturating_mul(n).saturating_mul(k) >= min {
        candle_core::utils::get_num_threads().min(m.max(n).div_ceil(8))
    } else {
        1
    }
}

/// `y = x W^T + b` for `x: [..., in]`, `weight: [out, in]` (PyTorch's layout), `bias: [out]`.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let fast = crate::ops::fused_on(x.device())
        && x.rank() == 2
        && weight.rank() == 2
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && weight.dtype() == x.dtype()
        && bias.is_none_or(|b| b.rank() == 1 && b.dtype() == x.dtype())
        && x.dim(1)? == weight.dim(1)?
        && bias.is_none_or(|b| b.dim(0).ok() == weight.dim(0).ok());
    if !fast {
        return linear_composed(x, weight, bias);
    }
    let op = Linear { input_grad: x.track_op() };
    Ok(match bias {
        Some(b) => x.apply_op3(weight, b, op)?,
        None => x.apply_op2(weight, op)?,
    })
}

/// The same with candle's composed operations (matmul, broadcast add): the path for every
/// device, dtype and rank.
pub fn linear_composed(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let in_features = weight.dim(1)?;
    let y = if x.rank() == 2 {
        x.matmul(&weight.t()?)?
    } else {
        let lead: Vec<usize> = x.dims()[..x.rank() - 1].to_vec();
        let flat = x.reshape(((), in_features))?.matmul(&weight.t()?)?;
        flat.reshape([lead, vec![weight.dim(0)?]].concat())?
    };
    Ok(match bias {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}

#[derive(Clone, Copy, Debug)]
struct Linear {
    /// Whether the input tracks a graph (so its gradient is wanted).
    input_grad: bool,
}

/// A 2-D operand: its slice, offset and strides.
struct Mat<'a, T> {
    data: &'a [T],
    offset: usize,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
}

impl<'a, T: Copy> Mat<'a, T> {
    fn new(data: &'a [T], layout: &Layout) -> Mat<'a, T> {
        let dims = layout.dims();
        let stride = layout.stride();
        Mat {
            data,
            offset: layout.start_offset(),
            rows: dims[0],
            cols: dims[1],
            rs: stride[0] as isize,
            cs: stride[1] as isize,
        }
    }

    fn ptr(&self) -> *const T {
        self.data[self.offset..].as_ptr()
    }

    fn t(&self) -> Mat<'a, T> {
        Mat { data: self.data, offset: self.offset, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }

    fn at(&self, i: usize, j: usize) -> T {
        self.data[self.offset + i * self.rs as usize + j * self.cs as usize]
    }
}

/// `dst[m, n] (row-major) = (accumulate ? dst : 0) + a[m, k] * b[k, n]`. Large products
/// are split into one block of rows (or columns, when there are more of them) per thread,
/// each a single-threaded gemm call run on candle's barrier pool: on these sizes that
/// scales better than gemm's own threading (184 against 105 GFLOP/s for 256x784x256 on
/// two cores, where gemm's split gained nothing).
fn matmul_into<T: Gemm>(dst: &mut [T], a: &Mat<T>, b: &Mat<T>, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    debug_assert_eq!(b.rows, k);
    debug_assert_eq!(dst.len(), m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(T::zero());
        }
        return;
    }
    let threads = threads_for(m, n, k);
    let block = |i0: usize, rows: usize, j0: usize, cols: usize, dst: SendPtr<T>| {
        // Safety: the pointers come from slices that hold every element the strides reach
        // (candle checked the layouts when it made the tensors); `dst` holds `m * n`
        // elements with row stride `n`, and each block writes only its own rows/columns.
        unsafe {
            gemm::gemm(
                rows,
                cols,
                k,
                dst.get().add(i0 * n + j0),
                1,
                n as isize,
                accumulate,
                a.ptr().offset(i0 as isize * a.rs),
                a.cs,
                a.rs,
                b.ptr().offset(j0 as isize * b.cs),
                b.cs,
                b.rs,
                if accumulate { T::one() } else { T::zero() },
                T::one(),
                false,
                false,
                false,
                Parallelism::None,
            )
        }
    };
    let dst = SendPtr(dst.as_mut_ptr());
    if threads <= 1 {
        return block(0, m, 0, n, dst);
    }
    let by_rows = m >= n;
    let len = if by_rows { m } else { n };
    let step = len.div_ceil(threads).next_multiple_of(8);
    // candle's barrier pool: the caller works too, and the helpers it wakes are the ones
    // candle's own parallel operations use, so no second set of threads competes.
    candle_core::utils::barrier_pool().execute_chunked(len.div_ceil(step), |blocks| {
        for i in blocks {
            let start = i * step;
            let size = step.min(len - start);
            if by_rows {
                block(start, size, 0, n, dst)
            } else {
                block(0, m, start, size, dst)
            }
        }
    });
}

/// The element types the fast path serves: the fused kernels' floats (their CPU
/// buffers) that candle can also build tensors of.
pub trait Gemm: CpuFloat + candle_core::WithDType {}

impl Gemm for f32 {}
impl Gemm for f64 {}

fn wrong_dtype() -> candle_core::Error {
    candle_core::Error::Msg("linear: operands must share one float dtype (f32 or f64)".into())
}

/// The forward product: `x [n, in]`, `w [out, in]`, optional `b [out]` -> `[n, out]`.
fn forward<T: Gemm>(
    x: (&CpuStorage, &Layout),
    w: (&CpuStorage, &Layout),
    b: Option<(&CpuStorage, &Layout)>,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let xm = Mat::new(T::slice(x.0).ok_or_else(wrong_dtype)?, x.1);
    let wm = Mat::new(T::slice(w.0).ok_or_else(wrong_dtype)?, w.1);
    let (n, out) = (xm.rows, wm.rows);
    let mut dst = vec![T::zero(); n * out];
    let accumulate = match b {
        Some((bs, bl)) => {
            let bv = T::slice(bs).ok_or_else(wrong_dtype)?;
            let (start, stride) = (bl.start_offset(), bl.stride()[0]);
            let row: Vec<T> = (0..out).map(|j| bv[start + j * stride]).collect();
            for r in dst.chunks_exact_mut(out) {
                r.copy_from_slice(&row);
            }
            true
        }
        None => false,
    };
    matmul_into(&mut dst, &xm, &wm.t(), accumulate);
    Ok((T::to_cpu_storage_owned(dst), Shape::from((n, out))))
}

/// Reads a tensor's CPU data and layout.
fn read<R>(t: &Tensor, f: impl FnOnce(&CpuStorage, &Layout) -> candle_core::Result<R>) -> candle_core::Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => f(s, layout),
        _ => Err(candle_core::Error::Msg("linear: the fused CPU path got a non-CPU tensor".into())),
    }
}

/// Gradients of `x W^T + b` given `g = dL/dy`: `dx = g W` (when wanted), `dW = g^T x`,
/// `db = sum over rows of g`.
fn backward<T: Gemm>(
    x: &Tensor,
    w: &Tensor,
    with_bias: bool,
    g: &Tensor,
    input_grad: bool,
) -> candle_core::Result<(Option<Tensor>, Tensor, Option<Tensor>)> {
    let device = x.device().clone();
    read(g, |gs, gl| {
        let gm = Mat::new(T::slice(gs).ok_or_else(wrong_dtype)?, gl);
        let (n, out) = (gm.rows, gm.cols);
        let (dw, in_features) = read(x, |xs, xl| {
            let xm = Mat::new(T::slice(xs).ok_or_else(wrong_dtype)?, xl);
            let mut dw = vec![T::zero(); out * xm.cols];
            matmul_into(&mut dw, &gm.t(), &xm, false);
            Ok((dw, xm.cols))
        })?;
        let dw = Tensor::from_vec(dw, (out, in_features), &device)?;
        let dx = if input_grad {
            let dx = read(w, |ws, wl| {
                let wm = Mat::new(T::slice(ws).ok_or_else(wrong_dtype)?, wl);
                let mut dx = vec![T::zero(); n * in_features];
                matmul_into(&mut dx, &gm, &wm, false);
                Ok(dx)
            })?;
            Some(Tensor::from_vec(dx, (n, in_features), &device)?)
        } else {
            None
        };
        let db = if with_bias {
            let mut db = vec![T::zero(); out];
            for i in 0..n {
                for (j, d) in db.iter_mut().enumerate() {
                    *d += gm.at(i, j);
                }
            }
            Some(Tensor::from_vec(db, out, &device)?)
        } else {
            None
        };
        Ok((dx, dw, db))
    })
}

fn dispatch_bwd(
    x: &Tensor,
    w: &Tensor,
    with_bias: bool,
    g: &Tensor,
    input_grad: bool,
) -> candle_core::Result<(Option<Tensor>, Tensor, Option<Tensor>)> {
    match x.dtype() {
        DType::F32 => backward::<f32>(x, w, with_bias, g, input_grad),
        DType::F64 => backward::<f64>(x, w, with_bias, g, input_grad),
        _ => Err(wrong_dtype()),
    }
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "ember-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        match xs {
            CpuStorage::F32(_) => forward::<f32>((xs, xl), (ws, wl), None),
            CpuStorage::F64(_) => forward::<f64>((xs, xl), (ws, wl), None),
            _ => Err(wrong_dtype()),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = dispatch_bwd(x, w, false, grad, self.input_grad)?;
        Ok((dx, Some(dw)))
    }
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "ember-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        match xs {
            CpuStorage::F32(_) => forward::<f32>((xs, xl), (ws, wl), Some((bs, bl))),
            CpuStorage::F64(_) => forward::<f64>((xs, xl), (ws, wl), Some((bs, bl))),
            _ => Err(wrong_dtype()),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = dispatch_bwd(x, w, true, grad, self.input_grad)?;
        Ok((dx, Some(dw), db))
    }
}
