//! `lion`: the sign of an interpolation of momentum and gradient (Chen et al. 2023,
//! "Symbolic Discovery of Optimization Algorithms"), as the `lion-pytorch` package's
//! `lion_pytorch.Lion`.

use candle_core::{Tensor, Var};
use ember_core::ops::fused::{par_chunks, with_cpu_data, ChunkKernel, CpuFloat};
use ember_core::ops::pointwise::Real;
use ember_core::optim::{add_scaled, fused_kind, zeros, Fused};
use ember_core::{check, Hyperparams, Optimizer, OptimizerState, Params, Result, StepContext};

use crate::common::Betas;

/// lion-pytorch's Lion (`lion_pytorch.Lion`, its default per-parameter `update_fn`):
/// p ← p·(1 - lr·wd); c = β1·m + (1-β1)·g; p ← p - lr·sign(c); m ← β2·m + (1-β2)·g,
/// with sign(0) = 0 as torch's. With `decoupled_weight_decay` the weight decay is first
/// divided by the configured learning rate (lion-pytorch's `wd /= init_lr`), so the decay
/// per step is wd·(lr / configured lr): wd itself at the configured rate, moving with a
/// schedule. β1 is the scheduled momentum when a scheduler cycles it (lion-pytorch reads
/// `betas` from the group at every step, as `one_cycle` sets it).
///
/// Differences from the reference: `use_triton` (a CUDA kernel) is not offered, nor the
/// package's other classes (`cautious_lion.Lion` with `cautious_factor`, `foreach.Lion`);
/// betas must lie in [0, 1) (the reference admits 1, which freezes the momentum or the
/// interpolation); the configured rate `decoupled_weight_decay` divides by is this
/// parameter group's (the reference uses the constructor's for every group). The reference
/// refuses lr = 0 (`assert lr > 0`): so does this, for the configured rate.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "lion",
    summary = "Lion: sign of interpolated momentum and gradient, decoupled weight decay (lion_pytorch.Lion)",
    lr = 1e-4,
    lr_doc = "learning rate; > 0 (typically 3-10x smaller than AdamW's)"
)]
pub struct Lion {
    /// interpolation (beta1) and momentum decay (beta2); in [0, 1)
    #[param(default = [0.9, 0.99])]
    pub betas: Betas,
    /// weight decay p <- p (1 - lr weight_decay), applied before the update; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub weight_decay: f64,
    /// divide weight_decay by the configured lr (p <- p (1 - weight_decay lr / configured lr))
    #[param(default = false)]
    pub decoupled_weight_decay: bool,
    /// The configured learning rate (lion-pytorch's `init_lr`), which
    /// `decoupled_weight_decay` divides by; read from the `lr` key when the registry builds
    /// the optimizer (the driver still hands each step the rate in effect).
    #[param(skip = configured_lr(params)?)]
    pub init_lr: f64,
}

/// The configured `lr`, refused when 0 as lion-pytorch refuses it (negative rates are
/// refused before, by every optimizer's check); the default rate when the key is not
/// declared (the struct built by `Hyperparams::from_config` without the registry).
fn configured_lr(params: &Params) -> Result<f64> {
    match params.opt_float("lr")? {
        Some(lr) if lr > 0.0 => Ok(lr),
        Some(_) => Err(params.invalid("lr", "must be > 0 (lion-pytorch refuses lr = 0)")),
        None => Ok(1e-4),
    }
}

/// Lion's state (lion-pytorch's name): the momentum `exp_avg`.
#[derive(Clone, Debug, OptimizerState)]
pub struct LionState {
    pub exp_avg: Tensor,
}

impl Lion {
    /// The factor p is multiplied by before the update (`1 - lr * wd`, wd divided by the
    /// configured rate first when decoupled), in f64 as lion-pytorch computes it in Python;
    /// `None` without weight decay (the reference's multiplication by 1 changes nothing).
    fn decay(&self, lr: f64) -> Option<f64> {
        if self.weight_decay == 0.0 {
            return None;
        }
        let wd = if self.decoupled_weight_decay { self.weight_decay / self.init_lr } else { self.weight_decay };
        Some(1.0 - lr * wd)
    }

    fn composed(&self, param: &Var, grad: &Tensor, state: &mut LionState, b1: f64, lr: f64) -> Result<()> {
        let b2 = self.betas.1;
        let m = &state.exp_avg;
        let p = match self.decay(lr) {
            Some(d) => param.as_tensor().affine(d, 0.0)?,
            None => param.as_tensor().clone(),
        };
        // exp_avg.clone().mul_(beta1).add(grad, alpha = 1 - beta1).sgn_()
        let c = add_scaled(&m.affine(b1, 0.0)?, grad, 1.0 - b1)?;
        // p.add_(update, alpha = -lr)
        param.set(&p.sub(&c.sign()?.affine(lr, 0.0)?)?)?;
        // exp_avg.mul_(beta2).add_(grad, alpha = 1 - beta2)
        state.exp_avg = add_scaled(&m.affine(b2, 0.0)?, grad, 1.0 - b2)?;
        Ok(())
    }

    fn fused_step<T: CpuFloat + Real>(
        &self,
        param: &Tensor,
        grad: &Tensor,
        m: &Tensor,
        b1: f64,
        lr: f64,
    ) -> Result<()> {
        let b2 = self.betas.1;
        let k = LionKernel {
            decay: self.decay(lr).map(T::of),
            beta1: T::of(b1),
            c1: T::of(1.0 - b1),
            beta2: T::of(b2),
            c2: T::of(1.0 - b2),
            lr: T::of(lr),
        };
        with_cpu_data::<T>(param, grad, &[m], &mut |p, g, s| par_chunks(p, g, s, &k))
    }
}

/// Lion over one chunk; state: exp_avg. The composed path's IEEE operations, element by
/// element.
struct LionKernel<T> {
    decay: Option<T>,
    beta1: T,
    c1: T,
    beta2: T,
    c2: T,
    lr: T,
}

impl<T: Real> ChunkKernel<T> for LionKernel<T> {
    #[inline(always)]
    fn run(&self, p: &mut [T], g: &[T], s: &mut [&mut [T]]) {
        let [m] = s else { unreachable!("one state buffer") };
        match self.decay {
            None => self.each::<false>(p, g, m),
            Some(_) => self.each::<true>(p, g, m),
        }
    }
}

impl<T: Real> LionKernel<T> {
    #[inline(always)]
    fn each<const DECAY: bool>(&self, p: &mut [T], g: &[T], m: &mut [T]) {
        let n = p.len();
        let (g, m) = (&g[..n], &mut m[..n]);
        let decay = self.decay.unwrap_or(T::one());
        let (zero, one) = (T::zero(), T::one());
        for ((p, &g), m) in p.iter_mut().zip(g).zip(m.iter_mut()) {
            let c = *m * self.beta1 + g * self.c1;
            // candle's (and torch's) sign: 0 for ±0 and NaN.
            let s = if c > zero {
                one
            } else if c < zero {
                -one
            } else {
                zero
            };
            let p0 = if DECAY { *p * decay } else { *p };
            *p = p0 - s * self.lr;
            *m = *m * self.beta2 + g * self.c2;
        }
    }
}

impl Optimizer for Lion {
    type State = LionState;

    fn init_state(&self, param: &Tensor) -> Result<LionState> {
        Ok(LionState { exp_avg: zeros(param)? })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut LionState, ctx: &StepContext) -> Result<()> {
        // A scheduler that cycles momentum (one_cycle) moves beta1, as for Adam.
        let b1 = ctx.momentum_or(self.betas.0);
        match fused_kind(param.as_tensor(), grad, &[&state.exp_avg]) {
            Some(Fused::F32) => self.fused_step::<f32>(param.as_tensor(), grad, &state.exp_avg, b1, ctx.lr),
            Some(Fused::F64) => self.fused_step::<f64>(param.as_tensor(), grad, &state.exp_avg, b1, ctx.lr),
            None => self.composed(param, grad, state, b1, ctx.lr),
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use ember_core::ops::{with_kernels, Kernels};
    use ember_core::{registry, BuildContext, Config, Value};

    use super::*;

    fn lion(pairs: &[(&str, Value)]) -> Result<Box<dyn ember_core::DynOptimizer>> {
        let config: Config = pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        registry::optimizer("lion", &config, &BuildContext::default())
    }

    fn values(t: &Tensor) -> Vec<f64> {
        t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
    }

    fn betas(b1: f64, b2: f64) -> Value {
        Value::List(vec![Value::Float(b1), Value::Float(b2)])
    }

    #[test]
    fn one_step_moves_each_coordinate_by_lr_against_the_gradient_sign_on_both_paths() {
        let opt = Lion { betas: Betas(0.9, 0.99), weight_decay: 0.0, decoupled_weight_decay: false, init_lr: 0.1 };
        for kernels in [Kernels::Auto, Kernels::Composed] {
            for dtype in [DType::F32, DType::F64] {
                let t = |v: &[f64]| Tensor::new(v, &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
                let p = Var::from_tensor(&t(&[1.0, -2.0, 0.5])).unwrap();
                // A zero gradient has sign 0: that coordinate stays.
                let g = t(&[3.0, -0.001, 0.0]);
                let mut s = opt.init_state(p.as_tensor()).unwrap();
                with_kernels(kernels, || opt.step(&p, &g, &mut s, &StepContext::new(0.1))).unwrap();
                let want = values(&t(&[0.9, -1.9, 0.5]));
                assert_eq!(values(p.as_tensor()), want, "{kernels:?} {dtype:?}");
                // exp_avg = (1 - beta2) g
                let m = values(&s.exp_avg);
                assert!((m[0] - 0.03).abs() < 1e-6 && m[2] == 0.0, "{kernels:?} {dtype:?}: {m:?}");
            }
        }
    }

    /// The parameter and exp_avg after 6 steps of pseudo-random gradients on more
    /// elements than one chunk (an odd count), and whether the step took the fused kernel.
    fn run(
        config: &[(&str, Value)],
        momentum: Option<f64>,
        kernels: Kernels,
        dtype: DType,
    ) -> (Vec<f64>, Vec<f64>, bool) {
        let opt = lion(config).unwrap();
        let n: usize = (1 << 17) + 3;
        let x0: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1000) as f64 / 250.0 - 2.0).collect();
        let x = Var::from_tensor(&Tensor::new(x0, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()).unwrap();
        let mut state = opt.init_state(x.as_tensor()).unwrap();
        let fused = with_kernels(kernels, || {
            let mut fused = true;
            for k in 0..6 {
                // Some exact zeros among the gradients (sign 0 on the first step).
                let g: Vec<f64> = (0..n).map(|i| (((i + 31 * k) * 104729) % 2001) as f64 / 1000.0 - 1.0).collect();
                let g = Tensor::new(g, &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
                let m = &state.downcast_ref::<LionState>().unwrap().exp_avg;
                fused &= fused_kind(x.as_tensor(), &g, &[m]).is_some();
                opt.step(&x, &g, &mut state, &StepContext::new(0.01).with_momentum(momentum)).unwrap();
            }
            fused
        });
        let m = values(&state.downcast_ref::<LionState>().unwrap().exp_avg);
        (values(x.as_tensor()), m, fused)
    }

    #[test]
    fn the_fused_kernel_matches_the_composed_path_exactly() {
        let lr = ("lr", Value::Float(0.02));
        let configs = [
            vec![lr.clone()],
            vec![lr.clone(), ("betas", betas(0.3, 0.5))],
            vec![lr.clone(), ("weight_decay", Value::Float(0.5))],
            vec![lr.clone(), ("weight_decay", Value::Float(0.01)), ("decoupled_weight_decay", Value::Bool(true))],
        ];
        for config in &configs {
            for dtype in [DType::F32, DType::F64] {
                let (fp, fm, fused) = run(config, None, Kernels::Auto, dtype);
                let (cp, cm, composed_fused) = run(config, None, Kernels::Composed, dtype);
                assert!(fused && !composed_fused, "{config:?} {dtype:?}: the fused kernel runs under Auto only");
                assert!(fp == cp && fm == cm, "{config:?} {dtype:?}: fused and composed differ");
            }
        }
    }

    #[test]
    fn a_scheduled_momentum_is_the_configured_beta1_on_both_paths() {
        let lr = ("lr", Value::Float(0.02));
        for kernels in [Kernels::Auto, Kernels::Composed] {
            for dtype in [DType::F32, DType::F64] {
                let scheduled = run(std::slice::from_ref(&lr), Some(0.3), kernels, dtype);
                let configured = run(&[lr.clone(), ("betas", betas(0.3, 0.99))], None, kernels, dtype);
                let default = run(std::slice::from_ref(&lr), None, kernels, dtype);
                assert!(scheduled == configured, "{kernels:?} {dtype:?}");
                assert!(scheduled.0 != default.0, "{kernels:?} {dtype:?}: the scheduled beta1 changed nothing");
            }
        }
    }

    #[test]
    fn decoupled_weight_decay_divides_by_the_configured_lr() {
        // A zero gradient leaves only the decay: p <- p (1 - lr wd'), at a scheduled lr of
        // 0.25 with lr = 0.5 configured: wd' = wd / 0.5 decoupled, wd otherwise.
        for (decoupled, want) in [(true, 2.0 * (1.0 - 0.25 * (0.1 / 0.5))), (false, 2.0 * (1.0 - 0.25 * 0.1))] {
            let opt = lion(&[
                ("lr", Value::Float(0.5)),
                ("weight_decay", Value::Float(0.1)),
                ("decoupled_weight_decay", Value::Bool(decoupled)),
            ])
            .unwrap();
            for kernels in [Kernels::Auto, Kernels::Composed] {
                let p = Var::new(&[2.0f64], &Device::Cpu).unwrap();
                let g = Tensor::new(&[0.0f64], &Device::Cpu).unwrap();
                let mut state = opt.init_state(p.as_tensor()).unwrap();
                with_kernels(kernels, || opt.step(&p, &g, &mut state, &StepContext::new(0.25))).unwrap();
                assert_eq!(values(p.as_tensor()), [want], "decoupled {decoupled} {kernels:?}");
            }
        }
    }

    #[test]
    fn bad_hyperparameters_are_rejected_with_the_rule() {
        let e = lion(&[("lr", Value::Float(0.0))]).unwrap_err().to_string();
        assert!(e.starts_with("lion.lr = 0") && e.contains("must be > 0"), "{e}");
        let e = lion(&[("lr", Value::Float(-1.0))]).unwrap_err().to_string();
        assert!(e.contains("lion.lr = -1") && e.contains("must be >= 0"), "{e}");
        let e = lion(&[("betas", betas(0.9, 1.0))]).unwrap_err().to_string();
        assert_eq!(e, "lion.betas = [0.9, 1.0] is invalid: expected two numbers in [0, 1)");
        let e = lion(&[("weight_decay", Value::Float(-0.1))]).unwrap_err().to_string();
        assert!(e.starts_with("lion.weight_decay = -0.1 is invalid"), "{e}");
        let e = lion(&[("use_triton", Value::Bool(true))]).unwrap_err().to_string();
        assert!(e.contains("use_triton"), "{e}");
        let opt = lion(&[("lr", Value::Float(3e-4))]).unwrap();
        assert!(format!("{opt:?}").contains("init_lr: 0.0003"), "{opt:?}");
    }
}
