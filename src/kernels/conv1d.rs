//! 1-D convolutions (PyTorch's `Conv1d` and `ConvTranspose1d`, one group) and their
//! adjoints, on im2col tiles.

use super::activation::Activation1d;
use super::fftconv::{self, FftConv};
use super::tiles::{for_tiles, gather, gemm_tile, tile_len, Out, Update, Weights};
use rayon::prelude::*;

/// One GEMM-shaped convolution:
/// `y[o, n] (+)= Σ_{m < taps, c < c_in} w[o, m·c_in + c] · act(x[c, n·stride + m·dilation + offset])`,
/// zero where the input index leaves the input. Every convolution here, forward or adjoint,
/// plain or one phase of a transposed one, is a plan of this shape.
#[derive(Debug, Clone)]
struct Plan {
    /// (c_out, taps·c_in), tap-major.
    w: Vec<f32>,
    c_in: usize,
    c_out: usize,
    taps: usize,
    stride: usize,
    dilation: usize,
}

impl Plan {
    /// `weight(o, c, m)` gives the tap-`m` weight from input channel `c` to output `o`.
    fn new(c_out: usize, c_in: usize, taps: usize, stride: usize, dilation: usize, weight: impl Fn(usize, usize, usize) -> f32) -> Self {
        let mut w = Vec::with_capacity(c_out * taps * c_in);
        for o in 0..c_out {
            for m in 0..taps {
                w.extend((0..c_in).map(|c| weight(o, c, m)));
            }
        }
        Self { w, c_in, c_out, taps, stride, dilation }
    }

    /// Runs the plan on `x` (c_in × len_in) into `out`, over all of `out.len` positions.
    fn run(&self, x: &[f32], len_in: usize, offset: isize, act: Activation1d, out: Out, accumulate: bool) {
        assert_eq!(x.len(), self.c_in * len_in, "conv1d input is not {} × {len_in}", self.c_in);
        let kk = self.taps * self.c_in;
        for_tiles(out.len, tile_len(kk), |range, col, par| {
            let n = range.len();
            if col.len() < kk * n {
                col.resize(kk * n, 0.0);
            }
            for m in 0..self.taps {
                let i0 = offset + (range.start * self.stride + m * self.dilation) as isize;
                for c in 0..self.c_in {
                    let row = &mut col[(m * self.c_in + c) * n..][..n];
                    gather(row, &x[c * len_in..(c + 1) * len_in], i0, self.stride);
                    act.apply(row);
                }
            }
            gemm_tile(out, range, Weights::new(&self.w, self.c_out, kk), &col[..kk * n], Update::adding(accumulate), par);
        });
    }
}

/// Fills each of the `c` rows of `y` with its bias (or zero) plus `residual`.
fn init_rows(y: &mut [f32], c: usize, bias: Option<&[f32]>, residual: Option<&[f32]>) {
    let len = (y.len() / c.max(1)).max(1);
    let bias = |row: usize| bias.map_or(0.0, |b| b[row]);
    match residual {
        Some(r) => {
            assert_eq!(r.len(), y.len(), "residual and output differ in size");
            y.par_chunks_mut(len).zip(r.par_chunks(len)).enumerate().for_each(|(row, (y, r))| {
                let b = bias(row);
                y.iter_mut().zip(r).for_each(|(y, r)| *y = b + r);
            });
        }
        None => y.par_chunks_mut(len).enumerate().for_each(|(row, y)| y.fill(bias(row))),
    }
}

/// PyTorch's `Conv1d` (stride 1, any padding and dilation) with frozen weights: the forward
/// and its adjoint, the convolution with the flipped, transposed kernel.
#[derive(Debug)]
pub struct Conv1d {
    kind: Kind,
    bias: Option<Vec<f32>>,
    c_in: usize,
    c_out: usize,
    padding: usize,
    dilation: usize,
    kernel: usize,
}

/// How the sums are done.
#[derive(Debug)]
enum Kind {
    /// im2col tiles.
    Direct { forward: Plan, adjoint: Plan },
    /// Long kernels with "same" padding between wide layers: overlap-save DFTs.
    Fft(FftConv),
}

impl Conv1d {
    /// `weight` in PyTorch's layout (c_out, c_in, kernel), row-major.
    pub fn new(weight: &[f32], bias: Option<Vec<f32>>, (c_out, c_in, kernel): (usize, usize, usize), padding: usize, dilation: usize) -> Self {
        assert!(kernel > 0 && dilation > 0, "conv1d: kernel and dilation must be non-zero");
        assert_eq!(weight.len(), c_out * c_in * kernel, "conv1d weight is not {c_out} × {c_in} × {kernel}");
        assert!(bias.as_ref().is_none_or(|b| b.len() == c_out), "conv1d bias is not {c_out} long");
        let kind = if fftconv::applies(c_in, c_out, kernel, padding, dilation) {
            Kind::Fft(FftConv::new(weight, (c_out, c_in, kernel), dilation))
        } else {
            let at = |o: usize, c: usize, m: usize| weight[(o * c_in + c) * kernel + m];
            Kind::Direct {
                forward: Plan::new(c_out, c_in, kernel, 1, dilation, at),
                adjoint: Plan::new(c_in, c_out, kernel, 1, dilation, |c, o, m| at(o, c, kernel - 1 - m)),
            }
        };
        Self { kind, bias, c_in, c_out, padding, dilation, kernel }
    }

    pub fn channels(&self) -> (usize, usize) {
        (self.c_in, self.c_out)
    }

    /// Output length for `len_in` input samples; `None` when the kernel does not fit.
    pub fn out_len(&self, len_in: usize) -> Option<usize> {
        (len_in + 2 * self.padding).checked_sub(self.dilation * (self.kernel - 1)).filter(|l| *l > 0)
    }

    /// `y = conv(act(x)) + bias (+ residual)`; `x` is (c_in, len_in), `y` (c_out, out_len).
    pub fn forward(&self, x: &[f32], len_in: usize, act: Activation1d, residual: Option<&[f32]>, y: &mut [f32]) {
        let len_out = self.out_len(len_in).expect("conv1d: input shorter than the kernel");
        let accumulate = self.bias.is_some() || residual.is_some();
        if accumulate {
            init_rows(y, self.c_out, self.bias.as_deref(), residual);
        }
        match &self.kind {
            Kind::Direct { forward, .. } => forward.run(x, len_in, -(self.padding as isize), act, Out::rows(y, self.c_out, len_out), accumulate),
            Kind::Fft(fft) => fft.forward(x, len_in, act, y, accumulate),
        }
    }

    /// The input gradient `gx` (c_in, len_in) for the output gradient `g` (c_out, out_len).
    pub fn input_grad(&self, g: &[f32], len_in: usize, gx: &mut [f32]) {
        let len_out = self.out_len(len_in).expect("conv1d: input shorter than the kernel");
        match &self.kind {
            Kind::Direct { adjoint, .. } => {
                // y[n] = Σ_m w[m]·x[n − p + m·d]  ⇒  gx[i] = Σ_m' w[k−1−m']·g[i − (span − p) + m'·d].
                let offset = self.padding as isize - (self.dilation * (self.kernel - 1)) as isize;
                adjoint.run(g, len_out, offset, Activation1d::Identity, Out::rows(gx, self.c_in, len_in), false);
            }
            Kind::Fft(fft) => fft.adjoint(g, len_in, gx),
        }
    }
}

/// PyTorch's `ConvTranspose1d` (dilation 1) with frozen weights. The forward runs as
/// `stride` ordinary convolutions, one per output phase (polyphase: no zeros are stuffed
/// between the inputs, so no multiply is wasted); the adjoint is the strided convolution
/// with the same kernel.
#[derive(Debug, Clone)]
pub struct ConvTranspose1d {
    /// Per phase r (outputs t with t + padding ≡ r mod stride): the sub-kernel of taps
    /// r, r + stride, …, reversed.
    phases: Vec<Plan>,
    adjoint: Plan,
    bias: Option<Vec<f32>>,
    padding: usize,
    output_padding: usize,
    stride: usize,
    kernel: usize,
}

impl ConvTranspose1d {
    /// `weight` in PyTorch's layout (c_in, c_out, kernel), row-major.
    pub fn new(
        weight: &[f32],
        bias: Option<Vec<f32>>,
        (c_in, c_out, kernel): (usize, usize, usize),
        padding: usize,
        output_padding: usize,
        stride: usize,
    ) -> Self {
        assert!(kernel > 0 && stride > 0 && output_padding < stride, "conv_transpose1d: bad geometry");
        assert_eq!(weight.len(), c_in * c_out * kernel, "conv_transpose1d weight is not {c_in} × {c_out} × {kernel}");
        assert!(bias.as_ref().is_none_or(|b| b.len() == c_out), "conv_transpose1d bias is not {c_out} long");
        let at = |c: usize, o: usize, j: usize| weight[(c * c_out + o) * kernel + j];
        let phases = (0..stride)
            .map(|r| {
                let taps = kernel.saturating_sub(r).div_ceil(stride);
                Plan::new(c_out, c_in, taps, 1, 1, |o, c, m| at(c, o, r + (taps - 1 - m) * stride))
            })
            .collect();
        let adjoint = Plan::new(c_in, c_out, kernel, stride, 1, at);
        Self { phases, adjoint, bias, padding, output_padding, stride, kernel }
    }

    pub fn channels(&self) -> (usize, usize) {
        (self.adjoint.c_out, self.adjoint.c_in)
    }

    /// PyTorch's output length for `len_in` input samples; `None` when it is not positive.
    pub fn out_len(&self, len_in: usize) -> Option<usize> {
        ((len_in.max(1) - 1) * self.stride + self.kernel + self.output_padding).checked_sub(2 * self.padding).filter(|l| *l > 0 && len_in > 0)
    }

    /// `y = conv_transpose(act(x)) + bias`; `x` is (c_in, len_in), `y` (c_out, out_len).
    pub fn forward(&self, x: &[f32], len_in: usize, act: Activation1d, y: &mut [f32]) {
        let (_, c_out) = self.channels();
        let len_out = self.out_len(len_in).expect("conv_transpose1d: empty output");
        // Every phase accumulates into the bias (or zeros): phases with no taps leave it.
        init_rows(y, c_out, self.bias.as_deref(), None);
        let (s, p) = (self.stride, self.padding);
        for (r, plan) in self.phases.iter().enumerate() {
            // Output t = q·s + r − p takes taps j = r + m·s at inputs q − m.
            let q_lo = p.saturating_sub(r).div_ceil(s);
            let q_hi = (len_out + p).saturating_sub(r).div_ceil(s);
            if q_hi <= q_lo || plan.taps == 0 {
                continue;
            }
            let out = Out::strided(y, c_out, len_out, q_lo * s + r - p, s, q_hi - q_lo);
            // Reversed taps: input index q − (taps − 1) + m'.
            plan.run(x, len_in, q_lo as isize - (plan.taps as isize - 1), act, out, true);
        }
    }

    /// The input gradient `gx` (c_in, len_in) for the output gradient `g` (c_out, out_len):
    /// `gx[c, i] = Σ_{o, j} w[c, o, j] · g[o, i·s + j − p]`.
    pub fn input_grad(&self, g: &[f32], len_in: usize, gx: &mut [f32]) {
        let (c_in, _) = self.channels();
        let len_out = self.out_len(len_in).expect("conv_transpose1d: empty output");
        self.adjoint.run(g, len_out, -(self.padding as isize), Activation1d::Identity, Out::rows(gx, c_in, len_in), false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tensor;
    use crate::kernels::testing::{max_diff, rand};
    use candle_core::{DType, Var};

    /// Values and input gradients of [`Conv1d`] against candle's `conv1d` and its autograd,
    /// in f64, with the leaky ReLU fused on the way in.
    #[test]
    fn conv1d_matches_candle_values_and_input_gradients() {
        // (c_in, c_out, kernel, padding, dilation, len): odd sizes, paddings below, at and
        // above the kernel span, dilations.
        // The last two take the DFT path (long odd kernels, "same" padding, wide layers).
        let cases = [
            (3, 5, 3, 1, 1, 17),
            (4, 2, 7, 9, 3, 11),
            (1, 6, 11, 0, 5, 63),
            (5, 3, 4, 2, 2, 9),
            (2, 2, 1, 0, 1, 5),
            (32, 33, 11, 25, 5, 301),
            (128, 130, 11, 25, 5, 301),
            (129, 128, 7, 3, 1, 57),
        ];
        for (i, &(c_in, c_out, k, p, d, l)) in cases.iter().enumerate() {
            let w = rand(&[c_out, c_in, k], i as u64);
            let b = rand(&[c_out], 100 + i as u64);
            let x = rand(&[1, c_in, l], 200 + i as u64);
            let conv = Conv1d::new(&tensor::to_vec(&w).unwrap(), Some(tensor::to_vec(&b).unwrap()), (c_out, c_in, k), p, d);
            let l_out = conv.out_len(l).unwrap();
            let xs = tensor::to_vec(&x).unwrap();
            let mut y = vec![f32::NAN; c_out * l_out];
            conv.forward(&xs, l, Activation1d::LeakyRelu(0.1), None, &mut y);
            let (w64, b64) = (w.to_dtype(DType::F64).unwrap(), b.to_dtype(DType::F64).unwrap());
            let x64 = x.to_dtype(DType::F64).unwrap();
            let act = Var::from_tensor(&x64.maximum(&(&x64 * 0.1).unwrap()).unwrap()).unwrap();
            let want = act.conv1d(&w64, p, 1, d, 1).unwrap().broadcast_add(&b64.reshape((1, c_out, 1)).unwrap()).unwrap();
            assert!(max_diff(&y, &want) < 2e-6, "case {i}: forward off by {}", max_diff(&y, &want));

            // The adjoint of the convolution itself (the activation's derivative is the
            // caller's, through a SignMask).
            let g = rand(&[1, c_out, l_out], 300 + i as u64);
            let grads = (want * g.to_dtype(DType::F64).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
            let want_gx = grads.get(act.as_tensor()).unwrap();
            let mut gx = vec![f32::NAN; c_in * l];
            conv.input_grad(&tensor::to_vec(&g).unwrap(), l, &mut gx);
            assert!(max_diff(&gx, want_gx) < 2e-6, "case {i}: input gradient off by {}", max_diff(&gx, want_gx));
        }
    }

    #[test]
    fn conv1d_adds_the_residual() {
        let w = rand(&[3, 2, 3], 1);
        let conv = Conv1d::new(&tensor::to_vec(&w).unwrap(), None, (3, 2, 3), 1, 1);
        let x = tensor::to_vec(&rand(&[2, 8], 2)).unwrap();
        let r: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let (mut plain, mut with) = (vec![0.0; 24], vec![0.0; 24]);
        conv.forward(&x, 8, Activation1d::Identity, None, &mut plain);
        conv.forward(&x, 8, Activation1d::Identity, Some(&r), &mut with);
        for ((p, w), r) in plain.iter().zip(&with).zip(&r) {
            assert!((p + r - w).abs() < 1e-5);
        }
    }

    /// PyTorch's definition, in f64: y[o, i·s − p + j] += x[c, i]·w[c, o, j], then bias;
    /// (padding, output padding, stride) in `geometry`.
    fn naive_conv_transpose1d(
        x: &[f32],
        w: &[f32],
        b: &[f32],
        (c_in, c_out, k): (usize, usize, usize),
        l: usize,
        (p, op, s): (usize, usize, usize),
    ) -> Vec<f64> {
        let l_out = (l - 1) * s + k + op - 2 * p;
        let mut y: Vec<f64> = (0..c_out * l_out).map(|i| b[i / l_out] as f64).collect();
        for c in 0..c_in {
            for o in 0..c_out {
                for i in 0..l {
                    for j in 0..k {
                        let t = (i * s + j) as isize - p as isize;
                        if t >= 0 && (t as usize) < l_out {
                            y[o * l_out + t as usize] += x[c * l + i] as f64 * w[(c * c_out + o) * k + j] as f64;
                        }
                    }
                }
            }
        }
        y
    }

    #[test]
    fn conv_transpose1d_matches_the_definition_and_its_adjoint() {
        // (c_in, c_out, kernel, stride, padding, output_padding, len): the vocoder's
        // (16, 5, 5), (16, 4, 6), (8, 2, 3), (4, 2, 1), and kernels shorter than the stride.
        let cases =
            [(3, 2, 16, 5, 5, 0, 7), (2, 3, 16, 4, 6, 0, 9), (4, 3, 8, 2, 3, 1, 6), (2, 2, 4, 2, 1, 0, 1), (3, 2, 2, 3, 0, 2, 5), (5, 4, 7, 3, 2, 1, 13)];
        for (i, &(c_in, c_out, k, s, p, op, l)) in cases.iter().enumerate() {
            let w = tensor::to_vec(&rand(&[c_in, c_out, k], 10 + i as u64)).unwrap();
            let b = tensor::to_vec(&rand(&[c_out], 20 + i as u64)).unwrap();
            let x = tensor::to_vec(&rand(&[c_in, l], 30 + i as u64)).unwrap();
            let conv = ConvTranspose1d::new(&w, Some(b.clone()), (c_in, c_out, k), p, op, s);
            let l_out = conv.out_len(l).unwrap();
            let mut y = vec![f32::NAN; c_out * l_out];
            conv.forward(&x, l, Activation1d::Identity, &mut y);
            let want = naive_conv_transpose1d(&x, &w, &b, (c_in, c_out, k), l, (p, op, s));
            let err = y.iter().zip(&want).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
            assert!(err < 2e-6, "case {i}: forward off by {err}");
            // ⟨A x, g⟩ = ⟨x, Aᵀ g⟩ on the linear part (no bias).
            let unbiased = ConvTranspose1d::new(&w, None, (c_in, c_out, k), p, op, s);
            let mut ax = vec![0.0; c_out * l_out];
            unbiased.forward(&x, l, Activation1d::Identity, &mut ax);
            let g = tensor::to_vec(&rand(&[c_out, l_out], 40 + i as u64)).unwrap();
            let mut gx = vec![f32::NAN; c_in * l];
            conv.input_grad(&g, l, &mut gx);
            let lhs: f64 = ax.iter().zip(&g).map(|(a, b)| *a as f64 * *b as f64).sum();
            let rhs: f64 = x.iter().zip(&gx).map(|(a, b)| *a as f64 * *b as f64).sum();
            assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "case {i}: ⟨Ax,g⟩ {lhs} ≠ ⟨x,Aᵀg⟩ {rhs}");
        }
    }

    /// Large enough for the tiles to run in parallel, against candle's `conv1d`.
    #[test]
    fn parallel_tiles_agree_with_candle() {
        let (c, l, k, d) = (16, 4099, 7, 3);
        let w = rand(&[c, c, k], 7);
        let x = rand(&[1, c, l], 8);
        let conv = Conv1d::new(&tensor::to_vec(&w).unwrap(), None, (c, c, k), d * (k - 1) / 2, d);
        let mut y = vec![f32::NAN; c * l];
        conv.forward(&tensor::to_vec(&x).unwrap(), l, Activation1d::Identity, None, &mut y);
        let want = x.conv1d(&w, d * (k - 1) / 2, 1, d, 1).unwrap();
        assert!(max_diff(&y, &want) < 2e-6);
    }
}
