//! 2-D convolutions (PyTorch's `Conv2d`, one group) and, at stride 1, their adjoint, on
//! im2col tiles of whole output rows.

use super::op::Kernel;
use super::tiles::{for_tiles, gather, gemm_tile, tile_len, Out, Update, Weights};
use super::winograd::Winograd;
use std::sync::OnceLock;

/// Images from this many pixels on take the Winograd path (3×3, stride 1, padding 1):
/// below it a layer has too few tiles to keep every thread's GEMMs busy (`dgg-restore
/// bench kernels`: the UNet's 32 × 4 level gains by it, its 16 × 2 level does not).
const WINOGRAD_MIN_PIXELS: usize = 128;
/// ... and layers with at least this many channels in and out together: with fewer, the
/// transforms cost what the GEMMs save (`dgg-restore bench kernels`: 128 → 128 runs as
/// fast either way, 256 → 128 and up 1.3–2× faster by Winograd).
const WINOGRAD_MIN_CHANNELS: usize = 384;

/// Rows × columns of an image.
pub type Size = (usize, usize);

/// A convolution over (c_in, h, w) images: `y[o, r, q] = Σ_{c, dy, dx} w[o, c, dy, dx] ·
/// x[c, r·stride + dy + offset, q·stride + dx + offset]`, zero outside the image.
struct Geometry {
    c_in: usize,
    c_out: usize,
    kernel: Size,
    stride: usize,
    offset: isize,
}

impl Geometry {
    /// Runs it over `x` (c_in × size) into `y` (c_out × out), `w` in PyTorch's layout.
    fn run(&self, w: &[f32], x: &[f32], size: Size, y: &mut [f32], out: Size, accumulate: bool) {
        let (h, wd) = size;
        let (kh, kw) = self.kernel;
        let kk = self.c_in * kh * kw;
        assert_eq!(x.len(), self.c_in * h * wd, "conv2d input is not {} × {h} × {wd}", self.c_in);
        let (ho, wo) = out;
        let dst = Out::rows(y, self.c_out, ho * wo);
        for_tiles(ho, (tile_len(kk) / wo.max(1)).max(1), |rows, col, par| {
            let n = rows.len() * wo;
            if col.len() < kk * n {
                col.resize(kk * n, 0.0);
            }
            for c in 0..self.c_in {
                let image = &x[c * h * wd..(c + 1) * h * wd];
                for dy in 0..kh {
                    for dx in 0..kw {
                        let slab = &mut col[((c * kh + dy) * kw + dx) * n..][..n];
                        for (k, r) in rows.clone().enumerate() {
                            let row = &mut slab[k * wo..(k + 1) * wo];
                            let src = (r * self.stride + dy) as isize + self.offset;
                            if (0..h as isize).contains(&src) {
                                let line = &image[src as usize * wd..(src as usize + 1) * wd];
                                gather(row, line, dx as isize + self.offset, self.stride);
                            } else {
                                row.fill(0.0);
                            }
                        }
                    }
                }
            }
            gemm_tile(dst, rows.start * wo..rows.end * wo, Weights::new(w, self.c_out, kk), &col[..kk * n], Update::adding(accumulate), par);
        });
    }
}

/// PyTorch's `Conv2d` with frozen weights (one group, square padding, any kernel and
/// stride); at stride 1 also its adjoint, the convolution with the flipped, transposed
/// kernel, whose weights are laid out on first use (a forward-only network never pays).
#[derive(Debug)]
pub struct Conv2d {
    /// (c_out, c_in, kh, kw), PyTorch's layout.
    weight: Vec<f32>,
    adjoint: OnceLock<Vec<f32>>,
    /// The forward and the adjoint in Winograd's transform domain, laid out on first use.
    winograd: OnceLock<Winograd>,
    winograd_adjoint: OnceLock<Winograd>,
    bias: Option<Vec<f32>>,
    c_in: usize,
    c_out: usize,
    kernel: Size,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    pub fn new(weight: Vec<f32>, bias: Option<Vec<f32>>, (c_out, c_in, kh, kw): (usize, usize, usize, usize), stride: usize, padding: usize) -> Self {
        assert!(kh > 0 && kw > 0 && stride > 0, "conv2d: kernel and stride must be non-zero");
        assert_eq!(weight.len(), c_out * c_in * kh * kw, "conv2d weight is not {c_out} × {c_in} × {kh} × {kw}");
        assert!(bias.as_ref().is_none_or(|b| b.len() == c_out), "conv2d bias is not {c_out} long");
        Self {
            weight,
            adjoint: OnceLock::new(),
            winograd: OnceLock::new(),
            winograd_adjoint: OnceLock::new(),
            bias,
            c_in,
            c_out,
            kernel: (kh, kw),
            stride,
            padding,
        }
    }

    pub fn channels(&self) -> (usize, usize) {
        (self.c_in, self.c_out)
    }

    /// Whether [`Conv2d::input_grad`] is available.
    pub fn has_adjoint(&self) -> bool {
        self.stride == 1 && self.kernel.0 == self.kernel.1 && self.padding < self.kernel.0
    }

    /// Whether an image of `size` takes the Winograd path.
    fn winograd_applies(&self, (h, w): Size) -> bool {
        self.kernel == (3, 3) && self.stride == 1 && self.padding == 1 && h * w >= WINOGRAD_MIN_PIXELS && self.c_in + self.c_out >= WINOGRAD_MIN_CHANNELS
    }

    /// Output size for an input of `size`; `None` when the kernel does not fit.
    pub fn out_size(&self, (h, w): Size) -> Option<Size> {
        let dim = |n: usize, k: usize| (n + 2 * self.padding).checked_sub(k).map(|v| v / self.stride + 1);
        Some((dim(h, self.kernel.0)?, dim(w, self.kernel.1)?))
    }

    /// `y = conv(x) + bias` for one image `x` (c_in, size) into `y` (c_out, out_size).
    pub fn forward(&self, x: &[f32], size: Size, y: &mut [f32]) {
        let out = self.out_size(size).expect("conv2d: input smaller than the kernel");
        if let Some(b) = &self.bias {
            y.chunks_mut((out.0 * out.1).max(1)).zip(b).for_each(|(row, b)| row.fill(*b));
        }
        if self.winograd_applies(size) {
            let winograd = self.winograd.get_or_init(|| Winograd::new(&self.weight, self.c_out, self.c_in));
            return winograd.run(x, size, y, self.bias.is_some());
        }
        let geometry = Geometry { c_in: self.c_in, c_out: self.c_out, kernel: self.kernel, stride: self.stride, offset: -(self.padding as isize) };
        geometry.run(&self.weight, x, size, y, out, self.bias.is_some());
    }

    /// The input gradient `gx` (c_in, size) for the output gradient `g` (c_out, out_size);
    /// stride 1 and padding below the kernel only ([`Conv2d::has_adjoint`]).
    pub fn input_grad(&self, g: &[f32], size: Size, gx: &mut [f32]) {
        assert!(self.has_adjoint(), "conv2d: no adjoint for stride {} padding {}", self.stride, self.padding);
        let out = self.out_size(size).expect("conv2d: input smaller than the kernel");
        let (kh, kw) = self.kernel;
        let adjoint = || {
            self.adjoint.get_or_init(|| {
                let mut w = Vec::with_capacity(self.weight.len());
                for c in 0..self.c_in {
                    for o in 0..self.c_out {
                        for dy in 0..kh {
                            for dx in 0..kw {
                                w.push(self.weight[((o * self.c_in + c) * kh + kh - 1 - dy) * kw + kw - 1 - dx]);
                            }
                        }
                    }
                }
                w
            })
        };
        if self.winograd_applies(size) {
            // 3×3 with padding 1: the adjoint is a 3×3 convolution with padding 1 too.
            let winograd = self.winograd_adjoint.get_or_init(|| Winograd::new(adjoint(), self.c_in, self.c_out));
            return winograd.run(g, out, gx, false);
        }
        // Stride 1, square kernel k and padding p: the adjoint pads by k − 1 − p.
        let geometry = Geometry { c_in: self.c_out, c_out: self.c_in, kernel: (kh, kw), stride: 1, offset: self.padding as isize - (kh as isize - 1) };
        geometry.run(adjoint(), g, out, gx, size, false);
    }
}

impl Kernel for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d"
    }

    fn out_dims(&self, item: &[usize]) -> candle_core::Result<Vec<usize>> {
        match *item {
            [c, h, w] if c == self.c_in => match self.out_size((h, w)) {
                Some((ho, wo)) => Ok(vec![self.c_out, ho, wo]),
                None => candle_core::bail!("conv2d: a {h} × {w} input is smaller than the {:?} kernel", self.kernel),
            },
            _ => candle_core::bail!("conv2d: expected ({}, h, w) items, got {item:?}", self.c_in),
        }
    }

    fn forward(&self, x: &[f32], item: &[usize], y: &mut [f32]) {
        self.forward(x, (item[1], item[2]), y);
    }

    fn input_grad(&self, _x: &[f32], item: &[usize], g: &[f32], gx: &mut [f32]) {
        self.input_grad(g, (item[1], item[2]), gx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tensor;
    use crate::kernels::testing::{max_diff, rand};
    use candle_core::{DType, Var};

    #[test]
    fn conv2d_matches_candle_values_and_input_gradients() {
        // (c_in, c_out, kernel, stride, padding, h, w): odd sizes, 1×1, strides, no padding;
        // the last two are large enough for the Winograd path.
        let cases = [
            (3, 5, 3, 1, 1, 7, 5),
            (4, 2, 3, 1, 0, 6, 9),
            (2, 3, 1, 1, 0, 4, 3),
            (5, 4, 3, 2, 1, 9, 7),
            (3, 3, 5, 1, 2, 11, 6),
            (2, 2, 3, 2, 0, 8, 8),
            (33, 17, 3, 1, 1, 40, 16),
            (200, 190, 3, 1, 1, 47, 25),
            (256, 160, 3, 1, 1, 40, 32),
        ];
        for (i, &(c_in, c_out, k, s, p, h, w)) in cases.iter().enumerate() {
            let wt = rand(&[c_out, c_in, k, k], i as u64);
            let b = rand(&[c_out], 50 + i as u64);
            let x = rand(&[1, c_in, h, w], 100 + i as u64);
            let conv = Conv2d::new(tensor::to_vec(&wt).unwrap(), Some(tensor::to_vec(&b).unwrap()), (c_out, c_in, k, k), s, p);
            let (ho, wo) = conv.out_size((h, w)).unwrap();
            let mut y = vec![f32::NAN; c_out * ho * wo];
            conv.forward(&tensor::to_vec(&x).unwrap(), (h, w), &mut y);
            let xv = Var::from_tensor(&x.to_dtype(DType::F64).unwrap()).unwrap();
            let want = xv
                .conv2d(&wt.to_dtype(DType::F64).unwrap(), p, s, 1, 1)
                .unwrap()
                .broadcast_add(&b.to_dtype(DType::F64).unwrap().reshape((1, c_out, 1, 1)).unwrap())
                .unwrap();
            assert!(max_diff(&y, &want) < 2e-6, "case {i}: forward off by {}", max_diff(&y, &want));
            if conv.has_adjoint() {
                let g = rand(&[1, c_out, ho, wo], 200 + i as u64);
                let grads = (want * g.to_dtype(DType::F64).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
                let mut gx = vec![f32::NAN; c_in * h * w];
                conv.input_grad(&tensor::to_vec(&g).unwrap(), (h, w), &mut gx);
                let want_gx = grads.get(xv.as_tensor()).unwrap();
                assert!(max_diff(&gx, want_gx) < 2e-6, "case {i}: input gradient off by {}", max_diff(&gx, want_gx));
            }
        }
    }
}
