//! `adan`: adaptive Nesterov momentum from gradient differences (`pytorch_optimizer.Adan`).

use candle_core::{Tensor, Var};
use ember_core::ops::fused::{par_chunks, with_cpu_data, ChunkKernel, CpuFloat};
use ember_core::ops::pointwise::Real;
use ember_core::optim::{addcdiv, addcmul, div_scalar, fused_kind, lerp, lerp1, zeros, Fused};
use ember_core::{check, Hyperparams, Optimizer, OptimizerState, ParamType, ParamValue, Params, Result, StepContext};

/// pytorch-optimizer's Adan (the path its default `foreach=None` takes on every device),
/// step t, with the gradient difference d = g - g_prev (0 at the first step):
/// g ← ±grad; m ← lerp(m, g, 1-β1); n ← lerp(n, d, 1-β2); z = g + β2·d;
/// v ← β3·v + (1-β3)·z²; D = √v / √(1-β3ᵗ) + eps; decoupled weight decay
/// p ← p·(1 - lr·wd); p ← p - lr/(1-β1ᵗ)·m/D - lr·β2/(1-β2ᵗ)·n/D; coupled weight decay
/// p ← p / (1 + lr·wd) after the update (the reference's proximal form). The first step
/// takes g_prev = -(the gradient as given) as the reference does, so with `maximize` its
/// difference is -2·grad rather than 0. β1 is the scheduled momentum when a scheduler
/// cycles it. The reference's `max_grad_norm` (gradients clipped by their global norm
/// over all parameters) is not offered: a step here sees one parameter. No fused kernel:
/// the update is made of elementwise candle ops on every device and dtype.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "adan",
    summary = "Adan: adaptive Nesterov momentum from gradient differences (pytorch_optimizer.Adan)",
    lr = 1e-3
)]
pub struct Adan {
    /// decay rates of the gradient, gradient-difference and squared-gradient averages;
    /// the first two in [0, 1), the third in [0, 1]
    #[param(default = [0.98, 0.92, 0.99])]
    pub betas: AdanBetas,
    /// weight decay; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub weight_decay: f64,
    /// decay the weights directly, p <- p (1 - lr wd), before the update, instead of
    /// p <- p / (1 + lr wd) after it
    #[param(default = false)]
    pub weight_decouple: bool,
    /// added to the denominator; >= 0
    #[param(default = 1e-8, check = check::non_negative)]
    pub eps: f64,
    /// maximize the objective instead of minimizing
    #[param(default = false)]
    pub maximize: bool,
}

/// Adan's `betas` `(β1, β2, β3)`: β1 and β2 in [0, 1), β3 in [0, 1] (the reference's
/// checks), read from a list of three numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdanBetas(pub f64, pub f64, pub f64);

impl ParamValue for AdanBetas {
    const TYPE: ParamType = ParamType::FloatList;

    fn read(params: &Params, key: &str) -> Result<Self> {
        let rule = "expected three numbers, the first two in [0, 1) and the third in [0, 1]";
        match *params.float_list(key)?.as_slice() {
            [b1, b2, b3] if (0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2) && (0.0..=1.0).contains(&b3) => {
                Ok(AdanBetas(b1, b2, b3))
            }
            _ => Err(params.invalid(key, rule)),
        }
    }
}

/// Adan's state (the reference's names): the step count, the averages of the gradient
/// (`exp_avg`), of its square (`exp_avg_sq`) and of the gradient difference
/// (`exp_avg_diff`), and the negated previous gradient (`previous_grad`).
#[derive(Clone, Debug, OptimizerState)]
pub struct AdanState {
    pub step: u64,
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
    pub exp_avg_diff: Tensor,
    pub previous_grad: Tensor,
}

impl Optimizer for Adan {
    type State = AdanState;

    fn init_state(&self, param: &Tensor) -> Result<AdanState> {
        Ok(AdanState {
            step: 0,
            exp_avg: zeros(param)?,
            exp_avg_sq: zeros(param)?,
            exp_avg_diff: zeros(param)?,
            previous_grad: zeros(param)?,
        })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut AdanState, ctx: &StepContext) -> Result<()> {
        let first = state.step == 0;
        state.step += 1;
        let step = state.step as f64;
        let (b1, b2, b3) = (ctx.momentum_or(self.betas.0), self.betas.1, self.betas.2);
        let lr = ctx.lr;
        // Per-step scalars, in f64 as the reference computes them in Python.
        let step_size = lr / (1.0 - b1.powf(step));
        let diff_step_size = lr * b2 / (1.0 - b2.powf(step));
        let bias_correction3_sqrt = (1.0 - b3.powf(step)).sqrt();
        let states = [&state.exp_avg, &state.exp_avg_sq, &state.exp_avg_diff, &state.previous_grad];
        let fused = |sc: Kernel<f64>| -> Option<Result<()>> {
            match fused_kind(param.as_tensor(), grad, &states) {
                Some(Fused::F32) => Some(self.fused::<f32>(param.as_tensor(), grad, &states, &sc.cast())),
                Some(Fused::F64) => Some(self.fused::<f64>(param.as_tensor(), grad, &states, &sc)),
                None => None,
            }
        };
        let kernel = Kernel {
            b1: (1.0 - b1, 1.0 - b1 < 0.5),
            b2: (1.0 - b2, 1.0 - b2 < 0.5),
            beta2: b2,
            beta3: b3,
            c3: 1.0 - b3,
            bc3s: bias_correction3_sqrt,
            eps: self.eps,
            neg_step: -step_size,
            neg_diff_step: -diff_step_size,
            decay: (self.weight_decay != 0.0 && self.weight_decouple).then_some(1.0 - lr * self.weight_decay),
            shrink: (self.weight_decay != 0.0 && !self.weight_decouple).then_some(1.0 + lr * self.weight_decay),
            sign: if self.maximize { -1.0 } else { 1.0 },
            first,
        };
        if let Some(done) = fused(kernel) {
            return done;
        }
        let g = if self.maximize { grad.neg()? } else { grad.clone() };
        // The reference creates previous_grad at the first step as -grad (before
        // maximize negates the gradient).
        let previous = if first { grad.neg()? } else { state.previous_grad.clone() };
        let grad_diff = previous.add(&g)?;
        let m = lerp(&state.exp_avg, &g, 1.0 - b1)?;
        let n = lerp(&state.exp_avg_diff, &grad_diff, 1.0 - b2)?;
        let z = grad_diff.affine(b2, 0.0)?.add(&g)?;
        let v = addcmul(&state.exp_avg_sq.affine(b3, 0.0)?, &z, &z, 1.0 - b3)?;
        let denom = div_scalar(&v.sqrt()?, bias_correction3_sqrt)?.affine(1.0, self.eps)?;
        let mut p = param.as_tensor().clone();
        if self.weight_decay != 0.0 && self.weight_decouple {
            p = p.affine(1.0 - lr * self.weight_decay, 0.0)?;
        }
        p = addcdiv(&p, &m, &denom, -step_size)?;
        p = addcdiv(&p, &n, &denom, -diff_step_size)?;
        if self.weight_decay != 0.0 && !self.weight_decouple {
            p = div_scalar(&p, 1.0 + lr * self.weight_decay)?;
        }
        param.set(&p)?;
        state.exp_avg = m;
        state.exp_avg_sq = v;
        state.exp_avg_diff = n;
        state.previous_grad = g.neg()?;
        Ok(())
    }
}

impl Adan {
    fn fused<T: CpuFloat + Real>(
        &self,
        param: &Tensor,
        grad: &Tensor,
        states: &[&Tensor],
        k: &Kernel<T>,
    ) -> Result<()> {
        with_cpu_data::<T>(param, grad, states, &mut |p, g, s| par_chunks(p, g, s, k))
    }
}

/// The fused Adan update of one chunk (p, g; m, v, n, previous gradient), in the composed
/// path's order of operations (the reference's). Scalars in the parameter's dtype; the
/// lerp weights with whether they are below one half (which form `lerp` takes).
#[derive(Clone, Copy)]
struct Kernel<T> {
    b1: (T, bool),
    b2: (T, bool),
    beta2: T,
    beta3: T,
    c3: T,
    bc3s: T,
    eps: T,
    neg_step: T,
    neg_diff_step: T,
    /// 1 - lr·wd, decoupled weight decay.
    decay: Option<T>,
    /// 1 + lr·wd, the reference's coupled decay (a division after the update).
    shrink: Option<T>,
    /// -1 when maximizing.
    sign: T,
    /// The first step: the previous gradient is taken as -grad.
    first: bool,
}

impl Kernel<f64> {
    fn cast<T: Real>(&self) -> Kernel<T> {
        Kernel {
            b1: (T::of(self.b1.0), self.b1.1),
            b2: (T::of(self.b2.0), self.b2.1),
            beta2: T::of(self.beta2),
            beta3: T::of(self.beta3),
            c3: T::of(self.c3),
            bc3s: T::of(self.bc3s),
            eps: T::of(self.eps),
            neg_step: T::of(self.neg_step),
            neg_diff_step: T::of(self.neg_diff_step),
            decay: self.decay.map(T::of),
            shrink: self.shrink.map(T::of),
            sign: T::of(self.sign),
            first: self.first,
        }
    }
}

impl<T: Real> ChunkKernel<T> for Kernel<T> {
    #[inline(always)]
    fn run(&self, p: &mut [T], g: &[T], s: &mut [&mut [T]]) {
        let [m, v, n, prev] = s else { unreachable!("adan has four state buffers") };
        match (self.first, self.shrink.is_some()) {
            (false, false) => self.each::<false, false>(p, g, m, v, n, prev),
            (false, true) => self.each::<false, true>(p, g, m, v, n, prev),
            (true, false) => self.each::<true, false>(p, g, m, v, n, prev),
            (true, true) => self.each::<true, true>(p, g, m, v, n, prev),
        }
    }
}

impl<T: Real> Kernel<T> {
    #[inline(always)]
    fn each<const FIRST: bool, const SHRINK: bool>(
        &self,
        p: &mut [T],
        g: &[T],
        m: &mut [T],
        v: &mut [T],
        n: &mut [T],
        prev: &mut [T],
    ) {
        let len = p.len();
        let (g, m, v, n, prev) = (&g[..len], &mut m[..len], &mut v[..len], &mut n[..len], &mut prev[..len]);
        // Multiplying by 1 is exact: decay and sign stay branch-free.
        let decay = self.decay.unwrap_or(T::one());
        let shrink = self.shrink.unwrap_or(T::one());
        for i in 0..len {
            let raw = g[i];
            let gi = raw * self.sign;
            let previous = if FIRST { -raw } else { prev[i] };
            let diff = previous + gi;
            m[i] = lerp1(m[i], gi, self.b1.0, self.b1.1);
            n[i] = lerp1(n[i], diff, self.b2.0, self.b2.1);
            let z = diff * self.beta2 + gi;
            v[i] = v[i] * self.beta3 + z * self.c3 * z;
            let denom = v[i].sqrt() / self.bc3s + self.eps;
            let mut pi = p[i] * decay;
            pi = pi + m[i] * self.neg_step / denom;
            pi = pi + n[i] * self.neg_diff_step / denom;
            if SHRINK {
                pi = pi / shrink;
            }
            p[i] = pi;
            prev[i] = -gi;
        }
    }
}
