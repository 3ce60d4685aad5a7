//! GEGLU (diffusers' gated feed-forward): `h · gelu(gate)` for `[h, gate]` along the last
//! axis, exact (erf) GELU, and its input gradient.

use super::math;
use super::op::Kernel;
use rayon::prelude::*;
use std::f32::consts::{FRAC_1_SQRT_2, PI};

/// Rows per parallel task.
const ROWS: usize = 32;

#[derive(Debug, Clone, Copy)]
pub struct Geglu;

/// Φ(g) = ½(1 + erf(g/√2)): GELU is g·Φ(g).
#[inline(always)]
fn cdf(g: f32) -> f32 {
    0.5 * (1.0 + math::erf(g * FRAC_1_SQRT_2))
}

math::vectorised!(fn gated(h: &[f32], g: &[f32], y: &mut [f32]) = gated_lanes);

/// `y = h·gelu(g)` for one row.
#[inline(always)]
fn gated_lanes(h: &[f32], g: &[f32], y: &mut [f32]) {
    for ((y, h), g) in y.iter_mut().zip(h).zip(g) {
        *y = h * g * cdf(*g);
    }
}

math::vectorised!(fn gated_grad(h: &[f32], g: &[f32], go: &[f32], gh: &mut [f32], gg: &mut [f32]) = gated_grad_lanes);

/// ∂/∂h and ∂/∂g of one row for the output gradient `go`.
#[inline(always)]
fn gated_grad_lanes(h: &[f32], g: &[f32], go: &[f32], gh: &mut [f32], gg: &mut [f32]) {
    let norm = 1.0 / (2.0 * PI).sqrt();
    for i in 0..h.len() {
        let phi = cdf(g[i]);
        gh[i] = go[i] * g[i] * phi;
        gg[i] = go[i] * h[i] * (phi + g[i] * norm * math::exp(-0.5 * g[i] * g[i]));
    }
}

impl Kernel for Geglu {
    fn name(&self) -> &'static str {
        "geglu"
    }

    fn out_dims(&self, item: &[usize]) -> candle_core::Result<Vec<usize>> {
        match item.split_last() {
            Some((&n, rest)) if n > 0 && n % 2 == 0 => Ok([rest, &[n / 2]].concat()),
            _ => candle_core::bail!("geglu: the last axis of {item:?} must hold [h, gate] of equal width"),
        }
    }

    fn forward(&self, x: &[f32], item: &[usize], y: &mut [f32]) {
        let n = item[item.len() - 1];
        let half = n / 2;
        x.par_chunks(n * ROWS).zip(y.par_chunks_mut(half * ROWS)).for_each(|(x, y)| {
            for (x, y) in x.chunks(n).zip(y.chunks_mut(half)) {
                let (h, g) = x.split_at(half);
                gated(h, g, y);
            }
        });
    }

    /// ∂/∂h = gelu(g), ∂/∂g = h·(Φ(g) + g·φ(g)).
    fn input_grad(&self, x: &[f32], item: &[usize], go: &[f32], gx: &mut [f32]) {
        let n = item[item.len() - 1];
        let half = n / 2;
        x.par_chunks(n * ROWS).zip(go.par_chunks(half * ROWS)).zip(gx.par_chunks_mut(n * ROWS)).for_each(|((x, go), gx)| {
            for ((x, go), gx) in x.chunks(n).zip(go.chunks(half)).zip(gx.chunks_mut(n)) {
                let (h, g) = x.split_at(half);
                let (gh, gg) = gx.split_at_mut(half);
                gated_grad(h, g, go, gh, gg);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::op;
    use candle_core::{DType, Device, Tensor, Var};
    use std::sync::Arc;

    #[test]
    fn the_dispatched_rows_equal_the_baseline_build_bit_for_bit() {
        let row = |k: usize| (0..301).map(|i| ((i * k) % 613) as f32 / 60.0 - 5.0).collect::<Vec<f32>>();
        let (h, g, go) = (row(7919), row(104_729), row(31));
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let (mut fast, mut baseline) = (vec![0f32; 301], vec![0f32; 301]);
        gated(&h, &g, &mut fast);
        gated_lanes(&h, &g, &mut baseline);
        assert_eq!(bits(&fast), bits(&baseline));
        let (mut fast_h, mut fast_g, mut base_h, mut base_g) = (vec![0f32; 301], vec![0f32; 301], vec![0f32; 301], vec![0f32; 301]);
        gated_grad(&h, &g, &go, &mut fast_h, &mut fast_g);
        gated_grad_lanes(&h, &g, &go, &mut base_h, &mut base_g);
        assert_eq!((bits(&fast_h), bits(&fast_g)), (bits(&base_h), bits(&base_g)));
    }

    #[test]
    fn matches_candle_values_and_input_gradients() {
        let x = Tensor::from_vec((0..2 * 5 * 14).map(|i| ((i * 7919) % 1009) as f32 / 120.0 - 4.2).collect::<Vec<_>>(), (2, 5, 14), &Device::Cpu).unwrap();
        let xv = Var::from_tensor(&x.to_dtype(DType::F64).unwrap()).unwrap();
        let want = (xv.narrow(2, 0, 7).unwrap() * xv.narrow(2, 7, 7).unwrap().gelu_erf().unwrap()).unwrap();
        let xt = Var::from_tensor(&x).unwrap();
        let got = op::apply(&Arc::new(Geglu), xt.as_tensor()).unwrap();
        let diff = |a: &Tensor, b: &Tensor| (a.to_dtype(DType::F64).unwrap() - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
        assert!(diff(&got, &want) < 3e-6, "forward off by {}", diff(&got, &want));
        let g = Tensor::from_vec((0..2 * 5 * 7).map(|i| ((i * 31) % 17) as f32 / 4.0 - 2.0).collect::<Vec<_>>(), (2, 5, 7), &Device::Cpu).unwrap();
        let want_gx = (want * g.to_dtype(DType::F64).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
        let gx = (got * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let (gx, want_gx) = (gx.get(xt.as_tensor()).unwrap(), want_gx.get(xv.as_tensor()).unwrap());
        assert!(diff(gx, want_gx) < 1e-5, "input gradient off by {}", diff(gx, want_gx));
    }
}
