//! 2-d convolution as one CPU operation: per image, the windows are unrolled into a
//! column buffer (im2col) and multiplied with the weight by gemm, images split across
//! threads. The backward pass recomputes each image's columns for the weight gradient
//! (`dW += g · colsᵀ`), folds `Wᵀ · g` back into the input gradient (col2im) only when the
//! input tracks a graph (a network's first layer gets none: its input is data), and sums
//! the bias gradient in the same pass.
//!
//! CUDA, Metal and `EMBER_KERNELS=composed` take a path composed from candle ops
//! (`ember-layers`), which the tests hold this kernel against.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};
use gemm::Parallelism;

use super::linear::Gemm;
use super::{contiguous, cpu_data, lane_sum, scratch, SendPtr};
use crate::Result;

/// A convolution's geometry, per spatial dimension (height, width), as PyTorch's
/// `Conv2d` arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvParams {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl ConvParams {
    /// The output size for an input `[h, w]` and kernel `[kh, kw]`, or `None` when the
    /// dilated kernel does not fit the padded input.
    pub fn out(&self, hw: [usize; 2], k: [usize; 2]) -> Option<[usize; 2]> {
        let one = |d: usize| {
            let padded = hw[d] + 2 * self.padding[d];
            let extent = self.dilation[d] * (k[d] - 1) + 1;
            (padded >= extent && self.stride[d] > 0).then(|| (padded - extent) / self.stride[d] + 1)
        };
        Some([one(0)?, one(1)?])
    }
}

/// Whether [`conv2d`] runs the fused kernel for these operands: contiguous-able f32 or f64
/// CPU tensors of one dtype, under the `auto` kernels.
pub fn fused_applies(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> bool {
    super::fused_on(x.device())
        && x.rank() == 4
        && w.rank() == 4
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && w.dtype() == x.dtype()
        && bias.is_none_or(|b| b.rank() == 1 && b.dtype() == x.dtype())
}

/// `x [N, C, H, W]` convolved with `w [O, C / groups, KH, KW]` (plus `bias [O]`), by the
/// fused CPU kernel; see [`fused_applies`] for when it applies.
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &ConvParams) -> Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let (o, cg, kh, kw) = w.dims4()?;
    if p.groups == 0 || cg * p.groups != c || o % p.groups != 0 || bias.is_some_and(|b| b.dims() != [o]) {
        return Err(crate::Error::input(format!(
            "conv2d: input {:?}, weight {:?}, bias {:?} and groups = {} do not fit together",
            x.dims(),
            w.dims(),
            bias.map(|b| b.dims().to_vec()),
            p.groups
        )));
    }
    let [oh, ow] = p.out([h, wd], [kh, kw]).ok_or_else(|| {
        crate::Error::input(format!("conv2d: a {kh}x{kw} kernel does not fit the input [{h}, {wd}] with {p:?}"))
    })?;
    let op = Conv { p: *p, dims: Dims { n, c, h, w: wd, o, kh, kw, oh, ow }, input_grad: x.track_op() };
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    Ok(match bias {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, op)?,
        None => x.apply_op2(&w, op)?,
    })
}

#[derive(Clone, Copy, Debug)]
struct Dims {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
}

#[derive(Clone, Copy, Debug)]
struct Conv {
    p: ConvParams,
    dims: Dims,
    input_grad: bool,
}

impl Conv {
    fn cg(&self) -> usize {
        self.dims.c / self.p.groups
    }

    fn og(&self) -> usize {
        self.dims.o / self.p.groups
    }

    /// Rows of one group's column buffer: `Cg · KH · KW`.
    fn rows(&self) -> usize {
        self.cg() * self.dims.kh * self.dims.kw
    }

    fn l(&self) -> usize {
        self.dims.oh * self.dims.ow
    }

    /// For kernel column `j`, the output columns whose input column is inside the image:
    /// `lo..hi` (the rest read padding).
    fn valid_cols(&self, j: usize) -> (usize, usize) {
        let d = &self.dims;
        let (s, pad, dil) = (self.p.stride[1], self.p.padding[1], self.p.dilation[1]);
        let off = j * dil;
        // ix = ox * s + off - pad must be in 0..w.
        let lo = if off >= pad { 0 } else { (pad - off).div_ceil(s) };
        let hi = if d.w + pad > off { ((d.w + pad - off - 1) / s + 1).min(d.ow) } else { 0 };
        (lo.min(hi), hi)
    }

    /// Unrolls the windows of group `g` of one image `x [C, H, W]` into the `L` columns
    /// at the start of `cols`, whose rows are `ld` apart (`cols [rows, ld]`).
    fn im2col<T: Gemm>(&self, x: &[T], g: usize, cols: &mut [T], ld: usize) {
        let d = &self.dims;
        let l = self.l();
        let mut r = 0;
        for c in g * self.cg()..(g + 1) * self.cg() {
            let plane = &x[c * d.h * d.w..(c + 1) * d.h * d.w];
            for i in 0..d.kh {
                for j in 0..d.kw {
                    let row = &mut cols[r * ld..r * ld + l];
                    let (lo, hi) = self.valid_cols(j);
                    for oy in 0..d.oh {
                        let out = &mut row[oy * d.ow..(oy + 1) * d.ow];
                        let iy = (oy * self.p.stride[0] + i * self.p.dilation[0]) as isize - self.p.padding[0] as isize;
                        if iy < 0 || iy >= d.h as isize {
                            out.fill(T::zero());
                            continue;
                        }
                        let src = &plane[iy as usize * d.w..(iy as usize + 1) * d.w];
                        out[..lo].fill(T::zero());
                        out[hi..].fill(T::zero());
                        if lo == hi {
                            continue;
                        }
                        let ix0 = lo * self.p.stride[1] + j * self.p.dilation[1] - self.p.padding[1];
                        if self.p.stride[1] == 1 {
                            out[lo..hi].copy_from_slice(&src[ix0..ix0 + (hi - lo)]);
                        } else {
                            for (k, v) in out[lo..hi].iter_mut().enumerate() {
                                *v = src[ix0 + k * self.p.stride[1]];
                            }
                        }
                    }
                    r += 1;
                }
            }
        }
    }

    /// Adds the column gradients of group `g` (the `L` columns at the start of `cols`,
    /// rows `ld` apart) back into one image's input gradient `dx [C, H, W]` (the
    /// transpose of [`Conv::im2col`]).
    fn col2im<T: Gemm>(&self, cols: &[T], g: usize, dx: &mut [T], ld: usize) {
        let d = &self.dims;
        let l = self.l();
        let mut r = 0;
        for c in g * self.cg()..(g + 1) * self.cg() {
            let plane = &mut dx[c * d.h * d.w..(c + 1) * d.h * d.w];
            for i in 0..d.kh {
                for j in 0..d.kw {
                    let row = &cols[r * ld..r * ld + l];
                    let (lo, hi) = self.valid_cols(j);
                    for oy in 0..d.oh {
                        let iy = (oy * self.p.stride[0] + i * self.p.dilation[0]) as isize - self.p.padding[0] as isize;
                        if iy < 0 || iy >= d.h as isize {
                            continue;
                        }
                        if lo == hi {
                            continue;
                        }
                        let src = &row[oy * d.ow..(oy + 1) * d.ow];
                        let dst = &mut plane[iy as usize * d.w..(iy as usize + 1) * d.w];
                        let ix0 = lo * self.p.stride[1] + j * self.p.dilation[1] - self.p.padding[1];
                        if self.p.stride[1] == 1 {
                            for (o, v) in dst[ix0..ix0 + (hi - lo)].iter_mut().zip(&src[lo..hi]) {
                                *o += *v;
                            }
                        } else {
                            for (k, v) in src[lo..hi].iter().enumerate() {
                                dst[ix0 + k * self.p.stride[1]] += *v;
                            }
                        }
                    }
                    r += 1;
                }
            }
        }
    }

    /// Images per block: enough that one block's columns (`block · L`) make a product
    /// wide enough for gemm to run near its peak, at most `per` (one thread's share).
    fn block(&self, per: usize) -> usize {
        (4096 / self.l().max(1)).clamp(1, per.max(1))
    }

    fn forward<T: Gemm>(&self, x: &[T], w: &[T], b: Option<&[T]>) -> Vec<T> {
        let d = self.dims;
        let (l, rows, og) = (self.l(), self.rows(), self.og());
        let size = d.c * d.h * d.w;
        let mut out: Vec<T> = Vec::with_capacity(d.n * d.o * l);
        let dst = SendPtr(out.as_mut_ptr());
        let threads = candle_core::utils::get_num_threads().clamp(1, d.n.max(1));
        let per = d.n.div_ceil(threads);
        let bs = self.block(per);
        let run = |t: usize| {
            scratch::<T, _>([rows * bs * l, og * bs * l, 0], |[cols, tmp, _]| {
                let (first, end) = (t * per, ((t + 1) * per).min(d.n));
                let mut n0 = first;
                while n0 < end {
                    let nb = bs.min(end - n0);
                    let ld = nb * l;
                    for g in 0..self.p.groups {
                        for j in 0..nb {
                            let xn = &x[(n0 + j) * size..(n0 + j + 1) * size];
                            self.im2col(xn, g, &mut cols[j * l..], ld);
                        }
                        // tmp [og, nb·L] = W_g [og, rows] · cols [rows, nb·L]
                        unsafe {
                            gemm_serial(
                                tmp.as_mut_ptr(),
                                (og, ld, rows),
                                (w[g * og * rows..].as_ptr(), rows as isize, 1),
                                (cols.as_ptr(), ld as isize, 1),
                                false,
                            )
                        }
                        for j in 0..nb {
                            for o in 0..og {
                                let ch = g * og + o;
                                // Safety: image n0 + j's output rows belong to this thread,
                                // and every element is written here.
                                let y = unsafe {
                                    std::slice::from_raw_parts_mut(dst.get().add(((n0 + j) * d.o + ch) * l), l)
                                };
                                let src = &tmp[o * ld + j * l..o * ld + (j + 1) * l];
                                match b {
                                    Some(b) => {
                                        for (yv, sv) in y.iter_mut().zip(src) {
                                            *yv = *sv + b[ch];
                                        }
                                    }
                                    None => y.copy_from_slice(src),
                                }
                            }
                        }
                    }
                    n0 += nb;
                }
            })
        };
        if threads == 1 {
            run(0);
        } else {
            candle_core::utils::barrier_pool().execute_chunked(threads, |range| range.for_each(&run));
        }
        // Safety: every output element was written above.
        unsafe { out.set_len(d.n * d.o * l) };
        out
    }

    /// `(dx, dw, db)` for the output gradient `g [N, O, OH, OW]`.
    fn backward<T: Gemm>(&self, x: &[T], w: &[T], g: &[T], with_bias: bool) -> (Option<Vec<T>>, Vec<T>, Vec<T>) {
        let d = self.dims;
        let (l, rows, og) = (self.l(), self.rows(), self.og());
        let size = d.c * d.h * d.w;
        let threads = candle_core::utils::get_num_threads().clamp(1, d.n.max(1));
        let per = d.n.div_ceil(threads);
        let bs = self.block(per);
        // One weight and bias gradient per thread, summed after.
        let mut dws = vec![T::zero(); threads * d.o * rows];
        let mut dbs = vec![T::zero(); threads * d.o];
        let mut dx = if self.input_grad { Some(vec![T::zero(); d.n * size]) } else { None };
        let (dws_p, dbs_p) = (SendPtr(dws.as_mut_ptr()), SendPtr(dbs.as_mut_ptr()));
        let dx_p = dx.as_mut().map(|v| SendPtr(v.as_mut_ptr()));
        let dcols_len = if dx_p.is_some() { rows * bs * l } else { 0 };
        let run = |t: usize| {
            scratch::<T, _>([rows * bs * l, og * bs * l, dcols_len], |[cols, gt, dcols]| {
                let (first, end) = (t * per, ((t + 1) * per).min(d.n));
                // Safety: thread `t` owns its slices of `dws` and `dbs`, and the images
                // first..end of `dx`.
                let dw = unsafe { std::slice::from_raw_parts_mut(dws_p.get().add(t * d.o * rows), d.o * rows) };
                let db = unsafe { std::slice::from_raw_parts_mut(dbs_p.get().add(t * d.o), d.o) };
                let mut n0 = first;
                while n0 < end {
                    let nb = bs.min(end - n0);
                    let ld = nb * l;
                    for gi in 0..self.p.groups {
                        for j in 0..nb {
                            let xn = &x[(n0 + j) * size..(n0 + j + 1) * size];
                            self.im2col(xn, gi, &mut cols[j * l..], ld);
                            for o in 0..og {
                                let src = &g[((n0 + j) * d.o + gi * og + o) * l..][..l];
                                gt[o * ld + j * l..o * ld + (j + 1) * l].copy_from_slice(src);
                                if with_bias {
                                    db[gi * og + o] += lane_sum(src, T::zero(), |v| v);
                                }
                            }
                        }
                        // dW_g [og, rows] += g [og, nb·L] · colsᵀ [nb·L, rows]
                        unsafe {
                            gemm_serial(
                                dw[gi * og * rows..].as_mut_ptr(),
                                (og, rows, ld),
                                (gt.as_ptr(), ld as isize, 1),
                                (cols.as_ptr(), 1, ld as isize),
                                true,
                            )
                        }
                        if let Some(dx_p) = dx_p {
                            // dcols [rows, nb·L] = W_gᵀ [rows, og] · g [og, nb·L]
                            unsafe {
                                gemm_serial(
                                    dcols.as_mut_ptr(),
                                    (rows, ld, og),
                                    (w[gi * og * rows..].as_ptr(), 1, rows as isize),
                                    (gt.as_ptr(), ld as isize, 1),
                                    false,
                                )
                            }
                            for j in 0..nb {
                                // Safety: image n0 + j belongs to this thread.
                                let dxn =
                                    unsafe { std::slice::from_raw_parts_mut(dx_p.get().add((n0 + j) * size), size) };
                                self.col2im(&dcols[j * l..], gi, dxn, ld);
                            }
                        }
                    }
                    n0 += nb;
                }
            })
        };
        if threads == 1 {
            run(0);
        } else {
            candle_core::utils::barrier_pool().execute_chunked(threads, |range| range.for_each(&run));
        }
        let mut dw = dws[..d.o * rows].to_vec();
        let mut db = dbs[..d.o].to_vec();
        for t in 1..threads {
            for (acc, v) in dw.iter_mut().zip(&dws[t * d.o * rows..(t + 1) * d.o * rows]) {
                *acc += *v;
            }
            for (acc, v) in db.iter_mut().zip(&dbs[t * d.o..(t + 1) * d.o]) {
                *acc += *v;
            }
        }
        (dx, dw, db)
    }
}

/// `dst [m, n] (row-major) = (accumulate ? dst : 0) + a [m, k] · b [k, n]` on this thread,
/// each operand given as (pointer, row stride, column stride).
///
/// # Safety
/// Every pointer must reach all the elements its strides address.
unsafe fn gemm_serial<T: Gemm>(
    dst: *mut T,
    (m, n, k): (usize, usize, usize),
    a: (*const T, isize, isize),
    b: (*const T, isize, isize),
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            std::slice::from_raw_parts_mut(dst, m * n).fill(T::zero());
        }
        return;
    }
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        n as isize,
        accumulate,
        a.0,
        a.2,
        a.1,
        b.0,
        b.2,
        b.1,
        if accumulate { T::one() } else { T::zero() },
        T::one(),
        false,
        false,
        false,
        Parallelism::None,
    )
}

fn wrong() -> candle_core::Error {
    candle_core::Error::Msg("conv2d: the fused kernel needs contiguous f32 or f64 CPU tensors of one dtype".into())
}

impl Conv {
    fn shape(&self) -> Shape {
        Shape::from((self.dims.n, self.dims.o, self.dims.oh, self.dims.ow))
    }

    fn fwd<T: Gemm>(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w) = (contiguous::<T>(x.0, x.1)?, contiguous::<T>(w.0, w.1)?);
        let b = b.map(|(s, l)| contiguous::<T>(s, l)).transpose()?;
        Ok((T::to_cpu_storage_owned(self.forward(x, w, b)), self.shape()))
    }

    fn bwd_typed<T: Gemm>(
        &self,
        x: &Tensor,
        w: &Tensor,
        with_bias: bool,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Tensor, Option<Tensor>)> {
        let g = g.contiguous()?;
        let d = self.dims;
        let device = x.device().clone();
        let (dx, dw, db) = cpu_data::<T, _>(x, |xs| {
            cpu_data::<T, _>(w, |ws| cpu_data::<T, _>(&g, |gs| self.backward(xs, ws, gs, with_bias)))
        })???;
        let dx = dx.map(|v| Tensor::from_vec(v, (d.n, d.c, d.h, d.w), &device)).transpose()?;
        let dw = Tensor::from_vec(dw, (d.o, self.cg(), d.kh, d.kw), &device)?;
        let db = if with_bias { Some(Tensor::from_vec(db, d.o, &device)?) } else { None };
        Ok((dx, dw, db))
    }

    fn bwd_any(
        &self,
        x: &Tensor,
        w: &Tensor,
        with_bias: bool,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Tensor, Option<Tensor>)> {
        match x.dtype() {
            DType::F32 => self.bwd_typed::<f32>(x, w, with_bias, g),
            DType::F64 => self.bwd_typed::<f64>(x, w, with_bias, g),
            _ => Err(wrong()),
        }
    }
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "ember-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        match s1 {
            CpuStorage::F32(_) => self.fwd::<f32>((s1, l1), (s2, l2), None),
            CpuStorage::F64(_) => self.fwd::<f64>((s1, l1), (s2, l2), None),
            _ => Err(wrong()),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.bwd_any(x, w, false, g)?;
        Ok((dx, Some(dw)))
    }
}

impl CustomOp3 for Conv {
    fn name(&self) -> &'static str {
        "ember-conv2d"
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
        match s1 {
            CpuStorage::F32(_) => self.fwd::<f32>((s1, l1), (s2, l2), Some((s3, l3))),
            CpuStorage::F64(_) => self.fwd::<f64>((s1, l1), (s2, l2), Some((s3, l3))),
            _ => Err(wrong()),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = self.bwd_any(x, w, true, g)?;
        Ok((dx, Some(dw), db))
    }
}
