//! `conv1d` and `conv2d`: PyTorch's `nn.Conv1d` / `nn.Conv2d`, as one batched matrix
//! product over the input's windows (im2col composed from candle ops).

use candle_core::{Tensor, Var};
use ember_core::module::{Context, Module};
use ember_core::{check, Built, Error, Hyperparams, Layer, LayerContext, ParamEnum, Result};

use ember_core::ops::conv as fused;

use crate::window::{windows, Geometry};

/// How the input is padded: PyTorch's `padding_mode`; only `zeros` is implemented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ParamEnum)]
pub enum PaddingMode {
    Zeros,
}

/// `nn.Conv2d`: a 2-d convolution over `[C, H, W]` examples.
#[derive(Clone, Debug, Hyperparams)]
#[plugin(layer = "conv2d", summary = "2-d convolution over [C, H, W] (nn.Conv2d)")]
pub struct Conv2d {
    #[param(doc = "input channels; inferred from the input when left out")]
    pub in_channels: Option<usize>,
    #[param(doc = "output channels", check = check::at_least(1))]
    pub out_channels: usize,
    #[param(doc = "kernel size: a number or [height, width]")]
    pub kernel_size: [usize; 2],
    #[param(default = 1, doc = "stride: a number or [height, width]")]
    pub stride: [usize; 2],
    #[param(default = 0, doc = "zero padding on both sides: a number or [height, width]")]
    pub padding: [usize; 2],
    #[param(default = 1, doc = "spacing between kernel elements: a number or [height, width]")]
    pub dilation: [usize; 2],
    #[param(default = 1, doc = "blocked connections: in_channels and out_channels must both divide by it", check = check::at_least(1))]
    pub groups: usize,
    #[param(default = true, doc = "learn an additive bias")]
    pub bias: bool,
    #[param(default = "zeros", doc = "how the input is padded")]
    pub padding_mode: PaddingMode,
}

/// `nn.Conv1d`: a 1-d convolution over `[C, L]` examples.
#[derive(Clone, Debug, Hyperparams)]
#[plugin(layer = "conv1d", summary = "1-d convolution over [C, L] (nn.Conv1d)")]
pub struct Conv1d {
    #[param(doc = "input channels; inferred from the input when left out")]
    pub in_channels: Option<usize>,
    #[param(doc = "output channels", check = check::at_least(1))]
    pub out_channels: usize,
    #[param(doc = "kernel size")]
    pub kernel_size: [usize; 1],
    #[param(default = 1, doc = "stride")]
    pub stride: [usize; 1],
    #[param(default = 0, doc = "zero padding on both sides")]
    pub padding: [usize; 1],
    #[param(default = 1, doc = "spacing between kernel elements")]
    pub dilation: [usize; 1],
    #[param(default = 1, doc = "blocked connections: in_channels and out_channels must both divide by it", check = check::at_least(1))]
    pub groups: usize,
    #[param(default = true, doc = "learn an additive bias")]
    pub bias: bool,
    #[param(default = "zeros", doc = "how the input is padded")]
    pub padding_mode: PaddingMode,
}

impl Layer for Conv2d {
    fn build(&self, input: &[usize], ctx: &mut LayerContext) -> Result<Built> {
        let g = Geometry {
            kernel: self.kernel_size,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            ceil_mode: false,
        };
        build(
            ConvArgs {
                in_channels: self.in_channels,
                out: self.out_channels,
                g,
                groups: self.groups,
                bias: self.bias,
                one_d: false,
            },
            input,
            ctx,
        )
    }
}

impl Layer for Conv1d {
    fn build(&self, input: &[usize], ctx: &mut LayerContext) -> Result<Built> {
        let g = Geometry {
            kernel: [1, self.kernel_size[0]],
            stride: [1, self.stride[0]],
            padding: [0, self.padding[0]],
            dilation: [1, self.dilation[0]],
            ceil_mode: false,
        };
        build(
            ConvArgs {
                in_channels: self.in_channels,
                out: self.out_channels,
                g,
                groups: self.groups,
                bias: self.bias,
                one_d: true,
            },
            input,
            ctx,
        )
    }
}

struct ConvArgs {
    in_channels: Option<usize>,
    out: usize,
    g: Geometry,
    groups: usize,
    bias: bool,
    one_d: bool,
}

fn build(a: ConvArgs, input: &[usize], ctx: &mut LayerContext) -> Result<Built> {
    let (rank, form) = if a.one_d { (2, "[C, L]") } else { (3, "[C, H, W]") };
    if input.len() != rank {
        return Err(ctx.error(format!(
            "expects examples of shape {form}, got shape {input:?}; {}",
            if input.len() + 1 == rank {
                "add a channel dimension to the data"
            } else {
                "reshape the data, or put a layer before it that produces this shape"
            }
        )));
    }
    let c = ctx.infer("in_channels", a.in_channels, input[0], input)?;
    if a.g.kernel.contains(&0) || a.g.stride.contains(&0) || a.g.dilation.contains(&0) {
        return Err(ctx.error("kernel_size, stride and dilation must be >= 1"));
    }
    for (what, n) in [("in_channels", c), ("out_channels", a.out)] {
        if !n.is_multiple_of(a.groups) {
            return Err(ctx.error(format!(
                "{what} = {n} does not divide by groups = {}; choose groups dividing both in_channels ({c}) and out_channels ({})",
                a.groups, a.out
            )));
        }
    }
    let hw = if a.one_d { [1, input[1]] } else { [input[1], input[2]] };
    let out = a.g.out(hw).ok_or_else(|| {
        let (k, p, e) = if a.one_d {
            (format!("{}", a.g.kernel[1]), format!("{}", a.g.padding[1]), format!("{}", a.g.extent(1)))
        } else {
            (format!("{:?}", a.g.kernel), format!("{:?}", a.g.padding), format!("[{}, {}]", a.g.extent(0), a.g.extent(1)))
        };
        ctx.error(format!(
            "kernel_size = {k} (dilated extent {e}) is larger than the input {:?} padded by {p}; use a smaller kernel or dilation, or more padding",
            &input[1..]
        ))
    })?;
    let cg = c / a.groups;
    let fan_in = cg * a.g.kernel[0] * a.g.kernel[1];
    let bound = 1.0 / (fan_in as f64).sqrt();
    let wshape: Vec<usize> =
        if a.one_d { vec![a.out, cg, a.g.kernel[1]] } else { vec![a.out, cg, a.g.kernel[0], a.g.kernel[1]] };
    let weight = ctx.uniform(&wshape, bound)?;
    let bias = if a.bias { Some(ctx.uniform(&[a.out], bound)?) } else { None };
    let output = if a.one_d { vec![a.out, out[1]] } else { vec![a.out, out[0], out[1]] };
    Ok(Built::new(Conv { weight, bias, geometry: a.g, groups: a.groups, one_d: a.one_d }, output))
}

/// A convolution module (`conv1d` or `conv2d`): `weight` `[out, in / groups, kernel...]`
/// and an optional `bias` `[out]`, PyTorch's layout and names.
#[derive(Debug)]
pub struct Conv {
    weight: Var,
    bias: Option<Var>,
    geometry: Geometry,
    groups: usize,
    one_d: bool,
}

impl Conv {
    pub fn weight(&self) -> &Var {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Var> {
        self.bias.as_ref()
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor, _ctx: &mut Context) -> Result<Tensor> {
        let (x, w) = if self.one_d {
            if x.rank() != 3 {
                return Err(Error::input(format!("conv1d: expected input [N, C, L], got {:?}", x.dims())));
            }
            (x.unsqueeze(2)?, self.weight.as_tensor().unsqueeze(2)?)
        } else {
            if x.rank() != 4 {
                return Err(Error::input(format!("conv2d: expected input [N, C, H, W], got {:?}", x.dims())));
            }
            (x.clone(), self.weight.as_tensor().clone())
        };
        let y = conv2d(&x, &w, self.bias.as_ref().map(|b| b.as_tensor()), &self.geometry, self.groups)?;
        Ok(if self.one_d { y.squeeze(2)? } else { y })
    }

    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut p = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            p.push(("bias".to_string(), b.clone()));
        }
        p
    }
}

/// A 2-d convolution of `x` `[N, C, H, W]` with `w` `[O, C / groups, KH, KW]`: the fused
/// CPU kernel ([`ember_core::ops::conv`]) where it applies, else the windows of `x` laid
/// out as columns `[C * KH * KW, N * OH * OW]` (per group) and one matrix product with
/// the weight.
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, g: &Geometry, groups: usize) -> Result<Tensor> {
    if fused::fused_applies(x, w, bias) {
        let p = fused::ConvParams { stride: g.stride, padding: g.padding, dilation: g.dilation, groups };
        return fused::conv2d(x, w, bias, &p);
    }
    conv2d_composed(x, w, bias, g, groups)
}

/// [`conv2d`] composed from candle ops: the path for every device and dtype (and for the
/// CPU under `EMBER_KERNELS=composed`).
pub fn conv2d_composed(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, g: &Geometry, groups: usize) -> Result<Tensor> {
    let (n, c, _, _) = x.dims4()?;
    let (o, cg, kh, kw) = w.dims4()?;
    if cg * groups != c {
        return Err(Error::input(format!(
            "conv: the input has {c} channels but the weight {:?} with groups = {groups} expects {}",
            w.dims(),
            cg * groups
        )));
    }
    // Channels first, so that the stacked windows are already [C, K, N, OH, OW].
    let (parts, [oh, ow]) = windows(&x.transpose(0, 1)?, g, 0.0)?;
    let cols = Tensor::stack(&parts, 1)?;
    let l = n * oh * ow;
    let k = kh * kw;
    let y = if groups == 1 {
        w.reshape((o, cg * k))?.matmul(&cols.reshape((c * k, l))?)?
    } else {
        let og = o / groups;
        let cols = cols.reshape((groups, cg * k, l))?;
        w.reshape((groups, og, cg * k))?.matmul(&cols)?.reshape((o, l))?
    };
    let y = match bias {
        Some(b) => y.broadcast_add(&b.reshape((o, 1))?)?,
        None => y,
    };
    Ok(y.reshape((o, n, oh, ow))?.transpose(0, 1)?.contiguous()?)
}
