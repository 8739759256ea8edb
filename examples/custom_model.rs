//! A model written in Rust, trained by the Learner: two branches over the flattened
//! image (a wide ReLU branch and a narrow tanh branch) whose outputs are concatenated
//! before the classifier, plus an auxiliary classifier on the narrow branch whose loss is
//! added with weight 0.3 in a custom training step. Nothing here is a plain layer list.
//!
//! The Learner still owns everything else: batches, accumulation, clipping, the optimizer
//! and scheduler, metrics over the evaluation set, `metrics.csv`, plots, checkpoints and
//! a bit-exact resume. A step callback warms the learning rate up over the first steps.
//!
//!     cargo run --release --example custom_model -- [--epochs 3] [--out runs/custom]
//!         [--data-dir DIR | --embedded] [--limit N] [--resume] [--export model.safetensors]
//!         [--device cpu]
//!
//! `--export` writes the weights with PyTorch names, and beside them `NAME.probe.safetensors`
//! (a few test images and this model's logits for them):
//! `python examples/custom_model_torch.py model.safetensors` loads both into the same
//! model written with torch.nn and checks the logits.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, Var};
use clap::Parser;
use ember::core::rng::Rng;
use ember::core::{Config, Result as EmberResult};
use ember::data::{mnist, TensorDataset};
use ember::nn::{Context, Linear, Module};
use ember::train::hooks::on_step_end;
use ember::train::{Learner, StepArgs, StepOutput};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    #[arg(long, default_value = "runs/custom_model")]
    out: PathBuf,
    /// Fashion-MNIST's folder (the IDX files); default: the standard places.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Use the embedded 2,000/1,000-image subset.
    #[arg(long)]
    embedded: bool,
    /// Train on the first N training images only.
    #[arg(long)]
    limit: Option<usize>,
    /// Continue the run in --out from its newest checkpoint.
    #[arg(long)]
    resume: bool,
    /// Write the trained weights (PyTorch names) to this safetensors file.
    #[arg(long)]
    export: Option<PathBuf>,
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// For the kill-and-resume test: sleep for a minute after the first step of this
    /// epoch (its predecessor's checkpoint is then on disk).
    #[arg(long, hide = true)]
    stall_at_epoch: Option<usize>,
}

/// The model. Its parameters are named as the torch.nn module in
/// `custom_model_torch.py` names them.
#[derive(Debug)]
struct TwoBranch {
    wide: Linear,
    narrow: Linear,
    head: Linear,
    aux: Linear,
}

impl TwoBranch {
    fn new(seed: u64, device: &Device) -> EmberResult<Self> {
        let mut rng = Rng::new(seed);
        let mut linear = |i, o| Linear::init(i, o, true, &mut rng, DType::F32, device);
        Ok(TwoBranch {
            wide: linear(784, 128)?,
            narrow: linear(784, 32)?,
            head: linear(160, 10)?,
            aux: linear(32, 10)?,
        })
    }

    /// The main logits and the auxiliary logits.
    fn forward_both(&self, x: &Tensor, ctx: &mut Context) -> EmberResult<(Tensor, Tensor)> {
        let x = x.flatten_from(1)?;
        let wide = self.wide.forward(&x, ctx)?.relu()?;
        let narrow = self.narrow.forward(&x, ctx)?.tanh()?;
        let main = self.head.forward(&Tensor::cat(&[&wide, &narrow], 1)?, ctx)?;
        let aux = self.aux.forward(&narrow, ctx)?;
        Ok((main, aux))
    }
}

impl Module for TwoBranch {
    fn forward(&self, x: &Tensor, ctx: &mut Context) -> EmberResult<Tensor> {
        Ok(self.forward_both(x, ctx)?.0)
    }

    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (prefix, layer) in
            [("wide", &self.wide), ("narrow", &self.narrow), ("head", &self.head), ("aux", &self.aux)]
        {
            out.extend(layer.named_parameters().into_iter().map(|(n, v)| (format!("{prefix}.{n}"), v)));
        }
        out
    }
}

/// Images as floats in [0, 1], `[N, 1, 28, 28]`, labels as i64; the first `limit`.
fn dataset(x: &Tensor, y: &Tensor, limit: Option<usize>) -> anyhow::Result<TensorDataset> {
    let n = limit.unwrap_or(usize::MAX).min(x.dim(0)?);
    let x = x.narrow(0, 0, n)?.unsqueeze(1)?.to_dtype(DType::F32)?.affine(1.0 / 255.0, 0.0)?;
    Ok(TensorDataset::new(x, y.narrow(0, 0, n)?.to_dtype(DType::I64)?)?)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = ember::device::parse(&args.device)?;
    let (train, test, source) = if args.embedded {
        let ((x, y), (xt, yt)) = mnist::embedded_fashion_mnist()?;
        (dataset(&x, &y, args.limit)?, dataset(&xt, &yt, None)?, "the embedded Fashion-MNIST subset".to_string())
    } else {
        let s = mnist::load(mnist::Which::FashionMnist, args.data_dir.as_deref())?;
        if let Some(n) = &s.notice {
            eprintln!("{n}");
        }
        (dataset(&s.train.0, &s.train.1, args.limit)?, dataset(&s.test.0, &s.test.1, None)?, s.source)
    };
    let probe = test.inputs().narrow(0, 0, 8)?;
    let model = TwoBranch::new(args.seed, &device)?;
    const WARMUP: u64 = 20;
    const LR: f64 = 0.002;
    let builder = Learner::builder(model)
        .train_data(train)
        .eval_data(test)
        .data_source(source)
        .seed(args.seed)
        .device(device.clone())
        .loss("cross_entropy")
        .optimizer(&format!("adamw:lr={LR},weight_decay=0.01"))
        // No weight decay on biases: a parameter group, as [[optimizer.groups]].
        .param_group(&["*.bias"], Config::from([("weight_decay".into(), 0.0.into())]))
        .metrics(["accuracy", "f1:average=macro", "top_k_accuracy:k=3"])
        .epochs(args.epochs)
        .batch_size(64)
        .clip_grad_norm(5.0)
        .out(&args.out)
        .overwrite(!args.resume)
        // The main loss plus 0.3 times the auxiliary classifier's.
        .train_step(|model: &TwoBranch, s: StepArgs<'_>| {
            let (main, aux) = model.forward_both(s.inputs, s.ctx)?;
            let loss = s.loss.forward(&main, s.targets)?;
            let aux_loss = s.loss.forward(&aux, s.targets)?;
            Ok(StepOutput::with_output((loss + aux_loss.affine(0.3, 0.0)?)?, main))
        })
        // A linear learning-rate warm-up over the first steps, in user code.
        .callback(on_step_end(|step, control| {
            let lr = LR * ((step.step + 1).min(WARMUP) as f64 / WARMUP as f64);
            for g in 0..control.lrs().len() {
                control.set_lr(g, lr)?;
            }
            Ok(())
        }));
    let stall = args.stall_at_epoch;
    let builder = builder.callback(on_step_end(move |step, _| {
        if Some(step.epoch) == stall && step.batch == 1 {
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
        Ok(())
    }));
    let mut learner = if args.resume { builder.resume(&args.out)? } else { builder.build()? };
    let summary = learner.fit()?;
    if let Some(last) = &summary.last {
        let metrics: Vec<String> = last.metrics.iter().map(|(l, v)| format!("eval_{l} {v:.4}")).collect();
        println!(
            "epochs {}  train_loss {:.4}  eval_loss {:.4}  eval_acc {:.4}  {}",
            summary.epochs,
            last.train_loss,
            last.eval_loss,
            last.eval_acc,
            metrics.join("  ")
        );
    }
    if let Some(path) = &args.export {
        ember::nn::save_safetensors(learner.model(), path)?;
        let logits = learner.model().forward(&probe.to_device(&device)?, &mut Context::eval())?;
        let probe_path = path.with_extension("probe.safetensors");
        let tensors: HashMap<String, Tensor> =
            HashMap::from([("inputs".into(), probe), ("logits".into(), logits.to_device(&Device::Cpu)?)]);
        candle_core::safetensors::save(&tensors, &probe_path)?;
        println!("exported {} and {}", path.display(), probe_path.display());
    }
    Ok(())
}
