//! The MLP builder: the seed's multilayer perceptron from a few numbers.

use candle_core::{DType, Device};
use ember_core::rng::Rng;
use ember_core::{BuildContext, Config, Error, Result, Value};

use crate::layers::{ActivationLayer, DropoutLayer, Flatten};
use crate::linear::Linear;
use crate::sequential::Sequential;

/// A multilayer perceptron: (a Flatten, if `flatten`) then for each hidden layer Linear, activation
/// and (when its p > 0) Dropout, then a final Linear. Layers are numbered as in the
/// equivalent `torch.nn.Sequential`, so `sizes = [784, 256, 256, 10]` with dropout gives
/// parameters `1.weight`, `1.bias`, `4.weight`, `4.bias`, `7.weight`, `7.bias`.
#[derive(Clone, Debug, PartialEq)]
pub struct MlpConfig {
    /// Input size, hidden sizes..., output size (at least two entries).
    pub sizes: Vec<usize>,
    /// The registry name of the hidden activation.
    pub activation: String,
    /// The activation's hyperparameters.
    pub activation_config: Config,
    /// Dropout probability after each hidden layer: empty (none), one value for all,
    /// or one per hidden layer.
    pub dropout: Vec<f64>,
    /// Start with a Flatten layer (for image inputs).
    pub flatten: bool,
    /// Give the Linear layers a bias.
    pub bias: bool,
}

impl MlpConfig {
    /// An MLP with these sizes, ReLU, no dropout, a leading Flatten and biases.
    pub fn new(sizes: &[usize]) -> Self {
        MlpConfig {
            sizes: sizes.to_vec(),
            activation: "relu".into(),
            activation_config: Config::new(),
            dropout: Vec::new(),
            flatten: true,
            bias: true,
        }
    }

    pub fn with_dropout(mut self, dropout: &[f64]) -> Self {
        self.dropout = dropout.to_vec();
        self
    }

    pub fn with_activation(mut self, name: &str, config: Config) -> Self {
        self.activation = name.to_string();
        self.activation_config = config;
        self
    }

    /// The dropout probability after hidden layer `i`.
    fn dropout_at(&self, i: usize) -> f64 {
        match self.dropout.as_slice() {
            [] => 0.0,
            [p] => *p,
            ps => ps[i],
        }
    }

    /// Checks the sizes and dropout values.
    pub fn validate(&self) -> Result<()> {
        if self.sizes.len() < 2 {
            return Err(Error::InvalidValue {
                path: "model.sizes".into(),
                value: format!("{:?}", self.sizes),
                rule: "give at least the input and output sizes, e.g. [784, 256, 10]".into(),
            });
        }
        if let Some(i) = self.sizes.iter().position(|&s| s == 0) {
            return Err(Error::InvalidValue {
                path: "model.sizes".into(),
                value: format!("{:?}", self.sizes),
                rule: format!("entry {i} is 0; every size must be >= 1"),
            });
        }
        let hidden = self.sizes.len() - 2;
        if self.dropout.len() > 1 && self.dropout.len() != hidden {
            return Err(Error::input(format!(
                "model.dropout has {} values but the model has {hidden} hidden layers; give one value, or one per hidden layer",
                self.dropout.len()
            )));
        }
        if let Some(p) = self.dropout.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(Error::InvalidValue {
                path: "model.dropout".into(),
                value: p.to_string(),
                rule: "must be in [0, 1]".into(),
            });
        }
        Ok(())
    }

    /// The number of parameters (`None` if it overflows a 64-bit count).
    pub fn parameter_count(&self) -> Option<u64> {
        self.sizes.windows(2).try_fold(0u64, |n, w| {
            let (i, o) = (w[0] as u64, w[1] as u64);
            n.checked_add(i.checked_mul(o)?.checked_add(if self.bias { o } else { 0 })?)
        })
    }

    /// Checks that the weights and their gradients fit in this machine's memory.
    fn check_memory(&self, dtype: DType) -> Result<()> {
        let count = self.parameter_count();
        let what = match count {
            Some(n) => format!("model.sizes = {:?} ({n} parameters as {dtype:?}, weights and gradients)", self.sizes),
            None => format!("model.sizes = {:?}", self.sizes),
        };
        let bytes = count.and_then(|n| ember_core::memory::product(&[n, dtype.size_in_bytes() as u64, 2]));
        ember_core::memory::check(&what, bytes, "use smaller layers")
    }
}

/// Builds the MLP, initialising every Linear as PyTorch does from the generator seeded
/// with `seed` (the same seed gives the same weights).
pub fn mlp(config: &MlpConfig, seed: u64, dtype: DType, device: &Device) -> Result<Sequential> {
    config.validate()?;
    config.check_memory(dtype)?;
    let mut rng = Rng::new(seed);
    let ctx = BuildContext::new(device.clone(), dtype);
    let mut model = Sequential::new();
    if config.flatten {
        model = model.push(Flatten::default());
    }
    let layers = config.sizes.len() - 1;
    for i in 0..layers {
        let (fan_in, fan_out) = (config.sizes[i], config.sizes[i + 1]);
        model = model.push(Linear::init(fan_in, fan_out, config.bias, &mut rng, dtype, device)?);
        if i + 1 < layers {
            model = model.push(ActivationLayer::new(&config.activation, &config.activation_config, &ctx)?);
            let p = config.dropout_at(i);
            if p > 0.0 {
                let cfg: Config = [("p".to_string(), Value::Float(p))].into_iter().collect();
                model = model.push(DropoutLayer::new("dropout", &cfg)?);
            }
        }
    }
    Ok(model)
}
