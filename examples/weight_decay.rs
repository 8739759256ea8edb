//! Weight decay taming overfitting, the seed's experiment: linear regression with 200
//! inputs and only 20 training examples, y = 0.05 + Σ 0.01·xᵢ + N(0, 0.01²) noise,
//! trained by minibatch SGD (batch 5, lr 0.003, 100 epochs) with an `l2` penalty
//! λ/2·‖w‖² on the weight only, for λ = 0 and λ = 3.
//!
//!     cargo run --release --example weight_decay -- [--device cpu] [--out figures] [--seed 0]

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, Var};
use clap::Parser;
use ember::core::rng::Rng;
use ember::core::{BuildContext, Config, Value};
use ember::data::{DataLoader, Dataset, TensorDataset};
use ember::nn::{Context, Linear, Module};
use ember::train::plot::{figure, Line};
use ember::train::{OptimizerDriver, Regularization, RegularizerSpec};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, default_value = "figures")]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

const D: usize = 200;

fn normal(rng: &mut Rng) -> f64 {
    let (u1, u2) = (rng.uniform().max(1e-300), rng.uniform());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// `n` examples of the seed's synthetic regression.
fn data(n: usize, rng: &mut Rng) -> anyhow::Result<TensorDataset> {
    let x: Vec<f32> = (0..n * D).map(|_| normal(rng) as f32).collect();
    let y: Vec<f32> = (0..n)
        .map(|i| {
            (0.05 + x[i * D..(i + 1) * D].iter().map(|v| 0.01 * *v as f64).sum::<f64>() + 0.01 * normal(rng)) as f32
        })
        .collect();
    Ok(TensorDataset::new(Tensor::from_vec(x, (n, D), &Device::Cpu)?, Tensor::from_vec(y, (n, 1), &Device::Cpu)?)?)
}

/// The seed's squared loss, (ŷ - y)² / 2 averaged over the batch.
fn loss(model: &Linear, x: &Tensor, y: &Tensor) -> anyhow::Result<Tensor> {
    let mse = ember::core::loss("mse", &Config::new(), &BuildContext::default())?;
    Ok(mse.forward(&model.forward(x, &mut Context::eval())?, y)?.affine(0.5, 0.0)?)
}

fn mean_loss(model: &Linear, data: &TensorDataset, device: &Device) -> anyhow::Result<f64> {
    let (x, y) = (data.inputs().to_device(device)?, data.targets().to_device(device)?);
    Ok(loss(model, &x, &y)?.to_scalar::<f32>()? as f64)
}

fn train(lambda: f64, args: &Args, device: &Device) -> anyhow::Result<()> {
    let mut rng = Rng::new(args.seed);
    let (train, test) = (data(20, &mut rng)?, data(100, &mut rng)?);
    let w: Vec<f32> = (0..D).map(|_| normal(&mut rng) as f32).collect();
    let model = Linear::new(
        Var::from_tensor(&Tensor::from_vec(w, (1, D), device)?)?,
        Some(Var::from_tensor(&Tensor::zeros(1, DType::F32, device)?)?),
    )?;
    let params = model.named_parameters();
    let sgd: Config = [("lr".to_string(), Value::Float(0.003))].into_iter().collect();
    let mut opt = OptimizerDriver::new("sgd", &sgd, &[], params.clone())?;
    let l2 = RegularizerSpec {
        name: "l2".into(),
        config: [("lambda".to_string(), Value::Float(lambda))].into_iter().collect(),
        params: vec!["weight".into()],
    };
    let reg = Regularization::new(&[l2], params)?;
    let loader = DataLoader::new(5, true, false, args.seed, device.clone(), DType::F32)?;
    let (mut train_curve, mut test_curve) = (Vec::new(), Vec::new());
    for epoch in 0..100 {
        let order = loader.order(train.len(), epoch);
        for b in 0..loader.batches(train.len()) {
            let (x, y) = loader.batch(&train, &order, b)?;
            let mut l = loss(&model, &x, &y)?;
            if let Some(p) = reg.penalty()? {
                l = l.add(&p)?;
            }
            opt.step(&l.backward()?)?;
        }
        if (epoch + 1) % 5 == 0 {
            train_curve.push(((epoch + 1) as f64, mean_loss(&model, &train, device)?.log10()));
            test_curve.push(((epoch + 1) as f64, mean_loss(&model, &test, device)?.log10()));
        }
    }
    let norm = model.weight().as_tensor().sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
    println!("lambda {lambda}: L2 norm of w: {norm:.6}");
    figure(
        &args.out.join(format!("weight_decay_lambda{lambda}")),
        "epoch",
        "loss (log10)",
        &[Line::new("train", train_curve).with_markers(), Line::new("test", test_curve).with_markers()],
    )?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = ember::device::parse(&args.device)?;
    for lambda in [0.0, 3.0] {
        train(lambda, &args, &device)?;
    }
    println!("figures in {}", args.out.display());
    Ok(())
}
