//! `adafactor`: relative step sizes from factored second moments (PyTorch
//! `torch.optim.Adafactor`).

use candle_core::{DType, Tensor, Var, D};
use ember_core::optim::{add_scaled, div_scalar, lerp, zeros};
use ember_core::{
    check, Error, Hyperparams, Optimizer, OptimizerState, ParamType, ParamValue, Params, Result, StepContext,
};

use crate::common::missing;

/// PyTorch's Adafactor (its single-tensor path, in its order of operations), step t:
/// 1-β2ₜ = t^beta2_decay; ρₜ = min(lr, 1/√t); α = max(eps2, RMS(p))·ρₜ (RMS of p before
/// the decay); p ← p·(1 - lr·weight_decay); for a parameter of rank >= 2 the second
/// moment is factored over the last two dims: R ← lerp(R, mean(g², -1), 1-β2ₜ),
/// C ← lerp(C, mean(g², -2), 1-β2ₜ), V = R·C / max(mean(R, -2), eps1); for rank < 2,
/// V ← lerp(V, g², 1-β2ₜ); U = g / √max(V, eps1²); p ← p - α·U / max(1, RMS(U)/d).
/// eps1 defaults to the parameter dtype's machine epsilon (`torch.finfo(dtype).eps`).
/// There is no fused kernel: the update needs norms and row/column means, so it is made
/// of candle ops on every device and dtype.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "adafactor",
    summary = "Adafactor: relative steps scaled by the parameter RMS, factored second moments (torch.optim.Adafactor)",
    lr = 1e-2,
    lr_doc = "maximum relative step size (rho_t = min(lr, 1/sqrt(t))) and the weight-decay factor; >= 0"
)]
pub struct Adafactor {
    /// decay of beta2: 1 - beta2_t = t^beta2_decay; <= 0
    #[param(default = -0.8, check = non_positive)]
    pub beta2_decay: f64,
    /// [eps1, eps2], each >= 0: eps1 floors the second-moment estimate, eps2 the parameter
    /// RMS; default (None, 1e-3), eps1 None: the dtype's machine epsilon
    #[param(default = None, check = valid_eps)]
    pub eps: AdafactorEps,
    /// clipping threshold: the update's RMS is scaled down to at most d; >= 1
    #[param(default = 1.0, check = check::at_least(1.0))]
    pub d: f64,
    /// decoupled weight decay p <- p (1 - lr weight_decay); >= 0
    #[param(default = 0.0, check = check::non_negative)]
    pub weight_decay: f64,
    /// maximize the objective instead of minimizing
    #[param(default = false)]
    pub maximize: bool,
}

/// PyTorch's `eps = (eps1, eps2)` of Adafactor. `eps1 = None` (the default) stands for
/// the machine epsilon of the parameter's dtype; a config sets both, `eps = [1e-30, 1e-3]`,
/// or leaves the key out for `(None, 1e-3)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdafactorEps {
    pub eps1: Option<f64>,
    pub eps2: f64,
}

impl Default for AdafactorEps {
    fn default() -> Self {
        AdafactorEps { eps1: None, eps2: 1e-3 }
    }
}

impl ParamValue for AdafactorEps {
    const TYPE: ParamType = ParamType::FloatList;

    fn read(params: &Params, key: &str) -> Result<Self> {
        match params.opt_float_list(key)?.as_deref() {
            None => Ok(AdafactorEps::default()),
            Some(&[eps1, eps2]) => Ok(AdafactorEps { eps1: Some(eps1), eps2 }),
            Some(_) => Err(params.invalid(key, "expected two numbers [eps1, eps2]")),
        }
    }
}

/// PyTorch's checks: eps1 (when given) and eps2 >= 0.
fn valid_eps(e: &AdafactorEps) -> check::Check {
    if e.eps1.is_none_or(|x| x >= 0.0) && e.eps2 >= 0.0 {
        Ok(())
    } else {
        Err("eps1 and eps2 must be >= 0".to_string())
    }
}

/// `<= 0` (PyTorch's "beta2_decay should be <= 0").
fn non_positive(v: &f64) -> check::Check {
    if *v <= 0.0 {
        Ok(())
    } else {
        Err("must be <= 0".to_string())
    }
}

/// Adafactor's state (PyTorch's names): the step count and, for a parameter of rank >= 2,
/// the row and column factors of the second moment (`row_var` shaped like the parameter
/// with the last dim 1, `col_var` with the second-to-last dim 1); for rank < 2 the full
/// second moment `variance`.
#[derive(Clone, Debug, OptimizerState)]
pub struct AdafactorState {
    pub step: u64,
    pub row_var: Option<Tensor>,
    pub col_var: Option<Tensor>,
    pub variance: Option<Tensor>,
}

/// `torch.finfo(dtype).eps`.
fn machine_eps(dtype: DType) -> Result<f64> {
    Ok(match dtype {
        DType::F64 => f64::EPSILON,
        DType::F32 => f32::EPSILON as f64,
        DType::F16 => 0.0009765625,
        DType::BF16 => 0.0078125,
        other => {
            return Err(Error::input(format!(
                "adafactor: eps1 defaults to the machine epsilon of f16, bf16, f32 or f64, not {other:?}: \
                 give it in eps = [eps1, eps2]"
            )))
        }
    })
}

/// `t.norm(2).item()`: the 2-norm in the tensor's dtype, read as an f64.
fn norm(t: &Tensor) -> Result<f64> {
    Ok(t.sqr()?.sum_all()?.sqrt()?.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// The mean of g² along `dim`, kept, as PyTorch computes it:
/// `vector_norm(g, dim=dim, keepdim=True).square_().div_(g.size(dim))`.
fn mean_square(g: &Tensor, dim: D) -> Result<Tensor> {
    let n = g.dim(dim)?;
    let norm = g.sqr()?.sum_keepdim(dim)?.sqrt()?;
    div_scalar(&norm.sqr()?, n as f64)
}

impl Optimizer for Adafactor {
    type State = AdafactorState;

    fn init_state(&self, param: &Tensor) -> Result<AdafactorState> {
        let dims = param.dims();
        let rank = dims.len();
        if rank >= 2 {
            let (mut row, mut col) = (dims.to_vec(), dims.to_vec());
            row[rank - 1] = 1;
            col[rank - 2] = 1;
            Ok(AdafactorState {
                step: 0,
                row_var: Some(Tensor::zeros(row, param.dtype(), param.device())?),
                col_var: Some(Tensor::zeros(col, param.dtype(), param.device())?),
                variance: None,
            })
        } else {
            Ok(AdafactorState { step: 0, row_var: None, col_var: None, variance: Some(zeros(param)?) })
        }
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut AdafactorState, ctx: &StepContext) -> Result<()> {
        state.step += 1;
        let p = param.as_tensor();
        let numel = p.elem_count();
        if numel == 0 {
            return Ok(());
        }
        let (lr, step) = (ctx.lr, state.step as f64);
        let g = if self.maximize { grad.neg()? } else { grad.clone() };
        let eps1 = match self.eps.eps1 {
            Some(e) => e,
            None => machine_eps(p.dtype())?,
        };
        // The per-step scalars, in f64 as PyTorch computes them in Python.
        let one_minus_beta2 = step.powf(self.beta2_decay);
        let rho = lr.min(1.0 / step.powf(0.5));
        let alpha = self.eps.eps2.max(norm(p)? / (numel as f64).powf(0.5)) * rho;
        let p = if self.weight_decay != 0.0 { p.affine(1.0 - lr * self.weight_decay, 0.0)? } else { p.clone() };
        let (estimate, factors, variance) = if p.rank() >= 2 {
            let row_var = state.row_var.as_ref().ok_or_else(|| missing("adafactor", "row_var"))?;
            let col_var = state.col_var.as_ref().ok_or_else(|| missing("adafactor", "col_var"))?;
            let row_var = lerp(row_var, &mean_square(&g, D::Minus1)?, one_minus_beta2)?;
            let col_var = lerp(col_var, &mean_square(&g, D::Minus2)?, one_minus_beta2)?;
            // R·C (PyTorch's `row_var @ col_var`, an outer product: one term per element)
            // over the clamped mean of R along the rows (a sum, then a true division).
            let rows = row_var.dim(D::Minus2)?;
            let row_mean = div_scalar(&row_var.sum_keepdim(D::Minus2)?, rows as f64)?.maximum(eps1)?;
            let estimate = row_var.broadcast_mul(&col_var)?.broadcast_div(&row_mean)?;
            (estimate, Some((row_var, col_var)), None)
        } else {
            let variance = state.variance.as_ref().ok_or_else(|| missing("adafactor", "variance"))?;
            let variance = lerp(variance, &g.mul(&g)?, one_minus_beta2)?;
            (variance.clone(), None, Some(variance))
        };
        // eps1 is squared because of the square root that follows.
        let update = estimate.maximum(eps1 * eps1)?.sqrt()?.recip()?.mul(&g)?;
        let denom = 1.0f64.max(norm(&update)? / ((numel as f64).powf(0.5) * self.d));
        param.set(&add_scaled(&p, &update, -alpha / denom)?)?;
        if let Some((row_var, col_var)) = factors {
            state.row_var = Some(row_var);
            state.col_var = Some(col_var);
        }
        if variance.is_some() {
            state.variance = variance;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn adafactor() -> Adafactor {
        Adafactor { beta2_decay: -0.8, eps: AdafactorEps::default(), d: 1.0, weight_decay: 0.0, maximize: false }
    }

    #[test]
    fn the_state_is_factored_over_the_last_two_dims_from_rank_two() {
        let opt = adafactor();
        let s = opt.init_state(&Tensor::zeros((2, 3, 4), DType::F32, &Device::Cpu).unwrap()).unwrap();
        assert_eq!(s.row_var.unwrap().dims(), [2, 3, 1]);
        assert_eq!(s.col_var.unwrap().dims(), [2, 1, 4]);
        assert!(s.variance.is_none());
        let s = opt.init_state(&Tensor::zeros(5, DType::F32, &Device::Cpu).unwrap()).unwrap();
        assert_eq!(s.variance.unwrap().dims(), [5]);
        assert!(s.row_var.is_none() && s.col_var.is_none());
    }

    #[test]
    fn a_first_vector_step_moves_by_the_relative_step_against_the_gradient_sign() {
        // Step 1: 1-β2 = 1, so V = g² and U = sign(g), RMS(U) = 1; α = RMS(p)·min(lr, 1).
        let opt = adafactor();
        let p = Var::from_tensor(&Tensor::new(&[3.0f64, -4.0], &Device::Cpu).unwrap()).unwrap();
        let g = Tensor::new(&[2.0f64, -0.5], &Device::Cpu).unwrap();
        let mut s = opt.init_state(p.as_tensor()).unwrap();
        opt.step(&p, &g, &mut s, &StepContext::new(0.01)).unwrap();
        let alpha = 12.5f64.sqrt() * 0.01;
        let got = p.as_tensor().to_vec1::<f64>().unwrap();
        for (x, want) in got.iter().zip([3.0 - alpha, -4.0 + alpha]) {
            assert!((x - want).abs() < 1e-12, "{got:?}");
        }
        assert_eq!(s.step, 1);
        assert_eq!(s.variance.unwrap().to_vec1::<f64>().unwrap(), [4.0, 0.25]);
    }
}
