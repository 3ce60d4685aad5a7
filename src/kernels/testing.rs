//! What the kernels' unit tests share: seeded inputs and a relative error.

use super::tensor;
use candle_core::{Device, Tensor};

/// Deterministic pseudo-random f64 values, uniform in [−1, 1).
pub fn rand_f64(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let v: Vec<f64> = (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// [`rand_f64`] rounded to f32.
pub fn rand(shape: &[usize], seed: u64) -> Tensor {
    rand_f64(shape, seed).to_dtype(candle_core::DType::F32).unwrap()
}

/// max |a − b| relative to max(1, max |b|).
pub fn max_diff(a: &[f32], b: &Tensor) -> f32 {
    let b = tensor::to_vec(b).unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / scale
}
