//! `schedule_free_adamw` and `schedule_free_sgd`: Schedule-Free AdamW and SGD (Defazio
//! et al., "The Road Less Scheduled", 2024), as the `schedulefree` package's
//! `AdamWScheduleFree` and `SGDScheduleFree` (their per-parameter, `foreach=False` path).
//! They need no learning-rate schedule, and the model is evaluated at an average of the
//! iterates rather than at the point where gradients are taken.

use candle_core::{DType, Tensor, Var};
use ember_core::ops::fused::{par_chunks, with_cpu_data, ChunkKernel, CpuFloat};
use ember_core::ops::pointwise::Real;
use ember_core::optim::{add_scaled, addcmul, div_scalar, fused_kind, lerp1, zeros, Fused};
use ember_core::{check, Error, Hyperparams, Optimizer, OptimizerState, Result, StepContext};

use crate::common::Betas;

/// Schedule-Free AdamW (`schedulefree.AdamWScheduleFree`). The parameter holds y, the
/// point where gradients are taken; the state holds z, the base sequence, and the
/// average x is implicit (y = (1-β1)·z + β1·x). Step k+1 (k steps done):
/// lr_k = lr·min(1, (k+1)/warmup_steps); lr_max ← max(lr_k, lr_max);
/// w = (k+1)^r · lr_max^weight_lr_power; weight_sum ← weight_sum + w; c = w / weight_sum
/// (0 when weight_sum is 0); v ← β2·v + (1-β2)·g²; d = √(v / (1-β2^(k+1))) + eps;
/// u = g / d (+ weight_decay·y); y ← lerp(y, z, c) + lr_k·(β1·(1-c) - 1)·u;
/// z ← z - lr_k·u. There is no first moment: the interpolation plays its part.
///
/// Evaluation uses the averaged point x = lerp(y, z, 1 - 1/β1), what the reference's
/// `optimizer.eval()` puts in the parameter: [`Optimizer::eval_point`] returns it (the
/// parameter itself keeps y), and the trainer evaluates, keeps the best checkpoint and
/// exports at x. β1 is therefore fixed: a scheduler that cycles the momentum is refused.
/// k, lr_max and weight_sum are kept per parameter (the reference keeps them per group;
/// every parameter of a group that gets a gradient at every step sees the same values).
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "schedule_free_adamw",
    summary = "Schedule-Free AdamW: no learning-rate schedule, evaluated at the average of its iterates (schedulefree.AdamWScheduleFree)",
    lr = 0.0025
)]
pub struct ScheduleFreeAdamW {
    /// beta1 (the interpolation y = (1-beta1) z + beta1 x; > 0) and the decay rate of the second moment average; in [0, 1)
    #[param(default = [0.9, 0.999], check = positive_beta1)]
    pub betas: Betas,
    /// added to the denominator, outside the square root; >= 0
    #[param(default = 1e-8, check = check::non_negative)]
    pub eps: f64,
    /// weight decay, added to the normalized gradient at y; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub weight_decay: f64,
    /// steps of a linear learning-rate warmup (0: none); >= 0
    #[param(default = 0)]
    pub warmup_steps: u64,
    /// power r of the polynomial weighting (k+1)^r of the average
    #[param(default = 0.0)]
    pub r: f64,
    /// the average weighs step k by lr_max^weight_lr_power (0: no weighting by the learning rate)
    #[param(default = 2.0)]
    pub weight_lr_power: f64,
}

/// Schedule-Free AdamW's state, under the reference's names: `z` and `exp_avg_sq` (its
/// per-parameter state) and its group scalars `k` (steps taken), `lr_max` (the largest
/// warmed-up learning rate so far, -1 before the first step) and `weight_sum`.
#[derive(Clone, Debug, OptimizerState)]
pub struct ScheduleFreeAdamWState {
    pub k: u64,
    pub lr_max: f64,
    pub weight_sum: f64,
    pub z: Tensor,
    pub exp_avg_sq: Tensor,
}

/// Schedule-Free SGD (`schedulefree.SGDScheduleFree`): as [`ScheduleFreeAdamW`] without
/// the second moment, and with `momentum` in place of β1. Step k+1:
/// lr_k, c, lr_max and weight_sum as there; g ← g + weight_decay·y;
/// y ← lerp(y, z, c) + lr_k·(momentum·(1-c) - 1)·g; z ← z - lr_k·g.
///
/// Evaluation uses the averaged point x = lerp(y, z, 1 - 1/momentum) (the reference's
/// `optimizer.eval()`), returned by [`Optimizer::eval_point`]; the parameter keeps y.
/// The momentum is therefore fixed: a scheduler that cycles it is refused.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "schedule_free_sgd",
    summary = "Schedule-Free SGD: no learning-rate schedule, evaluated at the average of its iterates (schedulefree.SGDScheduleFree)",
    lr = 1.0
)]
pub struct ScheduleFreeSgd {
    /// momentum, the interpolation y = (1-momentum) z + momentum x; in (0, 1)
    #[param(default = 0.9, check = check::open_unit_interval)]
    pub momentum: f64,
    /// L2 penalty added to the gradient at y; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub weight_decay: f64,
    /// steps of a linear learning-rate warmup (0: none); >= 0
    #[param(default = 0)]
    pub warmup_steps: u64,
    /// power r of the polynomial weighting (k+1)^r of the average
    #[param(default = 0.0)]
    pub r: f64,
    /// the average weighs step k by lr_max^weight_lr_power (0: no weighting by the learning rate)
    #[param(default = 2.0)]
    pub weight_lr_power: f64,
}

/// Schedule-Free SGD's state, under the reference's names: `z` and the group scalars
/// `k`, `lr_max` and `weight_sum` (see [`ScheduleFreeAdamWState`]).
#[derive(Clone, Debug, OptimizerState)]
pub struct ScheduleFreeSgdState {
    pub k: u64,
    pub lr_max: f64,
    pub weight_sum: f64,
    pub z: Tensor,
}

/// `betas[0] > 0` (the range [0, 1) is checked when the key is read).
fn positive_beta1(b: &Betas) -> check::Check {
    if b.0 > 0.0 {
        Ok(())
    } else {
        Err("betas[0] must be > 0: the evaluation point lerp(y, z, 1 - 1/betas[0]) divides by it".into())
    }
}

/// Refuses a scheduled momentum: β1 (or `momentum`) also fixes where the model is
/// evaluated, which a changing value would move away from the average.
fn fixed_momentum(name: &str, ctx: &StepContext) -> Result<()> {
    match ctx.momentum {
        None => Ok(()),
        Some(m) => Err(Error::input(format!(
            "{name}: a scheduler sets the momentum to {m}, but a schedule-free optimizer's momentum also fixes where the model is evaluated, so it cannot change during training; set cycle_momentum = false in [scheduler]"
        ))),
    }
}

/// The scalars of one step, computed in f64 as the reference computes them in Python,
/// and the group scalars to store once the step is done.
#[derive(Clone, Copy, Debug)]
struct Schedule {
    /// The warmed-up learning rate, lr·min(1, (k+1)/warmup_steps).
    lr: f64,
    /// The weight of this step in the average (`ckp1`).
    ckp1: f64,
    lr_max: f64,
    weight_sum: f64,
}

/// The reference's schedule at step k+1 from its scalars `(k, lr_max, weight_sum)`.
fn schedule(
    warmup_steps: u64,
    r: f64,
    weight_lr_power: f64,
    (k, lr_max, weight_sum): (u64, f64, f64),
    lr: f64,
) -> Schedule {
    let sched = if k < warmup_steps { (k + 1) as f64 / warmup_steps as f64 } else { 1.0 };
    let lr = lr * sched;
    // Python's max(lr, lr_max): lr unless lr_max is larger.
    let lr_max = if lr_max > lr { lr_max } else { lr };
    let weight = ((k + 1) as f64).powf(r) * lr_max.powf(weight_lr_power);
    let weight_sum = weight_sum + weight;
    // The reference catches the ZeroDivisionError of a zero sum (lr = 0).
    let ckp1 = if weight_sum == 0.0 { 0.0 } else { weight / weight_sum };
    Schedule { lr, ckp1, lr_max, weight_sum }
}

/// `1 - weight` as PyTorch's `lerp` computes it: in the tensor's compute precision (the
/// weight first rounded to f32 for every dtype but f64).
fn one_minus(weight: f64, dtype: DType) -> f64 {
    if dtype == DType::F64 {
        1.0 - weight
    } else {
        f64::from(1.0f32 - weight as f32)
    }
}

/// PyTorch's `lerp` for any weight: start + w·(end - start) when |w| < 0.5, else
/// end - (end - start)·(1 - w). (The evaluation weight 1 - 1/β1 is negative, where
/// `ember_core::optim::lerp`, which tests w < 0.5, would take the other form.)
fn torch_lerp(start: &Tensor, end: &Tensor, weight: f64) -> Result<Tensor> {
    let diff = end.sub(start)?;
    Ok(if weight.abs() < 0.5 {
        start.add(&diff.affine(weight, 0.0)?)?
    } else {
        end.sub(&diff.affine(one_minus(weight, start.dtype()), 0.0)?)?
    })
}

/// z, a copy of the parameter (the reference's `torch.clone(p)` at the first step),
/// contiguous and outside any autograd graph.
fn copy_of(param: &Tensor) -> Result<Tensor> {
    Ok(param.detach().copy()?.contiguous()?)
}

/// The averaged point x = lerp(y, z, 1 - 1/β) (the reference's `eval()`); `None` before
/// the first step, where the reference has no `z` and leaves the parameter as it is.
fn averaged_point(param: &Tensor, z: &Tensor, k: u64, beta: f64) -> Result<Option<Tensor>> {
    if k == 0 {
        return Ok(None);
    }
    Ok(Some(torch_lerp(&param.detach(), z, 1.0 - 1.0 / beta)?))
}

/// AdamW's per-step scalars beyond the schedule.
struct AdamWScalars {
    s: Schedule,
    bias_correction2: f64,
    /// lr·(β1·(1-c) - 1), the step of y along the normalized gradient.
    y_step: f64,
}

impl ScheduleFreeAdamW {
    fn composed(
        &self,
        param: &Var,
        grad: &Tensor,
        state: &mut ScheduleFreeAdamWState,
        sc: &AdamWScalars,
    ) -> Result<()> {
        // Detached, so that the state never holds an autograd graph through the parameter.
        let (y, g) = (param.as_tensor().detach(), grad.detach());
        let b2 = self.betas.1;
        let v = addcmul(&state.exp_avg_sq.affine(b2, 0.0)?, &g, &g, 1.0 - b2)?;
        let denom = div_scalar(&v, sc.bias_correction2)?.sqrt()?.affine(1.0, self.eps)?;
        let mut u = g.div(&denom)?;
        if self.weight_decay != 0.0 {
            u = add_scaled(&u, &y, self.weight_decay)?;
        }
        let y_new = add_scaled(&torch_lerp(&y, &state.z, sc.s.ckp1)?, &u, sc.y_step)?;
        let z_new = add_scaled(&state.z, &u, -sc.s.lr)?;
        param.set(&y_new)?;
        state.z = z_new;
        state.exp_avg_sq = v;
        Ok(())
    }

    fn fused_step<T: CpuFloat + Real>(
        &self,
        param: &Tensor,
        grad: &Tensor,
        states: &[&Tensor],
        sc: &AdamWScalars,
    ) -> Result<()> {
        let b2 = self.betas.1;
        let k = AdamWKernel {
            beta2: T::of(b2),
            c2: T::of(1.0 - b2),
            bc2: T::of(sc.bias_correction2),
            eps: T::of(self.eps),
            wd: (self.weight_decay != 0.0).then(|| T::of(self.weight_decay)),
            ckp1: T::of(sc.s.ckp1),
            ckp1_lt_half: sc.s.ckp1 < 0.5,
            y_step: T::of(sc.y_step),
            neg_lr: T::of(-sc.s.lr),
        };
        with_cpu_data::<T>(param, grad, states, &mut |p, g, s| par_chunks(p, g, s, &k))
    }
}

/// The fused Schedule-Free AdamW update of one chunk (y, g; z, v), in the reference's
/// order of operations.
#[derive(Clone, Copy)]
struct AdamWKernel<T> {
    beta2: T,
    c2: T,
    bc2: T,
    eps: T,
    wd: Option<T>,
    ckp1: T,
    ckp1_lt_half: bool,
    y_step: T,
    neg_lr: T,
}

impl<T: Real> ChunkKernel<T> for AdamWKernel<T> {
    #[inline(always)]
    fn run(&self, y: &mut [T], g: &[T], s: &mut [&mut [T]]) {
        let [z, v] = s else { unreachable!("schedule_free_adamw has two state buffers") };
        match (self.wd.is_some(), self.ckp1_lt_half) {
            (false, true) => self.each::<false, true>(y, g, z, v),
            (false, false) => self.each::<false, false>(y, g, z, v),
            (true, true) => self.each::<true, true>(y, g, z, v),
            (true, false) => self.each::<true, false>(y, g, z, v),
        }
    }
}

impl<T: Real> AdamWKernel<T> {
    #[inline(always)]
    fn each<const WD: bool, const LT_HALF: bool>(&self, y: &mut [T], g: &[T], z: &mut [T], v: &mut [T]) {
        let n = y.len();
        let (g, z, v) = (&g[..n], &mut z[..n], &mut v[..n]);
        let wd = self.wd.unwrap_or(T::zero());
        for (((yi, &gi), zi), vi) in y.iter_mut().zip(g).zip(z.iter_mut()).zip(v.iter_mut()) {
            *vi = *vi * self.beta2 + self.c2 * gi * gi;
            let denom = (*vi / self.bc2).sqrt() + self.eps;
            let mut u = gi / denom;
            if WD {
                u = u + wd * *yi;
            }
            *yi = lerp1(*yi, *zi, self.ckp1, LT_HALF) + self.y_step * u;
            *zi = *zi + self.neg_lr * u;
        }
    }
}

impl Optimizer for ScheduleFreeAdamW {
    type State = ScheduleFreeAdamWState;

    fn init_state(&self, param: &Tensor) -> Result<ScheduleFreeAdamWState> {
        Ok(ScheduleFreeAdamWState {
            k: 0,
            lr_max: -1.0,
            weight_sum: 0.0,
            z: copy_of(param)?,
            exp_avg_sq: zeros(param)?,
        })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut ScheduleFreeAdamWState, ctx: &StepContext) -> Result<()> {
        fixed_momentum("schedule_free_adamw", ctx)?;
        let (beta1, beta2) = (self.betas.0, self.betas.1);
        let s = schedule(
            self.warmup_steps,
            self.r,
            self.weight_lr_power,
            (state.k, state.lr_max, state.weight_sum),
            ctx.lr,
        );
        let sc = AdamWScalars {
            s,
            bias_correction2: 1.0 - beta2.powf((state.k + 1) as f64),
            y_step: s.lr * (beta1 * (1.0 - s.ckp1) - 1.0),
        };
        let states = [&state.z, &state.exp_avg_sq];
        match fused_kind(param.as_tensor(), grad, &states) {
            Some(Fused::F32) => self.fused_step::<f32>(param.as_tensor(), grad, &states, &sc)?,
            Some(Fused::F64) => self.fused_step::<f64>(param.as_tensor(), grad, &states, &sc)?,
            None => self.composed(param, grad, state, &sc)?,
        }
        state.k += 1;
        state.lr_max = s.lr_max;
        state.weight_sum = s.weight_sum;
        Ok(())
    }

    fn eval_point(&self, param: &Tensor, state: &ScheduleFreeAdamWState) -> Result<Option<Tensor>> {
        averaged_point(param, &state.z, state.k, self.betas.0)
    }
}

impl ScheduleFreeSgd {
    fn fused_step<T: CpuFloat + Real>(
        &self,
        param: &Tensor,
        grad: &Tensor,
        states: &[&Tensor],
        s: &Schedule,
        y_step: f64,
    ) -> Result<()> {
        let k = SgdKernel {
            wd: (self.weight_decay != 0.0).then(|| T::of(self.weight_decay)),
            ckp1: T::of(s.ckp1),
            ckp1_lt_half: s.ckp1 < 0.5,
            y_step: T::of(y_step),
            neg_lr: T::of(-s.lr),
        };
        with_cpu_data::<T>(param, grad, states, &mut |p, g, st| par_chunks(p, g, st, &k))
    }
}

/// The fused Schedule-Free SGD update of one chunk (y, g; z), in the reference's order of
/// operations.
#[derive(Clone, Copy)]
struct SgdKernel<T> {
    wd: Option<T>,
    ckp1: T,
    ckp1_lt_half: bool,
    y_step: T,
    neg_lr: T,
}

impl<T: Real> ChunkKernel<T> for SgdKernel<T> {
    #[inline(always)]
    fn run(&self, y: &mut [T], g: &[T], s: &mut [&mut [T]]) {
        let [z] = s else { unreachable!("schedule_free_sgd has one state buffer") };
        match (self.wd.is_some(), self.ckp1_lt_half) {
            (false, true) => self.each::<false, true>(y, g, z),
            (false, false) => self.each::<false, false>(y, g, z),
            (true, true) => self.each::<true, true>(y, g, z),
            (true, false) => self.each::<true, false>(y, g, z),
        }
    }
}

impl<T: Real> SgdKernel<T> {
    #[inline(always)]
    fn each<const WD: bool, const LT_HALF: bool>(&self, y: &mut [T], g: &[T], z: &mut [T]) {
        let n = y.len();
        let (g, z) = (&g[..n], &mut z[..n]);
        let wd = self.wd.unwrap_or(T::zero());
        for ((yi, &gi), zi) in y.iter_mut().zip(g).zip(z.iter_mut()) {
            let u = if WD { gi + wd * *yi } else { gi };
            *yi = lerp1(*yi, *zi, self.ckp1, LT_HALF) + self.y_step * u;
            *zi = *zi + self.neg_lr * u;
        }
    }
}

impl Optimizer for ScheduleFreeSgd {
    type State = ScheduleFreeSgdState;

    fn init_state(&self, param: &Tensor) -> Result<ScheduleFreeSgdState> {
        Ok(ScheduleFreeSgdState { k: 0, lr_max: -1.0, weight_sum: 0.0, z: copy_of(param)? })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut ScheduleFreeSgdState, ctx: &StepContext) -> Result<()> {
        fixed_momentum("schedule_free_sgd", ctx)?;
        let s = schedule(
            self.warmup_steps,
            self.r,
            self.weight_lr_power,
            (state.k, state.lr_max, state.weight_sum),
            ctx.lr,
        );
        let y_step = s.lr * (self.momentum * (1.0 - s.ckp1) - 1.0);
        let states = [&state.z];
        match fused_kind(param.as_tensor(), grad, &states) {
            Some(Fused::F32) => self.fused_step::<f32>(param.as_tensor(), grad, &states, &s, y_step)?,
            Some(Fused::F64) => self.fused_step::<f64>(param.as_tensor(), grad, &states, &s, y_step)?,
            None => {
                // Detached, so that the state never holds an autograd graph through the
                // parameter.
                let (y, mut g) = (param.as_tensor().detach(), grad.detach());
                if self.weight_decay != 0.0 {
                    g = add_scaled(&g, &y, self.weight_decay)?;
                }
                let y_new = add_scaled(&torch_lerp(&y, &state.z, s.ckp1)?, &g, y_step)?;
                let z_new = add_scaled(&state.z, &g, -s.lr)?;
                param.set(&y_new)?;
                state.z = z_new;
            }
        }
        state.k += 1;
        state.lr_max = s.lr_max;
        state.weight_sum = s.weight_sum;
        Ok(())
    }

    fn eval_point(&self, param: &Tensor, state: &ScheduleFreeSgdState) -> Result<Option<Tensor>> {
        averaged_point(param, &state.z, state.k, self.momentum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use ember_core::ops::{with_kernels, Kernels};
    use ember_core::{registry, BuildContext, Config, Value};

    fn values(t: &Tensor) -> Vec<f64> {
        t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
    }

    fn adamw(weight_decay: f64, warmup_steps: u64) -> ScheduleFreeAdamW {
        ScheduleFreeAdamW {
            betas: Betas(0.9, 0.99),
            eps: 1e-8,
            weight_decay,
            warmup_steps,
            r: 0.5,
            weight_lr_power: 2.0,
        }
    }

    /// y, z and exp_avg_sq after 8 steps on `n` elements with pseudo-random gradients.
    fn run(opt: &ScheduleFreeAdamW, kernels: Kernels, n: usize, dtype: DType) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let t = |v: Vec<f64>| Tensor::new(v, &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
        let x = Var::from_tensor(&t((0..n).map(|i| ((i * 7919) % 1000) as f64 / 250.0 - 2.0).collect())).unwrap();
        let mut state = opt.init_state(x.as_tensor()).unwrap();
        with_kernels(kernels, || {
            for k in 0..8 {
                let g = t((0..n).map(|i| (((i + 31 * k) * 104729) % 2000) as f64 / 1000.0 - 1.0).collect());
                opt.step(&x, &g, &mut state, &StepContext::new(0.05)).unwrap();
            }
        });
        assert_eq!((state.k, state.lr_max), (8, 0.05));
        (values(x.as_tensor()), values(&state.z), values(&state.exp_avg_sq))
    }

    #[test]
    fn the_fused_kernel_matches_the_composed_path_exactly() {
        // More elements than one chunk, and an odd count; warmup takes c over and under
        // 1/2 (both lerp forms), weight decay on and off.
        let n = (1 << 17) + 3;
        for opt in [adamw(0.0, 0), adamw(0.1, 3)] {
            for dtype in [DType::F32, DType::F64] {
                let before = ember_core::ops::fused::fused_updates();
                let fused = run(&opt, Kernels::Auto, n, dtype);
                assert!(ember_core::ops::fused::fused_updates() > before, "{dtype:?}: the fused kernel did not run");
                let composed = run(&opt, Kernels::Composed, n, dtype);
                assert!(fused == composed, "{opt:?} {dtype:?}: fused and composed paths differ");
            }
        }
    }

    #[test]
    fn the_evaluation_point_is_the_average_and_leaves_the_parameter_alone() {
        let opt = adamw(0.0, 0);
        let x = Var::from_tensor(&Tensor::new(&[1.0f64, -2.0, 0.5], &Device::Cpu).unwrap()).unwrap();
        let mut state = opt.init_state(x.as_tensor()).unwrap();
        assert!(opt.eval_point(x.as_tensor(), &state).unwrap().is_none(), "no average before the first step");
        for k in 0..4 {
            let g = Tensor::new(&[0.3 - 0.1 * k as f64, -0.2, 0.05], &Device::Cpu).unwrap();
            opt.step(&x, &g, &mut state, &StepContext::new(0.1)).unwrap();
        }
        let y = values(x.as_tensor());
        let point = opt.eval_point(x.as_tensor(), &state).unwrap().unwrap();
        assert_eq!(values(x.as_tensor()), y, "eval_point changed the parameter");
        // y = (1-β1) z + β1 x, so x = (y - (1-β1) z) / β1.
        let z = values(&state.z);
        for ((x, y), z) in values(&point).iter().zip(&y).zip(&z) {
            let want = (y - 0.1 * z) / 0.9;
            assert!((x - want).abs() <= 1e-12 * want.abs().max(1.0), "x {x}, expected {want} (y {y}, z {z})");
            assert!((y - z).abs() > 1e-3, "y and z should differ after 4 steps");
        }
    }

    fn build(name: &str, pairs: &[(&str, Value)]) -> Result<Box<dyn ember_core::DynOptimizer>> {
        let config: Config = pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        registry::optimizer(name, &config, &BuildContext::default())
    }

    #[test]
    fn both_are_registered_with_the_reference_defaults_and_checks() {
        let opt = build("schedule_free_sgd", &[]).unwrap();
        assert!(format!("{opt:?}").contains("momentum: 0.9"), "{opt:?}");
        let (_, lr) =
            registry::optimizer_with_lr("schedule_free_sgd", &Config::new(), &BuildContext::default()).unwrap();
        assert_eq!(lr, 1.0);
        let (_, lr) =
            registry::optimizer_with_lr("schedule_free_adamw", &Config::new(), &BuildContext::default()).unwrap();
        assert_eq!(lr, 0.0025);
        let betas = Value::List(vec![Value::Float(0.0), Value::Float(0.999)]);
        let err = build("schedule_free_adamw", &[("betas", betas)]).unwrap_err().to_string();
        assert!(err.contains("betas") && err.contains("betas[0] must be > 0"), "{err}");
        for m in [0.0, 1.0] {
            let err = build("schedule_free_sgd", &[("momentum", Value::Float(m))]).unwrap_err().to_string();
            assert!(err.contains("momentum") && err.contains("(0, 1)"), "{err}");
        }
        let err = build("schedule_free_sgd", &[("warmup_steps", Value::Int(-1))]).unwrap_err().to_string();
        assert!(err.contains("warmup_steps") && err.contains(">= 0"), "{err}");
    }

    #[test]
    fn a_scheduled_momentum_is_refused() {
        for name in ["schedule_free_adamw", "schedule_free_sgd"] {
            let opt = build(name, &[]).unwrap();
            let x = Var::from_tensor(&Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap()).unwrap();
            let mut state = opt.init_state(x.as_tensor()).unwrap();
            let g = Tensor::new(&[0.1f32, 0.2], &Device::Cpu).unwrap();
            let err = opt.step(&x, &g, &mut state, &StepContext::new(0.1).with_momentum(Some(0.8))).unwrap_err();
            assert!(err.to_string().contains("cycle_momentum = false"), "{name}: {err}");
            assert_eq!(values(x.as_tensor()), [1.0, 2.0], "{name}: a refused step changed the parameter");
        }
    }

    #[test]
    fn the_state_keeps_the_reference_names_and_resumes_exactly() {
        let opt = ScheduleFreeSgd { momentum: 0.8, weight_decay: 0.01, warmup_steps: 2, r: 1.0, weight_lr_power: 1.0 };
        let g = |k: usize| Tensor::new(&[0.3 - 0.1 * k as f64, -0.2, 0.05 * k as f64], &Device::Cpu).unwrap();
        let run = |split: Option<usize>| {
            let x = Var::from_tensor(&Tensor::new(&[1.0f64, 2.0, -3.0], &Device::Cpu).unwrap()).unwrap();
            let mut state = opt.init_state(x.as_tensor()).unwrap();
            for k in 0..6 {
                if split == Some(k) {
                    let saved = state.save();
                    let mut names: Vec<&str> =
                        saved.tensors.keys().chain(saved.scalars.keys()).map(String::as_str).collect();
                    names.sort();
                    assert_eq!(names, ["k", "lr_max", "weight_sum", "z"]);
                    state = ScheduleFreeSgdState::load(&saved).unwrap();
                }
                opt.step(&x, &g(k), &mut state, &StepContext::new(0.1)).unwrap();
            }
            let point = opt.eval_point(x.as_tensor(), &state).unwrap().unwrap();
            (values(x.as_tensor()), values(&point), state.k, state.weight_sum.to_bits())
        };
        assert_eq!(run(None), run(Some(3)));
        let saved = adamw(0.0, 0).init_state(&Tensor::new(&[1.0f32], &Device::Cpu).unwrap()).unwrap().save();
        let mut names: Vec<&str> = saved.tensors.keys().chain(saved.scalars.keys()).map(String::as_str).collect();
        names.sort();
        assert_eq!(names, ["exp_avg_sq", "k", "lr_max", "weight_sum", "z"]);
    }
}
