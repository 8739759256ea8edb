use candle_core::{DType, Device, Tensor, Var};
use ember::core::{LayerContext, Value, Config};
use ember::core::module::Context;
use std::time::Instant;

fn t(name: &str, table: Config, shape: &[usize], n: usize) {
    let mut ctx = LayerContext::new(Device::Cpu, DType::F32, 0);
    let mut tb = table.clone();
    tb.insert("name".into(), Value::Str(name.into()));
    let built = ember::nn::build_layer(&tb, shape, &mut ctx).unwrap();
    let mut dims = vec![n]; dims.extend_from_slice(shape);
    let x = Var::from_tensor(&Tensor::randn(0f32, 1., dims, &Device::Cpu).unwrap()).unwrap();
    let reps = 10;
    let mut fw = 0.0; let mut bw = 0.0;
    for _ in 0..reps {
        let s = Instant::now();
        let y = built.module.forward(x.as_tensor(), &mut Context::train(1)).unwrap();
        fw += s.elapsed().as_secs_f64();
        let s = Instant::now();
        let _g = y.sum_all().unwrap().backward().unwrap();
        bw += s.elapsed().as_secs_f64();
    }
    println!("{name:<14} {shape:?}  fwd {:.2} ms  bwd {:.2} ms", fw * 1e3 / reps as f64, bw * 1e3 / reps as f64);
}
fn cfg(p: &[(&str, i64)]) -> Config { p.iter().map(|(k, v)| (k.to_string(), Value::Int(*v))).collect() }
fn main() {
    let _ = ember::layers::Geometry { kernel: [1,1], stride: [1,1], padding: [0,0], dilation: [1,1], ceil_mode: false };
    t("conv2d", cfg(&[("out_channels", 16), ("kernel_size", 3), ("padding", 1)]), &[1, 28, 28], 128);
    t("batch_norm2d", cfg(&[]), &[16, 28, 28], 128);
    t("relu", cfg(&[]), &[16, 28, 28], 128);
    t("max_pool2d", cfg(&[("kernel_size", 2)]), &[16, 28, 28], 128);
    t("conv2d", cfg(&[("out_channels", 32), ("kernel_size", 3), ("padding", 1)]), &[16, 14, 14], 128);
    t("batch_norm2d", cfg(&[]), &[32, 14, 14], 128);
    t("max_pool2d", cfg(&[("kernel_size", 2)]), &[32, 14, 14], 128);
    t("linear", cfg(&[("out_features", 10)]), &[1568], 128);
}
