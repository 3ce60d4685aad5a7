//! Softmax along the last axis, and its input gradient.

use super::math;
use super::op::Kernel;
use rayon::prelude::*;

/// Rows per parallel task.
const ROWS: usize = 64;

/// `softmax(x)` over the last dimension of each item.
#[derive(Debug, Clone, Copy)]
pub struct Softmax;

math::vectorised!(
    /// `row = softmax(row)`, each pass written so that it vectorises (the max and the sum
    /// in eight lanes): attention spends most of its time outside GEMMs here.
    pub(super) fn in_place(row: &mut [f32]) = in_place_lanes
);

#[inline(always)]
fn in_place_lanes(row: &mut [f32]) {
    const LANES: usize = 8;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            lanes[i] = if c[i] > lanes[i] { c[i] } else { lanes[i] };
        }
    }
    let max = chunks.remainder().iter().chain(&lanes).copied().fold(f32::NEG_INFINITY, f32::max);
    row.iter_mut().for_each(|v| *v = math::exp(*v - max));
    let mut sums = [0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            sums[i] += c[i];
        }
    }
    let sum = sums.iter().chain(chunks.remainder()).sum::<f32>();
    let scale = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= scale);
}

/// `p = softmax(x)` for one row.
fn row(x: &[f32], p: &mut [f32]) {
    p.copy_from_slice(x);
    in_place(p);
}

impl Kernel for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn out_dims(&self, item: &[usize]) -> candle_core::Result<Vec<usize>> {
        match item.last() {
            Some(&n) if n > 0 => Ok(item.to_vec()),
            _ => candle_core::bail!("softmax: items of {item:?} have no last axis to normalise"),
        }
    }

    fn forward(&self, x: &[f32], item: &[usize], y: &mut [f32]) {
        let n = item[item.len() - 1];
        x.par_chunks(n * ROWS).zip(y.par_chunks_mut(n * ROWS)).for_each(|(x, y)| x.chunks(n).zip(y.chunks_mut(n)).for_each(|(x, y)| row(x, y)));
    }

    /// gx = p ⊙ (g − ⟨p, g⟩) per row.
    fn input_grad(&self, x: &[f32], item: &[usize], g: &[f32], gx: &mut [f32]) {
        let n = item[item.len() - 1];
        x.par_chunks(n * ROWS).zip(g.par_chunks(n * ROWS)).zip(gx.par_chunks_mut(n * ROWS)).for_each(|((x, g), gx)| {
            for ((x, g), gx) in x.chunks(n).zip(g.chunks(n)).zip(gx.chunks_mut(n)) {
                row(x, gx);
                let dot: f32 = gx.iter().zip(g).map(|(p, g)| p * g).sum();
                gx.iter_mut().zip(g).for_each(|(p, g)| *p *= g - dot);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{op, tensor};
    use candle_core::{DType, Device, Tensor, Var};
    use std::sync::Arc;

    #[test]
    fn the_dispatched_row_equals_the_baseline_build_bit_for_bit() {
        let mut fast: Vec<f32> = (0..1037).map(|i| ((i * 7919) % 1009) as f32 / 40.0 - 12.0).collect();
        let mut baseline = fast.clone();
        in_place(&mut fast);
        in_place_lanes(&mut baseline);
        assert!(fast.iter().zip(&baseline).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn matches_candle_values_and_input_gradients() {
        let values: Vec<f32> = (0..2 * 3 * 37).map(|i| ((i * 7919) % 1009) as f32 / 50.0 - 10.0).collect();
        let x = Tensor::from_vec(values, (2, 3, 37), &Device::Cpu).unwrap();
        let y = op::apply(&Arc::new(Softmax), &x).unwrap();
        let xv = Var::from_tensor(&x.to_dtype(DType::F64).unwrap()).unwrap();
        let want = candle_nn::ops::softmax(xv.as_tensor(), candle_core::D::Minus1).unwrap();
        let diff = |a: &Tensor, b: &Tensor| (a.to_dtype(DType::F64).unwrap() - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
        assert!(diff(&y, &want) < 1e-6, "forward off by {}", diff(&y, &want));
        let g = Tensor::from_vec((0..2 * 3 * 37).map(|i| ((i * 31) % 17) as f32 - 8.0).collect::<Vec<_>>(), (2, 3, 37), &Device::Cpu).unwrap();
        let grads = (want * g.to_dtype(DType::F64).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
        let xt = Var::from_tensor(&x).unwrap();
        let ours = (op::apply(&Arc::new(Softmax), xt.as_tensor()).unwrap() * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let (gx, want_gx) = (ours.get(xt.as_tensor()).unwrap(), grads.get(xv.as_tensor()).unwrap());
        assert!(diff(gx, want_gx) < 1e-5, "input gradient off by {}", diff(gx, want_gx));
        // A transposed (non-contiguous) input is read in its logical order.
        let t = x.transpose(1, 2).unwrap();
        let expected = candle_nn::ops::softmax(&t.contiguous().unwrap(), candle_core::D::Minus1).unwrap();
        let got = op::apply(&Arc::new(Softmax), &t).unwrap();
        assert!(tensor::to_vec(&(got - expected).unwrap().abs().unwrap()).unwrap().iter().all(|d| *d < 1e-6));
    }
}
