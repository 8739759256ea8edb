//! The shared kernel of `softmax` and `log_softmax`: a normalisation along one
//! dimension, computed as PyTorch computes it (subtract the maximum first, so inputs of
//! ±1000 stay finite), with its backward.

use crate::{Error, Result};
use candle_core::{backend::BackendStorage, CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use half::{bf16, f16};

use crate::ops::composed::{attach, in_compute_dtype};
use crate::ops::pointwise::{check_float, Real};

/// Which normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    Softmax,
    LogSoftmax,
}

impl Norm {
    fn name(self) -> &'static str {
        match self {
            Norm::Softmax => "softmax",
            Norm::LogSoftmax => "log_softmax",
        }
    }
}

/// The dimension PyTorch picks when `dim` is None (its legacy implicit choice):
/// 0 for inputs of 0, 1 or 3 dimensions, otherwise 1.
pub fn implicit_dim(rank: usize) -> usize {
    if matches!(rank, 0 | 1 | 3) {
        0
    } else {
        1
    }
}

/// Applies `norm` along `dim` (negative counts from the end; None: PyTorch's implicit choice).
pub fn apply(norm: Norm, dim: Option<i64>, x: &Tensor) -> Result<Tensor> {
    check_float(norm.name(), x)?;
    let rank = x.rank();
    let dim = match dim {
        None => implicit_dim(rank),
        Some(d) => {
            // A 0-d tensor accepts dim 0 and -1, as in PyTorch.
            let n = rank.max(1) as i64;
            if d < -n || d >= n {
                return Err(Error::input(format!(
                    "{}: dim {d} is out of range for an input with {rank} dimensions (shape {:?}); use a dim in [{}, {}]",
                    norm.name(),
                    x.dims(),
                    -n,
                    n - 1
                )));
            }
            d.rem_euclid(n) as usize
        }
    };
    let (outer, size, inner) = if rank == 0 {
        (1, 1, 1)
    } else {
        let dims = x.dims();
        (dims[..dim].iter().product(), dims[dim], dims[dim + 1..].iter().product())
    };
    if crate::ops::fused_on(x.device()) {
        let op = Normalize { norm, outer, size, inner };
        return Ok(x.contiguous()?.apply_op1(op)?);
    }
    // The composed path: a 0-d input is normalised as a 1-element line.
    let x1 = if rank == 0 { x.reshape(1)? } else { x.clone() };
    let y = in_compute_dtype(&x1, |x| {
        let y = composed_forward(norm, &x.detach(), dim)?;
        attach(&y, x, move |_x, y, g| composed_backward(norm, y, g, dim))
    })?;
    Ok(if rank == 0 { y.reshape(())? } else { y })
}

/// The forward pass in candle ops (the device-generic path).
fn composed_forward(norm: Norm, x: &Tensor, dim: usize) -> candle_core::Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(dim)?)?;
    let e = shifted.exp()?;
    let sum = e.sum_keepdim(dim)?;
    match norm {
        Norm::Softmax => e.broadcast_div(&sum),
        Norm::LogSoftmax => shifted.broadcast_sub(&sum.log()?),
    }
}

/// [`backward`] in candle ops.
fn composed_backward(norm: Norm, y: &Tensor, g: &Tensor, dim: usize) -> candle_core::Result<Tensor> {
    match norm {
        Norm::Softmax => y.mul(&g.broadcast_sub(&g.mul(y)?.sum_keepdim(dim)?)?),
        Norm::LogSoftmax => g.sub(&y.exp()?.broadcast_mul(&g.sum_keepdim(dim)?)?),
    }
}

/// Walks the `outer * inner` lines of length `size` in a contiguous [outer, size, inner] buffer.
fn for_each_line(outer: usize, size: usize, inner: usize, mut f: impl FnMut(&dyn Fn(usize) -> usize)) {
    for o in 0..outer {
        for i in 0..inner {
            let base = o * size * inner + i;
            f(&|k| base + k * inner);
        }
    }
}

fn forward<T: Real>(norm: Norm, x: &[T], outer: usize, size: usize, inner: usize) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    for_each_line(outer, size, inner, |at| {
        let max = (0..size).map(|k| x[at(k)]).fold(T::neg_infinity(), |m, v| if v > m || v.is_nan() { v } else { m });
        let mut sum = T::zero();
        for k in 0..size {
            let e = (x[at(k)] - max).exp();
            sum = sum + e;
            if norm == Norm::Softmax {
                out[at(k)] = e;
            }
        }
        match norm {
            Norm::Softmax => (0..size).for_each(|k| out[at(k)] = out[at(k)] / sum),
            Norm::LogSoftmax => {
                let log_sum = sum.ln();
                (0..size).for_each(|k| out[at(k)] = x[at(k)] - max - log_sum)
            }
        }
    });
    out
}

/// softmax: g_in = y * (g - sum(g * y)); log_softmax: g_in = g - exp(y) * sum(g).
fn backward<T: Real>(norm: Norm, y: &[T], g: &[T], outer: usize, size: usize, inner: usize) -> Vec<T> {
    let mut out = vec![T::zero(); y.len()];
    for_each_line(outer, size, inner, |at| match norm {
        Norm::Softmax => {
            let dot = (0..size).fold(T::zero(), |s, k| s + g[at(k)] * y[at(k)]);
            (0..size).for_each(|k| out[at(k)] = y[at(k)] * (g[at(k)] - dot));
        }
        Norm::LogSoftmax => {
            let sum = (0..size).fold(T::zero(), |s, k| s + g[at(k)]);
            (0..size).for_each(|k| out[at(k)] = g[at(k)] - y[at(k)].exp() * sum);
        }
    });
    out
}

fn contiguous<'a, T>(v: &'a [T], layout: &Layout) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&v[start..end]),
        None => candle_core::bail!("internal error: softmax kernel given a non-contiguous tensor"),
    }
}

fn to_f32<T: Copy>(v: &[T], f: impl Fn(T) -> f32) -> Vec<f32> {
    v.iter().map(|&x| f(x)).collect()
}

#[derive(Clone, Copy, Debug)]
struct Normalize {
    norm: Norm,
    outer: usize,
    size: usize,
    inner: usize,
}

impl CustomOp1 for Normalize {
    fn name(&self) -> &'static str {
        self.norm.name()
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let Normalize { norm, outer, size, inner } = *self;
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(forward(norm, contiguous(v, l)?, outer, size, inner)),
            CpuStorage::F64(v) => CpuStorage::F64(forward(norm, contiguous(v, l)?, outer, size, inner)),
            CpuStorage::F16(v) => {
                let y = forward(norm, &to_f32(contiguous(v, l)?, f16::to_f32), outer, size, inner);
                CpuStorage::F16(y.into_iter().map(f16::from_f32).collect())
            }
            CpuStorage::BF16(v) => {
                let y = forward(norm, &to_f32(contiguous(v, l)?, bf16::to_f32), outer, size, inner);
                CpuStorage::BF16(y.into_iter().map(bf16::from_f32).collect())
            }
            other => candle_core::bail!("{}: unsupported dtype {:?}", norm.name(), other.dtype()),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(res.contiguous()?.apply_op2_no_bwd(&grad_res.contiguous()?, self)?))
    }
}

impl CustomOp2 for Normalize {
    fn name(&self) -> &'static str {
        self.norm.name()
    }

    fn cpu_fwd(
        &self,
        ys: &CpuStorage,
        yl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let Normalize { norm, outer, size, inner } = *self;
        let out = match (ys, gs) {
            (CpuStorage::F32(y), CpuStorage::F32(g)) => {
                CpuStorage::F32(backward(norm, contiguous(y, yl)?, contiguous(g, gl)?, outer, size, inner))
            }
            (CpuStorage::F64(y), CpuStorage::F64(g)) => {
                CpuStorage::F64(backward(norm, contiguous(y, yl)?, contiguous(g, gl)?, outer, size, inner))
            }
            (CpuStorage::F16(y), CpuStorage::F16(g)) => {
                let (y, g) = (to_f32(contiguous(y, yl)?, f16::to_f32), to_f32(contiguous(g, gl)?, f16::to_f32));
                CpuStorage::F16(backward(norm, &y, &g, outer, size, inner).into_iter().map(f16::from_f32).collect())
            }
            (CpuStorage::BF16(y), CpuStorage::BF16(g)) => {
                let (y, g) = (to_f32(contiguous(y, yl)?, bf16::to_f32), to_f32(contiguous(g, gl)?, bf16::to_f32));
                CpuStorage::BF16(backward(norm, &y, &g, outer, size, inner).into_iter().map(bf16::from_f32).collect())
            }
            _ => candle_core::bail!("{} backward: mismatched dtypes", norm.name()),
        };
        Ok((out, yl.shape().clone()))
    }
}
