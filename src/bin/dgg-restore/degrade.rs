//! `dgg-restore degrade`: make a test clip by applying one degradation operator.

use anyhow::{bail, Context, Result};
use clap::Args;
use dgg_restore::audio::{read_wav, write_wav};
use dgg_restore::evaluation::degrade::{degrade, DegradeOptions};
use dgg_restore::files::check_output;
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

pub fn run(args: DegradeArgs) -> Result<()> {
    if !(args.noise_std.is_finite() && args.noise_std >= 0.0) {
        bail!("--noise-std {}: use a finite, non-negative value", args.noise_std);
    }
    let (clip, format) = read_wav(&args.input)?;
    check_output(&args.output)?;
    let degradation = args.task.degradation(clip.sample_rate, args.seed, None)?;
    let options = DegradeOptions { noise_std: args.noise_std, seed: args.seed, griffin_lim_iterations: args.iterations };
    let degraded = degrade(&clip, &degradation, &options).with_context(|| args.input.display().to_string())?;
    write_wav(&args.output, &degraded, format)?;
    Ok(())
}
