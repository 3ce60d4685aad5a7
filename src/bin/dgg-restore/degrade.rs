//! `dgg-restore degrade`: make a test clip by applying one degradation operator.

use anyhow::{bail, Result};
use clap::Args;
use dgg_restore::audio::{write_wav_with, WavLayout, WavReader};
use dgg_restore::evaluation::degrade::{degrade_stream, DegradeError, DegradeOptions};
use dgg_restore::files::check_output;
use std::path::PathBuf;

use crate::signals::Signals;
use crate::task::TaskArgs;

/// Apply a degradation to a WAV file, at its own rate and channel count, and write the
/// result in the same format. Use it to make test material for `restore` and `lsd`.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  dgg-restore degrade --task inpaint --gap 2.0-3.0 in.wav out.wav\n  dgg-restore degrade --task superres --factor 2 in.wav out.wav\n  dgg-restore degrade --task dereverb --rt60 0.8 in.wav out.wav\n  dgg-restore degrade --task phase in.wav out.wav\n  dgg-restore degrade --task declip --gain 12 in.wav out.wav"
)]
pub struct DegradeArgs {
    #[command(flatten)]
    task: TaskArgs,
    /// Phase retrieval: Griffin-Lim iterations.
    #[arg(long, default_value_t = 64)]
    iterations: usize,
    /// Declipping: amplify by this many dB before clipping at --clip-level (1 if not given).
    #[arg(long, default_value_t = 0.0)]
    gain: f64,
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

pub fn run(args: DegradeArgs) -> Result<()> {
    if !(args.noise_std.is_finite() && args.noise_std >= 0.0) {
        bail!("--noise-std {}: use a finite, non-negative value", args.noise_std);
    }
    if !(args.gain.is_finite() && (0.0..=60.0).contains(&args.gain)) {
        bail!("--gain {}: use 0 to 60 dB", args.gain);
    }
    let mut input = WavReader::open(&args.input)?;
    check_output(&args.output)?;
    Signals::one_output();
    let degradation = args.task.degradation(input.sample_rate(), args.seed, None)?;
    let options = DegradeOptions { noise_std: args.noise_std, seed: args.seed, griffin_lim_iterations: args.iterations, gain_db: args.gain };
    let layout = WavLayout { sample_rate: input.sample_rate(), channels: input.channels(), frames: input.frames(), format: input.format() };
    // The file streams through: a long one takes little memory.
    let written = write_wav_with(&args.output, layout, |sink| degrade_stream(&mut input, &degradation, &options, &mut |block| sink.write(block)));
    written.map_err(|e| match e {
        // Reading and writing errors name their file.
        DegradeError::Audio(e) => e.into(),
        e => anyhow::Error::from(e).context(args.input.display().to_string()),
    })
}
