//! `dgg-restore eval`: score a directory of restorations against the clean originals.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};

use crate::lsd::score_files;

/// LSD (lower is better) of every WAV in --restored against the WAV of the same name in
/// --reference, and the mean. Rates may differ (both are scored at 16 kHz), channels and
/// durations must match.
#[derive(Args)]
pub struct EvalArgs {
    /// Directory of clean reference WAVs.
    #[arg(long)]
    reference: PathBuf,
    /// Directory of restored WAVs, named as their references.
    #[arg(long)]
    restored: PathBuf,
}

/// The `.wav` file names directly in `dir`, sorted.
pub fn wav_names(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading the directory {}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let path = entry.with_context(|| format!("reading the directory {}", dir.display()))?.path();
        let is_wav = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav"));
        if let (true, true, Some(name)) = (is_wav, path.is_file(), path.file_name().and_then(|n| n.to_str())) {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

pub fn run(args: EvalArgs) -> Result<()> {
    let names = wav_names(&args.reference)?;
    if names.is_empty() {
        bail!("{} holds no WAV files to score against", args.reference.display());
    }
    let missing: Vec<&str> = names.iter().filter(|n| !args.restored.join(n).is_file()).map(String::as_str).collect();
    if !missing.is_empty() {
        bail!("{} lacks {} of the {} reference files: {}", args.restored.display(), missing.len(), names.len(), missing.join(", "));
    }
    let extra: Vec<String> = wav_names(&args.restored)?.into_iter().filter(|n| !names.contains(n)).collect();
    if !extra.is_empty() {
        eprintln!("note: not scored, no reference of that name: {}", extra.join(", "));
    }
    let width = names.iter().map(String::len).max().unwrap_or(0).max(4);
    println!("{:<width$}  LSD", "file");
    let mut total = 0.0;
    for name in &names {
        let score = score_files(&args.reference.join(name), &args.restored.join(name))?;
        println!("{name:<width$}  {:.4}", score.mean());
        total += score.mean();
    }
    println!("{:<width$}  {:.4}", format!("mean of {}", names.len()), total / names.len() as f64);
    Ok(())
}
