//! 2-d max and average pooling as single CPU operations (one pass over each plane,
//! planes split across threads), with PyTorch's semantics: the first maximum of a window
//! takes the gradient, NaN propagates, padding never wins a maximum, and an average
//! divides by PyTorch's divisor (`count_include_pad`, `divisor_override`, ceil-mode
//! windows clipped to the padded input).
//!
//! CUDA, Metal and `EMBER_KERNELS=composed` take the composed path in `ember-layers`.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};

use super::linear::Gemm;
use super::pointwise::Real;
use super::{contiguous, cpu_data, SendPtr};
use crate::Result;

/// A pooling window: PyTorch's arguments, per spatial dimension (height, width), and the
/// output size the caller computed from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolParams {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub out: [usize; 2],
}

/// What the window computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pool {
    Max,
    /// The mean, dividing by `divisor_override` or PyTorch's count (padding included or not).
    Avg {
        count_include_pad: bool,
        divisor_override: Option<usize>,
    },
}

/// The divisor of every average-pooling window over an input `[h, w]` (row-major over the
/// output), as PyTorch's `avg_pool2d` divides: `divisor_override` when given, else the
/// window clipped to the padded input, and also to the input itself unless
/// `count_include_pad` (a ceil-mode window's part past the padding never counts).
pub fn avg_divisors(
    p: &PoolParams,
    hw: [usize; 2],
    count_include_pad: bool,
    divisor_override: Option<usize>,
) -> Vec<f64> {
    let span = |d: usize, o: usize| -> isize {
        let (len, pad) = (hw[d] as isize, p.padding[d] as isize);
        let start = (o * p.stride[d]) as isize - pad;
        let end = (start + p.kernel[d] as isize).min(len + pad);
        if count_include_pad {
            end - start
        } else {
            end.min(len) - start.max(0)
        }
    };
    let [oh, ow] = p.out;
    let mut out = Vec::with_capacity(oh * ow);
    for i in 0..oh {
        for j in 0..ow {
            out.push(divisor_override.unwrap_or_else(|| (span(0, i) * span(1, j)).max(1) as usize) as f64);
        }
    }
    out
}

/// Whether the fused kernel runs for `x`: a contiguous-able f32/f64 CPU `[N, C, H, W]`
/// tensor under the `auto` kernels.
pub fn fused_applies(x: &Tensor) -> bool {
    super::fused_on(x.device()) && x.rank() == 4 && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// Pools `x [N, C, H, W]` to `[N, C, OH, OW]` with the fused kernel.
pub fn pool2d(x: &Tensor, pool: Pool, p: &PoolParams) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if h * w > u32::MAX as usize {
        return Err(crate::Error::input(format!("pooling: a {h}x{w} plane is too large for the fused kernel")));
    }
    let op = PoolOp { pool, p: *p, planes: n * c, h, w, argmax: Arc::new(Mutex::new(None)) };
    Ok(x.contiguous()?.apply_op1(op)?)
}

#[derive(Clone, Debug)]
struct PoolOp {
    pool: Pool,
    p: PoolParams,
    planes: usize,
    h: usize,
    w: usize,
    /// Max pooling: each output's input position, saved by the forward pass.
    argmax: Arc<Mutex<Option<Vec<u32>>>>,
}

impl PoolOp {
    /// The valid kernel offsets `lo..hi` along dimension `d` for a window starting at
    /// `start` (those that land inside the input).
    fn span(&self, d: usize, start: isize) -> (usize, usize) {
        let len = [self.h, self.w][d] as isize;
        let dil = self.p.dilation[d] as isize;
        let k = self.p.kernel[d] as isize;
        let lo = if start >= 0 { 0 } else { (-start + dil - 1) / dil };
        let hi = if start >= len { 0 } else { ((len - 1 - start) / dil + 1).min(k) };
        (lo.min(hi) as usize, hi.max(0) as usize)
    }

    /// For each output position along dimension `d`: the window's start and its valid
    /// kernel offsets.
    fn spans(&self, d: usize) -> Vec<(isize, usize, usize)> {
        (0..self.p.out[d])
            .map(|o| {
                let start = (o * self.p.stride[d]) as isize - self.p.padding[d] as isize;
                let (lo, hi) = self.span(d, start);
                (start, lo, hi)
            })
            .collect()
    }

    fn forward<T: Gemm + Real>(&self, x: &[T]) -> Vec<T> {
        let [oh, ow] = self.p.out;
        let (hw, ohw) = (self.h * self.w, oh * ow);
        let mut out: Vec<T> = Vec::with_capacity(self.planes * ohw);
        let max = matches!(self.pool, Pool::Max);
        let mut arg: Vec<u32> = if max { Vec::with_capacity(self.planes * ohw) } else { Vec::new() };
        let (dst, argp) = (SendPtr(out.as_mut_ptr()), SendPtr(arg.as_mut_ptr()));
        let (ys, xs) = (self.spans(0), self.spans(1));
        let divisors: Vec<T> = self.divisors().into_iter().map(T::of).collect();
        planes(self.planes, |pl| {
            let plane = &x[pl * hw..(pl + 1) * hw];
            // Safety: plane `pl` writes every one of its own output (and argmax) elements
            // and nothing else.
            let y = unsafe { std::slice::from_raw_parts_mut(dst.get().add(pl * ohw), ohw) };
            let a =
                if max { unsafe { std::slice::from_raw_parts_mut(argp.get().add(pl * ohw), ohw) } } else { &mut [] };
            // Without NaN in the plane, one comparison decides each step (and compiles to
            // conditional moves: on real data it is a coin toss, which branches mispredict).
            let has_nan = max && plane.iter().fold(false, |acc, v| acc | v.is_nan());
            if max && !has_nan && self.whole_2x2() {
                self.max_2x2(plane, y, a);
                return;
            }
            for (oy, &(y0, ky0, ky1)) in ys.iter().enumerate() {
                for (ox, &(x0, kx0, kx1)) in xs.iter().enumerate() {
                    let at = oy * ow + ox;
                    if max {
                        let (best, best_i) = if has_nan {
                            self.max_exact(plane, (y0, ky0, ky1), (x0, kx0, kx1))
                        } else {
                            self.max_no_nan(plane, (y0, ky0, ky1), (x0, kx0, kx1))
                        };
                        y[at] = best;
                        a[at] = best_i as u32;
                    } else {
                        let mut sum = T::zero();
                        for ky in ky0..ky1 {
                            let row = (y0 + ky as isize) as usize * self.w;
                            for kx in kx0..kx1 {
                                sum += plane[(row as isize + x0 + kx as isize) as usize];
                            }
                        }
                        y[at] = sum / divisors[at];
                    }
                }
            }
        });
        // Safety: every plane wrote all of its elements above.
        unsafe {
            out.set_len(self.planes * ohw);
            if max {
                arg.set_len(self.planes * ohw);
            }
        }
        if max {
            *self.argmax.lock().unwrap_or_else(|e| e.into_inner()) = Some(arg);
        }
        out
    }

    /// The maximum of a window and its position, scanning as PyTorch does: a value
    /// replaces the best so far when it is greater or NaN.
    fn max_exact<T: Gemm + Real>(
        &self,
        plane: &[T],
        (y0, ky0, ky1): (isize, usize, usize),
        (x0, kx0, kx1): (isize, usize, usize),
    ) -> (T, usize) {
        let (mut best, mut best_i) = (T::neg_infinity(), usize::MAX);
        for ky in ky0..ky1 {
            let row = (y0 + (ky * self.p.dilation[0]) as isize) * self.w as isize + x0;
            for kx in kx0..kx1 {
                let i = (row + (kx * self.p.dilation[1]) as isize) as usize;
                let v = plane[i];
                if best_i == usize::MAX || v > best || v.is_nan() {
                    best = v;
                    best_i = i;
                }
            }
        }
        (best, best_i)
    }

    /// Whether every window is a whole 2x2 block at stride 2 (`MaxPool2d(2)`, the common
    /// case), which [`PoolOp::max_2x2`] computes.
    fn whole_2x2(&self) -> bool {
        let p = &self.p;
        p.kernel == [2, 2]
            && p.stride == [2, 2]
            && p.padding == [0, 0]
            && p.dilation == [1, 1]
            && 2 * p.out[0] <= self.h
            && 2 * p.out[1] <= self.w
    }

    /// [`PoolOp::max_no_nan`] for whole 2x2 windows at stride 2: the same result (the same
    /// scan order), with the loops unrolled.
    fn max_2x2<T: Gemm + Real>(&self, plane: &[T], y: &mut [T], a: &mut [u32]) {
        let [oh, ow] = self.p.out;
        let w = self.w;
        for oy in 0..oh {
            let top = 2 * oy * w;
            let (r0, r1) = (&plane[top..top + 2 * ow], &plane[top + w..top + w + 2 * ow]);
            let (yr, ar) = (&mut y[oy * ow..(oy + 1) * ow], &mut a[oy * ow..(oy + 1) * ow]);
            for (ox, (yv, av)) in yr.iter_mut().zip(ar.iter_mut()).enumerate() {
                let i = (top + 2 * ox) as u32;
                let (mut best, mut at) = (r0[2 * ox], i);
                for (v, j) in [(r0[2 * ox + 1], i + 1), (r1[2 * ox], i + w as u32), (r1[2 * ox + 1], i + w as u32 + 1)]
                {
                    let take = v > best;
                    best = std::hint::select_unpredictable(take, v, best);
                    at = std::hint::select_unpredictable(take, j, at);
                }
                *yv = best;
                *av = at;
            }
        }
    }

    /// [`PoolOp::max_exact`] for a plane without NaN: the same result, branch-free.
    fn max_no_nan<T: Gemm + Real>(
        &self,
        plane: &[T],
        (y0, ky0, ky1): (isize, usize, usize),
        (x0, kx0, kx1): (isize, usize, usize),
    ) -> (T, usize) {
        if ky0 >= ky1 || kx0 >= kx1 {
            return (T::neg_infinity(), usize::MAX);
        }
        let mut best_i = ((y0 + (ky0 * self.p.dilation[0]) as isize) * self.w as isize
            + x0
            + (kx0 * self.p.dilation[1]) as isize) as usize;
        let mut best = plane[best_i];
        for ky in ky0..ky1 {
            let row = (y0 + (ky * self.p.dilation[0]) as isize) * self.w as isize + x0;
            for kx in kx0..kx1 {
                let i = (row + (kx * self.p.dilation[1]) as isize) as usize;
                let v = plane[i];
                // The same as `v > best` without NaN; this form compiles to conditional moves.
                #[allow(clippy::neg_cmp_op_on_partial_ord)]
                let take = !(v <= best);
                best = std::hint::select_unpredictable(take, v, best);
                best_i = std::hint::select_unpredictable(take, i, best_i);
            }
        }
        (best, best_i)
    }

    /// Average pooling's divisor for each output position ([`avg_divisors`]); empty for
    /// max pooling.
    fn divisors(&self) -> Vec<f64> {
        match self.pool {
            Pool::Avg { count_include_pad, divisor_override } => {
                avg_divisors(&self.p, [self.h, self.w], count_include_pad, divisor_override)
            }
            Pool::Max => Vec::new(),
        }
    }

    fn backward<T: Gemm + Real>(&self, g: &[T]) -> candle_core::Result<Vec<T>> {
        let [oh, ow] = self.p.out;
        let (hw, ohw) = (self.h * self.w, oh * ow);
        let p = self.p;
        let saved = self.argmax.lock().unwrap_or_else(|e| e.into_inner());
        let arg = match (self.pool, saved.as_ref()) {
            (Pool::Max, Some(a)) => Some(a),
            (Pool::Max, None) => {
                return Err(candle_core::Error::Msg("max_pool2d: backward before forward".into()));
            }
            _ => None,
        };
        if let (Some(arg), true) = (arg, self.whole_2x2()) {
            return Ok(self.backward_2x2(g, arg));
        }
        let mut dx = vec![T::zero(); self.planes * hw];
        let dst = SendPtr(dx.as_mut_ptr());
        let divisors: Vec<T> = self.divisors().into_iter().map(T::of).collect();
        planes(self.planes, |pl| {
            let gp = &g[pl * ohw..(pl + 1) * ohw];
            // Safety: plane `pl` writes only its own input-gradient elements.
            let d = unsafe { std::slice::from_raw_parts_mut(dst.get().add(pl * hw), hw) };
            if let Some(arg) = arg {
                for (gv, &i) in gp.iter().zip(&arg[pl * ohw..(pl + 1) * ohw]) {
                    if (i as usize) < hw {
                        d[i as usize] += *gv;
                    }
                }
                return;
            }
            for oy in 0..oh {
                let y0 = (oy * p.stride[0]) as isize - p.padding[0] as isize;
                let (ky0, ky1) = self.span(0, y0);
                for ox in 0..ow {
                    let x0 = (ox * p.stride[1]) as isize - p.padding[1] as isize;
                    let (kx0, kx1) = self.span(1, x0);
                    let share = gp[oy * ow + ox] / divisors[oy * ow + ox];
                    for ky in ky0..ky1 {
                        let row = (y0 + ky as isize) as usize * self.w;
                        for kx in kx0..kx1 {
                            d[row + (x0 + kx as isize) as usize] += share;
                        }
                    }
                }
            }
        });
        Ok(dx)
    }

    /// Max pooling's backward pass over whole 2x2 windows at stride 2: the windows tile
    /// the input, so each input gradient element is written once (the output gradient at
    /// its window's maximum, zero elsewhere) instead of zero-filled and then added to.
    fn backward_2x2<T: Gemm + Real>(&self, g: &[T], arg: &[u32]) -> Vec<T> {
        let [oh, ow] = self.p.out;
        let (w, hw, ohw) = (self.w, self.h * self.w, oh * ow);
        let mut dx: Vec<T> = Vec::with_capacity(self.planes * hw);
        let dst = SendPtr(dx.as_mut_ptr());
        planes(self.planes, |pl| {
            // Safety: plane `pl` writes only its own elements, and all of them: every
            // window row below, and first the rows no window covers (an odd height's last).
            let d = unsafe { std::slice::from_raw_parts_mut(dst.get().add(pl * hw), hw) };
            d[2 * oh * w..].fill(T::zero());
            let (gp, ap) = (&g[pl * ohw..(pl + 1) * ohw], &arg[pl * ohw..(pl + 1) * ohw]);
            for oy in 0..oh {
                // The window row's two input rows, zeroed while they are in cache, then
                // each window's maximum set.
                let rows = &mut d[2 * oy * w..(2 * oy + 2) * w];
                rows.fill(T::zero());
                let base = 2 * oy * w;
                for (gv, &at) in gp[oy * ow..(oy + 1) * ow].iter().zip(&ap[oy * ow..(oy + 1) * ow]) {
                    rows[at as usize - base] = *gv;
                }
            }
        });
        // Safety: every plane wrote all of its elements.
        unsafe { dx.set_len(self.planes * hw) };
        dx
    }

    fn typed<T: Gemm + Real>(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<Vec<T>> {
        let x = contiguous::<T>(s, l)?;
        Ok(self.forward(x))
    }
}

/// Runs `f(plane)` for every plane, split across candle's threads.
pub(crate) fn planes(n: usize, f: impl Fn(usize) + Sync) {
    if n < 2 || candle_core::utils::get_num_threads() == 1 {
        (0..n).for_each(f);
    } else {
        candle_core::utils::barrier_pool().execute_chunked(n, |range| range.for_each(&f));
    }
}

fn wrong() -> candle_core::Error {
    candle_core::Error::Msg("pooling: the fused kernel needs a contiguous f32 or f64 CPU tensor".into())
}

impl CustomOp1 for PoolOp {
    fn name(&self) -> &'static str {
        "ember-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let n = self.planes;
        let shape = Shape::from((l.dims()[0], l.dims()[1], self.p.out[0], self.p.out[1]));
        debug_assert_eq!(l.dims()[0] * l.dims()[1], n);
        let storage = match s {
            CpuStorage::F32(_) => CpuStorage::F32(self.typed::<f32>(s, l)?),
            CpuStorage::F64(_) => CpuStorage::F64(self.typed::<f64>(s, l)?),
            _ => return Err(wrong()),
        };
        Ok((storage, shape))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let dx = match x.dtype() {
            DType::F32 => Tensor::from_vec(cpu_data::<f32, _>(g, |gs| self.backward(gs))??, x.dims(), x.device())?,
            DType::F64 => Tensor::from_vec(cpu_data::<f64, _>(g, |gs| self.backward(gs))??, x.dims(), x.device())?,
            _ => return Err(wrong()),
        };
        Ok(Some(dx))
    }
}
