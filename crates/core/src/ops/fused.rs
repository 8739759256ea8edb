//! In-place access to tensor data for fused CPU kernels (optimizer steps that update a
//! parameter and its state buffers in one pass over memory).
//!
//! candle's in-place ops mutate only their first tensor. To update several tensors at
//! once, [`with_cpu_data`] nests one in-place op per tensor: each op holds the write lock
//! of its tensor's storage while the next one runs, so the innermost closure sees every
//! buffer as an ordinary `&mut [T]`, without `unsafe` and without writing through a
//! shared reference. The tensors must be distinct, contiguous CPU tensors of one dtype.

use std::cell::RefCell;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, InplaceOp1, InplaceOp2, Layout, Tensor};

use super::SendPtr;
use crate::{Error, Result};

/// A float type whose CPU buffers the fused kernels work on.
pub trait CpuFloat: Copy + Send + Sync + 'static {
    const DTYPE: DType;
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
    fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]>;
}

impl CpuFloat for f32 {
    const DTYPE: DType = DType::F32;
    fn slice(s: &CpuStorage) -> Option<&[Self]> {
        match s {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
    fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]> {
        match s {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
}

impl CpuFloat for f64 {
    const DTYPE: DType = DType::F64;
    fn slice(s: &CpuStorage) -> Option<&[Self]> {
        match s {
            CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
    fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]> {
        match s {
            CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
}

fn range(layout: &Layout) -> candle_core::Result<(usize, usize)> {
    layout.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("fused kernel: tensor is not contiguous".into()))
}

fn data_mut<'a, T: CpuFloat>(s: &'a mut CpuStorage, l: &Layout) -> candle_core::Result<&'a mut [T]> {
    let (a, b) = range(l)?;
    let dtype = s.dtype();
    T::slice_mut(s)
        .map(|v| &mut v[a..b])
        .ok_or_else(|| candle_core::Error::Msg(format!("fused kernel: expected {:?}, got {dtype:?}", T::DTYPE)))
}

fn data<'a, T: CpuFloat>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [T]> {
    let (a, b) = range(l)?;
    T::slice(s)
        .map(|v| &v[a..b])
        .ok_or_else(|| candle_core::Error::Msg(format!("fused kernel: expected {:?}", T::DTYPE)))
}

struct Lock1<F>(RefCell<F>);

impl<F: FnMut(&mut CpuStorage, &Layout) -> candle_core::Result<()>> InplaceOp1 for Lock1<F> {
    fn name(&self) -> &'static str {
        "fused-lock"
    }
    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> candle_core::Result<()> {
        (self.0.borrow_mut())(s, l)
    }
}

struct Lock2<F>(RefCell<F>);

impl<F: FnMut(&mut CpuStorage, &Layout, &CpuStorage, &Layout) -> candle_core::Result<()>> InplaceOp2 for Lock2<F> {
    fn name(&self) -> &'static str {
        "fused-lock"
    }
    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<()> {
        (self.0.borrow_mut())(s1, l1, s2, l2)
    }
}

fn lock<T: CpuFloat>(t: &Tensor, mut f: impl FnMut(&mut [T]) -> candle_core::Result<()>) -> candle_core::Result<()> {
    t.inplace_op1(&Lock1(RefCell::new(|s: &mut CpuStorage, l: &Layout| f(data_mut(s, l)?))))
}

/// Whether the fused kernels can run on these tensors: CPU, contiguous, dtype `T`, one
/// element count.
pub fn fusable<T: CpuFloat>(param: &Tensor, grad: &Tensor, states: &[&Tensor]) -> bool {
    crate::ops::fused_on(param.device())
        && std::iter::once(param).chain(std::iter::once(grad)).chain(states.iter().copied()).all(|t| {
            t.device().is_cpu() && t.is_contiguous() && t.dtype() == T::DTYPE && t.elem_count() == param.elem_count()
        })
}

/// What [`with_cpu_data`] calls: `(param, grad, states)`.
pub type DataFn<'a, T> = dyn FnMut(&mut [T], &[T], &mut [&mut [T]]) + 'a;

thread_local! {
    static FUSED_UPDATES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many fused updates ([`with_cpu_data`] calls) this thread has run: `ember bench
/// optimizer` reports the path that really ran by comparing it before and after. Per
/// thread, like the kernel choice ([`crate::ops::with_kernels`]), so steps on other
/// threads (tests running side by side) do not count.
pub fn fused_updates() -> u64 {
    FUSED_UPDATES.with(|n| n.get())
}

/// Calls `f(param, grad, states)` on the CPU data of the tensors: `param` and every
/// state writable, `grad` read-only. Up to four state tensors.
pub fn with_cpu_data<T: CpuFloat>(
    param: &Tensor,
    grad: &Tensor,
    states: &[&Tensor],
    f: &mut DataFn<'_, T>,
) -> Result<()> {
    if !fusable::<T>(param, grad, states) {
        return Err(Error::input(format!(
            "fused kernel needs contiguous {:?} CPU tensors of one size; use the composed path",
            T::DTYPE
        )));
    }
    FUSED_UPDATES.with(|n| n.set(n.get() + 1));
    let mut go = |p: &mut [T], g: &[T], s: &mut [&mut [T]]| -> candle_core::Result<()> {
        f(p, g, s);
        Ok(())
    };
    let mut run = |p: &mut CpuStorage, pl: &Layout, g: &CpuStorage, gl: &Layout| -> candle_core::Result<()> {
        let (p, g) = (data_mut::<T>(p, pl)?, data::<T>(g, gl)?);
        match states {
            [] => go(p, g, &mut []),
            [a] => lock(a, |a| go(p, g, &mut [a])),
            [a, b] => lock(a, |a| lock(b, |b| go(p, g, &mut [&mut *a, b]))),
            [a, b, c] => lock(a, |a| lock(b, |b| lock(c, |c| go(p, g, &mut [&mut *a, &mut *b, c])))),
            [a, b, c, d] => {
                lock(a, |a| lock(b, |b| lock(c, |c| lock(d, |d| go(p, g, &mut [&mut *a, &mut *b, &mut *c, d])))))
            }
            _ => candle_core::bail!("fused kernel: at most four state tensors"),
        }
    };
    param.inplace_op2(grad, &Lock2(RefCell::new(&mut run)))?;
    Ok(())
}

/// Tensors up to this many elements are updated on the calling thread.
pub const CHUNK: usize = 1 << 16;

/// The update of one chunk of a parameter, its gradient and its state buffers.
///
/// Implement [`ChunkKernel::run`] with `#[inline(always)]`: [`par_chunks`] then compiles
/// it once per vector unit (AVX-512, AVX2, baseline) and picks the widest this CPU has.
/// Results do not depend on the choice: Rust never contracts `a * b + c` into a fused
/// multiply-add, so each variant performs the same IEEE operations.
pub trait ChunkKernel<T>: Sync {
    fn run(&self, p: &mut [T], g: &[T], states: &mut [&mut [T]]);
}

/// Closures are kernels too (compiled for the baseline CPU unless they inline).
impl<T, F: Fn(&mut [T], &[T], &mut [&mut [T]]) + Sync> ChunkKernel<T> for F {
    #[inline(always)]
    fn run(&self, p: &mut [T], g: &[T], states: &mut [&mut [T]]) {
        self(p, g, states)
    }
}

/// Runs `kernel` over matching chunks of `p`, `g` and each state, in parallel on candle's
/// barrier pool (the caller works too; one chunk for small tensors), with the widest
/// vector unit available.
pub fn par_chunks<T: CpuFloat, K: ChunkKernel<T>>(p: &mut [T], g: &[T], states: &mut [&mut [T]], kernel: &K) {
    let threads = crate::threads::count().max(1);
    if p.len() <= CHUNK || threads == 1 {
        run_vectorized(kernel, p, g, states);
        return;
    }
    let len = p.len();
    let chunks = len.div_ceil(CHUNK);
    let p_ptr = SendPtr(p.as_mut_ptr());
    let s_ptrs: Vec<SendPtr<T>> = states.iter_mut().map(|s| SendPtr(s.as_mut_ptr())).collect();
    candle_core::utils::barrier_pool().execute_chunked(chunks, |range| {
        for i in range {
            let start = i * CHUNK;
            let size = CHUNK.min(len - start);
            // Safety: chunk i covers elements [start, start + size) of each buffer, within
            // their common length; chunks are disjoint, and the buffers stay borrowed
            // (mutably, by this function) until every chunk is done.
            let pc = unsafe { std::slice::from_raw_parts_mut(p_ptr.get().add(start), size) };
            let mut sc: Vec<&mut [T]> =
                s_ptrs.iter().map(|s| unsafe { std::slice::from_raw_parts_mut(s.get().add(start), size) }).collect();
            run_vectorized(kernel, pc, &g[start..start + size], &mut sc);
        }
    });
}

fn run_vectorized<T, K: ChunkKernel<T>>(kernel: &K, p: &mut [T], g: &[T], s: &mut [&mut [T]]) {
    // Buffers from the system allocator usually share one offset from a cache line;
    // peeling the elements before p's first 64-byte boundary aligns every stream, so no
    // vector load straddles two cache lines.
    let misaligned = (p.as_ptr() as usize) % 64;
    let head = if misaligned == 0 { 0 } else { ((64 - misaligned) / std::mem::size_of::<T>()).min(p.len()) };
    if head > 0 && head < p.len() {
        let (p0, p1) = p.split_at_mut(head);
        let (g0, g1) = g.split_at(head);
        let mut s0 = Vec::with_capacity(s.len());
        let mut s1 = Vec::with_capacity(s.len());
        for st in s.iter_mut() {
            let (a, b) = st.split_at_mut(head);
            s0.push(a);
            s1.push(b);
        }
        run_widest(kernel, p0, g0, &mut s0);
        run_widest(kernel, p1, g1, &mut s1);
    } else {
        run_widest(kernel, p, g, s);
    }
}

fn run_widest<T, K: ChunkKernel<T>>(kernel: &K, p: &mut [T], g: &[T], s: &mut [&mut [T]]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            unsafe { run_avx512(kernel, p, g, s) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { run_avx2(kernel, p, g, s) };
            return;
        }
    }
    kernel.run(p, g, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn run_avx512<T, K: ChunkKernel<T>>(kernel: &K, p: &mut [T], g: &[T], s: &mut [&mut [T]]) {
    kernel.run(p, g, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run_avx2<T, K: ChunkKernel<T>>(kernel: &K, p: &mut [T], g: &[T], s: &mut [&mut [T]]) {
    kernel.run(p, g, s)
}
