//! The power spectrogram |STFT|² (periodic Hann window, centred frames with reflect
//! padding, as `torch.stft(center=True, pad_mode="reflect")`) by real FFTs, and its input
//! gradient by inverse real FFTs — O(N log N) per frame where a DFT matrix costs O(N²).

use super::op::Kernel;
use rayon::prelude::*;
use realfft::num_complex::Complex32;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use std::sync::Arc;

/// Frames per parallel task.
const FRAMES: usize = 16;

pub struct PowerSpectrum {
    n_fft: usize,
    hop: usize,
    window: Vec<f32>,
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
}

impl std::fmt::Debug for PowerSpectrum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerSpectrum").field("n_fft", &self.n_fft).field("hop", &self.hop).finish()
    }
}

/// Index `i` of a signal of `len` samples reflected at its ends (no edge repeat), for
/// `−len < i < 2·len − 1`.
fn reflect(i: isize, len: usize) -> usize {
    let len = len as isize;
    (if i < 0 {
        -i
    } else if i >= len {
        2 * (len - 1) - i
    } else {
        i
    }) as usize
}

impl PowerSpectrum {
    /// `window` (n_fft long) is applied to every frame.
    pub fn new(n_fft: usize, hop: usize, window: Vec<f32>) -> Self {
        assert!(n_fft >= 2 && hop > 0 && window.len() == n_fft, "power spectrum: n_fft {n_fft}, hop {hop}, window of {}", window.len());
        let mut planner = RealFftPlanner::<f32>::new();
        Self { n_fft, hop, forward: planner.plan_fft_forward(n_fft), inverse: planner.plan_fft_inverse(n_fft), window }
    }

    fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    fn frames(&self, len: usize) -> usize {
        1 + len / self.hop
    }

    /// The windowed frame `f` of `x` into `buf`, then its spectrum into `spec`.
    fn spectrum(&self, x: &[f32], f: usize, buf: &mut [f32], spec: &mut [Complex32], scratch: &mut [Complex32]) {
        let start = (f * self.hop) as isize - (self.n_fft / 2) as isize;
        for (t, (b, w)) in buf.iter_mut().zip(&self.window).enumerate() {
            *b = x[reflect(start + t as isize, x.len())] * w;
        }
        self.forward.process_with_scratch(buf, spec, scratch).expect("buffers sized by the plan");
    }
}

impl Kernel for PowerSpectrum {
    fn name(&self) -> &'static str {
        "power-spectrum"
    }

    fn out_dims(&self, item: &[usize]) -> candle_core::Result<Vec<usize>> {
        match *item {
            [len] if len > self.n_fft / 2 => Ok(vec![self.frames(len), self.bins()]),
            _ => candle_core::bail!("signal of {item:?} samples is too short for an STFT with n_fft {} (needs more than {})", self.n_fft, self.n_fft / 2),
        }
    }

    fn forward(&self, x: &[f32], _item: &[usize], y: &mut [f32]) {
        let bins = self.bins();
        y.par_chunks_mut(bins * FRAMES).enumerate().for_each(|(chunk, y)| {
            let (mut buf, mut spec) = (self.forward.make_input_vec(), self.forward.make_output_vec());
            let mut scratch = self.forward.make_scratch_vec();
            for (i, row) in y.chunks_mut(bins).enumerate() {
                self.spectrum(x, chunk * FRAMES + i, &mut buf, &mut spec, &mut scratch);
                row.iter_mut().zip(&spec).for_each(|(p, c)| *p = c.norm_sqr());
            }
        });
    }

    /// With X the frame's spectrum and G = ∂L/∂|X|²: ∂L/∂(windowed frame) = c2r(Z) for
    /// Z_k = G_k·X_k, doubled at the ends of the one-sided spectrum; then times the window,
    /// overlap-added, and the reflected padding folded back onto the signal.
    fn input_grad(&self, x: &[f32], item: &[usize], g: &[f32], gx: &mut [f32]) {
        let (len, bins, n) = (item[0], self.bins(), self.n_fft);
        let frames = self.frames(len);
        let mut per_frame = vec![0f32; frames * n];
        per_frame.par_chunks_mut(n * FRAMES).zip(g.par_chunks(bins * FRAMES)).enumerate().for_each(|(chunk, (out, g))| {
            let (mut buf, mut spec) = (self.forward.make_input_vec(), self.forward.make_output_vec());
            let mut scratch = self.forward.make_scratch_vec();
            let mut inverse_scratch = self.inverse.make_scratch_vec();
            for (i, (out, g)) in out.chunks_mut(n).zip(g.chunks(bins)).enumerate() {
                self.spectrum(x, chunk * FRAMES + i, &mut buf, &mut spec, &mut scratch);
                for (k, (c, g)) in spec.iter_mut().zip(g).enumerate() {
                    let ends = if k == 0 || k == bins - 1 { 2.0 } else { 1.0 };
                    *c *= g * ends;
                }
                // c2r reads only the real parts of the first and last bins.
                spec[0].im = 0.0;
                spec[bins - 1].im = 0.0;
                self.inverse.process_with_scratch(&mut spec, out, &mut inverse_scratch).expect("buffers sized by the plan");
                out.iter_mut().zip(&self.window).for_each(|(o, w)| *o *= w);
            }
        });
        gx.fill(0.0);
        for (f, frame) in per_frame.chunks(n).enumerate() {
            let start = (f * self.hop) as isize - (n / 2) as isize;
            for (t, v) in frame.iter().enumerate() {
                gx[reflect(start + t as isize, len)] += v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{op, tensor};
    use candle_core::{DType, Device, Tensor, Var};

    /// Against the DFT definition in f64, and the gradient against its adjoint identity.
    #[test]
    fn matches_the_definition_and_its_gradient() {
        let (n, hop, len) = (16, 5, 37);
        let window: Vec<f32> = (0..n).map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / n as f32).cos()).collect();
        let spectrum = Arc::new(PowerSpectrum::new(n, hop, window.clone()));
        let x: Vec<f32> = (0..2 * len).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
        let xt = Var::from_tensor(&Tensor::from_vec(x.clone(), (2, len), &Device::Cpu).unwrap()).unwrap();
        let p = op::apply(&spectrum, xt.as_tensor()).unwrap();
        let frames = 1 + len / hop;
        assert_eq!(p.dims(), &[2, frames, n / 2 + 1]);
        let pv = tensor::to_vec(&p).unwrap();
        let power = |sig: &[f64], f: usize, k: usize| {
            let (mut re, mut im) = (0f64, 0f64);
            for t in 0..n {
                let v = sig[reflect((f * hop + t) as isize - (n / 2) as isize, len)] * window[t] as f64;
                let a = 2.0 * std::f64::consts::PI * (k * t) as f64 / n as f64;
                re += v * a.cos();
                im -= v * a.sin();
            }
            re * re + im * im
        };
        for b in 0..2 {
            let sig: Vec<f64> = x[b * len..(b + 1) * len].iter().map(|v| *v as f64).collect();
            for f in 0..frames {
                for k in 0..=n / 2 {
                    let want = power(&sig, f, k);
                    let got = pv[(b * frames + f) * (n / 2 + 1) + k] as f64;
                    assert!((got - want).abs() < 1e-5 * want.max(1.0), "item {b} frame {f} bin {k}: {got} vs {want}");
                }
            }
        }
        // d⟨P, G⟩/dx against central differences (f64 arithmetic on the definition).
        let g: Vec<f32> = (0..2 * frames * (n / 2 + 1)).map(|i| ((i * 31) % 13) as f32 / 6.0 - 1.0).collect();
        let gt = Tensor::from_vec(g.clone(), p.dims(), &Device::Cpu).unwrap();
        let grads = (p * &gt).unwrap().sum_all().unwrap().backward().unwrap();
        let gx = tensor::to_vec(&grads.get(xt.as_tensor()).unwrap().to_dtype(DType::F32).unwrap()).unwrap();
        let objective = |sig: &[f64], b: usize| -> f64 {
            (0..frames).flat_map(|f| (0..=n / 2).map(move |k| (f, k))).map(|(f, k)| power(sig, f, k) * g[(b * frames + f) * (n / 2 + 1) + k] as f64).sum()
        };
        for b in 0..2 {
            let sig: Vec<f64> = x[b * len..(b + 1) * len].iter().map(|v| *v as f64).collect();
            for i in [0, 1, 7, 18, len - 2, len - 1] {
                let h = 1e-4;
                let (mut up, mut down) = (sig.clone(), sig.clone());
                up[i] += h;
                down[i] -= h;
                let fd = (objective(&up, b) - objective(&down, b)) / (2.0 * h);
                let got = gx[b * len + i] as f64;
                assert!((got - fd).abs() < 1e-3 * fd.abs().max(1.0), "item {b} sample {i}: {got} vs {fd}");
            }
        }
    }
}
