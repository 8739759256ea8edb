//! `rprop`: resilient backpropagation, a step size per coordinate that grows while the
//! gradient keeps its sign and shrinks when it flips (PyTorch `torch.optim.Rprop`).

use candle_core::{Tensor, Var};
use ember_core::check::Check;
use ember_core::ops::fused::{par_chunks, with_cpu_data, ChunkKernel, CpuFloat};
use ember_core::ops::pointwise::Real;
use ember_core::optim::{addcmul, effective_grad, fused_kind, zeros, Fused};
use ember_core::{Hyperparams, Optimizer, OptimizerState, Result, StepContext};

/// PyTorch's Rprop (`etas` = (η-, η+), `step_sizes` = (Γmin, Γmax)): with s = sign(g·g_prev),
/// the step size becomes clamp(step_size·f, Γmin, Γmax) with f = η+ where s > 0, η- where
/// s < 0 (and there g ← 0: no move, and no comparison at the next step), 1 elsewhere;
/// then p ← p - sign(g)·step_size and g_prev ← g. The step sizes start at the learning
/// rate of the first step (PyTorch makes the state then); later rates are not used.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "rprop",
    summary = "Rprop: per-coordinate step sizes grown while the gradient keeps its sign, shrunk when it flips (torch.optim.Rprop)",
    lr = 0.01
)]
pub struct Rprop {
    /// (etaminus, etaplus): step-size factors after a sign flip and after a sign agreement; 0 < etaminus < 1 < etaplus
    #[param(default = [0.5, 1.2], check = check_etas)]
    pub etas: (f64, f64),
    /// (min, max): the bounds of every step size
    #[param(default = [1e-6, 50.0])]
    pub step_sizes: (f64, f64),
    /// maximize the objective instead of minimizing
    #[param(default = false)]
    pub maximize: bool,
}

/// PyTorch's check: 0 < etaminus < 1 < etaplus.
fn check_etas(v: &(f64, f64)) -> Check {
    if 0.0 < v.0 && v.0 < 1.0 && 1.0 < v.1 {
        Ok(())
    } else {
        Err("expected [etaminus, etaplus] with 0 < etaminus < 1 < etaplus".to_string())
    }
}

/// Rprop's state (PyTorch's names): the step count, the previous gradient (zero where
/// its sign flipped) and the per-coordinate step sizes (set to the learning rate at the
/// first step).
#[derive(Clone, Debug, OptimizerState)]
pub struct RpropState {
    pub step: u64,
    pub prev: Tensor,
    pub step_size: Tensor,
}

impl Rprop {
    fn composed(&self, param: &Var, grad: &Tensor, state: &mut RpropState) -> Result<()> {
        let p = param.as_tensor();
        let (etaminus, etaplus) = self.etas;
        let (lo, hi) = self.step_sizes;
        let g = effective_grad(p, grad, self.maximize, 0.0)?;
        // sign(g·prev) mapped to η+ (> 0), η- (< 0) or 1 (0, or NaN: torch's sign is 0 there).
        let prod = g.mul(&state.prev)?;
        let ones = prod.ones_like()?;
        let factor = prod
            .gt(0.0)?
            .where_cond(&ones.affine(etaplus, 0.0)?, &prod.lt(0.0)?.where_cond(&ones.affine(etaminus, 0.0)?, &ones)?)?;
        // torch's clamp_(min, max): max with min first, then min with max (NaN kept).
        let step_size = state.step_size.mul(&factor)?.maximum(lo)?.minimum(hi)?;
        // grad[sign.eq(etaminus)] = 0
        let g = factor.eq(etaminus)?.where_cond(&g.zeros_like()?, &g)?;
        param.set(&addcmul(p, &g.sign()?, &step_size, -1.0)?)?;
        state.prev = g;
        state.step_size = step_size;
        Ok(())
    }

    fn fused_step<T: CpuFloat + Real>(&self, param: &Tensor, grad: &Tensor, states: &[&Tensor]) -> Result<()> {
        let k = RpropKernel {
            sign: if self.maximize { -T::one() } else { T::one() },
            etaminus: T::of(self.etas.0),
            etaplus: T::of(self.etas.1),
            lo: T::of(self.step_sizes.0),
            hi: T::of(self.step_sizes.1),
        };
        with_cpu_data::<T>(param, grad, states, &mut |p, g, s| par_chunks(p, g, s, &k))
    }
}

/// Rprop over one chunk; state order: prev, step_size. The same IEEE operations as the
/// composed path, element by element.
struct RpropKernel<T> {
    sign: T,
    etaminus: T,
    etaplus: T,
    lo: T,
    hi: T,
}

impl<T: Real> ChunkKernel<T> for RpropKernel<T> {
    #[inline(always)]
    fn run(&self, p: &mut [T], g: &[T], s: &mut [&mut [T]]) {
        let [prev, step_size] = s else { unreachable!("two state buffers") };
        let n = p.len();
        let (g, prev, step_size) = (&g[..n], &mut prev[..n], &mut step_size[..n]);
        let (zero, one) = (T::zero(), T::one());
        for (((p, &g), prev), ss) in p.iter_mut().zip(g).zip(prev.iter_mut()).zip(step_size.iter_mut()) {
            let g = g * self.sign;
            let prod = g * *prev;
            let factor = if prod > zero {
                self.etaplus
            } else if prod < zero {
                self.etaminus
            } else {
                one
            };
            // candle's maximum / minimum: a NaN step size stays NaN, as in torch's clamp.
            let size = *ss * factor;
            let size = if size < self.lo { self.lo } else { size };
            let size = if size > self.hi { self.hi } else { size };
            let g = if factor == self.etaminus { zero } else { g };
            // candle's (and torch's) sign: 0 for ±0 and NaN.
            let sg = if g > zero {
                one
            } else if g < zero {
                -one
            } else {
                zero
            };
            *p = *p + -one * sg * size;
            *prev = g;
            *ss = size;
        }
    }
}

impl Optimizer for Rprop {
    type State = RpropState;

    fn init_state(&self, param: &Tensor) -> Result<RpropState> {
        Ok(RpropState { step: 0, prev: zeros(param)?, step_size: zeros(param)? })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut RpropState, ctx: &StepContext) -> Result<()> {
        if state.step == 0 {
            // PyTorch's state is made at the first step: step sizes full of the rate then.
            state.step_size = param.as_tensor().ones_like()?.affine(ctx.lr, 0.0)?.contiguous()?;
        }
        state.step += 1;
        let states = [&state.prev, &state.step_size];
        match fused_kind(param.as_tensor(), grad, &states) {
            Some(Fused::F32) => self.fused_step::<f32>(param.as_tensor(), grad, &states),
            Some(Fused::F64) => self.fused_step::<f64>(param.as_tensor(), grad, &states),
            None => self.composed(param, grad, state),
        }
    }
}
