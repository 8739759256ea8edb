//! `ctc`: the connectionist temporal classification loss (PyTorch `nn.CTCLoss`).

use std::ops::{Add, Mul, Neg, Sub};

use candle_core::{DType, Device, Tensor, WithDType};
use ember_core::ops::composed::attach;
use ember_core::ops::pointwise::check_float;
use ember_core::{Error, Hyperparams, Loss, LossArg, Result};

use crate::inputs::{compute_dtype, not_input_target, take};
use crate::reduction::Reduction;

const NAME: &str = "ctc";
const ARGS: &[LossArg] = &[
    LossArg::grad("log_probs"),
    LossArg::data("targets"),
    LossArg::data("input_lengths"),
    LossArg::data("target_lengths"),
];

/// The negative log-likelihood of each target sequence under all its alignments with a
/// sequence of per-frame class log-probabilities (Graves et al. 2006), computed as
/// PyTorch's CPU kernel computes it: the alpha (and, for the gradient, beta) recursions
/// in log space over the target with blanks around and between its labels, in the
/// input's dtype (f32 for f16 and bf16).
///
/// Arguments, by PyTorch's names: `log_probs` of shape (T, N, C) (T frames, N sequences,
/// C classes, usually from `log_softmax` over C), or (T, C) for one sequence; `targets`,
/// integer labels, either padded (N, S) with S >= every target length, or 1-D with the
/// sequences' labels one after another (as many as the target lengths sum to);
/// `input_lengths` and `target_lengths`, integer (N) (or () for one sequence), each
/// input length at most T. Labels lie in 0..C and are never `blank`. A target that no
/// alignment fits (too long for its input, counting a blank between repeated labels)
/// has an infinite loss, which `zero_infinity` turns into 0 (with a zero gradient).
///
/// The gradient with respect to `log_probs` is PyTorch's: `exp(log_probs) - posterior`
/// per frame and class (zero beyond a sequence's input length), the gradient through a
/// `log_softmax` that made `log_probs` (so `log_probs` should be normalised, as PyTorch
/// assumes). The recursion runs on the host: on a GPU, `log_probs` is copied to the CPU
/// and the loss and gradient copied back. It takes four tensors: call
/// [`Loss::forward_args`], in a Learner from a custom training step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hyperparams)]
#[plugin(
    loss = "ctc",
    summary = "connectionist temporal classification: -log p(target | log_probs) over all alignments (nn.CTCLoss)"
)]
pub struct Ctc {
    /// the blank label's class index; 0 <= blank < C
    #[param(default = 0)]
    pub blank: usize,
    /// none: per-sequence losses; mean: each divided by its target length (at least 1), then the mean over sequences; sum
    #[param(default = "mean")]
    pub reduction: Reduction,
    /// infinite losses (targets no alignment fits) and their gradients become 0
    #[param(default = false)]
    pub zero_infinity: bool,
}

impl Default for Ctc {
    fn default() -> Self {
        Self { blank: 0, reduction: Reduction::Mean, zero_infinity: false }
    }
}

/// The float types the kernel runs in (f32 and f64), with the operations it needs.
trait Float: WithDType + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Neg<Output = Self> {
    const NEG_INF: Self;
    const INF: Self;
    const ZERO: Self;
    fn exp_(self) -> Self;
    fn ln_(self) -> Self;
}

impl Float for f32 {
    const NEG_INF: f32 = f32::NEG_INFINITY;
    const INF: f32 = f32::INFINITY;
    const ZERO: f32 = 0.0;
    fn exp_(self) -> f32 {
        f32::exp(self)
    }
    fn ln_(self) -> f32 {
        f32::ln(self)
    }
}

impl Float for f64 {
    const NEG_INF: f64 = f64::NEG_INFINITY;
    const INF: f64 = f64::INFINITY;
    const ZERO: f64 = 0.0;
    fn exp_(self) -> f64 {
        f64::exp(self)
    }
    fn ln_(self) -> f64 {
        f64::ln(self)
    }
}

/// A tensor's elements on the host, flattened.
fn host<F: Float>(t: &Tensor) -> candle_core::Result<Vec<F>> {
    t.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<F>()
}

/// An integer tensor's values on the host; `what` names the argument.
fn integers(what: &str, t: &Tensor) -> Result<Vec<i64>> {
    if !t.dtype().is_int() {
        return Err(Error::input(format!(
            "{NAME}: {what} must be an integer tensor (i64, i32, u32, ...), got {:?}",
            t.dtype()
        )));
    }
    Ok(t.to_device(&Device::Cpu)?.flatten_all()?.to_dtype(DType::I64)?.to_vec1::<i64>()?)
}

/// One length per sequence: `batch` non-negative integers, shape (N) or ().
fn lengths(what: &str, t: &Tensor, batch: usize) -> Result<Vec<usize>> {
    if t.rank() > 1 || t.elem_count() != batch {
        return Err(Error::input(format!(
            "{NAME}: {what} must hold one length per sequence, shape ({batch}) (or () for an unbatched (T, C) log_probs), got shape {:?}",
            t.dims()
        )));
    }
    let mut out = Vec::with_capacity(batch);
    for (b, v) in integers(what, t)?.into_iter().enumerate() {
        let Ok(v) = usize::try_from(v) else {
            return Err(Error::input(format!("{NAME}: {what}[{b}] = {v} is negative")));
        };
        out.push(v);
    }
    Ok(out)
}

/// What the kernel needs besides `log_probs` (a flat `[T, N, C]` buffer), read from the
/// other arguments.
#[derive(Clone, Debug)]
struct Plan {
    batch: usize,
    classes: usize,
    blank: usize,
    input_lengths: Vec<usize>,
    /// Each sequence's labels (its target length of them).
    targets: Vec<Vec<usize>>,
    zero_infinity: bool,
}

impl Plan {
    /// Label `s` of sequence `b`'s extended target: blanks at even places, its labels at
    /// odd ones.
    fn prime(&self, b: usize, s: usize) -> usize {
        if s.is_multiple_of(2) {
            self.blank
        } else {
            self.targets[b][s / 2]
        }
    }

    /// `log_probs[t, b, c]`.
    fn at<F: Float>(&self, lp: &[F], t: usize, b: usize, c: usize) -> F {
        lp[(t * self.batch + b) * self.classes + c]
    }

    /// Sequence `b`'s log-alphas (input_length rows of 2 * target_length + 1) and its
    /// negative log-likelihood, in PyTorch's order of operations.
    fn alpha<F: Float>(&self, lp: &[F], b: usize) -> (Vec<F>, F) {
        let frames = self.input_lengths[b];
        let len = self.targets[b].len();
        let width = 2 * len + 1;
        if frames == 0 {
            return (Vec::new(), if len == 0 { -F::ZERO } else { F::INF });
        }
        let mut la = vec![F::NEG_INF; frames * width];
        la[0] = self.at(lp, 0, b, self.blank);
        if len > 0 {
            la[1] = self.at(lp, 0, b, self.prime(b, 1));
        }
        for t in 1..frames {
            let (done, rest) = la.split_at_mut(t * width);
            let prev = &done[(t - 1) * width..];
            let row = &mut rest[..width];
            for s in 0..width {
                let cur = self.prime(b, s);
                let la1 = prev[s];
                let mut lamax = la1;
                let la2 = if s > 0 { prev[s - 1] } else { F::NEG_INF };
                if la2 > lamax {
                    lamax = la2;
                }
                let la3 = if s > 1 && self.prime(b, s - 2) != cur { prev[s - 2] } else { F::NEG_INF };
                if la3 > lamax {
                    lamax = la3;
                }
                if lamax == F::NEG_INF {
                    lamax = F::ZERO;
                }
                row[s] = ((la1 - lamax).exp_() + (la2 - lamax).exp_() + (la3 - lamax).exp_()).ln_()
                    + lamax
                    + self.at(lp, t, b, cur);
            }
        }
        let last = &la[(frames - 1) * width..];
        let nll = if len == 0 {
            -last[0]
        } else {
            let (l1, l2) = (last[2 * len], last[2 * len - 1]);
            let mut m = if l1 < l2 { l2 } else { l1 };
            if m == F::NEG_INF {
                m = F::ZERO;
            }
            -(((l1 - m).exp_() + (l2 - m).exp_()).ln_() + m)
        };
        (la, nll)
    }

    /// The per-sequence losses (0 for infinite ones with `zero_infinity`).
    fn losses<F: Float>(&self, lp: &[F]) -> Vec<F> {
        (0..self.batch)
            .map(|b| {
                let nll = self.alpha(lp, b).1;
                if self.zero_infinity && nll == F::INF {
                    F::ZERO
                } else {
                    nll
                }
            })
            .collect()
    }

    /// PyTorch's gradient of the per-sequence losses with respect to log_probs, each
    /// sequence's scaled by its output gradient `grad_out[b]`: for every frame t below
    /// the input length and class c, `(exp(lp) - exp(log(Σ alpha * beta) + nll - lp)) * g`,
    /// the sum over the extended target's places s labelled c; 0 elsewhere, and for an
    /// infinite loss with `zero_infinity`.
    fn gradient_host<F: Float>(&self, lp: &[F], grad_out: &[F]) -> Vec<F> {
        let (n, c) = (self.batch, self.classes);
        let mut grad = vec![F::ZERO; lp.len()];
        for b in 0..n {
            let (la, nll) = self.alpha(lp, b);
            if self.zero_infinity && nll == F::INF {
                continue;
            }
            let frames = self.input_lengths[b];
            let len = self.targets[b].len();
            let width = 2 * len + 1;
            // log Σ alpha * beta per frame and class; -inf is the empty sum.
            let mut lcab = vec![F::NEG_INF; frames * c];
            let mut lb = vec![F::NEG_INF; frames * width];
            if frames > 0 {
                let t = frames - 1;
                lb[t * width + 2 * len] = self.at(lp, t, b, self.blank);
                lcab[t * c + self.blank] = la[t * width + 2 * len] + lb[t * width + 2 * len];
                if len > 0 {
                    let cur = self.prime(b, 2 * len - 1);
                    lb[t * width + 2 * len - 1] = self.at(lp, t, b, cur);
                    lcab[t * c + cur] = la[t * width + 2 * len - 1] + lb[t * width + 2 * len - 1];
                }
            }
            for t in (0..frames.saturating_sub(1)).rev() {
                let (head, tail) = lb.split_at_mut((t + 1) * width);
                let row = &mut head[t * width..];
                let next = &tail[..width];
                for s in (0..width).rev() {
                    let cur = self.prime(b, s);
                    let lb1 = next[s];
                    let mut lbmax = lb1;
                    let lb2 = if s < 2 * len { next[s + 1] } else { F::NEG_INF };
                    if lb2 > lbmax {
                        lbmax = lb2;
                    }
                    let lb3 = if s + 1 < 2 * len && self.prime(b, s + 2) != cur { next[s + 2] } else { F::NEG_INF };
                    if lb3 > lbmax {
                        lbmax = lb3;
                    }
                    if lbmax == F::NEG_INF {
                        lbmax = F::ZERO;
                    }
                    row[s] = ((lb1 - lbmax).exp_() + (lb2 - lbmax).exp_() + (lb3 - lbmax).exp_()).ln_()
                        + lbmax
                        + self.at(lp, t, b, cur);
                    let lab = la[t * width + s] + row[s];
                    let slot = &mut lcab[t * c + cur];
                    if *slot == F::NEG_INF {
                        *slot = lab;
                    } else {
                        let mx = if *slot < lab { lab } else { *slot };
                        *slot = ((*slot - mx).exp_() + (lab - mx).exp_()).ln_() + mx;
                    }
                }
            }
            let gr = grad_out[b];
            for t in 0..frames {
                for k in 0..c {
                    let v = self.at(lp, t, b, k);
                    grad[(t * n + b) * c + k] = (v.exp_() - (lcab[t * c + k] + nll - v).exp_()) * gr;
                }
            }
        }
        grad
    }

    /// The gradient for log_probs `x` (T, N, C) and the losses' gradient `g` (N), on
    /// x's device.
    fn gradient(&self, x: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        match x.dtype() {
            DType::F32 => {
                Tensor::from_vec(self.gradient_host::<f32>(&host::<f32>(x)?, &host::<f32>(g)?), x.dims(), x.device())
            }
            DType::F64 => {
                Tensor::from_vec(self.gradient_host::<f64>(&host::<f64>(x)?, &host::<f64>(g)?), x.dims(), x.device())
            }
            other => Err(candle_core::Error::Msg(format!("{NAME}: no kernel for {other:?} log_probs"))),
        }
    }
}

impl Ctc {
    /// Each sequence's labels, checked: padded (N, S) or concatenated 1-D targets.
    fn sequences(&self, targets: &Tensor, target_lengths: &[usize], classes: usize) -> Result<Vec<Vec<usize>>> {
        let batch = target_lengths.len();
        let labels = integers("targets", targets)?;
        // Where each sequence's labels start in the flat targets.
        let starts: Vec<usize> = match *targets.dims() {
            [rows, width] => {
                if rows != batch {
                    return Err(Error::input(format!(
                        "{NAME}: padded targets of shape {:?} must have one row per sequence ({batch})",
                        targets.dims()
                    )));
                }
                for (b, &l) in target_lengths.iter().enumerate() {
                    if l > width {
                        return Err(Error::input(format!(
                            "{NAME}: target_lengths[{b}] = {l} is more than the padded targets' width {width} (shape {:?})",
                            targets.dims()
                        )));
                    }
                }
                (0..batch).map(|b| b * width).collect()
            }
            [count] => {
                let total: usize = target_lengths.iter().sum();
                if count != total {
                    return Err(Error::input(format!(
                        "{NAME}: 1-D targets hold every sequence's labels one after another, so as many as target_lengths sum to ({total}), got {count}"
                    )));
                }
                let mut starts = Vec::with_capacity(batch);
                let mut at = 0;
                for &l in target_lengths {
                    starts.push(at);
                    at += l;
                }
                starts
            }
            _ => {
                return Err(Error::input(format!(
                    "{NAME}: targets must be padded (N, S) or concatenated 1-D labels, got shape {:?}",
                    targets.dims()
                )))
            }
        };
        let mut out = Vec::with_capacity(batch);
        for (b, (&start, &len)) in starts.iter().zip(target_lengths).enumerate() {
            let mut seq = Vec::with_capacity(len);
            for (k, &v) in labels[start..start + len].iter().enumerate() {
                if !(0..classes as i64).contains(&v) {
                    return Err(Error::input(format!(
                        "{NAME}: targets: label {v} (sequence {b}, position {k}) is not a class of log_probs, which has {classes} (its last dimension)"
                    )));
                }
                if v as usize == self.blank {
                    return Err(Error::input(format!(
                        "{NAME}: targets: sequence {b} has the blank label {v} at position {k}; targets hold the labels between blanks, never blank itself"
                    )));
                }
                seq.push(v as usize);
            }
            out.push(seq);
        }
        Ok(out)
    }
}

impl Loss for Ctc {
    fn forward(&self, _input: &Tensor, _target: &Tensor) -> Result<Tensor> {
        Err(not_input_target(NAME, ARGS))
    }

    fn arguments(&self) -> &'static [LossArg] {
        ARGS
    }

    fn forward_args(&self, args: &[&Tensor]) -> Result<Tensor> {
        let [log_probs, targets, input_lengths, target_lengths] = take::<4>(NAME, ARGS, args)?;
        check_float(NAME, log_probs)?;
        let batched = match log_probs.rank() {
            3 => true,
            2 => false,
            _ => {
                return Err(Error::input(format!(
                    "{NAME}: log_probs must have shape (T, N, C) (frames, sequences, classes), or (T, C) for one sequence, got {:?}",
                    log_probs.dims()
                )))
            }
        };
        let lp = if batched { log_probs.clone() } else { log_probs.unsqueeze(1)? };
        let (frames, batch, classes) = lp.dims3()?;
        if frames == 0 || batch == 0 || classes == 0 {
            return Err(Error::input(format!("{NAME}: log_probs must not be empty, got shape {:?}", log_probs.dims())));
        }
        if self.blank >= classes {
            return Err(Error::input(format!(
                "{NAME}: blank = {} is not one of log_probs's {classes} classes (its last dimension); give 0 <= blank < {classes}",
                self.blank
            )));
        }
        let input_lengths = lengths("input_lengths", input_lengths, batch)?;
        let target_lengths = lengths("target_lengths", target_lengths, batch)?;
        for (b, &l) in input_lengths.iter().enumerate() {
            if l > frames {
                return Err(Error::input(format!(
                    "{NAME}: input_lengths[{b}] = {l} is more than log_probs's {frames} frames (its first dimension)"
                )));
            }
        }
        let sequences = self.sequences(targets, &target_lengths, classes)?;

        let dtype = log_probs.dtype();
        let work = compute_dtype(dtype);
        let device = log_probs.device().clone();
        let x = lp.to_dtype(work)?;
        let plan = Plan {
            batch,
            classes,
            blank: self.blank,
            input_lengths,
            targets: sequences,
            zero_infinity: self.zero_infinity,
        };
        let values = match work {
            DType::F32 => Tensor::from_vec(plan.losses::<f32>(&host::<f32>(&x)?), batch, &device)?,
            DType::F64 => Tensor::from_vec(plan.losses::<f64>(&host::<f64>(&x)?), batch, &device)?,
            other => return Err(Error::input(format!("{NAME}: no kernel for {other:?} log_probs"))),
        };
        let nll = attach(&values, &x, move |x, _y, g| plan.gradient(x, g))?;
        let loss = match self.reduction {
            Reduction::None if batched => nll,
            Reduction::None => nll.squeeze(0)?,
            Reduction::Sum => nll.sum_all()?,
            Reduction::Mean => {
                // PyTorch's (loss / target_lengths.clamp_min(1)).mean().
                let per: Vec<f64> = target_lengths.iter().map(|&l| l.max(1) as f64).collect();
                let per = Tensor::from_vec(per, batch, &Device::Cpu)?.to_dtype(work)?.to_device(&device)?;
                Reduction::Mean.apply(nll.div(&per)?)?
            }
        };
        Ok(loss.to_dtype(dtype)?)
    }
}
