//! Numerical building blocks shared by plugin crates (which never depend on each
//! other): elementwise functions given by a scalar formula and its derivative, and the
//! softmax / log-softmax normalisation, both as CPU kernels wired into candle's autograd;
//! the fused linear layer and the fused optimizer loops.
//!
//! Every op with a fused CPU kernel also has a device-generic path built from composed
//! candle ops ([`composed`]): CUDA and Metal tensors take it automatically, and
//! [`Kernels::Composed`] makes CPU tensors take it too, which is how the tests keep it
//! correct on machines without a GPU.

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::Device;

pub mod batch_norm;
pub mod composed;
pub mod conv;
pub mod fused;
pub mod linear;
pub mod normalize;
pub mod pointwise;
pub mod pool;
pub mod ternary;

/// A buffer pointer handed to the threads of a parallel kernel, each of which writes its
/// own disjoint elements.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *mut T);
// Safety: the threads that share the pointer touch disjoint elements, and the buffer
// outlives the parallel section.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    pub(crate) fn get(&self) -> *mut T {
        self.0
    }
}

/// `Σ f(x)` over `xs`, accumulated in eight lanes (so the loop vectorizes) that are added
/// at the end: the order differs from a left-to-right sum by rounding only.
#[inline]
pub(crate) fn lane_sum<T: Copy, A: Copy + std::ops::Add<Output = A>>(xs: &[T], zero: A, f: impl Fn(T) -> A) -> A {
    let mut acc = [zero; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            acc[l] = acc[l] + f(c[l]);
        }
    }
    for (l, &v) in rest.iter().enumerate() {
        acc[l] = acc[l] + f(v);
    }
    let (a, b) = ((acc[0] + acc[4]) + (acc[2] + acc[6]), (acc[1] + acc[5]) + (acc[3] + acc[7]));
    a + b
}

thread_local! {
    /// Each thread's scratch buffers for [`scratch`], kept between calls.
    static SCRATCH: std::cell::RefCell<[Vec<f64>; 3]> = const { std::cell::RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

/// Calls `f` with three scratch buffers of `lens` elements of `T` (f32 or f64) owned by
/// the calling thread and reused by its later calls, so a kernel's working memory is
/// neither allocated nor zero-filled per call. Their contents are unspecified (zero or
/// left from an earlier call): callers write elements before reading them.
pub(crate) fn scratch<T: fused::CpuFloat, R>(lens: [usize; 3], f: impl FnOnce([&mut [T]; 3]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut bufs = cell.borrow_mut();
        let [a, b, c] = &mut *bufs;
        let view = |buf: &mut Vec<f64>, len: usize| -> &mut [T] {
            let words = (len * std::mem::size_of::<T>()).div_ceil(8);
            if buf.len() < words {
                buf.resize(words, 0.0);
            }
            // Safety: T is f32 or f64 (the only `CpuFloat`s): every bit pattern is a valid
            // value, its alignment divides f64's, and `len` of them fit in `words` f64s.
            unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<T>(), len) }
        };
        f([view(a, lens[0]), view(b, lens[1]), view(c, lens[2])])
    })
}

/// The elements of a contiguous CPU buffer of `T` that `l` describes.
pub(crate) fn contiguous<'a, T: fused::CpuFloat>(
    s: &'a candle_core::CpuStorage,
    l: &candle_core::Layout,
) -> candle_core::Result<&'a [T]> {
    let wrong = || candle_core::Error::Msg(format!("a fused kernel needs a contiguous {:?} CPU tensor", T::DTYPE));
    if !l.is_contiguous() {
        return Err(wrong());
    }
    let data = T::slice(s).ok_or_else(wrong)?;
    Ok(&data[l.start_offset()..l.start_offset() + l.shape().elem_count()])
}

/// Calls `f` with the elements of the CPU tensor `t` (made contiguous first if needed).
pub(crate) fn cpu_data<T: fused::CpuFloat, R>(
    t: &candle_core::Tensor,
    f: impl FnOnce(&[T]) -> R,
) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(s) => Ok(f(contiguous::<T>(s, layout)?)),
        _ => Err(candle_core::Error::Msg("a fused kernel got a non-CPU tensor".into())),
    }
}

/// Which implementation the ops with a fused CPU kernel use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// Fused kernels for CPU tensors, composed candle ops on other devices (the default).
    Auto,
    /// Composed candle ops on every device: the path CUDA and Metal take, run on the CPU.
    Composed,
}

impl Kernels {
    /// The environment variable that selects the kernels for a whole process.
    pub const ENV: &'static str = "EMBER_KERNELS";

    /// Parses `auto` or `composed`.
    pub fn parse(s: &str) -> crate::Result<Self> {
        match s.trim() {
            "auto" | "" => Ok(Kernels::Auto),
            "composed" => Ok(Kernels::Composed),
            other => Err(crate::Error::input(format!(
                "{}={other:?} is not a kernel choice; use auto (fused CPU kernels where they apply) or composed (the device-generic path)",
                Self::ENV
            ))),
        }
    }

    /// The choice `EMBER_KERNELS` makes (`auto` when unset); an unknown value is an error.
    pub fn from_env() -> crate::Result<Self> {
        match std::env::var(Self::ENV) {
            Ok(v) => Self::parse(&v),
            Err(_) => Ok(Kernels::Auto),
        }
    }
}

// 0: auto (the default); 2: composed.
static PROCESS_KERNELS: AtomicU8 = AtomicU8::new(0);

thread_local! {
    static THREAD_KERNELS: Cell<Option<Kernels>> = const { Cell::new(None) };
}

/// The kernels in effect on this thread: a [`with_kernels`] scope, else the process-wide
/// choice ([`set_kernels`], else [`Kernels::Auto`]). The library does not read
/// `EMBER_KERNELS` itself: the `ember` command line reads it once and calls
/// [`set_kernels`]; a program of your own can do the same with [`Kernels::from_env`].
pub fn kernels() -> Kernels {
    if let Some(k) = THREAD_KERNELS.with(Cell::get) {
        return k;
    }
    match PROCESS_KERNELS.load(Ordering::Relaxed) {
        2 => Kernels::Composed,
        _ => Kernels::Auto,
    }
}

/// Sets the kernels for the whole process (threads inside a [`with_kernels`] scope keep
/// theirs).
pub fn set_kernels(k: Kernels) {
    PROCESS_KERNELS.store(if k == Kernels::Auto { 0 } else { 2 }, Ordering::Relaxed);
}

/// Runs `f` with `k` in effect on this thread only (tests use it to run the composed path
/// beside the fused one).
pub fn with_kernels<R>(k: Kernels, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Kernels>);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREAD_KERNELS.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(THREAD_KERNELS.with(|c| c.replace(Some(k))));
    f()
}

/// Whether ops on `device` use their fused CPU kernels: only CPU tensors, and only under
/// [`Kernels::Auto`].
pub fn fused_on(device: &Device) -> bool {
    device.is_cpu() && kernels() == Kernels::Auto
}
