//! Sliding windows over the last two dimensions, composed from candle ops (padding,
//! narrowing, reshaping), shared by the convolutions and the pooling layers.

use candle_core::Tensor;
use ember_core::Result;

/// The geometry of a 2-d sliding window: PyTorch's `kernel_size`, `stride`, `padding`
/// and `dilation`, each per dimension (height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    /// Pooling's `ceil_mode`: a last, partial window when the input leaves one.
    pub ceil_mode: bool,
}

impl Geometry {
    /// The extent of the dilated kernel along dimension `d`.
    pub fn extent(&self, d: usize) -> usize {
        self.dilation[d] * (self.kernel[d] - 1) + 1
    }

    /// The output size along dimension `d` for an input of `len`, as PyTorch computes
    /// it; `None` when the dilated kernel does not fit the padded input.
    pub fn out_len(&self, d: usize, len: usize) -> Option<usize> {
        let padded = len + 2 * self.padding[d];
        let extent = self.extent(d);
        if padded < extent {
            return None;
        }
        let span = padded - extent;
        let stride = self.stride[d];
        if !self.ceil_mode {
            return Some(span / stride + 1);
        }
        let mut out = span.div_ceil(stride) + 1;
        // PyTorch: the last window must start inside the input or its left padding.
        if (out - 1) * stride >= len + self.padding[d] {
            out -= 1;
        }
        Some(out)
    }

    /// The output sizes for an input of spatial size `[h, w]`.
    pub fn out(&self, hw: [usize; 2]) -> Option<[usize; 2]> {
        Some([self.out_len(0, hw[0])?, self.out_len(1, hw[1])?])
    }

    /// How much the input must be padded after its end along `d` (beyond `padding`) so
    /// that every strided window view fits: the ceil-mode window and the reshape trick
    /// of [`take`] read past the padded input.
    fn tail(&self, d: usize, len: usize, out: usize) -> usize {
        let needed = (self.kernel[d] - 1) * self.dilation[d] + out * self.stride[d];
        needed.saturating_sub(len + 2 * self.padding[d])
    }
}

/// `x` padded with `value` by `before` and `after` elements along `dim`.
pub fn pad(x: &Tensor, dim: usize, before: usize, after: usize, value: f64) -> Result<Tensor> {
    if before == 0 && after == 0 {
        return Ok(x.clone());
    }
    if value == 0.0 {
        return Ok(x.pad_with_zeros(dim, before, after)?);
    }
    let mut parts = Vec::with_capacity(3);
    let block = |n: usize| -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        dims[dim] = n;
        Ok(Tensor::full(value, dims, x.device())?.to_dtype(x.dtype())?)
    };
    if before > 0 {
        parts.push(block(before)?);
    }
    parts.push(x.clone());
    if after > 0 {
        parts.push(block(after)?);
    }
    Ok(Tensor::cat(&parts, dim)?)
}

/// Elements `start, start + step, ...` (`count` of them) of `x` along `dim`; `x` must
/// hold `start + count * step` elements there.
fn take(x: &Tensor, dim: usize, start: usize, count: usize, step: usize) -> Result<Tensor> {
    if step == 1 {
        return Ok(x.narrow(dim, start, count)?);
    }
    let t = x.narrow(dim, start, count * step)?;
    let mut dims = t.dims().to_vec();
    dims[dim] = count;
    dims.insert(dim + 1, step);
    Ok(t.reshape(dims)?.narrow(dim + 1, 0, 1)?.squeeze(dim + 1)?)
}

/// Every window position of `x` (`[.., H, W]`, padded with `value`): one tensor
/// `[.., OH, OW]` per kernel offset, in row-major kernel order, and the output size.
pub fn windows(x: &Tensor, g: &Geometry, value: f64) -> Result<(Vec<Tensor>, [usize; 2])> {
    let rank = x.rank();
    let (hd, wd) = (rank - 2, rank - 1);
    let (h, w) = (x.dim(hd)?, x.dim(wd)?);
    let [oh, ow] = g.out([h, w]).ok_or_else(|| {
        ember_core::Error::input(format!(
            "a {:?} window (dilated extent [{}, {}]) does not fit the input [{h}, {w}] padded by {:?}",
            g.kernel,
            g.extent(0),
            g.extent(1),
            g.padding
        ))
    })?;
    let xp = pad(x, hd, g.padding[0], g.padding[0] + g.tail(0, h, oh), value)?;
    let xp = pad(&xp, wd, g.padding[1], g.padding[1] + g.tail(1, w, ow), value)?;
    let mut out = Vec::with_capacity(g.kernel[0] * g.kernel[1]);
    for i in 0..g.kernel[0] {
        let rows = take(&xp, hd, i * g.dilation[0], oh, g.stride[0])?;
        for j in 0..g.kernel[1] {
            out.push(take(&rows, wd, j * g.dilation[1], ow, g.stride[1])?);
        }
    }
    Ok((out, [oh, ow]))
}
