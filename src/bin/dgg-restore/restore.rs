//! `dgg-restore restore`: the offline renderer.

use anyhow::{anyhow, bail, Context, Result};
use candle_core::DType;
use clap::{Args, ValueEnum};
use dgg_restore::audio::{read_wav, write_wav};
use dgg_restore::engine::{restore_clip, EngineError, OutputMode, Progress, RestoreRequest};
use dgg_restore::model::audioldm2::{AudioLdm2, LoadOptions};
use dgg_restore::model::device::{parse_dtype, DeviceChoice};
use dgg_restore::model::ModelSearch;
use dgg_restore::restore::guidance::ditto::DittoSettings;
use dgg_restore::restore::guidance::{Method, MethodKind};
use dgg_restore::restore::sampler::{SampleError, SamplerSettings};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::progress::Reporter;
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
    /// Sampling steps (DITTO: steps of its chain). Default: 500 (the paper) on CUDA,
    /// 100 on the CPU, where a guided step of a 5 s window takes tens of seconds; DITTO 20.
    #[arg(long)]
    steps: Option<usize>,
    /// DITTO: optimisation iterations.
    #[arg(long, default_value_t = 100)]
    iterations: usize,
    /// Seed of the sampler: the same seed gives the same result on the same device.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Text prompt for the prior (the paper uses none).
    #[arg(long, default_value = "")]
    prompt: String,
    /// Classifier-free guidance scale of the prompt (1 = off).
    #[arg(long, default_value_t = 1.0)]
    guidance_scale: f64,
    #[arg(long, default_value = "auto", value_parser = |s: &str| s.parse::<DeviceChoice>())]
    device: DeviceChoice,
    /// f32, f16 or bf16 for the UNet and vocoder.
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    dtype: DType,
    /// The AudioLDM2 model directory (diffusers layout). Otherwise $DGG_MODEL_DIR, then
    /// models/audioldm2-music/, then the plugin's model directory.
    #[arg(long)]
    model: Option<PathBuf>,
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

fn missing_model(search: &ModelSearch) -> anyhow::Error {
    let looked: Vec<String> = search.candidates().iter().map(|p| format!("  {}", p.display())).collect();
    anyhow!(
        "no AudioLDM2 model directory found; looked in:\n{}\n\
         Download cvssp/audioldm2-music (weights licensed CC-BY-NC-SA 4.0, non-commercial) on a machine with internet:\n  \
         huggingface-cli download cvssp/audioldm2-music --local-dir models/audioldm2-music\n\
         then copy it here and pass --model DIR or set DGG_MODEL_DIR (see models/README.md)",
        looked.join("\n")
    )
}

pub fn run(args: RestoreArgs) -> Result<()> {
    if !(args.window > 0.5 && args.overlap >= 0.0 && args.overlap < args.window / 2.0) {
        bail!("--window must exceed 0.5 s and --overlap lie in [0, window/2)");
    }
    let (clip, format) = read_wav(&args.input)?;
    let degradation = args.task.degradation(clip.sample_rate, args.room_seed)?;

    let search = ModelSearch::for_cli(args.model.clone());
    let dir = search.found().ok_or_else(|| missing_model(&search))?.to_path_buf();
    let device = args.device.open().map_err(|e| anyhow!(e))?;
    let on_gpu = device.is_cuda();
    let options = LoadOptions { device, dtype: args.dtype };
    eprintln!("loading {} on {}", dir.display(), if on_gpu { "CUDA" } else { "the CPU" });
    let prior = AudioLdm2::load_for_prompt(&dir, &options, &args.prompt, args.guidance_scale)?;

    let method = match args.method.with_strength(args.strength) {
        Method::Ditto(d) => Method::Ditto(DittoSettings { chain_steps: args.steps.unwrap_or(d.chain_steps), iterations: args.iterations, ..d }),
        other => other,
    };
    if let Some(s) = args.strength.filter(|s| !s.is_finite() || *s < 0.0) {
        bail!("--strength {s}: use a finite, non-negative value");
    }
    let steps = args.steps.unwrap_or(if on_gpu { 500 } else { 100 });
    if steps == 0 {
        bail!("--steps must be at least 1");
    }
    let mut request = RestoreRequest::new(degradation, SamplerSettings::new(method, steps, args.seed));
    request.output = match args.output_mode {
        OutputArg::Splice => OutputMode::Splice,
        OutputArg::Model => OutputMode::Model,
    };
    request.window_seconds = args.window;
    request.overlap_seconds = args.overlap;

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).context("installing the Ctrl-C handler")?;
    let mut reporter = Reporter::new();
    let result = restore_clip(&prior, &clip, &request, &mut |p: &Progress| {
        reporter.update(p);
        if stop.load(Ordering::SeqCst) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    });
    reporter.finish();
    match result {
        Ok(restored) => {
            write_wav(&args.output, &restored, format)?;
            eprintln!("wrote {}", args.output.display());
            Ok(())
        }
        Err(EngineError::Sample(SampleError::Cancelled)) => bail!("cancelled: nothing was written"),
        Err(e) => Err(e).with_context(|| args.input.display().to_string()),
    }
}
