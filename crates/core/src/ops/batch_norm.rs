//! Batch normalisation in training mode as one CPU operation: the per-channel statistics
//! in one pass (accumulated in f64), the normalised, scaled and shifted output in
//! another, and a backward pass that gives the input, weight and bias gradients from
//! two sums per channel, `Σg` and `Σg·x̂`:
//!
//! ```text
//! dx = w·invstd/M · (M·g - Σg - x̂·Σg·x̂),   dw = Σg·x̂,   db = Σg
//! ```
//!
//! With `relu`, the op also applies ReLU to its output (a `batch_norm2d` followed by a
//! `relu` layer), and its backward pass masks the output gradient with the output: one
//! pass over the activations each way instead of three.
//!
//! CUDA, Metal and `EMBER_KERNELS=composed` take the composed path in `ember-layers`.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};

use super::linear::Gemm;
use super::pointwise::{Pointwise, Real, Relu};
use super::pool::planes;
use super::{contiguous, cpu_data, lane_sum, SendPtr};
use crate::Result;

/// Whether the fused kernel runs for `x`: an f32/f64 CPU tensor under the `auto` kernels.
pub fn fused_applies(x: &Tensor) -> bool {
    super::fused_on(x.device()) && x.rank() >= 2 && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// Normalises `x [N, C, ...]` with its batch statistics per channel, then scales by
/// `weight [C]` and shifts by `bias [C]`. Returns the output and the batch mean and
/// biased variance (`[C]`, not part of the graph) for the running averages. With `relu`,
/// the output is `relu(batch_norm(x))` ([`Relu`]'s formula and gradient).
pub fn batch_norm_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let dims = x.dims();
    let (n, c) = (dims[0], dims[1]);
    let s: usize = dims[2..].iter().product();
    let x = x.contiguous()?;
    let (mean, var) = match x.dtype() {
        DType::F32 => cpu_data::<f32, _>(&x, |xs| stats(xs, n, c, s))?,
        DType::F64 => cpu_data::<f64, _>(&x, |xs| stats(xs, n, c, s))?,
        _ => return Err(crate::Error::input("batch_norm: the fused kernel needs f32 or f64")),
    };
    let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let op = BatchNormOp { n, c, s, mean: Arc::new(mean.clone()), invstd: Arc::new(invstd), relu };
    let y = x.apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)?;
    let to = |v: Vec<f64>| -> Result<Tensor> { Ok(Tensor::from_vec(v, c, x.device())?.to_dtype(x.dtype())?) };
    Ok((y, to(mean)?, to(var)?))
}

/// Per channel of `x [n, c, s]`: the mean and the biased variance (two passes, in f64).
fn stats<T: Gemm + Real>(x: &[T], n: usize, c: usize, s: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; c];
    let mut var = vec![0.0; c];
    let (mp, vp) = (SendPtr(mean.as_mut_ptr()), SendPtr(var.as_mut_ptr()));
    let m = (n * s) as f64;
    planes(c, |ch| {
        let rows = (0..n).map(|i| &x[(i * c + ch) * s..(i * c + ch + 1) * s]);
        let mu = rows.clone().map(|r| lane_sum(r, 0.0, to_f64)).sum::<f64>() / m;
        let sq = rows
            .map(|r| {
                lane_sum(r, 0.0, |v| {
                    let d = to_f64(v) - mu;
                    d * d
                })
            })
            .sum::<f64>();
        // Safety: channel `ch` writes only its own entries.
        unsafe {
            *mp.get().add(ch) = mu;
            *vp.get().add(ch) = sq / m;
        }
    });
    (mean, var)
}

fn to_f64<T: Real>(v: T) -> f64 {
    v.to_f64().unwrap_or(f64::NAN)
}

#[derive(Clone, Debug)]
struct BatchNormOp {
    n: usize,
    c: usize,
    s: usize,
    mean: Arc<Vec<f64>>,
    invstd: Arc<Vec<f64>>,
    relu: bool,
}

impl BatchNormOp {
    fn forward<T: Gemm + Real>(&self, x: &[T], w: &[T], b: &[T]) -> Vec<T> {
        let (c, s) = (self.c, self.s);
        let mut y: Vec<T> = Vec::with_capacity(x.len());
        let dst = SendPtr(y.as_mut_ptr());
        planes(self.n * c, |pl| {
            let ch = pl % c;
            // y = x·(w·invstd) + (b - mean·w·invstd), PyTorch's form.
            let alpha = to_f64(w[ch]) * self.invstd[ch];
            let beta = to_f64(b[ch]) - self.mean[ch] * alpha;
            let (alpha, beta) = (T::of(alpha), T::of(beta));
            // Safety: plane `pl` writes only its own elements.
            let out = unsafe { std::slice::from_raw_parts_mut(dst.get().add(pl * s), s) };
            let xs = &x[pl * s..(pl + 1) * s];
            if self.relu {
                for (o, v) in out.iter_mut().zip(xs) {
                    *o = Relu.fwd(*v * alpha + beta);
                }
            } else {
                for (o, v) in out.iter_mut().zip(xs) {
                    *o = *v * alpha + beta;
                }
            }
        });
        // Safety: every plane wrote all of its elements.
        unsafe { y.set_len(x.len()) };
        y
    }

    /// `(dx, dw, db)` for the output gradient `g` (and the output `y`, which masks `g`
    /// when the op applies ReLU).
    fn backward<T: Gemm + Real>(&self, x: &[T], w: &[T], y: &[T], g: &[T]) -> (Vec<T>, Vec<T>, Vec<T>) {
        if self.relu {
            self.backward_masked::<T, true>(x, w, y, g)
        } else {
            // `y` is not read; `g` stands in so the loops zip slices of one length.
            self.backward_masked::<T, false>(x, w, g, g)
        }
    }

    fn backward_masked<T: Gemm + Real, const RELU: bool>(
        &self,
        x: &[T],
        w: &[T],
        y: &[T],
        g: &[T],
    ) -> (Vec<T>, Vec<T>, Vec<T>) {
        // The gradient at the normalised output: g, or g masked by ReLU's output y.
        let mask = |gv: T, yv: T| if RELU { Relu.bwd(T::zero(), yv, gv) } else { gv };
        let (n, c, s) = (self.n, self.c, self.s);
        let m = (n * s) as f64;
        let mut sums = vec![(0.0f64, 0.0f64); c];
        let sp = SendPtr(sums.as_mut_ptr());
        planes(c, |ch| {
            let (mu, inv) = (self.mean[ch], self.invstd[ch]);
            let (mut sg, mut sgx) = (0.0, 0.0);
            let (mu_t, inv_t) = (T::of(mu), T::of(inv));
            // One row's masked gradient (ReLU only), kept in cache for the sums.
            let mut masked = if RELU { vec![T::zero(); s] } else { Vec::new() };
            for i in 0..n {
                let at = (i * c + ch) * s;
                // Each row in eight lanes of T (so the loop vectorizes), rows summed in f64.
                let (mut a, mut b) = ([T::zero(); 8], [T::zero(); 8]);
                let (mut gs, xs) = (&g[at..at + s], &x[at..at + s]);
                if RELU {
                    for ((m, gv), yv) in masked.iter_mut().zip(gs).zip(&y[at..at + s]) {
                        *m = mask(*gv, *yv);
                    }
                    gs = &masked;
                }
                let whole = s / 8 * 8;
                for (gc, xc) in gs[..whole].chunks_exact(8).zip(xs[..whole].chunks_exact(8)) {
                    for l in 0..8 {
                        a[l] += gc[l];
                        b[l] += gc[l] * ((xc[l] - mu_t) * inv_t);
                    }
                }
                for (gv, xv) in gs[whole..].iter().zip(&xs[whole..]) {
                    a[0] += *gv;
                    b[0] += *gv * ((*xv - mu_t) * inv_t);
                }
                sg += a.iter().map(|v| to_f64(*v)).sum::<f64>();
                sgx += b.iter().map(|v| to_f64(*v)).sum::<f64>();
            }
            // Safety: channel `ch` writes only its own entry.
            unsafe { *sp.get().add(ch) = (sg, sgx) };
        });
        let mut dx: Vec<T> = Vec::with_capacity(x.len());
        let dst = SendPtr(dx.as_mut_ptr());
        planes(n * c, |pl| {
            let ch = pl % c;
            let (mu, inv) = (self.mean[ch], self.invstd[ch]);
            let (sg, sgx) = sums[ch];
            let k = to_f64(w[ch]) * inv / m;
            // dx = k·(m·g - Σg - x̂·Σg·x̂) = a·g + b·x̂ + c, per-channel constants, in T.
            let (a, b, cc) = (T::of(k * m), T::of(-k * sgx), T::of(-k * sg));
            let (mu, inv) = (T::of(mu), T::of(inv));
            // Safety: plane `pl` writes only its own elements.
            let out = unsafe { std::slice::from_raw_parts_mut(dst.get().add(pl * s), s) };
            let (gs, xs, ys) = (&g[pl * s..(pl + 1) * s], &x[pl * s..(pl + 1) * s], &y[pl * s..(pl + 1) * s]);
            for (((o, gv), xv), yv) in out.iter_mut().zip(gs).zip(xs).zip(ys) {
                let xhat = (*xv - mu) * inv;
                *o = a * mask(*gv, *yv) + b * xhat + cc;
            }
        });
        // Safety: every plane wrote all of its elements.
        unsafe { dx.set_len(x.len()) };
        let dw = sums.iter().map(|(_, sgx)| T::of(*sgx)).collect();
        let db = sums.iter().map(|(sg, _)| T::of(*sg)).collect();
        (dx, dw, db)
    }

    fn typed<T: Gemm + Real>(
        &self,
        (xs, xl): (&CpuStorage, &Layout),
        (ws, wl): (&CpuStorage, &Layout),
        (bs, bl): (&CpuStorage, &Layout),
    ) -> candle_core::Result<Vec<T>> {
        Ok(self.forward(contiguous::<T>(xs, xl)?, contiguous::<T>(ws, wl)?, contiguous::<T>(bs, bl)?))
    }

    fn grads<T: Gemm + Real>(
        &self,
        x: &Tensor,
        w: &Tensor,
        y: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = cpu_data::<T, _>(x, |xs| {
            cpu_data::<T, _>(w, |ws| cpu_data::<T, _>(y, |ys| cpu_data::<T, _>(g, |gs| self.backward(xs, ws, ys, gs))))
        })????;
        let device = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.dims(), device)?),
            Some(Tensor::from_vec(dw, self.c, device)?),
            Some(Tensor::from_vec(db, self.c, device)?),
        ))
    }
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "ember-batch-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let storage = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(self.typed::<f32>((s1, l1), (s2, l2), (s3, l3))?),
            CpuStorage::F64(_) => CpuStorage::F64(self.typed::<f64>((s1, l1), (s2, l2), (s3, l3))?),
            _ => return Err(candle_core::Error::Msg("batch_norm: the fused kernel needs f32 or f64 tensors".into())),
        };
        Ok((storage, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        match x.dtype() {
            DType::F32 => self.grads::<f32>(x, w, y, g),
            _ => self.grads::<f64>(x, w, y, g),
        }
    }
}
