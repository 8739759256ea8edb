//! Weight averaging, as PyTorch's `torch.optim.swa_utils.AveragedModel`: an averaged
//! copy of a model's parameters (and, with `use_buffers`, its buffers), updated from the
//! model after optimizer steps.
//!
//! - EMA (`AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))`): the first
//!   update copies the model; each later one is `avg.lerp_(param, 1 - decay)`.
//! - SWA (`AveragedModel(model)`, the default average): the first update copies; the
//!   (n+1)-th is `avg + (param - avg) / (n + 1)`, the running mean of every update.
//!
//! Without `use_buffers` (PyTorch's default) the buffers (batch norm's running
//! statistics) are not averaged: each update copies the model's, as `AveragedModel`
//! keeps its module's buffers in sync. The update count (`n_averaged`) is state: a
//! checkpoint that stores it and the tensors resumes the average exactly.

use std::collections::HashMap;

use candle_core::{DType, Tensor};
use ember_core::{optim, Error, Module, Result};

/// How the average moves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Averaging {
    /// Exponential moving average: `avg = decay * avg + (1 - decay) * param`
    /// (computed as PyTorch's `lerp`), `decay` in [0, 1].
    Ema { decay: f64 },
    /// Stochastic weight averaging: the equal-weight mean of every update.
    Swa,
}

impl Averaging {
    /// The name a config writes (`ema`, `swa`).
    pub fn name(&self) -> &'static str {
        match self {
            Averaging::Ema { .. } => "ema",
            Averaging::Swa => "swa",
        }
    }
}

/// An averaged copy of a model's state (PyTorch's `AveragedModel`). See the module docs.
#[derive(Clone, Debug)]
pub struct AveragedWeights {
    averaging: Averaging,
    use_buffers: bool,
    n_averaged: u64,
    /// The averaged module's state_dict in model order (parameters, then buffers); empty
    /// before the first update.
    tensors: Vec<(String, Tensor)>,
    /// How many of `tensors` are averaged (the parameters, plus the buffers with
    /// `use_buffers`); the rest are copied at each update.
    averaged: usize,
}

impl AveragedWeights {
    /// An empty average (no update yet). An EMA decay outside [0, 1] is refused, as
    /// `get_ema_multi_avg_fn` refuses it.
    pub fn new(averaging: Averaging, use_buffers: bool) -> Result<Self> {
        if let Averaging::Ema { decay } = averaging {
            if !(0.0..=1.0).contains(&decay) {
                return Err(Error::InvalidValue {
                    path: "decay".into(),
                    value: decay.to_string(),
                    rule: "must be in [0, 1] (the weight of the old average; 0.999 is usual)".into(),
                });
            }
        }
        Ok(AveragedWeights { averaging, use_buffers, n_averaged: 0, tensors: Vec::new(), averaged: 0 })
    }

    pub fn averaging(&self) -> Averaging {
        self.averaging
    }

    /// Whether buffers are averaged too (PyTorch's `use_buffers`).
    pub fn use_buffers(&self) -> bool {
        self.use_buffers
    }

    /// Updates so far (PyTorch's `n_averaged`).
    pub fn n_averaged(&self) -> u64 {
        self.n_averaged
    }

    /// The averaged state, PyTorch names (parameters, then buffers); empty before the
    /// first update.
    pub fn tensors(&self) -> &[(String, Tensor)] {
        &self.tensors
    }

    /// The averaged state as a state_dict (what `AveragedModel.module.state_dict()` holds).
    pub fn state_dict(&self) -> HashMap<String, Tensor> {
        self.tensors.iter().cloned().collect()
    }

    /// One update from `model` (PyTorch's `update_parameters(model)`).
    pub fn update(&mut self, model: &dyn Module) -> Result<()> {
        let params: Vec<(String, Tensor)> =
            model.named_parameters().into_iter().map(|(n, v)| (n, v.as_tensor().clone())).collect();
        let buffers: Vec<(String, Tensor)> =
            model.named_buffers().into_iter().map(|(n, v)| (n, v.as_tensor().clone())).collect();
        self.update_from(&params, &buffers)
    }

    /// One update from the model's parameters and buffers, by name.
    pub fn update_from(&mut self, params: &[(String, Tensor)], buffers: &[(String, Tensor)]) -> Result<()> {
        let averaged = params.len() + if self.use_buffers { buffers.len() } else { 0 };
        let current: Vec<&(String, Tensor)> = params.iter().chain(buffers).collect();
        if self.n_averaged == 0 || self.tensors.is_empty() {
            self.tensors = current.iter().map(|(n, t)| Ok((n.clone(), t.copy()?))).collect::<Result<_>>()?;
            self.averaged = averaged;
            self.n_averaged += 1;
            return Ok(());
        }
        self.check_fits(&current, averaged)?;
        let n = self.n_averaged;
        for (i, ((_, avg), (_, cur))) in self.tensors.iter_mut().zip(&current).enumerate() {
            let cur = cur.to_device(avg.device())?;
            *avg = if i >= averaged {
                cur.copy()?
            } else if avg.dtype().is_float() {
                match self.averaging {
                    Averaging::Ema { decay } => optim::lerp(avg, &cur, 1.0 - decay)?,
                    Averaging::Swa => avg.add(&optim::div_scalar(&cur.sub(avg)?, (n + 1) as f64)?)?,
                }
            } else {
                // Integer buffers (num_batches_tracked): PyTorch computes in floating point
                // and copies back, truncating.
                let (a, c) = (avg.to_dtype(DType::F64)?, cur.to_dtype(DType::F64)?);
                let v = match self.averaging {
                    Averaging::Ema { decay } => (a.affine(decay, 0.0)? + c.affine(1.0 - decay, 0.0)?)?,
                    Averaging::Swa => (&a + (c - &a)?.affine(1.0 / (n + 1) as f64, 0.0)?)?,
                };
                v.to_dtype(avg.dtype())?
            };
        }
        self.n_averaged += 1;
        Ok(())
    }

    fn check_fits(&self, current: &[&(String, Tensor)], averaged: usize) -> Result<()> {
        let same = current.len() == self.tensors.len()
            && averaged == self.averaged
            && current.iter().zip(&self.tensors).all(|((n, t), (m, a))| n == m && t.dims() == a.dims());
        if same {
            return Ok(());
        }
        let names =
            |v: Vec<(&String, &[usize])>| v.iter().map(|(n, d)| format!("{n} {d:?}")).collect::<Vec<_>>().join(", ");
        Err(Error::input(format!(
            "the averaged weights do not fit the model: the average holds [{}], the model has [{}]; an average belongs to one model",
            names(self.tensors.iter().map(|(n, t)| (n, t.dims())).collect()),
            names(current.iter().map(|(n, t)| (n, t.dims())).collect()),
        )))
    }

    /// Restores a saved average: `n_averaged` updates, and the averaged state as
    /// [`AveragedWeights::state_dict`] gave it, checked against `model` (every
    /// parameter and buffer, with its shape; nothing else).
    pub fn restore(&mut self, n_averaged: u64, dict: &HashMap<String, Tensor>, model: &dyn Module) -> Result<()> {
        let params = model.named_parameters();
        let buffers = model.named_buffers();
        let mut problems = Vec::new();
        let mut tensors = Vec::new();
        for (name, var) in params.iter().chain(&buffers) {
            match dict.get(name) {
                None => problems.push(format!("missing: {name} (shape {:?})", var.dims())),
                Some(t) if t.dims() != var.dims() => {
                    problems.push(format!("wrong shape: {name} is {:?}, the model's is {:?}", t.dims(), var.dims()))
                }
                Some(t) => tensors.push((name.clone(), t.to_device(var.device())?.to_dtype(var.dtype())?.copy()?)),
            }
        }
        let mut unexpected: Vec<&String> =
            dict.keys().filter(|k| !params.iter().chain(&buffers).any(|(n, _)| n == *k)).collect();
        unexpected.sort();
        problems.extend(unexpected.into_iter().map(|k| format!("unexpected: {k}")));
        if n_averaged > 0 && tensors.is_empty() && !params.is_empty() {
            problems.push(format!("{n_averaged} updates recorded but no averaged tensors"));
        }
        if !problems.is_empty() {
            return Err(Error::input(format!(
                "the averaged weights do not fit the model:\n  {}",
                problems.join("\n  ")
            )));
        }
        self.averaged = params.len() + if self.use_buffers { buffers.len() } else { 0 };
        self.tensors = if n_averaged == 0 { Vec::new() } else { tensors };
        self.n_averaged = n_averaged;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn t(v: &[f64]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    fn named(v: &[f64]) -> Vec<(String, Tensor)> {
        vec![("w".to_string(), t(v))]
    }

    fn values(a: &AveragedWeights) -> Vec<f64> {
        a.tensors()[0].1.to_vec1::<f64>().unwrap()
    }

    #[test]
    fn swa_is_the_mean_of_every_update() {
        let mut a = AveragedWeights::new(Averaging::Swa, false).unwrap();
        for v in [1.0, 2.0, 6.0] {
            a.update_from(&named(&[v, -v]), &[]).unwrap();
        }
        assert_eq!(a.n_averaged(), 3);
        assert_eq!(values(&a), [3.0, -3.0]);
    }

    #[test]
    fn ema_copies_first_then_moves_by_one_minus_decay() {
        let mut a = AveragedWeights::new(Averaging::Ema { decay: 0.75 }, false).unwrap();
        a.update_from(&named(&[4.0]), &[]).unwrap();
        assert_eq!(values(&a), [4.0]);
        a.update_from(&named(&[8.0]), &[]).unwrap();
        assert_eq!(values(&a), [5.0]);
    }

    #[test]
    fn buffers_are_copied_unless_averaged() {
        let buffer = |v: f64| vec![("running_mean".to_string(), t(&[v]))];
        for (use_buffers, want) in [(false, 10.0), (true, 5.5)] {
            let mut a = AveragedWeights::new(Averaging::Swa, use_buffers).unwrap();
            a.update_from(&named(&[0.0]), &buffer(1.0)).unwrap();
            a.update_from(&named(&[0.0]), &buffer(10.0)).unwrap();
            assert_eq!(a.tensors()[1].1.to_vec1::<f64>().unwrap(), [want], "use_buffers = {use_buffers}");
        }
    }

    #[test]
    fn a_model_of_another_shape_is_refused_by_name() {
        let mut a = AveragedWeights::new(Averaging::Swa, false).unwrap();
        a.update_from(&named(&[1.0, 2.0]), &[]).unwrap();
        let e = a.update_from(&named(&[1.0]), &[]).unwrap_err().to_string();
        assert!(e.contains("w [2]") && e.contains("w [1]"), "{e}");
        assert!(AveragedWeights::new(Averaging::Ema { decay: 1.5 }, false).is_err());
    }
}
