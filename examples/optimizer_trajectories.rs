//! Optimizers walking across the elongated bowl f(x) = 0.1·x1² + 2·x2² from (-5, -2),
//! 20 steps each: the seed's picture of why momentum and adaptive learning rates help.
//! Any registered optimizer can be given as NAME or NAME:JSON_CONFIG.
//!
//!     cargo run --release --example optimizer_trajectories -- [--device cpu] [--out figures] \
//!         ['sgd:{"lr": 0.4}' 'adam:{"lr": 0.16}' ...]

use std::path::PathBuf;

use candle_core::{Tensor, Var};
use clap::Parser;
use ember::core::{BuildContext, Config, StepContext};
use ember::train::plot::{figure, Line};

#[derive(Parser)]
struct Args {
    /// Optimizers as NAME or NAME:JSON (default: the seed's five runs).
    optimizers: Vec<String>,
    /// cpu, cuda[:N], metal[:N] or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Where the figure goes.
    #[arg(long, default_value = "figures")]
    out: PathBuf,
    #[arg(long, default_value_t = 20)]
    steps: usize,
}

const DEFAULTS: [&str; 5] = [
    r#"sgd:{"lr": 0.4}"#,
    r#"sgd:{"lr": 0.6, "momentum": 0.5}"#,
    r#"adagrad:{"lr": 0.4}"#,
    r#"rmsprop:{"lr": 0.4, "alpha": 0.9}"#,
    r#"adam:{"lr": 0.16}"#,
];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = ember::device::parse(&args.device)?;
    let specs: Vec<String> = if args.optimizers.is_empty() {
        DEFAULTS.iter().map(|s| s.to_string()).collect()
    } else {
        args.optimizers.clone()
    };
    // Contours: the ellipses 0.1 x1² + 2 x2² = level.
    let mut lines: Vec<Line> = [0.5, 1.0, 2.0, 4.0, 6.0, 8.0]
        .iter()
        .map(|&level: &f64| {
            let pts = (0..=100)
                .map(|i| 2.0 * std::f64::consts::PI * i as f64 / 100.0)
                .map(|t| ((level / 0.1).sqrt() * t.cos(), (level / 2.0).sqrt() * t.sin()))
                .collect();
            Line::new(format!("f = {level}"), pts).background()
        })
        .collect();
    for spec in &specs {
        let (name, json) = spec.split_once(':').unwrap_or((spec.as_str(), "{}"));
        let config: Config =
            serde_json::from_str(json).map_err(|e| anyhow::anyhow!("{spec}: the config must be a JSON object: {e}"))?;
        let (opt, lr) = ember::core::registry::optimizer_with_lr(name, &config, &BuildContext::default())?;
        let x = Var::from_tensor(&Tensor::new(&[-5f64, -2.0], &device)?)?;
        let a = Tensor::new(&[0.1f64, 2.0], &device)?;
        let mut state = opt.init_state(x.as_tensor())?;
        let mut path = vec![(-5.0, -2.0)];
        for _ in 0..args.steps {
            let grads = x.as_tensor().sqr()?.mul(&a)?.sum_all()?.backward()?;
            opt.step(&x, grads.get(x.as_tensor()).expect("gradient"), &mut state, &StepContext::new(lr))?;
            let v = x.as_tensor().to_vec1::<f64>()?;
            path.push((v[0], v[1]));
        }
        let (x1, x2) = path[args.steps];
        println!("{name} {json}: epoch {}, x1: {x1:.6}, x2: {x2:.6}", args.steps);
        lines.push(Line::new(format!("{name} {json}"), path).with_markers());
    }
    figure(&args.out.join("optimizer_trajectories"), "x1", "x2", &lines)?;
    println!("figure in {}", args.out.join("optimizer_trajectories.png").display());
    Ok(())
}
