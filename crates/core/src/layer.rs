//! The sixth plugin kind: layers. A registered layer is a builder holding PyTorch's
//! constructor arguments; given the shape of one example it returns the module (with its
//! parameters initialised as PyTorch initialises them) and the shape of one output.
//!
//! Arguments the input shape implies (`in_features`, `in_channels`, `num_features`, ...)
//! are optional: [`LayerContext::infer`] fills them from the shape, or checks them when
//! given, with an error naming the layer, the argument and both values.

use std::fmt::Debug;

use candle_core::{DType, Device, Tensor, Var};

use crate::error::{Error, Result};
use crate::module::Module;
use crate::registry::BuildContext;
use crate::rng::Rng;

/// What a layer builder is given besides its arguments: where and in what dtype to
/// create its tensors, the generator its initial weights come from, and where it sits in
/// the model (for errors).
#[derive(Debug)]
pub struct LayerContext {
    pub device: Device,
    pub dtype: DType,
    /// Draws the initial weights; one generator for the whole model, in layer order, so
    /// the same seed gives the same weights.
    pub rng: Rng,
    /// Where the layer is declared, e.g. `model.layers[3]`.
    pub path: String,
    /// The layer's registry name, e.g. `conv2d`.
    pub name: String,
    /// The next layer of the sequence being built, when it is an activation given by its
    /// name alone (`relu`): a layer may apply it itself ([`LayerContext::absorb_next`]).
    next: Option<String>,
    absorbed: bool,
}

impl LayerContext {
    /// A context for building a model's layers with weights drawn from `seed`.
    pub fn new(device: Device, dtype: DType, seed: u64) -> Self {
        LayerContext {
            device,
            dtype,
            rng: Rng::new(seed),
            path: "model".into(),
            name: String::new(),
            next: None,
            absorbed: false,
        }
    }

    /// Called by a layer's builder that can apply the layer after it in its own kernel
    /// (batch norm followed by `relu`): true when that next layer is the activation
    /// `name`, given without arguments, and then the sequence runs it as a pass-through
    /// (its state_dict names and indices are unchanged: such a layer has no parameters).
    pub fn absorb_next(&mut self, name: &str) -> bool {
        let take = self.next.as_deref() == Some(name);
        self.absorbed |= take;
        take
    }

    /// For sequence builders: tells the next layer's builder what follows it (the name of
    /// a layer given without arguments, else `None`), and clears the absorbed flag.
    pub fn set_next(&mut self, next: Option<String>) {
        self.next = next;
        self.absorbed = false;
    }

    /// For sequence builders: whether the layer just built absorbed the next one
    /// ([`LayerContext::absorb_next`]); clears the flag and the next name.
    pub fn take_absorbed(&mut self) -> bool {
        self.next = None;
        std::mem::take(&mut self.absorbed)
    }

    /// The device and dtype as a plugin [`BuildContext`] (for activations and regularizers).
    pub fn build_context(&self) -> BuildContext {
        BuildContext::new(self.device.clone(), self.dtype)
    }

    /// How errors name this layer: `model.layers[3] (conv2d)`.
    pub fn at(&self) -> String {
        if self.name.is_empty() {
            self.path.clone()
        } else {
            format!("{} ({})", self.path, self.name)
        }
    }

    /// An input error about this layer: `model.layers[3] (conv2d): MESSAGE`.
    pub fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::Input(format!("{}: {message}", self.at()))
    }

    /// The argument `key`: `inferred` (read from the input shape `input`) when not given,
    /// else `given`, which must equal it.
    pub fn infer(&self, key: &str, given: Option<usize>, inferred: usize, input: &[usize]) -> Result<usize> {
        match given {
            Some(g) if g != inferred => Err(self.error(format!(
                "{key} = {g} but the input (shape {input:?} per example) gives {inferred}; set {key} = {inferred}, or leave it out to have it inferred"
            ))),
            _ => Ok(inferred),
        }
    }

    /// A new parameter of `shape`, uniform in [-bound, bound) (PyTorch's kaiming-uniform
    /// with a = sqrt(5) for weights, and its bias rule, both reduce to this).
    pub fn uniform(&mut self, shape: &[usize], bound: f64) -> Result<Var> {
        let n = shape.iter().product();
        let values: Vec<f64> = (0..n).map(|_| self.rng.uniform_in(-bound, bound)).collect();
        self.var(values, shape)
    }

    /// A new parameter of `shape` with standard normal entries (PyTorch's `Embedding`).
    pub fn normal(&mut self, shape: &[usize]) -> Result<Var> {
        let n: usize = shape.iter().product();
        let mut values = Vec::with_capacity(n);
        while values.len() < n {
            // Box-Muller: two independent normals from two uniforms.
            let (u1, u2) = (self.rng.uniform().max(f64::MIN_POSITIVE), self.rng.uniform());
            let r = (-2.0 * u1.ln()).sqrt();
            let t = 2.0 * std::f64::consts::PI * u2;
            values.push(r * t.cos());
            values.push(r * t.sin());
        }
        values.truncate(n);
        self.var(values, shape)
    }

    /// A new tensor of `shape` filled with `value`, in the model's dtype.
    pub fn full(&self, shape: &[usize], value: f64) -> Result<Var> {
        let t = Tensor::full(value, shape, &self.device)?.to_dtype(self.dtype)?;
        Ok(Var::from_tensor(&t)?)
    }

    fn var(&self, values: Vec<f64>, shape: &[usize]) -> Result<Var> {
        let t = Tensor::from_vec(values, shape, &Device::Cpu)?.to_dtype(self.dtype)?.to_device(&self.device)?;
        Ok(Var::from_tensor(&t)?)
    }
}

/// A built layer: the module and the shape of one output example.
#[derive(Debug)]
pub struct Built {
    pub module: Box<dyn Module>,
    pub output: Vec<usize>,
}

impl Built {
    pub fn new(module: impl Module + 'static, output: Vec<usize>) -> Self {
        Built { module: Box::new(module), output }
    }
}

/// A layer plugin: PyTorch's constructor arguments (the struct's fields, declared with
/// `#[derive(Hyperparams)]` and `#[plugin(layer = "name", ...)]`) and how to build the
/// module for a given input.
pub trait Layer: Send + Sync + Debug {
    /// Builds the module for examples of shape `input` (the batch dimension left out:
    /// `[1, 28, 28]` for a grey image), returning it with the shape of one output. A
    /// layer that does not fit its input says so here, before training starts, with
    /// [`LayerContext::error`].
    fn build(&self, input: &[usize], ctx: &mut LayerContext) -> Result<Built>;
}
