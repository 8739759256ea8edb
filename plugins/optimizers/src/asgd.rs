//! `asgd`: averaged stochastic gradient descent (PyTorch `torch.optim.ASGD`).

use candle_core::{DType, Tensor, Var};
use ember_core::ops::fused::{par_chunks, with_cpu_data, ChunkKernel, CpuFloat};
use ember_core::ops::pointwise::Real;
use ember_core::optim::{add_scaled, effective_grad, fused_kind, zeros, Fused};
use ember_core::{check, Hyperparams, Optimizer, OptimizerState, Result, StepContext};

/// PyTorch's ASGD, step t: g ← ±grad + weight_decay·p; p ← p·(1 - λ·η); p ← p - η·g;
/// ax ← ax + μ·(p - ax) when μ ≠ 1, else ax ← p; then η ← lr / (1 + λ·lr·t)^α and
/// μ ← 1 / max(1, t - t0) for the next step. η starts at the learning rate of the first
/// step and μ at 1. `ax`, the averaged parameters, does not feed back into p.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "asgd",
    summary = "ASGD: SGD with a decaying step size that keeps a running average of the parameters (torch.optim.ASGD)",
    lr = 0.01
)]
pub struct Asgd {
    /// decay term; >= 0
    #[param(default = 1e-4, check = check::non_negative)]
    pub lambd: f64,
    /// power of the step-size (eta) decay; >= 0
    #[param(default = 0.75, check = check::non_negative)]
    pub alpha: f64,
    /// the step after which averaging starts
    #[param(default = 1e6)]
    pub t0: f64,
    /// L2 penalty added to the gradient; >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub weight_decay: f64,
    /// maximize the objective instead of minimizing
    #[param(default = false)]
    pub maximize: bool,
}

/// ASGD's state (PyTorch's names): the step count, the step size `eta` (the learning
/// rate after the first step), the averaging weight `mu` and `ax`, the averaged
/// parameters. PyTorch keeps eta and mu as 0-d tensors of its default dtype, rounded to
/// f32 unless that is f64; they are rounded here to f32 unless the parameter is f64.
#[derive(Clone, Debug, OptimizerState)]
pub struct AsgdState {
    pub step: u64,
    pub eta: f64,
    pub mu: f64,
    pub ax: Tensor,
}

/// `v` as PyTorch stores ASGD's scalars for a parameter of `dtype` (see [`AsgdState`]).
fn scalar(v: f64, dtype: DType) -> f64 {
    if dtype == DType::F64 {
        v
    } else {
        v as f32 as f64
    }
}

impl Asgd {
    fn composed(&self, param: &Var, grad: &Tensor, state: &mut AsgdState, decay: f64) -> Result<()> {
        let p = param.as_tensor();
        let g = effective_grad(p, grad, self.maximize, self.weight_decay)?;
        let new_p = add_scaled(&p.affine(decay, 0.0)?, &g, -state.eta)?;
        state.ax = if state.mu != 1.0 {
            state.ax.add(&new_p.sub(&state.ax)?.affine(state.mu, 0.0)?)?
        } else {
            new_p.copy()?
        };
        param.set(&new_p)?;
        Ok(())
    }

    fn fused_step<T: CpuFloat + Real>(
        &self,
        param: &Tensor,
        grad: &Tensor,
        state: &AsgdState,
        decay: f64,
    ) -> Result<()> {
        let k = AsgdKernel {
            sign: if self.maximize { -T::one() } else { T::one() },
            wd: (self.weight_decay != 0.0).then(|| T::of(self.weight_decay)),
            decay: T::of(decay),
            neg_eta: T::of(-state.eta),
            mu: (state.mu != 1.0).then(|| T::of(state.mu)),
        };
        with_cpu_data::<T>(param, grad, &[&state.ax], &mut |p, g, s| par_chunks(p, g, s, &k))
    }
}

/// ASGD over one chunk; one state buffer, ax.
struct AsgdKernel<T> {
    sign: T,
    wd: Option<T>,
    decay: T,
    neg_eta: T,
    /// μ when it is not 1 (averaging); `None` copies p into ax.
    mu: Option<T>,
}

impl<T: Real> ChunkKernel<T> for AsgdKernel<T> {
    #[inline(always)]
    fn run(&self, p: &mut [T], g: &[T], s: &mut [&mut [T]]) {
        let [ax] = s else { unreachable!("one state buffer") };
        match (self.wd.is_some(), self.mu.is_some()) {
            (false, false) => self.each::<false, false>(p, g, ax),
            (false, true) => self.each::<false, true>(p, g, ax),
            (true, false) => self.each::<true, false>(p, g, ax),
            (true, true) => self.each::<true, true>(p, g, ax),
        }
    }
}

impl<T: Real> AsgdKernel<T> {
    #[inline(always)]
    fn each<const WD: bool, const AVERAGE: bool>(&self, p: &mut [T], g: &[T], ax: &mut [T]) {
        let n = p.len();
        let (g, ax) = (&g[..n], &mut ax[..n]);
        let wd = self.wd.unwrap_or(T::zero());
        let mu = self.mu.unwrap_or(T::one());
        for ((p, &g), ax) in p.iter_mut().zip(g).zip(ax.iter_mut()) {
            let mut g = g * self.sign;
            if WD {
                g = g + wd * *p;
            }
            let q = *p * self.decay;
            let q = q + self.neg_eta * g;
            *ax = if AVERAGE { *ax + (q - *ax) * mu } else { q };
            *p = q;
        }
    }
}

impl Optimizer for Asgd {
    type State = AsgdState;

    fn init_state(&self, param: &Tensor) -> Result<AsgdState> {
        // eta is set at the first step, from the learning rate then (PyTorch makes the state then).
        Ok(AsgdState { step: 0, eta: 0.0, mu: 1.0, ax: zeros(param)? })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut AsgdState, ctx: &StepContext) -> Result<()> {
        let dtype = param.as_tensor().dtype();
        if state.step == 0 {
            state.eta = scalar(ctx.lr, dtype);
            state.mu = 1.0;
        }
        state.step += 1;
        // Python floats: 1 - lambd * eta, rounded to the parameter's dtype by the kernel.
        let decay = 1.0 - self.lambd * state.eta;
        match fused_kind(param.as_tensor(), grad, &[&state.ax]) {
            Some(Fused::F32) => self.fused_step::<f32>(param.as_tensor(), grad, state, decay)?,
            Some(Fused::F64) => self.fused_step::<f64>(param.as_tensor(), grad, state, decay)?,
            None => self.composed(param, grad, state, decay)?,
        }
        let t = state.step as f64;
        state.eta = scalar(ctx.lr / (1.0 + self.lambd * ctx.lr * t).powf(self.alpha), dtype);
        state.mu = scalar(1.0 / (t - self.t0).max(1.0), dtype);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use ember_core::ops::{with_kernels, Kernels};

    /// torch.optim.ASGD(lr=0.1, lambd=0.01, alpha=0.6, t0=3, weight_decay=0.05) on
    /// f = sum(a x² + b x), 10 steps (torch 2.15, default dtype = the working dtype): x and
    /// the state's ax, eta and mu, for f64 then f32.
    /// dtype, x, ax, eta, mu.
    type Reference = (DType, [f64; 4], [f64; 4], f64, f64);
    const TORCH: [Reference; 2] = [
        (
            DType::F64,
            [0.3003109024839023, 0.017152484444024126, 0.0011139315942416076, 2.218001926294733],
            [0.5019170632478649, -0.05593716389698438, 0.005845095809811681, 2.3971224158291995],
            0.09940475877098738,
            0.14285714285714285,
        ),
        (
            DType::F32,
            [0.30031096935272217, 0.017152482643723488, 0.0011139315320178866, 2.2180020809173584],
            [0.5019171237945557, -0.05593716353178024, 0.005845095496624708, 2.397122621536255],
            0.09940475970506668,
            0.1428571492433548,
        ),
    ];

    fn values(t: &Tensor) -> Vec<f64> {
        t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
    }

    #[test]
    fn the_average_eta_and_mu_follow_pytorch_on_both_paths() {
        let opt = Asgd { lambd: 0.01, alpha: 0.6, t0: 3.0, weight_decay: 0.05, maximize: false };
        for (dtype, x_want, ax_want, eta_want, mu_want) in TORCH {
            let tol = if dtype == DType::F64 { 1e-12 } else { 1e-6 };
            let t = |v: &[f64]| Tensor::new(v, &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
            let (a, b) = (t(&[0.5, 1.0, 2.0, 0.1]), t(&[0.3, -0.2, 0.0, 0.1]));
            let mut runs = Vec::new();
            for kernels in [Kernels::Auto, Kernels::Composed] {
                let x = Var::from_tensor(&t(&[1.5, -0.7, 0.2, 3.0])).unwrap();
                let mut state = opt.init_state(x.as_tensor()).unwrap();
                with_kernels(kernels, || {
                    for _ in 0..10 {
                        let g = a.affine(2.0, 0.0).unwrap().mul(x.as_tensor()).unwrap().add(&b).unwrap();
                        opt.step(&x, &g, &mut state, &StepContext::new(0.1)).unwrap();
                    }
                });
                assert_eq!(state.step, 10);
                assert_eq!(state.eta, eta_want, "{dtype:?} {kernels:?}: eta");
                assert_eq!(state.mu, mu_want, "{dtype:?} {kernels:?}: mu");
                let (x, ax) = (values(x.as_tensor()), values(&state.ax));
                for (got, want) in x.iter().zip(&x_want).chain(ax.iter().zip(&ax_want)) {
                    assert!((got - want).abs() <= tol * want.abs().max(1.0), "{dtype:?} {kernels:?}: {x:?} {ax:?}");
                }
                runs.push((x, ax));
            }
            assert_eq!(runs[0], runs[1], "{dtype:?}: the fused and the composed path agree exactly");
        }
    }

    #[test]
    fn a_saved_state_resumes_bit_exactly() {
        let opt = Asgd { lambd: 0.01, alpha: 0.6, t0: 2.0, weight_decay: 0.0, maximize: true };
        let g = |k: usize| Tensor::new(&[0.3 - 0.1 * k as f64, -0.2, 0.05 * k as f64], &Device::Cpu).unwrap();
        let run = |split: Option<usize>| {
            let x = Var::from_tensor(&Tensor::new(&[1.0f64, 2.0, -3.0], &Device::Cpu).unwrap()).unwrap();
            let mut state = opt.init_state(x.as_tensor()).unwrap();
            for k in 0..8 {
                if split == Some(k) {
                    let saved = state.save();
                    let mut copy = AsgdState::load(&saved).unwrap();
                    copy.ax = copy.ax.copy().unwrap();
                    state = copy;
                }
                opt.step(&x, &g(k), &mut state, &StepContext::new(0.05)).unwrap();
            }
            (values(x.as_tensor()), values(&state.ax), state.eta.to_bits(), state.mu.to_bits())
        };
        assert_eq!(run(None), run(Some(4)));
    }
}
