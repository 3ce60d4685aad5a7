//! torchaudio's `Resample` (Hann-windowed sinc, polyphase), the paper's super-resolution
//! operator: the official runs measure 16 kHz audio resampled to 8 kHz this way.
//!
//! Our own resampler ([`crate::audio::resample`]) is the better one for users; this one is
//! kept exact so the paper's table can be reproduced (`experiment --protocol paper`). The
//! kernel follows torchaudio's definition: rates reduced by their gcd, a cutoff at
//! `rolloff` of the lower Nyquist, `width` zero crossings either side, computed in f64 and
//! stored as f32 as torchaudio stores it.

use candle_core::{Result, Tensor};

use super::fir::FirFilter;

/// A rational resampler between two rates.
#[derive(Debug, Clone)]
pub struct SincResampler {
    /// The rates divided by their gcd.
    orig: usize,
    new: usize,
    /// Input samples each side of the centre that the kernel spans.
    width: usize,
    /// One kernel per output phase, `2·width + orig` taps each.
    kernels: Vec<Vec<f32>>,
}

impl SincResampler {
    /// torchaudio's defaults: `sinc_interp_hann`, 6 zero crossings, rolloff 0.99.
    pub fn torchaudio(from: u32, to: u32) -> Self {
        Self::new(from, to, 6, 0.99)
    }

    /// From `from` Hz to `to` Hz with `zero_crossings` of the sinc either side and the cutoff at
    /// `rolloff` of the lower rate's Nyquist.
    pub fn new(from: u32, to: u32, zero_crossings: usize, rolloff: f64) -> Self {
        assert!(from > 0 && to > 0 && zero_crossings > 0, "resampling needs positive rates and a kernel");
        let g = gcd(from as usize, to as usize);
        let (orig, new) = (from as usize / g, to as usize / g);
        let base = orig.min(new) as f64 * rolloff;
        let lpw = zero_crossings as f64;
        let width = (lpw * orig as f64 / base).ceil() as usize;
        let kernels = (0..new)
            .map(|phase| {
                (0..2 * width + orig)
                    .map(|k| {
                        let idx = (k as f64 - width as f64) / orig as f64;
                        let t = ((idx - phase as f64 / new as f64) * base).clamp(-lpw, lpw);
                        let window = (t * std::f64::consts::PI / lpw / 2.0).cos().powi(2);
                        let t = t * std::f64::consts::PI;
                        let sinc = if t == 0.0 { 1.0 } else { t.sin() / t };
                        (sinc * window * base / orig as f64) as f32
                    })
                    .collect()
            })
            .collect();
        Self { orig, new, width, kernels }
    }

    /// The kernels, phase by phase.
    pub fn kernels(&self) -> &[Vec<f32>] {
        &self.kernels
    }

    /// Output length for `len` input samples: `⌈len·new/orig⌉`.
    pub fn output_len(&self, len: usize) -> usize {
        (len * self.new).div_ceil(self.orig)
    }

    /// Resample one signal: output sample `new·i + j` is phase `j`'s kernel over the input
    /// from `orig·i − width` (zero outside the signal).
    pub fn resample(&self, x: &[f32]) -> Vec<f32> {
        let taps = 2 * self.width + self.orig;
        (0..self.output_len(x.len()))
            .map(|n| {
                let (i, j) = (n / self.new, n % self.new);
                let start = (self.orig * i) as isize - self.width as isize;
                let sum: f64 = (0..taps)
                    .filter_map(|k| usize::try_from(start + k as isize).ok().and_then(|at| x.get(at)).map(|&v| f64::from(self.kernels[j][k]) * f64::from(v)))
                    .sum();
                sum as f32
            })
            .collect()
    }

    /// A downsampler by an integer factor (`new` = 1) as a differentiable map of the rows of
    /// a (batch, samples) tensor: the kernel as a FIR filter (whose backward pass is its
    /// adjoint), then every `orig`-th sample.
    pub fn decimate(&self, wave: &Tensor) -> Result<Tensor> {
        if self.new != 1 {
            candle_core::bail!("the differentiable resampler only downsamples by an integer factor, not {}:{}", self.orig, self.new);
        }
        let kernel = &self.kernels[0];
        let filter = FirFilter::new(kernel.iter().rev().copied().collect(), kernel.len() - 1 - self.width);
        let filtered = filter.forward(wave)?;
        let len = wave.dim(1)?;
        let every: Vec<u32> = (0..self.output_len(len)).map(|i| (i * self.orig) as u32).collect();
        let every = Tensor::from_vec(every, self.output_len(len), wave.device())?;
        filtered.index_select(&every, 1)
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::test_noise;
    use candle_core::{Device, Var};

    #[test]
    fn the_tensor_decimator_is_the_polyphase_resampler_and_its_gradient_the_adjoint() {
        let down = SincResampler::torchaudio(16_000, 8_000);
        assert_eq!((down.orig, down.new, down.width, down.kernels[0].len()), (2, 1, 13, 28));
        let x = test_noise(1_001, 3);
        let wave = Var::from_vec(x.clone(), (1, x.len()), &Device::Cpu).unwrap();
        let y = down.decimate(wave.as_tensor()).unwrap();
        let expected = down.resample(&x);
        assert_eq!(expected.len(), 501);
        let got: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        let worst = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-5, "{worst}");
        // ⟨A x, w⟩ = ⟨x, Aᵀ w⟩ with Aᵀ w the gradient of Σ A(x)·w.
        let w = test_noise(501, 4);
        let weights = Tensor::from_vec(w.clone(), (1, 501), &Device::Cpu).unwrap();
        let grads = (y * weights).unwrap().sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = grads.get(wave.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let probe = test_noise(1_001, 5);
        let forward: f64 = down.resample(&probe).iter().zip(&w).map(|(a, b)| f64::from(a * b)).sum();
        let backward: f64 = probe.iter().zip(&g).map(|(a, b)| f64::from(a * b)).sum();
        assert!((forward - backward).abs() < 1e-4, "{forward} vs {backward}");
    }

    #[test]
    fn down_and_up_keep_a_tone_below_the_cutoff() {
        let tone: Vec<f32> = (0..16_000).map(|n| (2.0 * std::f32::consts::PI * 1_000.0 * n as f32 / 16_000.0).sin()).collect();
        let low = SincResampler::torchaudio(16_000, 8_000).resample(&tone);
        let back = SincResampler::torchaudio(8_000, 16_000).resample(&low);
        assert_eq!((low.len(), back.len()), (8_000, 16_000));
        let worst = tone[200..15_800].iter().zip(&back[200..15_800]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-2, "{worst}");
    }
}
