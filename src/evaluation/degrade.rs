//! Test material: a clean clip degraded the way a restoration assumes, at its own rate and
//! channel count.

use candle_core::{Device, Tensor};

use crate::audio::{resample_mono, AudioClip};
use crate::dsp::griffin_lim;
use crate::dsp::stft::StftConfig;
use crate::dsp::MODEL_SAMPLE_RATE;
use crate::restore::operators::{add_measurement_noise, Degradation, Operator, OperatorError};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DegradeOptions {
    /// Standard deviation of Gaussian noise added to the measurement.
    pub noise_std: f64,
    /// Seed of the measurement noise (channel `c` uses `seed + c` for phase retrieval).
    pub seed: u64,
    /// Phase retrieval: Griffin-Lim iterations that turn the magnitude back into audio.
    pub griffin_lim_iterations: usize,
}

impl Default for DegradeOptions {
    fn default() -> Self {
        Self { noise_std: 0.0, seed: 0, griffin_lim_iterations: 64 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DegradeError {
    #[error("{samples} samples is too short for phase retrieval (needs more than {needed})")]
    TooShortForPhase { samples: usize, needed: usize },
    #[error(transparent)]
    Operator(#[from] OperatorError),
    #[error("degrading failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// The paper's STFT (n_fft 1024, hop 160 at 16 kHz) scaled to another rate.
fn phase_stft_at(sample_rate: u32) -> StftConfig {
    let scale = sample_rate as f64 / MODEL_SAMPLE_RATE as f64;
    StftConfig {
        n_fft: ((1024.0 * scale).round() as usize).next_power_of_two(),
        hop: (160.0 * scale).round().max(1.0) as usize,
    }
}

/// `A(clip)` plus measurement noise, as audio. Phase retrieval keeps only the STFT magnitude,
/// so its result is a Griffin-Lim reconstruction: what a user with that magnitude would hear.
pub fn degrade(clip: &AudioClip, degradation: &Degradation, options: &DegradeOptions) -> Result<AudioClip, DegradeError> {
    let (rate, len) = (clip.sample_rate, clip.num_frames());
    let channels = if let Degradation::PhaseRetrieval = degradation {
        let config = phase_stft_at(rate);
        if len <= config.n_fft / 2 {
            return Err(DegradeError::TooShortForPhase { samples: len, needed: config.n_fft / 2 });
        }
        clip.channels
            .iter()
            .enumerate()
            .map(|(c, x)| {
                let shape = (1, x.len() / config.hop + 1, config.bins());
                let magnitude = Tensor::from_vec(griffin_lim::magnitude(x, config), shape, &Device::Cpu)?;
                let noisy = add_measurement_noise(&magnitude, options.noise_std, options.seed.wrapping_add(c as u64))?.relu()?;
                let noisy: Vec<f32> = noisy.flatten_all()?.to_vec1()?;
                Ok(griffin_lim::reconstruct(&noisy, len, config, options.griffin_lim_iterations))
            })
            .collect::<candle_core::Result<Vec<_>>>()?
    } else {
        let operator = Operator::new(degradation, rate, len, &Device::Cpu, resample_mono)?;
        let wave = Tensor::from_vec(clip.channels.concat(), (clip.num_channels(), len), &Device::Cpu)?;
        add_measurement_noise(&operator.apply(&wave)?, options.noise_std, options.seed)?.to_vec2()?
    };
    Ok(AudioClip::new(rate, channels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::operators::Gap;

    #[test]
    fn inpainting_silences_only_the_gap_and_noise_is_seeded() {
        let clip = AudioClip::new(8_000, vec![vec![0.5; 8_000], vec![-0.25; 8_000]]);
        let gaps = Degradation::Inpaint { gaps: vec![Gap { start: 0.25, end: 0.5 }] };
        let out = degrade(&clip, &gaps, &DegradeOptions::default()).unwrap();
        for (c, ch) in out.channels.iter().enumerate() {
            assert!(ch[..2_000].iter().chain(&ch[4_000..]).all(|&v| v == clip.channels[c][0]));
            assert!(ch[2_000..4_000].iter().all(|&v| v == 0.0));
        }
        let noisy = DegradeOptions { noise_std: 0.01, seed: 3, ..Default::default() };
        let a = degrade(&clip, &gaps, &noisy).unwrap();
        assert_eq!(a, degrade(&clip, &gaps, &noisy).unwrap());
        assert_ne!(a, out);
    }

    #[test]
    fn phase_retrieval_refuses_a_clip_shorter_than_its_window() {
        let clip = AudioClip::new(16_000, vec![vec![0.1; 400]]);
        let err = degrade(&clip, &Degradation::PhaseRetrieval, &DegradeOptions::default()).unwrap_err();
        assert!(err.to_string().contains("too short for phase retrieval"), "{err}");
    }
}
