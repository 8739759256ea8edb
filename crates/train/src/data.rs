//! Building the datasets a run config names.

use candle_core::{DType, Device, Tensor};
use ember_core::rng::Rng;
use ember_core::{Error, Result};
use std::path::Path;

use ember_data::{idx, mnist, Dataset, TensorDataset};

use crate::config::DataConfig;

/// Images scaled to [0, 1], labels as class indices.
fn images(x: Tensor, y: Tensor) -> Result<TensorDataset> {
    TensorDataset::new(x.to_dtype(DType::F32)?.affine(1.0 / 255.0, 0.0)?, y.to_dtype(DType::I64)?)
}

/// The training and evaluation sets of a run, where they came from, and a notice when
/// they stand in for the requested data.
pub struct Loaded {
    pub train: TensorDataset,
    pub eval: TensorDataset,
    pub source: String,
    pub notice: Option<String>,
}

/// The training and evaluation sets a run config names.
pub fn load(config: &DataConfig) -> Result<Loaded> {
    let mnist = |which: mnist::Which, dir: &Option<String>| -> Result<Loaded> {
        let s = mnist::load(which, dir.as_deref().map(Path::new))?;
        Ok(Loaded {
            train: images(s.train.0, s.train.1)?,
            eval: images(s.test.0, s.test.1)?,
            source: s.source,
            notice: s.notice,
        })
    };
    match config {
        DataConfig::FashionMnist { dir } => mnist(mnist::Which::FashionMnist, dir),
        DataConfig::Mnist { dir } => mnist(mnist::Which::Mnist, dir),
        DataConfig::Idx { train_images, train_labels, test_images, test_labels } => {
            let (x, y) = idx::read_pair(train_images, train_labels)?;
            let (xt, yt) = idx::read_pair(test_images, test_labels)?;
            Ok(Loaded { train: images(x, y)?, eval: images(xt, yt)?, source: train_images.clone(), notice: None })
        }
        DataConfig::Synthetic { n_train, n_eval, features, classes, seed } => {
            let mut rng = Rng::new(*seed);
            let centers: Vec<f64> = (0..classes * features).map(|_| rng.uniform_in(-2.0, 2.0)).collect();
            let mut make = |n: usize| -> Result<TensorDataset> {
                let mut x = Vec::with_capacity(n * features);
                let mut y = Vec::with_capacity(n);
                for i in 0..n {
                    let c = i % classes;
                    y.push(c as i64);
                    for f in 0..*features {
                        // Box-Muller normal noise around the class center.
                        let (u1, u2) = (rng.uniform().max(1e-12), rng.uniform());
                        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                        x.push((centers[c * features + f] + 2.0 * z) as f32);
                    }
                }
                TensorDataset::new(
                    Tensor::from_vec(x, (n, *features), &Device::Cpu)?,
                    Tensor::from_vec(y, n, &Device::Cpu)?,
                )
            };
            let (train, eval) = (make(*n_train)?, make(*n_eval)?);
            Ok(Loaded { train, eval, source: "synthetic".into(), notice: None })
        }
    }
}

/// Checks that a model with `sizes` fits the data: input features and class count.
pub fn check_fits(sizes: &[usize], flatten: bool, data: &TensorDataset, class_targets: bool) -> Result<()> {
    if data.is_empty() {
        return Err(Error::input("data: the training set is empty"));
    }
    let dims = data.inputs().dims();
    let features: usize = if flatten { dims[1..].iter().product() } else { *dims.last().unwrap_or(&0) };
    if sizes.first() != Some(&features) {
        return Err(Error::input(format!(
            "model.sizes[0] = {} but each example has {features} features (shape {:?}); set model.sizes[0] = {features}",
            sizes.first().copied().unwrap_or(0),
            &dims[1..]
        )));
    }
    if class_targets && data.targets().dtype() == DType::I64 {
        let max = data.targets().max_all()?.to_scalar::<i64>()?;
        let min = data.targets().min_all()?.to_scalar::<i64>()?;
        let classes = *sizes.last().unwrap_or(&0) as i64;
        if min < 0 || max >= classes {
            return Err(Error::input(format!(
                "the data has labels {min}..={max} but the model outputs {classes} classes; set the last model.sizes entry to {}",
                max + 1
            )));
        }
    }
    Ok(())
}
