//! Normalisation: `batch_norm1d`, `batch_norm2d`, `layer_norm` and `group_norm`, with
//! PyTorch's arguments, initialisation, buffers and update rules.

use candle_core::{DType, Tensor, Var};
use ember_core::module::{Context, Module};
use ember_core::ops::batch_norm as fused;
use ember_core::ops::pointwise;
use ember_core::{check, Built, Dims, Error, Hyperparams, Layer, LayerContext, Result};

/// `nn.BatchNorm1d` (`[C]` or `[C, L]` examples) and `nn.BatchNorm2d` (`[C, H, W]`): one
/// set of arguments, registered twice.
#[allow(clippy::duplicated_attributes)]
#[derive(Clone, Debug, Hyperparams)]
#[plugin(layer = "batch_norm1d", summary = "batch normalisation over [C] or [C, L] (nn.BatchNorm1d)", set(spatial = 1))]
#[plugin(layer = "batch_norm2d", summary = "batch normalisation over [C, H, W] (nn.BatchNorm2d)", set(spatial = 2))]
pub struct BatchNormArgs {
    #[param(doc = "channels C; inferred from the input when left out")]
    pub num_features: Option<usize>,
    #[param(default = 1e-5, doc = "added to the variance", check = check::positive)]
    pub eps: f64,
    #[param(default = 0.1, doc = "weight of the batch statistics in the running averages; None: a cumulative average", check = check::unit_interval)]
    pub momentum: Option<f64>,
    #[param(default = true, doc = "learn a per-channel scale (weight) and shift (bias)")]
    pub affine: bool,
    #[param(default = true, doc = "keep running statistics (used in evaluation mode)")]
    pub track_running_stats: bool,
    #[param(default = true, doc = "learn the shift too (with affine; PyTorch 2.x's keyword)")]
    pub bias: bool,
    /// The spatial dimensions after the channels: 1 for `batch_norm1d` (`[C, L]`, or
    /// none: `[C]`), 2 for `batch_norm2d`.
    #[param(skip)]
    pub spatial: usize,
}

impl Layer for BatchNormArgs {
    fn build(&self, input: &[usize], ctx: &mut LayerContext) -> Result<Built> {
        let fits = if self.spatial == 1 { (1..=2).contains(&input.len()) } else { input.len() == 3 };
        if !fits {
            return Err(ctx.error(if self.spatial == 1 {
                format!("expects examples of shape [C] or [C, L], got shape {input:?}; use batch_norm2d for [C, H, W]")
            } else {
                format!("expects examples of shape [C, H, W], got shape {input:?}; use batch_norm1d for [C] or [C, L]")
            }));
        }
        let c = ctx.infer("num_features", self.num_features, input[0], input)?;
        let mut norm =
            BatchNorm::new(c, self.eps, self.momentum, (self.affine, self.bias), self.track_running_stats, ctx)?;
        // A `relu` right after is applied in the same kernel (one pass each way, not three).
        norm.relu = ctx.absorb_next("relu");
        Ok(Built::new(norm, input.to_vec()))
    }
}

/// The batch-normalisation module: `weight`, `bias` (when affine), and the buffers
/// `running_mean`, `running_var`, `num_batches_tracked` (when tracking running stats).
#[derive(Debug)]
pub struct BatchNorm {
    weight: Option<Var>,
    bias: Option<Var>,
    running_mean: Option<Var>,
    running_var: Option<Var>,
    num_batches_tracked: Option<Var>,
    eps: f64,
    momentum: Option<f64>,
    /// Apply ReLU to the output (the sequence's next layer, absorbed).
    relu: bool,
}

impl BatchNorm {
    fn new(
        c: usize,
        eps: f64,
        momentum: Option<f64>,
        (affine, bias): (bool, bool),
        track: bool,
        ctx: &LayerContext,
    ) -> Result<Self> {
        let (weight, bias) = affine_params(c, affine, bias, ctx)?;
        let (running_mean, running_var, num_batches_tracked) = if track {
            let count = Tensor::zeros((), DType::I64, &ctx.device)?;
            (Some(ctx.full(&[c], 0.0)?), Some(ctx.full(&[c], 1.0)?), Some(Var::from_tensor(&count)?))
        } else {
            (None, None, None)
        };
        Ok(BatchNorm { weight, bias, running_mean, running_var, num_batches_tracked, eps, momentum, relu: false })
    }

    /// Folds the batch statistics into the running averages, as PyTorch does: the count
    /// first, then `running = (1 - m) * running + m * batch` with the unbiased variance
    /// and `m = 1 / count` when `momentum` is None or the pass asks for `cumulative`
    /// statistics (`update_bn`).
    fn update(&self, mean: &Tensor, var: &Tensor, n: usize, cumulative: bool) -> Result<()> {
        let (Some(rm), Some(rv), Some(count)) = (&self.running_mean, &self.running_var, &self.num_batches_tracked)
        else {
            return Ok(());
        };
        let next = count.as_tensor().broadcast_add(&Tensor::ones((), DType::I64, count.device())?)?;
        count.set(&next)?;
        let unbiased = var.affine(n as f64 / (n - 1) as f64, 0.0)?;
        let blend = |running: &Var, batch: &Tensor| -> Result<Tensor> {
            let r = running.as_tensor();
            Ok(match if cumulative { None } else { self.momentum } {
                Some(m) => (r.affine(1.0 - m, 0.0)? + batch.affine(m, 0.0)?)?,
                None => {
                    let f = next.to_dtype(r.dtype())?.recip()?;
                    let keep = f.affine(-1.0, 1.0)?;
                    (r.broadcast_mul(&keep)? + batch.broadcast_mul(&f)?)?
                }
            })
        };
        rm.set(&blend(rm, mean)?)?;
        rv.set(&blend(rv, &unbiased)?)?;
        Ok(())
    }

    /// ReLU on the composed and evaluation paths, when this layer absorbed it.
    fn activate(&self, y: Tensor) -> Result<Tensor> {
        if self.relu {
            pointwise::apply(&pointwise::Relu, &y)
        } else {
            Ok(y)
        }
    }
}

impl Module for BatchNorm {
    fn forward(&self, x: &Tensor, ctx: &mut Context) -> Result<Tensor> {
        if x.rank() < 2 {
            return Err(Error::input(format!("batch_norm: expected input [N, C, ...], got {:?}", x.dims())));
        }
        let dims = x.dims().to_vec();
        let (n, c) = (dims[0], dims[1]);
        let s: usize = dims[2..].iter().product();
        let x3 = x.reshape((n, c, s))?;
        let batch_stats = ctx.is_train() || self.running_mean.is_none();
        // Data-parallel ranks with a sync: the statistics of the whole batch, every rank's
        // rows (PyTorch's SyncBatchNorm).
        let synced = match (ctx.sync(), ctx.rows()) {
            (Some(sync), Some((_, total))) if ctx.is_train() => Some((sync.clone(), total)),
            _ => None,
        };
        let values = synced.as_ref().map_or(n, |(_, total)| *total) * s;
        if ctx.is_train() && values <= 1 {
            return Err(Error::input(format!(
                "batch_norm: training needs more than one value per channel, got input shape {dims:?}; use a batch size of at least 2"
            )));
        }
        if let Some((sync, _)) = synced {
            // Sums over every rank's rows; their gradients are summed over the ranks too.
            let count = values as f64;
            let mean = sync.sum(&x3.sum_keepdim((0, 2))?)?.affine(1.0 / count, 0.0)?;
            let centered = x3.broadcast_sub(&mean)?;
            let var = sync.sum(&centered.sqr()?.sum_keepdim((0, 2))?)?.affine(1.0 / count, 0.0)?;
            if ctx.updates_statistics() {
                self.update(
                    &mean.detach().flatten_all()?,
                    &var.detach().flatten_all()?,
                    values,
                    ctx.cumulative_statistics(),
                )?;
            }
            let y = centered.broadcast_div(&(var + self.eps)?.sqrt()?)?;
            return self.activate(scale_shift(y, &self.weight, &self.bias, &[1, c, 1])?.reshape(dims)?);
        }
        if batch_stats && fused::fused_applies(&x3) {
            let ones = || Tensor::ones(c, x.dtype(), x.device());
            let w = match &self.weight {
                Some(w) => w.as_tensor().clone(),
                None => ones()?,
            };
            let b = match &self.bias {
                Some(b) => b.as_tensor().clone(),
                None => ones()?.zeros_like()?,
            };
            let (y, mean, var) = fused::batch_norm_train(&x3, &w, &b, self.eps, self.relu)?;
            if ctx.is_train() && ctx.updates_statistics() {
                self.update(&mean, &var, n * s, ctx.cumulative_statistics())?;
            }
            return Ok(y.reshape(dims)?);
        }
        let y = if batch_stats {
            let mean = x3.mean_keepdim((0, 2))?;
            let centered = x3.broadcast_sub(&mean)?;
            let var = centered.sqr()?.mean_keepdim((0, 2))?;
            if ctx.is_train() && ctx.updates_statistics() {
                self.update(
                    &mean.detach().flatten_all()?,
                    &var.detach().flatten_all()?,
                    n * s,
                    ctx.cumulative_statistics(),
                )?;
            }
            centered.broadcast_div(&(var + self.eps)?.sqrt()?)?
        } else {
            // Evaluation with the running statistics, in PyTorch's form: one scale and one
            // shift per channel, y = x·α + β with α = w / √(var + ε), β = b - mean·α.
            let rm = self.running_mean.as_ref().expect("tracked").as_tensor().reshape((1, c, 1))?;
            let rv = self.running_var.as_ref().expect("tracked").as_tensor().reshape((1, c, 1))?;
            let mut alpha = (rv + self.eps)?.sqrt()?.recip()?;
            if let Some(w) = &self.weight {
                alpha = alpha.mul(&w.as_tensor().reshape((1, c, 1))?)?;
            }
            let mut beta = rm.mul(&alpha)?.neg()?;
            if let Some(b) = &self.bias {
                beta = beta.add(&b.as_tensor().reshape((1, c, 1))?)?;
            }
            return self.activate(x3.broadcast_mul(&alpha)?.broadcast_add(&beta)?.reshape(dims)?);
        };
        self.activate(scale_shift(y, &self.weight, &self.bias, &[1, c, 1])?.reshape(dims)?)
    }

    fn named_parameters(&self) -> Vec<(String, Var)> {
        affine_named(&self.weight, &self.bias)
    }

    fn named_buffers(&self) -> Vec<(String, Var)> {
        let mut b = Vec::new();
        if let (Some(m), Some(v), Some(n)) = (&self.running_mean, &self.running_var, &self.num_batches_tracked) {
            b.push(("running_mean".to_string(), m.clone()));
            b.push(("running_var".to_string(), v.clone()));
            b.push(("num_batches_tracked".to_string(), n.clone()));
        }
        b
    }
}

/// `nn.LayerNorm`: normalises over the trailing `normalized_shape` dimensions.
#[derive(Clone, Debug, Hyperparams)]
#[plugin(layer = "layer_norm", summary = "layer normalisation over the trailing dimensions (nn.LayerNorm)")]
pub struct LayerNorm {
    #[param(doc = "the trailing dimensions normalised: a number or a list; inferred for [D] examples")]
    pub normalized_shape: Option<Dims>,
    #[param(default = 1e-5, doc = "added to the variance", check = check::positive)]
    pub eps: f64,
    #[param(default = true, doc = "learn an elementwise scale (weight) and, with bias, a shift")]
    pub elementwise_affine: bool,
    #[param(default = true, doc = "learn the shift (with elementwise_affine)")]
    pub bias: bool,
}

impl Layer for LayerNorm {
    fn build(&self, input: &[usize], ctx: &mut LayerContext) -> Result<Built> {
        let shape = match &self.normalized_shape {
            Some(Dims(s)) => {
                if s.is_empty() || s.len() > input.len() || input[input.len() - s.len()..] != s[..] {
                    return Err(ctx.error(format!(
                        "normalized_shape = {s:?} is not the trailing dimensions of the input (shape {input:?} per example); set it to [{}], or to fewer trailing dimensions",
                        input.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
                    )));
                }
                s.clone()
            }
            None if input.len() == 1 => input.to_vec(),
            None => {
                return Err(ctx.error(format!(
                    "normalized_shape is needed for examples of shape {input:?} (which trailing dimensions to normalise?); e.g. normalized_shape = {} or {input:?}",
                    input[input.len() - 1]
                )))
            }
        };
        let (weight, bias) = if self.elementwise_affine {
            (Some(ctx.full(&shape, 1.0)?), if self.bias { Some(ctx.full(&shape, 0.0)?) } else { None })
        } else {
            (None, None)
        };
        Ok(Built::new(LayerNormModule { shape, eps: self.eps, weight, bias }, input.to_vec()))
    }
}

/// The layer-normalisation module.
#[derive(Debug)]
pub struct LayerNormModule {
    shape: Vec<usize>,
    eps: f64,
    weight: Option<Var>,
    bias: Option<Var>,
}

/// `x` `[B, D]` normalised along dimension 1 (biased variance, as PyTorch).
fn normalize_rows(x: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(1)?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(1)?;
    Ok(centered.broadcast_div(&(var + eps)?.sqrt()?)?)
}

impl Module for LayerNormModule {
    fn forward(&self, x: &Tensor, _ctx: &mut Context) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let k = self.shape.len();
        if dims.len() < k || dims[dims.len() - k..] != self.shape[..] {
            return Err(Error::input(format!(
                "layer_norm: the input {dims:?} does not end in normalized_shape {:?}",
                self.shape
            )));
        }
        let d: usize = self.shape.iter().product();
        let rows = x.elem_count() / d.max(1);
        let y = normalize_rows(&x.reshape((rows, d))?, self.eps)?.reshape(dims)?;
        scale_shift(y, &self.weight, &self.bias, &self.shape)
    }

    fn named_parameters(&self) -> Vec<(String, Var)> {
        affine_named(&self.weight, &self.bias)
    }
}

/// `nn.GroupNorm`: normalises each group of channels of each example.
#[derive(Clone, Debug, Hyperparams)]
#[plugin(layer = "group_norm", summary = "group normalisation over [C, ...] (nn.GroupNorm)")]
pub struct GroupNorm {
    #[param(doc = "groups the channels are split into; must divide num_channels", check = check::at_least(1))]
    pub num_groups: usize,
    #[param(doc = "channels C; inferred from the input when left out")]
    pub num_channels: Option<usize>,
    #[param(default = 1e-5, doc = "added to the variance", check = check::positive)]
    pub eps: f64,
    #[param(default = true, doc = "learn a per-channel scale (weight) and shift (bias)")]
    pub affine: bool,
    #[param(default = true, doc = "learn the shift too (with affine; PyTorch 2.x's keyword)")]
    pub bias: bool,
}

impl Layer for GroupNorm {
    fn build(&self, input: &[usize], ctx: &mut LayerContext) -> Result<Built> {
        if input.is_empty() {
            return Err(ctx.error("expects examples of shape [C, ...], got a scalar"));
        }
        let c = ctx.infer("num_channels", self.num_channels, input[0], input)?;
        if !c.is_multiple_of(self.num_groups) {
            return Err(ctx.error(format!(
                "num_channels = {c} does not divide into num_groups = {}; choose num_groups dividing {c}",
                self.num_groups
            )));
        }
        let (weight, bias) = affine_params(c, self.affine, self.bias, ctx)?;
        Ok(Built::new(GroupNormModule { groups: self.num_groups, eps: self.eps, weight, bias }, input.to_vec()))
    }
}

/// The group-normalisation module.
#[derive(Debug)]
pub struct GroupNormModule {
    groups: usize,
    eps: f64,
    weight: Option<Var>,
    bias: Option<Var>,
}

impl Module for GroupNormModule {
    fn forward(&self, x: &Tensor, _ctx: &mut Context) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        if dims.len() < 2 || !dims[1].is_multiple_of(self.groups) {
            return Err(Error::input(format!(
                "group_norm: expected input [N, C, ...] with C divisible by {}, got {dims:?}",
                self.groups
            )));
        }
        let n = dims[0];
        let y = normalize_rows(&x.reshape((n * self.groups, x.elem_count() / (n * self.groups).max(1)))?, self.eps)?
            .reshape(dims.clone())?;
        let mut shape = vec![1; dims.len()];
        shape[1] = dims[1];
        scale_shift(y, &self.weight, &self.bias, &shape)
    }

    fn named_parameters(&self) -> Vec<(String, Var)> {
        affine_named(&self.weight, &self.bias)
    }
}

/// A per-channel scale of ones and shift of zeros, as PyTorch initialises them.
fn affine_params(c: usize, affine: bool, bias: bool, ctx: &LayerContext) -> Result<(Option<Var>, Option<Var>)> {
    if !affine {
        return Ok((None, None));
    }
    Ok((Some(ctx.full(&[c], 1.0)?), if bias { Some(ctx.full(&[c], 0.0)?) } else { None }))
}

/// `y * weight + bias`, each reshaped to `shape` and broadcast, when present.
fn scale_shift(y: Tensor, weight: &Option<Var>, bias: &Option<Var>, shape: &[usize]) -> Result<Tensor> {
    let mut y = y;
    if let Some(w) = weight {
        y = y.broadcast_mul(&w.as_tensor().reshape(shape)?)?;
    }
    if let Some(b) = bias {
        y = y.broadcast_add(&b.as_tensor().reshape(shape)?)?;
    }
    Ok(y)
}

fn affine_named(weight: &Option<Var>, bias: &Option<Var>) -> Vec<(String, Var)> {
    let mut p = Vec::new();
    if let Some(w) = weight {
        p.push(("weight".to_string(), w.clone()));
    }
    if let Some(b) = bias {
        p.push(("bias".to_string(), b.clone()));
    }
    p
}
