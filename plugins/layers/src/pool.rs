//! Pooling: `max_pool2d`, `avg_pool2d` and `adaptive_avg_pool2d`, PyTorch's
//! `nn.MaxPool2d`, `nn.AvgPool2d` and `nn.AdaptiveAvgPool2d`.

use std::sync::Mutex;

use candle_core::{Device, Tensor};
use ember_core::module::{Context, Module};
use ember_core::ops::pool as fused;
use ember_core::{check, Built, Error, Hyperparams, Layer, LayerContext, Result};

use crate::window::{windows, Geometry};

/// `nn.MaxPool2d`: the maximum of each window.
#[derive(Clone, Debug, Hyperparams)]
#[plugin(layer = "max_pool2d", summary = "2-d max pooling over [C, H, W] (nn.MaxPool2d)")]
pub struct MaxPool2d {
    #[param(doc = "window size: a number or [height, width]")]
    pub kernel_size: [usize; 2],
    #[param(doc = "stride (default: kernel_size)")]
    pub stride: Option<[usize; 2]>,
    #[param(default = 0, doc = "implicit -inf padding on both sides, at most half the window")]
    pub padding: [usize; 2],
    #[param(default = 1, doc = "spacing between window elements")]
    pub dilation: [usize; 2],
    #[param(default = false, doc = "must be false: Ember's max pooling returns values only")]
    pub return_indices: bool,
    #[param(default = false, doc = "a last, partial window where the input leaves one (ceil instead of floor)")]
    pub ceil_mode: bool,
}

/// `nn.AvgPool2d`: the mean of each window.
#[derive(Clone, Debug, Hyperparams)]
#[plugin(layer = "avg_pool2d", summary = "2-d average pooling over [C, H, W] (nn.AvgPool2d)")]
pub struct AvgPool2d {
    #[param(doc = "window size: a number or [height, width]")]
    pub kernel_size: [usize; 2],
    #[param(doc = "stride (default: kernel_size)")]
    pub stride: Option<[usize; 2]>,
    #[param(default = 0, doc = "implicit zero padding on both sides, at most half the window")]
    pub padding: [usize; 2],
    #[param(default = false, doc = "a last, partial window where the input leaves one (ceil instead of floor)")]
    pub ceil_mode: bool,
    #[param(default = true, doc = "count the zero padding in the divisor")]
    pub count_include_pad: bool,
    #[param(doc = "divide every window by this instead", check = check::at_least(1))]
    pub divisor_override: Option<usize>,
}

/// `nn.AdaptiveAvgPool2d`: average pooling to a fixed output size.
#[derive(Clone, Debug, Hyperparams)]
#[plugin(layer = "adaptive_avg_pool2d", summary = "2-d average pooling to a given output size (nn.AdaptiveAvgPool2d)")]
pub struct AdaptiveAvgPool2d {
    #[param(doc = "output size: a number or [height, width]")]
    pub output_size: [usize; 2],
}

/// Checks a pooling layer's window against its `[C, H, W]` input; the output shape.
fn pooled(g: &Geometry, input: &[usize], ctx: &LayerContext) -> Result<Vec<usize>> {
    if input.len() != 3 {
        return Err(ctx.error(format!(
            "expects examples of shape [C, H, W], got shape {input:?}; add a channel dimension to the data, or put a layer before it that produces this shape"
        )));
    }
    if g.kernel.contains(&0) || g.stride.contains(&0) || g.dilation.contains(&0) {
        return Err(ctx.error("kernel_size, stride and dilation must be >= 1"));
    }
    for d in 0..2 {
        if 2 * g.padding[d] > g.extent(d) {
            return Err(ctx.error(format!(
                "padding = {:?} is more than half the window {:?}; PyTorch refuses it too: use padding <= kernel_size / 2",
                g.padding, g.kernel
            )));
        }
    }
    let [oh, ow] = g.out([input[1], input[2]]).ok_or_else(|| {
        ctx.error(format!(
            "kernel_size = {:?} is larger than the input {:?} padded by {:?}; use a smaller window or more padding",
            g.kernel,
            &input[1..],
            g.padding
        ))
    })?;
    Ok(vec![input[0], oh, ow])
}

impl Layer for MaxPool2d {
    fn build(&self, input: &[usize], ctx: &mut LayerContext) -> Result<Built> {
        if self.return_indices {
            return Err(ctx.error("return_indices = true is not supported; leave it out (false)"));
        }
        let g = Geometry {
            kernel: self.kernel_size,
            stride: self.stride.unwrap_or(self.kernel_size),
            padding: self.padding,
            dilation: self.dilation,
            ceil_mode: self.ceil_mode,
        };
        let output = pooled(&g, input, ctx)?;
        Ok(Built::new(MaxPool { geometry: g }, output))
    }
}

impl Layer for AvgPool2d {
    fn build(&self, input: &[usize], ctx: &mut LayerContext) -> Result<Built> {
        let g = Geometry {
            kernel: self.kernel_size,
            stride: self.stride.unwrap_or(self.kernel_size),
            padding: self.padding,
            dilation: [1, 1],
            ceil_mode: self.ceil_mode,
        };
        let output = pooled(&g, input, ctx)?;
        Ok(Built::new(
            AvgPool {
                geometry: g,
                count_include_pad: self.count_include_pad,
                divisor_override: self.divisor_override,
                divisors: Mutex::new(None),
            },
            output,
        ))
    }
}

impl Layer for AdaptiveAvgPool2d {
    fn build(&self, input: &[usize], ctx: &mut LayerContext) -> Result<Built> {
        if input.len() != 3 {
            return Err(ctx.error(format!("expects examples of shape [C, H, W], got shape {input:?}")));
        }
        if self.output_size.contains(&0) {
            return Err(ctx.error(format!("output_size = {:?} must be >= 1", self.output_size)));
        }
        Ok(Built::new(
            AdaptiveAvgPool { output: self.output_size },
            vec![input[0], self.output_size[0], self.output_size[1]],
        ))
    }
}

fn check_rank(name: &str, x: &Tensor) -> Result<()> {
    if x.rank() != 4 {
        return Err(Error::input(format!("{name}: expected input [N, C, H, W], got {:?}", x.dims())));
    }
    Ok(())
}

/// The fused kernel's parameters when it applies to `x` ([`fused::fused_applies`]).
fn fused_params(x: &Tensor, g: &Geometry) -> Result<Option<fused::PoolParams>> {
    if !fused::fused_applies(x) {
        return Ok(None);
    }
    pool_params(g, [x.dim(2)?, x.dim(3)?]).map(Some)
}

/// The window `g` over an input `[h, w]`, with its output size, as the kernels take it.
fn pool_params(g: &Geometry, [h, w]: [usize; 2]) -> Result<fused::PoolParams> {
    let out = g.out([h, w]).ok_or_else(|| {
        Error::input(format!(
            "pooling: a {:?} window does not fit the input [{h}, {w}] padded by {:?}",
            g.kernel, g.padding
        ))
    })?;
    Ok(fused::PoolParams { kernel: g.kernel, stride: g.stride, padding: g.padding, dilation: g.dilation, out })
}

/// The max-pooling module.
#[derive(Debug)]
pub struct MaxPool {
    geometry: Geometry,
}

impl Module for MaxPool {
    fn forward(&self, x: &Tensor, _ctx: &mut Context) -> Result<Tensor> {
        check_rank("max_pool2d", x)?;
        if let Some(p) = fused_params(x, &self.geometry)? {
            return fused::pool2d(x, fused::Pool::Max, &p);
        }
        let (parts, _) = windows(x, &self.geometry, f64::NEG_INFINITY)?;
        if parts.len() == 1 {
            return Ok(parts[0].clone());
        }
        // The first maximum of each window, picked by index: its gradient goes there
        // alone, as PyTorch's does (`max`'s backward would share it among ties).
        let stacked = Tensor::stack(&parts, 4)?.contiguous()?;
        let first = stacked.argmax_keepdim(4)?.contiguous()?;
        Ok(stacked.gather(&first, 4)?.squeeze(4)?)
    }
}

/// The average-pooling module.
#[derive(Debug)]
pub struct AvgPool {
    geometry: Geometry,
    count_include_pad: bool,
    divisor_override: Option<usize>,
    /// The divisors for the last input size, kept on the device.
    divisors: Mutex<Option<([usize; 2], Device, Tensor)>>,
}

impl AvgPool {
    fn divisors(&self, x: &Tensor) -> Result<Tensor> {
        let hw = [x.dim(2)?, x.dim(3)?];
        let mut cache = self.divisors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, device, t)) = cache.as_ref() {
            if *at == hw && device.same_device(x.device()) && t.dtype() == x.dtype() {
                return Ok(t.clone());
            }
        }
        let p = pool_params(&self.geometry, hw)?;
        let d = fused::avg_divisors(&p, hw, self.count_include_pad, None);
        let t = Tensor::from_vec(d, (p.out[0], p.out[1]), &Device::Cpu)?.to_dtype(x.dtype())?.to_device(x.device())?;
        *cache = Some((hw, x.device().clone(), t.clone()));
        Ok(t)
    }
}

impl Module for AvgPool {
    fn forward(&self, x: &Tensor, _ctx: &mut Context) -> Result<Tensor> {
        check_rank("avg_pool2d", x)?;
        if let Some(p) = fused_params(x, &self.geometry)? {
            let pool =
                fused::Pool::Avg { count_include_pad: self.count_include_pad, divisor_override: self.divisor_override };
            return fused::pool2d(x, pool, &p);
        }
        let (parts, _) = windows(x, &self.geometry, 0.0)?;
        let sum = if parts.len() == 1 { parts[0].clone() } else { Tensor::stack(&parts, 4)?.sum(4)? };
        match self.divisor_override {
            Some(d) => Ok(sum.affine(1.0 / d as f64, 0.0)?),
            None => Ok(sum.broadcast_div(&self.divisors(x)?)?),
        }
    }
}

/// The adaptive average-pooling module: output cell `i` averages input rows
/// `floor(i * H / OH) .. ceil((i + 1) * H / OH)`, as PyTorch's.
#[derive(Debug)]
pub struct AdaptiveAvgPool {
    output: [usize; 2],
}

fn adaptive_mean(x: &Tensor, dim: usize, out: usize) -> Result<Tensor> {
    let len = x.dim(dim)?;
    if len == out {
        return Ok(x.clone());
    }
    if len.is_multiple_of(out) {
        // Equal, disjoint windows: one reshape and one mean.
        let mut dims = x.dims().to_vec();
        dims[dim] = out;
        dims.insert(dim + 1, len / out);
        return Ok(x.reshape(dims)?.mean(dim + 1)?);
    }
    let cells = (0..out)
        .map(|i| {
            let start = i * len / out;
            let end = ((i + 1) * len).div_ceil(out);
            Ok(x.narrow(dim, start, end - start)?.mean_keepdim(dim)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&cells, dim)?)
}

impl Module for AdaptiveAvgPool {
    fn forward(&self, x: &Tensor, _ctx: &mut Context) -> Result<Tensor> {
        check_rank("adaptive_avg_pool2d", x)?;
        let y = adaptive_mean(x, 2, self.output[0])?;
        adaptive_mean(&y, 3, self.output[1])
    }
}
