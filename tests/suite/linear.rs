//! The fused CPU linear op against candle's composed matmul + broadcast add: outputs and
//! gradients for f32 and f64, with and without bias, strided operands, products large
//! enough to be split across threads, inputs that need no gradient, and the fallbacks.

use candle_core::{DType, Device, Tensor, Var};
use ember_core::ops::linear::{linear, linear_composed};

fn rand(shape: &[usize], dtype: DType, seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> =
        (0..n as u64).map(|i| ember_core::rng::unit_f32(ember_core::rng::at(seed, i)) as f64 * 2.0 - 1.0).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    a.to_dtype(DType::F64)
        .unwrap()
        .sub(&b.to_dtype(DType::F64).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Runs both paths on the same operands and compares y and every gradient.
fn check(n: usize, inp: usize, out: usize, dtype: DType, bias: bool, input_grad: bool, transposed_x: bool) {
    let tol = if dtype == DType::F64 { 1e-12 } else { 1e-4 };
    let x0 = if transposed_x {
        rand(&[inp, n], dtype, 1).t().unwrap() // a strided (column-major) view
    } else {
        rand(&[n, inp], dtype, 1)
    };
    let w0 = rand(&[out, inp], dtype, 2);
    let b0 = rand(&[out], dtype, 3);
    let upstream = rand(&[n, out], dtype, 4);
    let mut results = Vec::new();
    for fused in [true, false] {
        let x = Var::from_tensor(&x0).unwrap();
        let w = Var::from_tensor(&w0).unwrap();
        let b = Var::from_tensor(&b0).unwrap();
        let xin = if input_grad { x.as_tensor().clone() } else { x0.clone() };
        let bias_t = bias.then(|| b.as_tensor());
        let y = if fused { linear(&xin, w.as_tensor(), bias_t) } else { linear_composed(&xin, w.as_tensor(), bias_t) }
            .unwrap();
        let loss = y.mul(&upstream).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        results.push((
            y,
            grads.get(x.as_tensor()).cloned(),
            grads.get(w.as_tensor()).cloned().unwrap(),
            grads.get(b.as_tensor()).cloned(),
        ));
    }
    let (f, c) = (&results[0], &results[1]);
    let what =
        format!("n={n} in={inp} out={out} {dtype:?} bias={bias} input_grad={input_grad} transposed={transposed_x}");
    assert!(max_diff(&f.0, &c.0) < tol, "y: {what}");
    assert!(max_diff(&f.2, &c.2) < tol, "dW: {what}");
    assert_eq!(f.3.is_some(), bias, "db presence: {what}");
    if bias {
        assert!(max_diff(f.3.as_ref().unwrap(), c.3.as_ref().unwrap()) < tol, "db: {what}");
    }
    if input_grad {
        assert!(max_diff(f.1.as_ref().unwrap(), c.1.as_ref().unwrap()) < tol, "dx: {what}");
    } else {
        // The data batch tracks no graph: the fused op does not compute its gradient.
        assert!(f.1.is_none(), "an input gradient nobody asked for: {what}");
    }
}

#[test]
fn fused_linear_matches_the_composed_ops() {
    for dtype in [DType::F32, DType::F64] {
        for bias in [true, false] {
            for input_grad in [true, false] {
                check(7, 5, 3, dtype, bias, input_grad, false);
                check(7, 5, 3, dtype, bias, input_grad, true);
            }
        }
    }
}

#[test]
fn products_split_across_threads_match_the_composed_ops() {
    // 256 x 512 x 128 = 2^24 multiply-adds: at the threshold for splitting by rows; the
    // 40 x 1100 x 400 product is split by columns (more columns than rows).
    check(256, 512, 128, DType::F32, true, true, false);
    check(40, 1100, 400, DType::F64, true, true, true);
}

#[test]
fn other_ranks_take_the_composed_path() {
    let x = rand(&[2, 3, 4], DType::F32, 5);
    let w = rand(&[6, 4], DType::F32, 6);
    let b = rand(&[6], DType::F32, 7);
    let y = linear(&x, &w, Some(&b)).unwrap();
    assert_eq!(y.dims(), [2, 3, 6]);
    assert!(max_diff(&y, &linear_composed(&x, &w, Some(&b)).unwrap()) < 1e-6);
    // Mixed dtypes are not fused; candle reports the mismatch.
    assert!(linear(&x.to_dtype(DType::F64).unwrap().reshape((6, 4)).unwrap(), &w, None).is_err());
}
