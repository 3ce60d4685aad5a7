//! `dgg-restore lsd`: the paper's log-spectral distance between two files.

use anyhow::{bail, Context, Result};
use clap::Args;
use dgg_restore::audio::{read_wav, resample};
use dgg_restore::dsp::{lsd::lsd, MODEL_SAMPLE_RATE};
use std::path::PathBuf;

/// Log-spectral distance (lower is better) as the DGG paper scores restorations: both files
/// are brought to 16 kHz, the distance is computed per channel and averaged.
#[derive(Args)]
pub struct LsdArgs {
    /// The clean reference.
    reference: PathBuf,
    /// The estimate to score (same rate, channels and length as the reference).
    estimate: PathBuf,
}

pub fn run(args: LsdArgs) -> Result<()> {
    let (reference, _) = read_wav(&args.reference)?;
    let (estimate, _) = read_wav(&args.estimate)?;
    if reference.sample_rate != estimate.sample_rate {
        bail!(
            "{} is at {} Hz but {} is at {} Hz: score files at the same rate",
            args.reference.display(), reference.sample_rate, args.estimate.display(), estimate.sample_rate
        );
    }
    if reference.num_channels() != estimate.num_channels() {
        bail!(
            "{} has {} channels but {} has {}",
            args.reference.display(), reference.num_channels(), args.estimate.display(), estimate.num_channels()
        );
    }
    if reference.num_frames() != estimate.num_frames() {
        bail!(
            "{} has {} samples but {} has {}: score files of the same length",
            args.reference.display(), reference.num_frames(), args.estimate.display(), estimate.num_frames()
        );
    }
    let to_model_rate = |channels: &[Vec<f32>]| resample(channels, reference.sample_rate, MODEL_SAMPLE_RATE);
    let r = to_model_rate(&reference.channels).context("resampling the reference to 16 kHz")?;
    let e = to_model_rate(&estimate.channels).context("resampling the estimate to 16 kHz")?;
    let per_channel = r
        .iter()
        .zip(&e)
        .map(|(a, b)| lsd(a, b))
        .collect::<candle_core::Result<Vec<f64>>>()
        .context("computing the LSD")?;
    let mean = per_channel.iter().sum::<f64>() / per_channel.len() as f64;
    if per_channel.len() > 1 {
        let list: Vec<String> = per_channel.iter().map(|v| format!("{v:.4}")).collect();
        println!("LSD per channel: {}", list.join(" "));
    }
    println!("LSD: {mean:.4}");
    Ok(())
}
