//! Differentiable short-time Fourier transform.
//!
//! On the CPU in f32 the power spectrogram is the FFT kernel of
//! [`crate::kernels::spectrum`] (with its input gradient). Elsewhere it is a candle graph:
//! framing is one `index_select` whose indices already fold the centred reflect padding
//! (as `torch.stft(center=True, pad_mode="reflect")`), and the DFT is one matmul with a
//! windowed cos/sin basis; both ops have exact backward passes. Either way gradients reach
//! the waveform. Output layout is (batch, frames, bins): frames first, unlike torch.

use crate::kernels::{self, spectrum::PowerSpectrum};
use candle_core::{DType, Device, Result, Tensor};
use realfft::num_complex::Complex32;
use realfft::RealFftPlanner;
use std::sync::Arc;

/// The analysis window of an [`Stft`], `n_fft` long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Window {
    /// Periodic Hann: ours everywhere.
    #[default]
    Hann,
    /// No window (`torch.stft(window=None)`): the paper's phase-retrieval operator.
    Rectangular,
}

impl Window {
    pub fn values(self, n: usize) -> Vec<f64> {
        match self {
            Self::Hann => hann_periodic(n),
            Self::Rectangular => vec![1.0; n],
        }
    }
}

/// STFT settings. The window is a periodic Hann window of length `n_fft` unless
/// [`Stft::with_window`] says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StftConfig {
    pub n_fft: usize,
    pub hop: usize,
}

impl StftConfig {
    /// The settings of AudioLDM and of the paper's losses and metric.
    pub const AUDIOLDM: Self = Self { n_fft: 1024, hop: 160 };

    /// Number of one-sided frequency bins.
    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Number of frames for `len` samples with centred framing.
    pub fn frames(&self, len: usize) -> usize {
        1 + len / self.hop
    }
}

/// Periodic Hann window (`torch.hann_window(n, periodic=True)`), in f64.
pub fn hann_periodic(n: usize) -> Vec<f64> {
    (0..n).map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()).collect()
}

/// Index into a signal of length `len` with reflect padding (no edge repeat).
/// Valid for `-len < i < 2·len - 1`, which centred framing guarantees when `len > n_fft/2`.
fn reflect(i: isize, len: usize) -> u32 {
    let len = len as isize;
    let j = if i < 0 {
        -i
    } else if i >= len {
        2 * (len - 1) - i
    } else {
        i
    };
    j as u32
}

/// Complex STFT/iSTFT pair in plain f32 (no gradient), with centred reflect framing and a
/// periodic Hann window, matching [`Stft`]'s framing: Griffin-Lim's, and the band
/// extension's.
pub struct ComplexStft {
    config: StftConfig,
    window: Vec<f32>,
    forward: Arc<dyn realfft::RealToComplex<f32>>,
    inverse: Arc<dyn realfft::ComplexToReal<f32>>,
}

impl ComplexStft {
    pub fn new(config: StftConfig) -> Self {
        let mut planner = RealFftPlanner::<f32>::new();
        Self {
            config,
            window: hann_periodic(config.n_fft).into_iter().map(|w| w as f32).collect(),
            forward: planner.plan_fft_forward(config.n_fft),
            inverse: planner.plan_fft_inverse(config.n_fft),
        }
    }

    pub fn config(&self) -> StftConfig {
        self.config
    }

    /// Frames × bins, flattened frame-major.
    pub fn analyse(&self, x: &[f32]) -> Vec<Complex32> {
        let StftConfig { n_fft, hop } = self.config;
        let (len, half, bins) = (x.len() as isize, (n_fft / 2) as isize, self.config.bins());
        let frames = self.config.frames(x.len());
        let mut frame = vec![0f32; n_fft];
        let mut out = vec![Complex32::new(0.0, 0.0); frames * bins];
        for f in 0..frames {
            for (t, v) in frame.iter_mut().enumerate() {
                let mut i = (f * hop + t) as isize - half;
                if i < 0 {
                    i = -i;
                }
                if i >= len {
                    i = 2 * (len - 1) - i;
                }
                *v = x[i as usize] * self.window[t];
            }
            self.forward.process(&mut frame, &mut out[f * bins..(f + 1) * bins]).expect("buffer sizes come from the plan");
        }
        out
    }

    /// Windowed overlap-add inverse, normalised by the summed squared window (torch.istft).
    pub fn synthesise(&self, spec: &[Complex32], len: usize) -> Vec<f32> {
        let StftConfig { n_fft, hop } = self.config;
        let bins = self.config.bins();
        let frames = spec.len() / bins;
        let padded = n_fft + hop * (frames - 1);
        let (mut acc, mut norm) = (vec![0f32; padded], vec![0f32; padded]);
        let mut buf = vec![Complex32::new(0.0, 0.0); bins];
        let mut frame = vec![0f32; n_fft];
        for f in 0..frames {
            buf.copy_from_slice(&spec[f * bins..(f + 1) * bins]);
            // A real signal's spectrum has real DC and Nyquist bins; c2r insists on it.
            buf[0].im = 0.0;
            buf[bins - 1].im = 0.0;
            self.inverse.process(&mut buf, &mut frame).expect("buffer sizes come from the plan");
            for t in 0..n_fft {
                acc[f * hop + t] += frame[t] / n_fft as f32 * self.window[t];
                norm[f * hop + t] += self.window[t] * self.window[t];
            }
        }
        let half = n_fft / 2;
        (0..len)
            .map(|i| {
                let j = i + half;
                if j < padded && norm[j] > 1e-11 {
                    acc[j] / norm[j]
                } else {
                    0.0
                }
            })
            .collect()
    }
}

/// An STFT bound to a device: the windowed DFT basis lives there.
#[derive(Debug, Clone)]
pub struct Stft {
    config: StftConfig,
    /// (n_fft, 2·bins): windowed cos in the first half of the columns, −sin in the second.
    basis: Tensor,
    /// The same transform by FFTs, for f32 on the CPU.
    spectrum: Arc<PowerSpectrum>,
}

impl Stft {
    pub fn new(config: StftConfig, device: &Device) -> Result<Self> {
        Self::with_window(config, Window::Hann, device)
    }

    pub fn with_window(config: StftConfig, window: Window, device: &Device) -> Result<Self> {
        if config.n_fft < 2 || config.hop == 0 {
            candle_core::bail!("STFT needs n_fft ≥ 2 and hop ≥ 1, got {config:?}");
        }
        let (n, bins) = (config.n_fft, config.bins());
        let window = window.values(n);
        let mut basis = vec![0f32; n * 2 * bins];
        for t in 0..n {
            for k in 0..bins {
                // Reduce k·t mod n in integers so the angle stays exact for large n.
                let phase = 2.0 * std::f64::consts::PI * ((k * t) % n) as f64 / n as f64;
                basis[t * 2 * bins + k] = (window[t] * phase.cos()) as f32;
                basis[t * 2 * bins + bins + k] = (-window[t] * phase.sin()) as f32;
            }
        }
        let basis = Tensor::from_vec(basis, (n, 2 * bins), device)?;
        let spectrum = Arc::new(PowerSpectrum::new(n, config.hop, window.iter().map(|w| *w as f32).collect()));
        Ok(Self { config, basis, spectrum })
    }

    pub fn config(&self) -> StftConfig {
        self.config
    }

    /// Real and imaginary parts, each (batch, frames, bins), of a (batch, samples) signal.
    pub fn complex(&self, wave: &Tensor) -> Result<(Tensor, Tensor)> {
        let (batch, len) = wave.dims2()?;
        let StftConfig { n_fft, hop } = self.config;
        if len <= n_fft / 2 {
            candle_core::bail!("signal of {len} samples is too short for an STFT with n_fft {n_fft} (needs more than {})", n_fft / 2);
        }
        let frames = self.config.frames(len);
        let half = (n_fft / 2) as isize;
        let indices: Vec<u32> = (0..frames).flat_map(|f| (0..n_fft).map(move |t| reflect((f * hop + t) as isize - half, len))).collect();
        let indices = Tensor::from_vec(indices, frames * n_fft, wave.device())?;
        let framed = wave.index_select(&indices, 1)?.reshape((batch, frames, n_fft))?;
        let spec = framed.broadcast_matmul(&self.basis.to_dtype(wave.dtype())?)?;
        let bins = self.config.bins();
        Ok((spec.narrow(2, 0, bins)?, spec.narrow(2, bins, bins)?))
    }

    /// Power spectrum |X|², (batch, frames, bins).
    pub fn power(&self, wave: &Tensor) -> Result<Tensor> {
        if kernels::applies(wave.device(), wave.dtype()) {
            wave.dims2()?;
            return kernels::op::apply(&self.spectrum, wave);
        }
        let (re, im) = self.complex(wave)?;
        re.sqr()? + im.sqr()?
    }

    /// Magnitude |X|, (batch, frames, bins). A floor of 1e-20 under the square root keeps
    /// the gradient finite at exact zeros (torch defines it as 0 there; so does this, since
    /// the power's own gradient vanishes at a zero bin).
    pub fn magnitude(&self, wave: &Tensor) -> Result<Tensor> {
        self.power(wave)?.affine(1.0, 1e-20)?.sqrt()
    }
}

/// Promote a mono signal slice to a (1, samples) f32 tensor on `device`.
pub fn wave_tensor(samples: &[f32], device: &Device) -> Result<Tensor> {
    Tensor::from_slice(samples, (1, samples.len()), device)?.to_dtype(DType::F32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_numpy_reflect_padding() {
        // np.pad([0,1,2,3,4], 2, mode="reflect") == [2,1,0,1,2,3,4,3,2]
        let got: Vec<u32> = (-2..7).map(|i| reflect(i, 5)).collect();
        assert_eq!(got, vec![2, 1, 0, 1, 2, 3, 4, 3, 2]);
    }

    #[test]
    fn pure_tone_peaks_at_its_bin() {
        let cfg = StftConfig { n_fft: 64, hop: 16 };
        let stft = Stft::new(cfg, &Device::Cpu).unwrap();
        let k0 = 5.0;
        let wave: Vec<f32> = (0..512).map(|n| (2.0 * std::f32::consts::PI * k0 * n as f32 / 64.0).cos()).collect();
        let mag = stft.magnitude(&wave_tensor(&wave, &Device::Cpu).unwrap()).unwrap();
        assert_eq!(mag.dims(), &[1, cfg.frames(512), cfg.bins()]);
        // A middle frame: Hann-windowed cosine at bin 5 has magnitude n_fft/4 there.
        let frame: Vec<f32> = mag.get(0).unwrap().get(16).unwrap().to_vec1().unwrap();
        let peak = frame.iter().cloned().enumerate().fold((0, 0f32), |a, b| if b.1 > a.1 { b } else { a });
        assert_eq!(peak.0, 5);
        assert!((peak.1 - 16.0).abs() < 1e-3, "peak {}", peak.1);
    }

    #[test]
    fn too_short_signal_is_an_error_not_a_panic() {
        let stft = Stft::new(StftConfig::AUDIOLDM, &Device::Cpu).unwrap();
        let err = stft.magnitude(&wave_tensor(&[0.0; 100], &Device::Cpu).unwrap()).unwrap_err();
        assert!(err.to_string().contains("too short"), "{err}");
    }
}
