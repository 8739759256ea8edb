//! `lion`: the update is the sign of an interpolation of momentum and gradient.

use candle_core::{Tensor, Var};
use ember_core::{Optimizer, OptimizerEntry, ParamSpec, Params, Result, State, StepContext};

/// Lion, step by step (the paper's pseudo-code):
///
/// ```text
/// c = β1·m + (1 - β1)·g
/// p ← p·(1 - lr·λ)          (decoupled weight decay)
/// p ← p - lr·sign(c)
/// m ← β2·m + (1 - β2)·g
/// ```
///
/// State: `exp_avg` (m). Defaults follow the paper's reference: lr 1e-4,
/// betas (0.9, 0.99), weight_decay 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Lion {
    pub lr: f64,
    pub betas: (f64, f64),
    pub weight_decay: f64,
}

impl Lion {
    fn from_params(p: &Params) -> Result<Self> {
        let betas = p.float_list("betas")?;
        let betas = match betas.as_slice() {
            [b1, b2] if (0.0..1.0).contains(b1) && (0.0..1.0).contains(b2) => (*b1, *b2),
            _ => return Err(p.invalid("betas", "expected two numbers in [0, 1)")),
        };
        Ok(Lion {
            lr: p.float_where("lr", |v| v >= 0.0, "must be >= 0")?,
            betas,
            weight_decay: p.float_where("weight_decay", |v| v >= 0.0, "must be >= 0")?,
        })
    }
}

impl Optimizer for Lion {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn init_state(&self, param: &Tensor) -> Result<State> {
        let mut s = State::new();
        s.tensors.insert("exp_avg".into(), param.zeros_like()?);
        Ok(s)
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut State, ctx: &StepContext) -> Result<()> {
        let (b1, b2) = self.betas;
        let m = state
            .tensor("exp_avg")
            .ok_or_else(|| ember_core::Error::input("lion: the optimizer state has no 'exp_avg' buffer"))?;
        let c = m.affine(b1, 0.0)?.add(&grad.affine(1.0 - b1, 0.0)?)?;
        let mut p = param.as_tensor().clone();
        if self.weight_decay != 0.0 {
            p = p.affine(1.0 - ctx.lr * self.weight_decay, 0.0)?;
        }
        let p = p.sub(&c.sign()?.affine(ctx.lr, 0.0)?)?;
        let m = m.affine(b2, 0.0)?.add(&grad.affine(1.0 - b2, 0.0)?)?;
        param.set(&p)?;
        state.tensors.insert("exp_avg".into(), m);
        Ok(())
    }
}

ember_core::inventory::submit! {
    OptimizerEntry {
        name: "lion",
        summary: "Lion: sign of interpolated momentum, decoupled weight decay (Chen et al. 2023)",
        params: &[
            ParamSpec::float("lr", 1e-4, "learning rate; >= 0 (typically 3-10x smaller than AdamW's)"),
            ParamSpec::float_list("betas", &[0.9, 0.99], "interpolation (beta1) and momentum decay (beta2); in [0, 1)"),
            ParamSpec::float("weight_decay", 0.0, "decoupled weight decay; >= 0"),
        ],
        module: module_path!(),
        build: |p, _| Ok(Box::new(Lion::from_params(p)?)),
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn one_step_moves_each_coordinate_by_lr_against_the_gradient_sign() {
        let lion = Lion { lr: 0.1, betas: (0.9, 0.99), weight_decay: 0.0 };
        let p = Var::from_tensor(&Tensor::new(&[1.0f64, -2.0, 0.5], &Device::Cpu).unwrap()).unwrap();
        let g = Tensor::new(&[3.0f64, -0.001, 0.0], &Device::Cpu).unwrap();
        let mut s = lion.init_state(p.as_tensor()).unwrap();
        lion.step(&p, &g, &mut s, &StepContext::new(0.1)).unwrap();
        assert_eq!(p.as_tensor().to_vec1::<f64>().unwrap(), [0.9, -1.9, 0.5]);
    }
}
