//! `dgg-restore restore`: the offline renderer.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use dgg_restore::audio::{read_wav, write_wav};
use dgg_restore::files::check_output;
use dgg_restore::engine::{restore_clip, EngineError, OutputMode, Progress, RestoreRequest};
use dgg_restore::restore::guidance::MethodKind;
use dgg_restore::restore::sampler::SampleError;
use std::path::PathBuf;

use crate::prior::{PriorArgs, SamplingArgs};
use crate::progress::Reporter;
use crate::signals::{self, Signals};
use crate::task::TaskArgs;

#[derive(Clone, Copy, ValueEnum)]
enum OutputArg {
    /// The input at its own rate and channels, with only what was lost replaced.
    Splice,
    /// The model's raw 16 kHz output (what the paper evaluates).
    Model,
}

/// Restore a degraded WAV file with a guided diffusion prior and write the result.
#[derive(Args)]
#[command(after_help = "Methods:
  dgg    Diffusion Geodesic Guidance (default; --strength is γ, paper 0.08)
  dps    Diffusion Posterior Sampling (--strength is ζ, paper 5e-4)
  mpgd   Manifold-Preserving Guided Diffusion (ζ, paper 5e-3)
  dsg    Spherical Gaussian constraint (rate, paper 0.08)
  ditto  optimises the initial noise through a 20-step chain with gradients through the
         UNet, 100 iterations (--strength is the learning rate, paper 0.5): about 60 UNet
         passes and a decoder gradient per iteration, so hours per 5 s window on a CPU
  ddim   no guidance: what the prior alone makes of the clip

Examples:
  dgg-restore restore --task inpaint --gap 2.0-3.0 in.wav out.wav
  dgg-restore restore --task superres --cutoff 4000 in.wav out.wav
  dgg-restore restore --task dereverb --rt60 0.8 in.wav out.wav
  dgg-restore restore --task phase --method dps in.wav out.wav")]
pub struct RestoreArgs {
    #[command(flatten)]
    task: TaskArgs,
    /// Seed of the synthetic room (--rt60); use the one the audio was degraded with.
    #[arg(long, default_value_t = 0)]
    room_seed: u64,
    #[arg(long, default_value = "dgg", value_parser = |s: &str| s.parse::<MethodKind>())]
    method: MethodKind,
    /// Guidance strength of the method (see below); the paper's value if not given.
    #[arg(long)]
    strength: Option<f64>,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    prior: PriorArgs,
    #[arg(long, value_enum, default_value = "splice")]
    output_mode: OutputArg,
    /// Length of the windows the model restores at a time, in seconds.
    #[arg(long, default_value_t = 5.12)]
    window: f64,
    /// Overlap of consecutive windows, in seconds.
    #[arg(long, default_value_t = 1.0)]
    overlap: f64,
    /// The degraded input WAV.
    input: PathBuf,
    /// Where to write the restored WAV (written atomically, only when the run completes).
    output: PathBuf,
}

pub fn run(args: RestoreArgs) -> Result<()> {
    if !(args.window.is_finite() && args.window > 0.5 && args.overlap >= 0.0 && args.overlap < args.window / 2.0) {
        bail!("--window must be finite and exceed 0.5 s, and --overlap lie in [0, window/2)");
    }
    if let Some(s) = args.strength.filter(|s| !s.is_finite() || *s < 0.0) {
        bail!("--strength {s}: use a finite, non-negative value");
    }
    let (clip, format) = read_wav(&args.input)?;
    check_output(&args.output)?;
    let degradation = args.task.degradation(clip.sample_rate, args.room_seed, Some(&clip))?;

    let prior = args.prior.load()?;
    let settings = args.sampling.settings(args.method, args.strength, &prior)?;
    let mut request = RestoreRequest::new(degradation, settings);
    request.output = match args.output_mode {
        OutputArg::Splice => OutputMode::Splice,
        OutputArg::Model => OutputMode::Model,
    };
    request.window_seconds = args.window;
    request.overlap_seconds = args.overlap;

    let work = Signals::cancellable();
    let mut reporter = Reporter::new();
    let result = restore_clip(&prior, &clip, &request, &mut |p: &Progress| reporter.observe(p, &work));
    reporter.finish();
    // From here a signal removes the file being written and exits at once.
    drop(work);
    match result {
        Ok(_) if signals::received().is_some() => bail!("stopped by a signal: nothing was written"),
        Ok(restored) => {
            write_wav(&args.output, &restored, format)?;
            eprintln!("wrote {}", args.output.display());
            Ok(())
        }
        Err(EngineError::Sample(SampleError::Cancelled)) => bail!("stopped by a signal: nothing was written"),
        // The model or the settings, not the input: no file name in front.
        Err(e @ EngineError::Sample(SampleError::NonFinite { .. } | SampleError::BrokenModel { .. })) => Err(e.into()),
        Err(e) => Err(e).with_context(|| args.input.display().to_string()),
    }
}
