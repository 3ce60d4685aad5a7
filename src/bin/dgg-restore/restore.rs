//! `dgg-restore restore`: the offline renderer.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use dgg_restore::audio::{write_wav_with, FrameSource, WavLayout, WavReader};
use dgg_restore::engine::{output_shape, restore_stream, EngineError, OutputMode, Progress, RestoreRequest};
use dgg_restore::files::check_output;
use dgg_restore::restore::guidance::MethodKind;
use dgg_restore::restore::prior::LatentPrior;
use dgg_restore::restore::sampler::SampleError;
use std::path::PathBuf;

use crate::prior::{PriorArgs, SamplingArgs};
use crate::progress::Reporter;
use crate::signals::Signals;
use crate::task::TaskArgs;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

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
    /// A quick render to hear where the restoration is heading: the same settings and seed
    /// in at most 25 steps (DITTO: 10 iterations of a 25-step chain). Run again without it
    /// for the full render.
    #[arg(long)]
    preview: bool,
    /// The band above the model's (8 kHz for AudioLDM2), where the file has one: inside each
    /// filled gap, made from the audio around it; for super-resolution, continued from the
    /// spectrum below (above the cutoff, when the model cannot reach it).
    #[arg(long, value_enum, default_value = "on")]
    full_band: Switch,
    /// Length of the windows the model restores at a time, in seconds.
    #[arg(long, default_value_t = 5.12)]
    window: f64,
    /// Overlap of consecutive windows, in seconds.
    #[arg(long, default_value_t = 1.0)]
    overlap: f64,
    /// Windows sampled at once (mid and side count apart; inpainting batches only a
    /// window's two). Default: 2 on CUDA, 1 on the CPU, where a batch takes as long as its
    /// windows one by one and holds their memory together.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    batch: Option<usize>,
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
    let input = WavReader::open(&args.input)?;
    check_output(&args.output)?;
    Signals::one_output();
    let (rate, channels, len) = (input.sample_rate(), input.channels(), input.frames());
    let degradation = args.task.degradation(rate, args.room_seed, Some(&args.input))?;

    let prior = args.prior.load()?;
    let settings = args.sampling.settings(args.method, args.strength, &prior)?;
    let mut request = RestoreRequest::new(degradation, settings);
    request.output = match args.output_mode {
        OutputArg::Splice => OutputMode::Splice,
        OutputArg::Model => OutputMode::Model,
    };
    request.window_seconds = args.window;
    request.overlap_seconds = args.overlap;
    request.batch = args.batch;
    request.full_band = args.full_band == Switch::On;
    if args.preview {
        let full = request.sampler.steps;
        request = request.preview();
        eprintln!("preview: {} of {full} steps, same seed (run without --preview for the full render)", request.sampler.steps);
    }

    // The restoration streams from the input into the output's temporary file, which a
    // signal or an error removes: a long file takes little memory, and nothing half-done
    // is left.
    let (out_rate, frames) = output_shape(&request, rate, len, prior.sample_rate());
    let layout = WavLayout { sample_rate: out_rate, channels, frames, format: input.format() };
    let open = || WavReader::open(&args.input).map(|r| Box::new(r) as Box<dyn FrameSource>);
    let work = Signals::cancellable();
    let mut reporter = Reporter::new();
    let result = write_wav_with(&args.output, layout, |sink| {
        restore_stream(&prior, &open, &request, &mut |block| sink.write(block), &mut |p: &Progress| reporter.observe(p, &work))?;
        // A signal after the last step still means: write nothing.
        match work.stop_requested() {
            true => Err(EngineError::Sample(SampleError::Cancelled)),
            false => Ok(()),
        }
    });
    reporter.finish();
    drop(work);
    match result {
        Ok(()) => {
            eprintln!("wrote {}", args.output.display());
            Ok(())
        }
        Err(EngineError::Sample(SampleError::Cancelled)) => bail!("stopped by a signal: nothing was written"),
        // The model or the settings, or a file that names itself: no input name in front.
        Err(e @ EngineError::Sample(SampleError::NonFinite { .. } | SampleError::BrokenModel { .. })) => Err(e.into()),
        Err(EngineError::Audio(e)) => Err(e.into()),
        Err(e) => Err(e).with_context(|| args.input.display().to_string()),
    }
}
