//! Numerical building blocks shared by plugin crates (which never depend on each
//! other): elementwise functions given by a scalar formula and its derivative, and the
//! softmax / log-softmax normalisation, both as CPU kernels wired into candle's autograd;
//! the fused linear layer and the fused optimizer loops.

pub mod fused;
pub mod linear;
pub mod normalize;
pub mod pointwise;
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
