//! `dgg-restore lsd`: the paper's log-spectral distance between two files.

use anyhow::Result;
use clap::Args;
use dgg_restore::audio::WavReader;
use dgg_restore::evaluation::score::{lsd_score_stream, LsdScore, ScoreError};
use std::path::{Path, PathBuf};

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
    let score = score_files(&args.reference, &args.estimate)?;
    if score.per_channel.len() > 1 {
        let list: Vec<String> = score.per_channel.iter().map(|v| format!("{v:.4}")).collect();
        println!("LSD per channel: {}", list.join(" "));
    }
    println!("LSD: {:.4}", score.mean());
    Ok(())
}

/// The LSD of the WAV file `estimate` against `reference`, both read block by block.
pub fn score_files(reference: &Path, estimate: &Path) -> Result<LsdScore> {
    let (mut r, mut e) = (WavReader::open(reference)?, WavReader::open(estimate)?);
    lsd_score_stream(&mut r, &mut e).map_err(|err| match err {
        // Reading errors name their file.
        ScoreError::Audio(err) => err.into(),
        err => anyhow::Error::from(err).context(format!("scoring {} against {}", estimate.display(), reference.display())),
    })
}
