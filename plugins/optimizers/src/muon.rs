//! `muon`: momentum orthogonalized by Newton–Schulz, for matrix parameters (PyTorch
//! `torch.optim.Muon`).

use candle_core::{DType, Device, Tensor, Var};
use ember_core::optim::{add_scaled, lerp, zeros};
use ember_core::{
    check, Error, Hyperparams, Optimizer, OptimizerState, ParamEnum, ParamType, ParamValue, Params, Result, StepContext,
};

/// PyTorch's Muon (its single-tensor path, in its order of operations), for a 2-D
/// parameter of shape [A, B]: buf ← lerp(buf, g, 1-momentum); u = lerp(g, buf, momentum)
/// with nesterov, else buf; O = NS(u): X = u/max(‖u‖, eps) (on uᵀ when A > B), then
/// `ns_steps` times X ← aX + (bM + cM²)X with M = XXᵀ; p ← p·(1 - lr·weight_decay);
/// p ← p - lr·s·O with s = √max(1, A/B) (`original`, the default), 0.2·√max(A, B)
/// (`match_rms_adamw`) or √(A/B) (`spectral_unclamped`). The momentum is the scheduled
/// one when a scheduler cycles it.
///
/// Newton–Schulz runs in bfloat16, as in PyTorch whatever the parameter's dtype: u is
/// rounded to bf16 (through f32, as c10 converts a double), and the norm, the division
/// by it and every matmul-and-add round their result to bf16 once, the coefficients
/// taken at f32 precision (PyTorch's accumulation type for bf16). Ember holds these bf16
/// values in a wider dtype and sums their products in f64 on the CPU (exact for bf16
/// products, so the result does not depend on the order of the sums: the fixtures match
/// PyTorch bit for bit) and in f32 on other devices (as PyTorch's kernels accumulate).
/// Parameters of any other rank are an error: give them a parameter group with another
/// optimizer (AdamW for biases, norms and embeddings, as PyTorch's documentation says).
/// Composed ops only (no fused kernel): the update is made of matmuls.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    optimizer = "muon",
    summary = "Muon: momentum orthogonalized by Newton-Schulz, for 2-D parameters only (torch.optim.Muon)",
    lr = 1e-3
)]
pub struct Muon {
    /// decoupled weight decay p <- p (1 - lr weight_decay); >= 0
    #[param(default = 0.1, check = check::non_negative)]
    pub weight_decay: f64,
    /// momentum factor; >= 0
    #[param(default = 0.95, check = check::non_negative)]
    pub momentum: f64,
    /// Nesterov momentum: orthogonalize lerp(grad, buffer, momentum) instead of the buffer
    #[param(default = true)]
    pub nesterov: bool,
    /// [a, b, c] of the Newton-Schulz step X <- a X + (b M + c M^2) X, M = X X^T
    #[param(default = [3.4445, -4.775, 2.0315])]
    pub ns_coefficients: NsCoefficients,
    /// floor of the norm the update is divided by before Newton-Schulz
    #[param(default = 1e-7)]
    pub eps: f64,
    /// Newton-Schulz iterations; < 100
    #[param(default = 5, check = below_100)]
    pub ns_steps: usize,
    /// learning-rate scale for a parameter of shape [A, B]: original sqrt(max(1, A/B))
    /// (the default), match_rms_adamw 0.2 sqrt(max(A, B)), spectral_unclamped sqrt(A/B)
    pub adjust_lr_fn: Option<AdjustLr>,
}

/// PyTorch's `ns_coefficients` `(a, b, c)`: three numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NsCoefficients(pub f64, pub f64, pub f64);

impl ParamValue for NsCoefficients {
    const TYPE: ParamType = ParamType::FloatList;

    fn read(params: &Params, key: &str) -> Result<Self> {
        match *params.float_list(key)?.as_slice() {
            [a, b, c] => Ok(NsCoefficients(a, b, c)),
            _ => Err(params.invalid(key, "expected three numbers [a, b, c]")),
        }
    }
}

/// PyTorch's `adjust_lr_fn`: how the learning rate scales with the shape [A, B].
#[derive(Clone, Copy, Debug, PartialEq, Eq, ParamEnum)]
pub enum AdjustLr {
    /// √max(1, A/B): Keller Jordan's original Muon (PyTorch's default, `None`).
    Original,
    /// 0.2·√max(A, B): Moonshot's, matching the update RMS of AdamW.
    MatchRmsAdamw,
    /// √(A/B): Bernstein's spectral scaling, not clamped at 1.
    SpectralUnclamped,
}

/// PyTorch's limit: "Number of steps must be less than 100".
fn below_100(v: &usize) -> check::Check {
    if *v < 100 {
        Ok(())
    } else {
        Err("must be < 100".to_string())
    }
}

/// Muon's state (PyTorch's name): the momentum buffer. Muon keeps no step count.
#[derive(Clone, Debug, OptimizerState)]
pub struct MuonState {
    pub momentum_buffer: Tensor,
}

/// The [rows, cols] of a matrix parameter; any other rank is PyTorch's error, with the
/// way out.
fn matrix(param: &Tensor) -> Result<(usize, usize)> {
    match *param.dims() {
        [rows, cols] => Ok((rows, cols)),
        ref dims => Err(Error::input(format!(
            "muon optimizes 2-D parameters (matrices) only, but this parameter has shape {dims:?}; \
             give the others (biases, norms, embeddings, convolution kernels) a parameter group with \
             another optimizer, e.g. [[optimizer.groups]] with params = [\"*.bias\"] and name = \"adamw\""
        ))),
    }
}

/// `t` rounded to bfloat16 and held in `acc`: through f32, as PyTorch rounds a float
/// result (and c10 converts a double) to bf16. (candle's direct f64 → bf16 drops the
/// low half of the mantissa before rounding, which differs near a tie.)
fn round_bf16(t: &Tensor, acc: DType) -> Result<Tensor> {
    Ok(t.to_dtype(DType::F32)?.to_dtype(DType::BF16)?.to_dtype(acc)?)
}

/// A coefficient at f32 precision, PyTorch's `alpha` / `beta` of a bf16 `addmm`.
fn as_f32(v: f64) -> f64 {
    v as f32 as f64
}

impl Muon {
    /// The learning rate scaled for a parameter of shape [rows, cols] (PyTorch's `_adjust_lr`).
    fn adjusted_lr(&self, lr: f64, rows: usize, cols: usize) -> f64 {
        let (a, b) = (rows as f64, cols as f64);
        let ratio = match self.adjust_lr_fn {
            None | Some(AdjustLr::Original) => 1f64.max(a / b).sqrt(),
            Some(AdjustLr::MatchRmsAdamw) => 0.2 * a.max(b).sqrt(),
            Some(AdjustLr::SpectralUnclamped) => (a / b).sqrt(),
        };
        lr * ratio
    }

    /// PyTorch's `_zeropower_via_newtonschulz` of the matrix `update`, in bf16 values held
    /// in f64 on the CPU, f32 elsewhere.
    fn orthogonalize(&self, update: &Tensor, rows: usize, cols: usize) -> Result<Tensor> {
        let acc = if update.device().is_cpu() { DType::F64 } else { DType::F32 };
        let NsCoefficients(a, b, c) = self.ns_coefficients;
        let (a, b, c) = (as_f32(a), as_f32(b), as_f32(c));
        let mut x = round_bf16(update, acc)?;
        let tall = rows > cols;
        if tall {
            x = x.t()?.contiguous()?;
        }
        // The spectral norm is at most the Frobenius norm, floored at eps (as a bf16).
        let eps = round_bf16(&Tensor::new(self.eps as f32, &Device::Cpu)?, DType::F64)?.to_scalar::<f64>()?;
        let norm = round_bf16(&x.sqr()?.sum_all()?.sqrt()?, acc)?.maximum(eps)?;
        x = round_bf16(&x.broadcast_div(&norm)?, acc)?;
        for _ in 0..self.ns_steps {
            let gram = round_bf16(&x.matmul(&x.t()?)?, acc)?;
            // addmm(gram, gram, gram, beta=b, alpha=c), then addmm(x, that, x, beta=a).
            let gram_update = round_bf16(&gram.affine(b, 0.0)?.add(&gram.matmul(&gram)?.affine(c, 0.0)?)?, acc)?;
            x = round_bf16(&x.affine(a, 0.0)?.add(&gram_update.matmul(&x)?)?, acc)?;
        }
        Ok(if tall { x.t()? } else { x })
    }
}

impl Optimizer for Muon {
    type State = MuonState;

    fn init_state(&self, param: &Tensor) -> Result<MuonState> {
        matrix(param)?;
        Ok(MuonState { momentum_buffer: zeros(param)? })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut MuonState, ctx: &StepContext) -> Result<()> {
        let (rows, cols) = matrix(param.as_tensor())?;
        let momentum = ctx.momentum_or(self.momentum);
        let buf = lerp(&state.momentum_buffer, grad, 1.0 - momentum)?;
        if rows == 0 || cols == 0 {
            state.momentum_buffer = buf;
            return Ok(());
        }
        let update = if self.nesterov { lerp(grad, &buf, momentum)? } else { buf.clone() };
        let p = param.as_tensor();
        let ortho = self.orthogonalize(&update, rows, cols)?.to_dtype(p.dtype())?;
        let lr = ctx.lr;
        // Decoupled weight decay with the configured lr, then the step with the scaled one.
        let p = if self.weight_decay != 0.0 { p.affine(1.0 - lr * self.weight_decay, 0.0)? } else { p.clone() };
        param.set(&add_scaled(&p, &ortho, -self.adjusted_lr(lr, rows, cols))?)?;
        state.momentum_buffer = buf;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_core::{registry, BuildContext, Config, Value};

    fn muon(pairs: &[(&str, Value)]) -> Result<Box<dyn ember_core::DynOptimizer>> {
        let config: Config = pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        registry::optimizer("muon", &config, &BuildContext::default())
    }

    fn param(dims: &[usize]) -> Var {
        let n: usize = dims.iter().product();
        let v: Vec<f64> = (0..n).map(|i| ((i * 7919) % 100) as f64 / 25.0 - 2.0).collect();
        Var::from_tensor(&Tensor::new(v, &Device::Cpu).unwrap().reshape(dims).unwrap()).unwrap()
    }

    #[test]
    fn parameters_other_than_matrices_are_refused_with_the_way_out() {
        let opt = muon(&[]).unwrap();
        for dims in [vec![6], vec![2, 3, 4], vec![]] {
            let err = opt.init_state(param(&dims).as_tensor()).unwrap_err().to_string();
            assert!(err.contains(&format!("shape {dims:?}")) && err.contains("2-D"), "{err}");
            assert!(err.contains("name = \"adamw\""), "{err}");
        }
        // A step on a vector, with a state made for a matrix, is refused the same way.
        let mut state = opt.init_state(param(&[2, 3]).as_tensor()).unwrap();
        let v = param(&[6]);
        let err = opt.step(&v, v.as_tensor(), &mut state, &StepContext::new(0.01)).unwrap_err().to_string();
        assert!(err.contains("shape [6]"), "{err}");
    }

    #[test]
    fn bad_hyperparameters_are_rejected() {
        let floats = |v: &[f64]| Value::List(v.iter().map(|x| Value::Float(*x)).collect());
        for bad in [
            ("ns_coefficients", floats(&[1.0, 2.0])),
            ("ns_steps", Value::Int(100)),
            ("adjust_lr_fn", Value::Str("cosine".into())),
            ("momentum", Value::Float(-0.1)),
            ("weight_decay", Value::Float(-1.0)),
        ] {
            let key = bad.0;
            let err = muon(&[bad]).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        for ok in ["original", "match_rms_adamw", "spectral_unclamped"] {
            muon(&[("adjust_lr_fn", Value::Str(ok.into()))]).unwrap();
        }
    }

    /// A double is rounded to bf16 through f32, as c10 does: 1 + 3·2⁻⁸ - 2⁻³⁰ is below
    /// the midpoint 1 + 3·2⁻⁸ but becomes it in f32, which rounds to even, up
    /// (PyTorch: `torch.tensor(v, dtype=torch.float64).to(torch.bfloat16)` is 1.015625).
    #[test]
    fn a_double_reaches_bf16_through_f32_as_in_pytorch() {
        let v = 1.0 + 3.0 * 2f64.powi(-8) - 2f64.powi(-30);
        let t = Tensor::new(&[v], &Device::Cpu).unwrap();
        let r = round_bf16(&t, DType::F64).unwrap().to_vec1::<f64>().unwrap();
        assert_eq!(r, [1.015625]);
    }

    #[test]
    fn a_scheduled_momentum_is_the_configured_one() {
        let run = |config: &[(&str, Value)], momentum: Option<f64>, dtype: DType| -> Vec<u64> {
            let opt = muon(config).unwrap();
            let x = Var::from_tensor(&param(&[3, 5]).as_tensor().to_dtype(dtype).unwrap()).unwrap();
            let mut state = opt.init_state(x.as_tensor()).unwrap();
            for k in 0..4 {
                let g = x.as_tensor().affine(1.0 + k as f64, 0.5).unwrap();
                opt.step(&x, &g, &mut state, &StepContext::new(0.02).with_momentum(momentum)).unwrap();
            }
            let v = x.as_tensor().to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            v.iter().map(|v| v.to_bits()).collect()
        };
        for dtype in [DType::F32, DType::F64] {
            let scheduled = run(&[], Some(0.8), dtype);
            assert_eq!(scheduled, run(&[("momentum", Value::Float(0.8))], None, dtype), "{dtype:?}");
            assert_ne!(scheduled, run(&[], None, dtype), "{dtype:?}");
        }
    }
}
