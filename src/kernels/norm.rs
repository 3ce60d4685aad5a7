//! Group normalisation (PyTorch's `GroupNorm`), optionally followed by SiLU, fused into one
//! pass, and its input gradient.

use super::math::{self, sigmoid};
use super::op::Kernel;
use rayon::prelude::*;

/// `nn.GroupNorm(groups, channels, eps)` with its affine weights, and SiLU after it when
/// `silu`.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    groups: usize,
    eps: f64,
    weight: Vec<f32>,
    bias: Vec<f32>,
    silu: bool,
}

/// Σ f(a[i], b[i]) accumulated in eight f32 lanes over blocks of 1024 (so that it
/// vectorises), the blocks added in f64.
#[inline(always)]
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    a.chunks(1024)
        .zip(b.chunks(1024))
        .map(|(a, b)| {
            let mut acc = [0f32; 8];
            let (mut ca, mut cb) = (a.chunks_exact(8), b.chunks_exact(8));
            for (a, b) in (&mut ca).zip(&mut cb) {
                for i in 0..8 {
                    acc[i] += f(a[i], b[i]);
                }
            }
            let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(a, b)| f(*a, *b)).sum();
            (acc.iter().sum::<f32>() + tail) as f64
        })
        .sum()
}

math::vectorised!(fn stats(x: &[f32], eps: f64) -> (f32, f32) = stats_lanes);

/// Mean and 1/σ of one group (two passes: the variance about the mean).
#[inline(always)]
fn stats_lanes(x: &[f32], eps: f64) -> (f32, f32) {
    let n = x.len().max(1) as f64;
    let mean = (lane_sum(x, x, |a, _| a) / n) as f32;
    let var = lane_sum(x, x, |a, _| (a - mean) * (a - mean)) / n;
    (mean, (1.0 / (var + eps).sqrt()) as f32)
}

math::vectorised!(fn affine(x: &[f32], y: &mut [f32], scale: f32, shift: f32, silu: bool) = affine_lanes);

/// `y = x·scale + shift` for one channel, then SiLU when `silu`.
#[inline(always)]
fn affine_lanes(x: &[f32], y: &mut [f32], scale: f32, shift: f32, silu: bool) {
    if silu {
        for (x, y) in x.iter().zip(y) {
            let v = x * scale + shift;
            *y = v * sigmoid(v);
        }
    } else {
        for (x, y) in x.iter().zip(y) {
            *y = x * scale + shift;
        }
    }
}

math::vectorised!(fn normalised_grad(x: &[f32], g: &[f32], gx: &mut [f32], stats: (f32, f32), affine: (f32, f32), silu: bool) = normalised_grad_lanes);

/// The gradient with respect to the normalised x̂ of one channel, `g·silu'(y)·γ`, into `gx`.
#[inline(always)]
fn normalised_grad_lanes(x: &[f32], g: &[f32], gx: &mut [f32], (mean, rstd): (f32, f32), (w, b): (f32, f32), silu: bool) {
    if silu {
        for ((x, g), gx) in x.iter().zip(g).zip(gx.iter_mut()) {
            let v = (x - mean) * rstd * w + b;
            let sg = sigmoid(v);
            *gx = g * sg * (1.0 + v * (1.0 - sg)) * w;
        }
    } else {
        gx.iter_mut().zip(g).for_each(|(gx, g)| *gx = g * w);
    }
}

math::vectorised!(fn centre_grad(x: &[f32], gx: &mut [f32], mean: f32, rstd: f32) = centre_grad_lanes);

/// The group's input gradient from its x̂ gradient in `gx`, in place, with Σ gx̂ and
/// Σ gx̂·x̂ = rstd·Σ gx̂·(x − mean).
#[inline(always)]
fn centre_grad_lanes(x: &[f32], gx: &mut [f32], mean: f32, rstd: f32) {
    let n = x.len() as f64;
    let mean_g = (lane_sum(gx, gx, |a, _| a) / n) as f32;
    let mean_gx = (lane_sum(gx, x, |a, b| a * (b - mean)) / n) as f32 * rstd;
    for (x, gx) in x.iter().zip(gx.iter_mut()) {
        let xh = (x - mean) * rstd;
        *gx = rstd * (*gx - mean_g - xh * mean_gx);
    }
}

impl GroupNorm {
    pub fn new(groups: usize, eps: f64, weight: Vec<f32>, bias: Vec<f32>, silu: bool) -> Self {
        assert!(groups > 0 && weight.len().is_multiple_of(groups) && weight.len() == bias.len(), "group norm: {groups} groups for {} channels", weight.len());
        Self { groups, eps, weight, bias, silu }
    }

    pub fn channels(&self) -> usize {
        self.weight.len()
    }

    /// `y = norm(x)`, then SiLU when asked; `x` (batch, channels, spatial…), `spatial` the
    /// product of the trailing dimensions.
    pub fn forward(&self, x: &[f32], spatial: usize, y: &mut [f32]) {
        let silu = self.silu;
        assert_eq!(x.len(), y.len());
        let group = spatial * (self.channels() / self.groups);
        assert!(
            spatial > 0 && x.len().is_multiple_of(group * self.groups),
            "group norm: input of {} elements is not (batch, {}, {spatial})",
            x.len(),
            self.channels()
        );
        let cpg = self.channels() / self.groups;
        x.par_chunks(group).zip(y.par_chunks_mut(group)).enumerate().for_each(|(block, (x, y))| {
            let (mean, rstd) = stats(x, self.eps);
            let c0 = (block % self.groups) * cpg;
            for (k, (x, y)) in x.chunks(spatial).zip(y.chunks_mut(spatial)).enumerate() {
                let (scale, shift) = (rstd * self.weight[c0 + k], self.bias[c0 + k] - mean * rstd * self.weight[c0 + k]);
                affine(x, y, scale, shift, silu);
            }
        });
    }

    /// The input gradient for the output gradient `g`, the statistics recomputed from `x`.
    pub fn input_grad(&self, x: &[f32], g: &[f32], spatial: usize, gx: &mut [f32]) {
        let silu = self.silu;
        assert!(x.len() == g.len() && g.len() == gx.len());
        let cpg = self.channels() / self.groups;
        let group = spatial * cpg;
        assert!(
            spatial > 0 && x.len().is_multiple_of(group * self.groups),
            "group norm: input of {} elements is not (batch, {}, {spatial})",
            x.len(),
            self.channels()
        );
        x.par_chunks(group).zip(g.par_chunks(group)).zip(gx.par_chunks_mut(group)).enumerate().for_each(|(block, ((x, g), gx))| {
            let (mean, rstd) = stats(x, self.eps);
            let c0 = (block % self.groups) * cpg;
            // gx̂ = g·silu'(y)·γ into gx.
            for (k, ((x, g), gx)) in x.chunks(spatial).zip(g.chunks(spatial)).zip(gx.chunks_mut(spatial)).enumerate() {
                let (w, b) = (self.weight[c0 + k], self.bias[c0 + k]);
                normalised_grad(x, g, gx, (mean, rstd), (w, b), silu);
            }
            centre_grad(x, gx, mean, rstd);
        });
    }
}

impl Kernel for GroupNorm {
    fn name(&self) -> &'static str {
        if self.silu {
            "group-norm-silu"
        } else {
            "group-norm"
        }
    }

    fn out_dims(&self, item: &[usize]) -> candle_core::Result<Vec<usize>> {
        match item.first() {
            Some(&c) if c == self.channels() && item.len() > 1 => Ok(item.to_vec()),
            _ => candle_core::bail!("group norm over {} channels: input item is {item:?}", self.channels()),
        }
    }

    fn forward(&self, x: &[f32], item: &[usize], y: &mut [f32]) {
        self.forward(x, item[1..].iter().product(), y);
    }

    fn input_grad(&self, x: &[f32], item: &[usize], g: &[f32], gx: &mut [f32]) {
        self.input_grad(x, g, item[1..].iter().product(), gx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tensor;
    use crate::kernels::testing::{max_diff, rand};
    use candle_core::{DType, Module, Var};

    /// Against candle_nn's `GroupNorm` (+ `silu`) and its autograd, in f64.
    #[test]
    fn group_norm_matches_candle_values_and_input_gradients() {
        // (batch, channels, groups, spatial dims): odd spatial sizes, one channel per group.
        for (i, &(b, c, groups, h, w)) in [(1, 8, 4, 5, 3), (2, 6, 3, 7, 1), (1, 4, 4, 9, 11), (3, 32, 8, 2, 5)].iter().enumerate() {
            for silu in [false, true] {
                let x = rand(&[b, c, h, w], i as u64).affine(3.0, 1.5).unwrap();
                let (wt, bs) = (rand(&[c], 10 + i as u64).affine(1.0, 0.5).unwrap(), rand(&[c], 20 + i as u64));
                let norm = GroupNorm::new(groups, 1e-6, tensor::to_vec(&wt).unwrap(), tensor::to_vec(&bs).unwrap(), silu);
                let xs = tensor::to_vec(&x).unwrap();
                let mut y = vec![f32::NAN; xs.len()];
                norm.forward(&xs, h * w, &mut y);
                let reference = candle_nn::GroupNorm::new(wt.to_dtype(DType::F64).unwrap(), bs.to_dtype(DType::F64).unwrap(), c, groups, 1e-6).unwrap();
                let xv = Var::from_tensor(&x.to_dtype(DType::F64).unwrap()).unwrap();
                let mut want = reference.forward(xv.as_tensor()).unwrap();
                if silu {
                    want = want.silu().unwrap();
                }
                assert!(max_diff(&y, &want) < 2e-6, "case {i} silu {silu}: forward off by {}", max_diff(&y, &want));
                let g = rand(&[b, c, h, w], 30 + i as u64);
                let grads = (want * g.to_dtype(DType::F64).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
                let mut gx = vec![f32::NAN; xs.len()];
                norm.input_grad(&xs, &tensor::to_vec(&g).unwrap(), h * w, &mut gx);
                let want_gx = grads.get(xv.as_tensor()).unwrap();
                assert!(max_diff(&gx, want_gx) < 2e-6, "case {i} silu {silu}: input gradient off by {}", max_diff(&gx, want_gx));
            }
        }
    }
}
