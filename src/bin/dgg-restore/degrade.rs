//! `dgg-restore degrade`: make a test clip by applying one degradation operator.

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use clap::Args;
use dgg_restore::audio::{read_wav, resample, write_wav, AudioClip};
use dgg_restore::dsp::griffin_lim;
use dgg_restore::dsp::stft::StftConfig;
use dgg_restore::dsp::MODEL_SAMPLE_RATE;
use dgg_restore::restore::operators::{add_measurement_noise, Degradation, Operator};
use std::path::PathBuf;

use crate::task::TaskArgs;

/// Apply a degradation to a WAV file, at its own rate and channel count, and write the
/// result in the same format. Use it to make test material for `restore` and `lsd`.
#[derive(Args)]
#[command(after_help = "Examples:\n  dgg-restore degrade --task inpaint --gap 2.0-3.0 in.wav out.wav\n  dgg-restore degrade --task superres --factor 2 in.wav out.wav\n  dgg-restore degrade --task dereverb --rt60 0.8 in.wav out.wav\n  dgg-restore degrade --task phase in.wav out.wav")]
pub struct DegradeArgs {
    #[command(flatten)]
    task: TaskArgs,
    /// Phase retrieval: Griffin-Lim iterations.
    #[arg(long, default_value_t = 64)]
    iterations: usize,
    /// Standard deviation of Gaussian noise added to the measurement.
    #[arg(long, default_value_t = 0.0)]
    noise_std: f64,
    /// Seed of the synthetic room and the measurement noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The clean input WAV.
    input: PathBuf,
    /// Where to write the degraded WAV (written atomically).
    output: PathBuf,
}

/// The paper's STFT (n_fft 1024, hop 160 at 16 kHz) scaled to another rate.
fn phase_stft_at(sample_rate: u32) -> StftConfig {
    let scale = sample_rate as f64 / MODEL_SAMPLE_RATE as f64;
    StftConfig {
        n_fft: ((1024.0 * scale).round() as usize).next_power_of_two(),
        hop: (160.0 * scale).round().max(1.0) as usize,
    }
}

pub fn run(args: DegradeArgs) -> Result<()> {
    let (clip, format) = read_wav(&args.input)?;
    let rate = clip.sample_rate;
    let degradation = args.task.degradation(rate, args.seed)?;
    let channels = if let Degradation::PhaseRetrieval = degradation {
        let config = phase_stft_at(rate);
        if clip.num_frames() <= config.n_fft / 2 {
            bail!("{}: {} samples is too short for phase retrieval (needs more than {})", args.input.display(), clip.num_frames(), config.n_fft / 2);
        }
        clip.channels
            .iter()
            .enumerate()
            .map(|(c, x)| {
                let magnitude = Tensor::from_vec(griffin_lim::magnitude(x, config), (1, x.len() / config.hop + 1, config.bins()), &Device::Cpu)?;
                let noisy = add_measurement_noise(&magnitude, args.noise_std, args.seed.wrapping_add(c as u64))?.relu()?;
                let noisy: Vec<f32> = noisy.flatten_all()?.to_vec1()?;
                Ok(griffin_lim::reconstruct(&noisy, x.len(), config, args.iterations))
            })
            .collect::<candle_core::Result<Vec<_>>>()?
    } else {
        let len = clip.num_frames();
        let resample_one = |x: &[f32], from: u32, to: u32| {
            resample(&[x.to_vec()], from, to).map(|mut v| v.remove(0)).map_err(|e| e.to_string())
        };
        let operator = Operator::new(&degradation, rate, len, &Device::Cpu, resample_one)
            .with_context(|| format!("{}", args.input.display()))?;
        let flat: Vec<f32> = clip.channels.concat();
        let wave = Tensor::from_vec(flat, (clip.num_channels(), len), &Device::Cpu)?;
        let y = add_measurement_noise(&operator.apply(&wave)?, args.noise_std, args.seed)?;
        y.to_vec2()?
    };
    write_wav(&args.output, &AudioClip::new(rate, channels), format)?;
    Ok(())
}
