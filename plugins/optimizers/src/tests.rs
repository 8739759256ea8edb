//! A scheduled momentum (`StepContext::momentum`, from `one_cycle`) must act exactly as
//! the same momentum configured, on the fused and the composed path.

use candle_core::{DType, Device, Tensor, Var};
use ember_core::ops::{with_kernels, Kernels};
use ember_core::{registry, BuildContext, Config, StepContext, Value};

fn config(pairs: &[(&str, Value)]) -> Config {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

fn betas(b1: f64) -> Value {
    Value::List(vec![Value::Float(b1), Value::Float(0.999)])
}

/// The parameter after 5 steps (as bits) and the names the state then holds.
fn run(name: &str, config: &Config, momentum: Option<f64>, kernels: Kernels, dtype: DType) -> (Vec<u64>, Vec<String>) {
    with_kernels(kernels, || {
        let opt = registry::optimizer(name, config, &BuildContext::default()).unwrap();
        let n = 1001;
        let x0: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1000) as f64 / 250.0 - 2.0).collect();
        let x = Var::from_tensor(&Tensor::new(x0, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()).unwrap();
        let mut state = opt.init_state(x.as_tensor()).unwrap();
        for k in 0..5 {
            let g: Vec<f64> = (0..n).map(|i| (((i + 31 * k) * 104729) % 2000) as f64 / 1000.0 - 1.0).collect();
            let g = Tensor::new(g, &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
            opt.step(&x, &g, &mut state, &StepContext::new(0.01).with_momentum(momentum)).unwrap();
        }
        let bits = x.as_tensor().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
        let saved = state.save();
        (
            bits.iter().map(|v| v.to_bits()).collect(),
            saved.tensors.into_keys().chain(saved.scalars.into_keys()).collect(),
        )
    })
}

#[test]
fn a_scheduled_momentum_is_the_configured_one() {
    let lr = ("lr", Value::Float(0.01));
    let cases = [
        // SGD and RMSprop configured without momentum still use (and create) the buffer.
        ("sgd", vec![lr.clone()], vec![lr.clone(), ("momentum", Value::Float(0.9))], 0.9),
        (
            "sgd",
            vec![lr.clone(), ("momentum", Value::Float(0.5))],
            vec![lr.clone(), ("momentum", Value::Float(0.9))],
            0.9,
        ),
        ("rmsprop", vec![lr.clone()], vec![lr.clone(), ("momentum", Value::Float(0.9))], 0.9),
        ("adam", vec![lr.clone()], vec![lr.clone(), ("betas", betas(0.3))], 0.3),
        ("adam", vec![lr.clone()], vec![lr.clone(), ("betas", betas(0.7))], 0.7),
        (
            "adamw",
            vec![("amsgrad", Value::Bool(true))],
            vec![("amsgrad", Value::Bool(true)), ("betas", betas(0.3))],
            0.3,
        ),
        ("adamax", vec![lr.clone()], vec![lr.clone(), ("betas", betas(0.3))], 0.3),
        ("nadam", vec![lr.clone()], vec![lr.clone(), ("betas", betas(0.3))], 0.3),
        ("radam", vec![lr.clone()], vec![lr.clone(), ("betas", betas(0.3))], 0.3),
    ];
    for (name, base, configured, momentum) in cases {
        for kernels in [Kernels::Auto, Kernels::Composed] {
            for dtype in [DType::F32, DType::F64] {
                let scheduled = run(name, &config(&base), Some(momentum), kernels, dtype);
                let expected = run(name, &config(&configured), None, kernels, dtype);
                assert!(scheduled == expected, "{name} {base:?} momentum {momentum} {kernels:?} {dtype:?}");
            }
        }
    }
}
