//! Mel filterbanks and the two mel spectrograms the product uses, as candle graphs.
//!
//! - [`AudioLdmMel`]: the VAE domain (what the decoder produces and the vocoder eats):
//!   magnitude STFT → Slaney mel (librosa's filterbank) → `ln(max(m, 1e-5))`.
//! - [`LossMel`]: the paper's loss space: power STFT → HTK mel without normalisation
//!   (torchaudio's `MelSpectrogram`) → dB → optional clamp; for phase retrieval the same
//!   filterbank applied to a magnitude measurement, clamped, without dB.
//!
//! All outputs are (batch, frames, n_mels).

use candle_core::{Device, Result, Tensor};

use super::stft::{Stft, StftConfig};

/// How mel frequencies map to Hz, and how the triangles are normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MelScale {
    /// Slaney's auditory toolbox scale with area normalisation (librosa's default).
    Slaney,
    /// `2595·log10(1 + f/700)`, triangles of peak 1 (torchaudio's default).
    Htk,
}

impl MelScale {
    fn hz_to_mel(self, hz: f64) -> f64 {
        match self {
            MelScale::Htk => 2595.0 * (1.0 + hz / 700.0).log10(),
            MelScale::Slaney => {
                let f_sp = 200.0 / 3.0;
                let (min_log_hz, min_log_mel) = (1000.0, 1000.0 / f_sp);
                let log_step = 6.4f64.ln() / 27.0;
                if hz >= min_log_hz {
                    min_log_mel + (hz / min_log_hz).ln() / log_step
                } else {
                    hz / f_sp
                }
            }
        }
    }

    fn mel_to_hz(self, mel: f64) -> f64 {
        match self {
            MelScale::Htk => 700.0 * (10f64.powf(mel / 2595.0) - 1.0),
            MelScale::Slaney => {
                let f_sp = 200.0 / 3.0;
                let (min_log_hz, min_log_mel) = (1000.0, 1000.0 / f_sp);
                let log_step = 6.4f64.ln() / 27.0;
                if mel >= min_log_mel {
                    min_log_hz * (log_step * (mel - min_log_mel)).exp()
                } else {
                    f_sp * mel
                }
            }
        }
    }
}

/// Triangular mel filterbank, row-major (n_mels, n_fft/2 + 1), computed in f64.
pub fn filterbank(scale: MelScale, sample_rate: u32, n_fft: usize, n_mels: usize, fmin: f64, fmax: f64) -> Vec<f64> {
    let bins = n_fft / 2 + 1;
    let nyquist = (sample_rate / 2) as f64;
    let freqs: Vec<f64> = (0..bins).map(|k| nyquist * k as f64 / (bins - 1) as f64).collect();
    let (lo, hi) = (scale.hz_to_mel(fmin), scale.hz_to_mel(fmax));
    let edges: Vec<f64> = (0..n_mels + 2).map(|i| scale.mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64)).collect();
    let mut weights = vec![0.0; n_mels * bins];
    for m in 0..n_mels {
        let (left, centre, right) = (edges[m], edges[m + 1], edges[m + 2]);
        let norm = match scale {
            MelScale::Slaney => 2.0 / (right - left),
            MelScale::Htk => 1.0,
        };
        for (k, &f) in freqs.iter().enumerate() {
            let rising = (f - left) / (centre - left);
            let falling = (right - f) / (right - centre);
            weights[m * bins + k] = rising.min(falling).max(0.0) * norm;
        }
    }
    weights
}

/// A filterbank as a (bins, n_mels) tensor, ready to right-multiply a (…, frames, bins) spectrum.
fn filterbank_tensor(weights: &[f64], n_mels: usize, device: &Device) -> Result<Tensor> {
    let bins = weights.len() / n_mels;
    let w: Vec<f32> = weights.iter().map(|&x| x as f32).collect();
    Tensor::from_vec(w, (n_mels, bins), device)?.t()?.contiguous()
}

/// The VAE-domain log-mel of AudioLDM: (batch, samples) → (batch, frames, 64).
#[derive(Debug, Clone)]
pub struct AudioLdmMel {
    stft: Stft,
    filters: Tensor,
}

impl AudioLdmMel {
    pub const SAMPLE_RATE: u32 = 16_000;
    pub const N_MELS: usize = 64;
    const FLOOR: f64 = 1e-5;

    pub fn new(device: &Device) -> Result<Self> {
        let cfg = StftConfig::AUDIOLDM;
        let fb = filterbank(MelScale::Slaney, Self::SAMPLE_RATE, cfg.n_fft, Self::N_MELS, 0.0, 8000.0);
        Ok(Self { stft: Stft::new(cfg, device)?, filters: filterbank_tensor(&fb, Self::N_MELS, device)? })
    }

    pub fn forward(&self, wave: &Tensor) -> Result<Tensor> {
        let mel = self.stft.magnitude(wave)?.broadcast_matmul(&self.filters)?;
        mel.maximum(Self::FLOOR)?.log()
    }
}

/// Settings of the loss-space mel. `clamp_db` bounds the output symmetrically (the paper
/// clamps to ±80 for super-resolution, dereverberation and phase retrieval).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossMelConfig {
    pub sample_rate: u32,
    pub stft: StftConfig,
    pub n_mels: usize,
    pub clamp: Option<f64>,
}

impl LossMelConfig {
    /// The paper's settings at 16 kHz, with the given clamp.
    pub fn paper(clamp: Option<f64>) -> Self {
        Self { sample_rate: 16_000, stft: StftConfig::AUDIOLDM, n_mels: 64, clamp }
    }
}

/// The loss-space mel: HTK filterbank without normalisation, fmin 0, fmax = Nyquist.
#[derive(Debug, Clone)]
pub struct LossMel {
    config: LossMelConfig,
    stft: Stft,
    filters: Tensor,
}

impl LossMel {
    /// `AmplitudeToDB`'s floor on power before the logarithm.
    const POWER_FLOOR: f64 = 1e-10;

    pub fn new(config: LossMelConfig, device: &Device) -> Result<Self> {
        let fmax = (config.sample_rate / 2) as f64;
        let fb = filterbank(MelScale::Htk, config.sample_rate, config.stft.n_fft, config.n_mels, 0.0, fmax);
        Ok(Self { config, stft: Stft::new(config.stft, device)?, filters: filterbank_tensor(&fb, config.n_mels, device)? })
    }

    pub fn config(&self) -> LossMelConfig {
        self.config
    }

    /// Power mel in dB, clamped if configured: (batch, samples) → (batch, frames, n_mels).
    pub fn forward(&self, wave: &Tensor) -> Result<Tensor> {
        let mel = self.stft.power(wave)?.broadcast_matmul(&self.filters)?;
        let db = (mel.maximum(Self::POWER_FLOOR)?.log()? * (10.0 / std::f64::consts::LN_10))?;
        self.clamp(db)
    }

    /// Phase-retrieval features: the filterbank applied to a magnitude spectrogram
    /// (batch, frames, bins), clamped if configured, no dB.
    pub fn magnitude_features(&self, magnitude: &Tensor) -> Result<Tensor> {
        self.clamp(magnitude.broadcast_matmul(&self.filters)?)
    }

    /// 0 for every cell (frame, mel band) of the features of `len` samples that sees one of
    /// `regions` (sample range, band in Hz), 1 elsewhere; frames-major. A frame sees the
    /// samples under its window (centred framing), a mel band the STFT bins its filter
    /// weighs, and a bin a band within the Hann window's main lobe (two bins either side).
    pub fn cells_outside(&self, len: usize, regions: &[(std::ops::Range<usize>, (f64, f64))]) -> Vec<f32> {
        let LossMelConfig { sample_rate, stft, n_mels, .. } = self.config;
        let (frames, bins, half) = (stft.frames(len), stft.bins(), stft.n_fft / 2);
        let fb = filterbank(MelScale::Htk, sample_rate, stft.n_fft, n_mels, 0.0, (sample_rate / 2) as f64);
        let mut cells = vec![1f32; frames * n_mels];
        for (samples, (low, high)) in regions {
            let bin = |hz: f64| hz * stft.n_fft as f64 / sample_rate as f64;
            let seen = (bin(*low).floor() as usize).saturating_sub(2)..((bin(*high).ceil() as usize) + 3).min(bins);
            let mels: Vec<usize> = (0..n_mels).filter(|&m| seen.clone().any(|k| fb[m * bins + k] > 0.0)).collect();
            for f in (0..frames).filter(|&f| f * stft.hop + half > samples.start && f * stft.hop < samples.end + half) {
                mels.iter().for_each(|&m| cells[f * n_mels + m] = 0.0);
            }
        }
        cells
    }

    /// The STFT this loss space is built on (phase retrieval measures with it).
    pub fn stft(&self) -> &Stft {
        &self.stft
    }

    fn clamp(&self, x: Tensor) -> Result<Tensor> {
        match self.config.clamp {
            Some(c) => x.clamp(-c, c),
            None => Ok(x),
        }
    }
}
