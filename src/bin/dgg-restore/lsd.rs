//! `dgg-restore lsd`: the paper's log-spectral distance between two files.

use anyhow::{Context, Result};
use clap::Args;
use dgg_restore::audio::read_wav;
use dgg_restore::evaluation::score::lsd_score;
use std::path::PathBuf;

/// Log-spectral distance (lower is better) as the DGG paper scores restorations: both files
/// are brought to 16 kHz, the distance is computed per channel and averaged.
#[derive(Args)]
pub struct LsdArgs {
    /// The clean reference.
    reference: PathBuf,
    /// The estimate to score (same channels and duration as the reference; any rate).
    estimate: PathBuf,
}

pub fn run(args: LsdArgs) -> Result<()> {
    let (reference, _) = read_wav(&args.reference)?;
    let (estimate, _) = read_wav(&args.estimate)?;
    let score = lsd_score(&reference, &estimate)
        .with_context(|| format!("scoring {} against {}", args.estimate.display(), args.reference.display()))?;
    if score.per_channel.len() > 1 {
        let list: Vec<String> = score.per_channel.iter().map(|v| format!("{v:.4}")).collect();
        println!("LSD per channel: {}", list.join(" "));
    }
    println!("LSD: {:.4}", score.mean());
    Ok(())
}
