//! Gradient descent in one dimension, the seed's first experiment: f(x) = x² from x = 10
//! with learning rates 0.2, 0.05 and 1.1 (converging, too slow, diverging), and the
//! non-convex f(x) = x·cos(cx) with c = 0.15π and learning rate 2 (a local minimum).
//! Ember's `sgd` takes each step; candle's autograd gives the gradient.
//!
//!     cargo run --release --example gradient_descent -- [--device cpu] [--out figures]

use std::path::PathBuf;

use candle_core::{Tensor, Var};
use clap::Parser;
use ember::core::{BuildContext, Config, StepContext, Value};
use ember::train::plot::{figure, Line};

#[derive(Parser)]
struct Args {
    /// cpu, cuda[:N], metal[:N] or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Where the figures go.
    #[arg(long, default_value = "figures")]
    out: PathBuf,
}

/// Ten steps of `sgd` with learning rate `eta` on f from x = 10; returns the iterates.
fn descend(
    f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>,
    eta: f64,
    device: &candle_core::Device,
) -> anyhow::Result<Vec<f64>> {
    let config: Config = [("lr".to_string(), Value::Float(eta))].into_iter().collect();
    let sgd = ember::core::optimizer("sgd", &config, &BuildContext::default())?;
    let x = Var::from_tensor(&Tensor::new(&[10f64], device)?)?;
    let mut state = sgd.init_state(x.as_tensor())?;
    let mut path = vec![10.0];
    for _ in 0..10 {
        let grads = f(x.as_tensor())?.sum_all()?.backward()?;
        let g = grads.get(x.as_tensor()).expect("x has a gradient");
        sgd.step(&x, g, &mut state, &StepContext::new(eta))?;
        path.push(x.as_tensor().to_vec1::<f64>()?[0]);
    }
    Ok(path)
}

/// The function on a grid around the path, and the path on the function.
fn plot(name: &str, out: &std::path::Path, f: &dyn Fn(f64) -> f64, path: &[f64]) -> anyhow::Result<()> {
    let reach = path.iter().fold(10f64, |m, x| m.max(x.abs())).max(10.0);
    let curve: Vec<(f64, f64)> =
        (0..=400).map(|i| -reach + 2.0 * reach * i as f64 / 400.0).map(|x| (x, f(x))).collect();
    let iterates: Vec<(f64, f64)> = path.iter().map(|&x| (x, f(x))).collect();
    figure(
        &out.join(name),
        "x",
        "f(x)",
        &[Line::new("f", curve).background(), Line::new("iterates", iterates).with_markers()],
    )?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = ember::device::parse(&args.device)?;
    for eta in [0.2, 0.05, 1.1] {
        let path = descend(&|x| x.sqr(), eta, &device)?;
        println!("f(x) = x^2, eta {eta}: epoch 10, x: {:.6}", path[10]);
        plot(&format!("gd_square_eta{eta}"), &args.out, &|x| x * x, &path)?;
    }
    let c = 0.15 * std::f64::consts::PI;
    let path = descend(&|x| x.mul(&x.affine(c, 0.0)?.cos()?), 2.0, &device)?;
    println!("f(x) = x*cos(cx), c = 0.15*pi, eta 2: epoch 10, x: {:.6}", path[10]);
    plot("gd_xcos_eta2", &args.out, &|x| x * (c * x).cos(), &path)?;
    println!("figures in {}", args.out.display());
    Ok(())
}
