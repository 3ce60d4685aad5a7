//! `dgg-restore bench`: speed and memory figures, printed next to a reference.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use clap::{Args, Subcommand};
use dgg_restore::model::audioldm2::{AudioLdm2, ComponentWeights, LoadOptions, ModelConfigs, VAE_DECODE};
use dgg_restore::model::device::{parse_dtype, DeviceChoice};
use dgg_restore::model::text::Conditioning;
use dgg_restore::restore::guidance::ditto::DittoSettings;
use dgg_restore::restore::guidance::{Method, MethodKind, Stage};
use dgg_restore::restore::measurement::Measurement;
use dgg_restore::restore::prior::LatentPrior;
use dgg_restore::restore::sampler::{sample, SamplerSettings};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The diffusion core at full size: UNet forward, VAE decode (and backward), vocoder
    /// (and backward), each the median of several runs, with the peak resident memory.
    Model(ModelBenchArgs),
    /// Seconds per guided sampling step of each method on a full-size model and a 5.12 s
    /// inpainting window (DITTO: per optimisation iteration), with the peak memory.
    Restore(RestoreBenchArgs),
    /// One full DGG step, whole and stage by stage (UNet forward, VAE decode and vocoder
    /// each with its input gradient, loss, update), with the peak memory, next to the same
    /// step in PyTorch (`tools/bench/step_bench.py --json`).
    Step(StepBenchArgs),
    /// The CPU convolution kernels at the full-size networks' shapes, forward and adjoint,
    /// in GFLOP/s.
    Kernels(crate::kernel_bench::KernelBenchArgs),
}

#[derive(Args)]
struct StepBenchArgs {
    #[command(flatten)]
    model: ModelSource,
    /// Timed steps (after one warm-up step); medians are reported.
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Window length in seconds.
    #[arg(long, default_value_t = 5.12)]
    seconds: f64,
    /// `tools/bench/step_bench.py --json` output from this machine, run just before or after.
    #[arg(long)]
    reference: Option<PathBuf>,
}

#[derive(Args)]
struct RestoreBenchArgs {
    #[command(flatten)]
    model: ModelSource,
    /// Methods to time.
    #[arg(long, value_delimiter = ',', default_value = "dgg,dps,mpgd,dsg,ddim", value_parser = |s: &str| s.parse::<MethodKind>())]
    methods: Vec<MethodKind>,
    /// Steps timed per method (the median is reported).
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Window length in seconds.
    #[arg(long, default_value_t = 5.12)]
    seconds: f64,
}

/// Which model to build, on what.
#[derive(Args)]
struct ModelSource {
    /// Configs of the model to build with random weights (a directory with
    /// `{unet,vae,vocoder}/config.json` and `scheduler/scheduler_config.json`).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/bench/audioldm2-music"), conflicts_with = "model")]
    configs: PathBuf,
    /// Load real weights from this model directory instead of random ones.
    #[arg(long)]
    model: Option<PathBuf>,
    /// auto, cpu or cuda.
    #[arg(long, default_value = "auto", value_parser = |s: &str| s.parse::<DeviceChoice>())]
    device: DeviceChoice,
    /// f32, f16 or bf16 (UNet and vocoder; the VAE follows its `force_upcast`).
    #[arg(long, default_value = "f32", value_parser = |s: &str| parse_dtype(s))]
    dtype: DType,
    /// CPU threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

impl ModelSource {
    /// The prior, its device, and a line saying what it is.
    fn build(&self) -> Result<(AudioLdm2, Device, String)> {
        if let Some(threads) = self.threads {
            if threads == 0 {
                bail!("--threads must be positive");
            }
            // Read by rayon's pool when it starts and by candle at every op; nothing has
            // started a thread yet.
            std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        }
        let device = self.device.open(&mut |notice| eprintln!("{notice}"))?;
        let started = Instant::now();
        let (prior, source) = match &self.model {
            Some(dir) => {
                let cfgs = ModelConfigs::load(dir)?;
                let options = LoadOptions { device: device.clone(), dtype: self.dtype };
                (AudioLdm2::load(dir, &options, &random_conditioning(&cfgs, &device)?)?, format!("weights from {}", dir.display()))
            }
            None => {
                let cfgs = ModelConfigs::load(&self.configs)?;
                let cond = random_conditioning(&cfgs, &device)?;
                let vae_dtype = cfgs.vae.dtype_for(self.dtype);
                let random = |dtype| VarBuilder::from_backend(Box::new(RandomWeights), dtype, device.clone());
                let weights = ComponentWeights { unet: random(self.dtype), vae: random(vae_dtype), vocoder: random(self.dtype) };
                (AudioLdm2::new(cfgs, weights, &cond)?, format!("random weights, configs {}", self.configs.display()))
            }
        };
        let line = format!(
            "model: {source}; built in {:.1} s; {}, {:?}, {} threads",
            started.elapsed().as_secs_f64(),
            describe(&device),
            self.dtype,
            candle_core::utils::get_num_threads()
        );
        Ok((prior, device, line))
    }
}

#[derive(Args)]
struct ModelBenchArgs {
    #[command(flatten)]
    model: ModelSource,
    /// Runs per stage; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Clip length in seconds.
    #[arg(long, default_value_t = 5.12)]
    seconds: f64,
    /// Figures of `tools/bench/model_bench.py --json` from this machine, to compare with
    /// instead of the PyTorch figures in DESIGN.md §3.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Only these stages (unet_forward, vae_decode, vae_decode_backward, vocoder, vocoder_backward).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

pub fn run(args: BenchArgs) -> Result<()> {
    match args.what {
        BenchCommand::Model(args) => model(args),
        BenchCommand::Restore(args) => restore(args),
        BenchCommand::Step(args) => step(args),
        BenchCommand::Kernels(args) => crate::kernel_bench::run(args),
    }
}

const STAGES: [&str; 5] = ["unet_forward", "vae_decode", "vae_decode_backward", "vocoder", "vocoder_backward"];

/// PyTorch 2.11, fp32, 2-core machine of this kind, 5.12 s clip (DESIGN.md §3).
const DESIGN_REFERENCE: [(&str, f64); 5] =
    [("unet_forward", 0.70), ("vae_decode", 1.83), ("vae_decode_backward", 3.33), ("vocoder", 2.75), ("vocoder_backward", 5.35)];

/// The longest window a benchmark takes: AudioLDM2 was trained on 10 s clips, and a minute
/// already takes tens of GB through the decoders' gradients.
const MAX_BENCH_SECONDS: f64 = 60.0;

/// `--seconds` must be finite, above `min` and at most [`MAX_BENCH_SECONDS`].
fn check_seconds(seconds: f64, min: f64) -> Result<()> {
    if !(seconds > min && seconds <= MAX_BENCH_SECONDS) {
        bail!("--seconds {seconds}: use more than {min} and at most {MAX_BENCH_SECONDS}");
    }
    Ok(())
}

fn model(args: ModelBenchArgs) -> Result<()> {
    if let Some(bad) = args.only.iter().find(|s| !STAGES.contains(&s.as_str())) {
        bail!("unknown stage `{bad}`: choose from {}", STAGES.join(", "));
    }
    if args.repeats == 0 {
        bail!("--repeats must be positive");
    }
    check_seconds(args.seconds, 0.0)?;
    let reference = Reference::read(args.reference.as_deref())?;
    let (prior, device, line) = args.model.build()?;
    println!("{line}");

    let samples = (args.seconds * prior.sample_rate() as f64).round() as usize;
    let (c, h, w) = prior.latent_shape(samples);
    let z = Tensor::randn(0f32, 1.0, (1, c, h, w), &device)?;
    let frames = samples.div_ceil(prior.vocoder().config().hop_length());
    // Log-mels of music sit around −4 (ln of magnitudes), as in tools/bench/model_bench.py.
    let mel = (Tensor::randn(0f32, 1.0, (1, frames, prior.vocoder().config().model_in_dim), &device)? - 4.0)?.to_dtype(args.model.dtype)?;
    println!("{:.2} s clip: latent {:?}, mel {:?}; median of {}", args.seconds, z.dims(), mel.dims(), args.repeats);

    let selected = |s: &str| args.only.is_empty() || args.only.iter().any(|o| o == s);
    let mut results = BTreeMap::new();
    for stage in STAGES.into_iter().filter(|s| selected(s)) {
        let run = || -> Result<()> {
            match stage {
                "unet_forward" => drop(prior.predict_noise(&z, &[500])?),
                "vae_decode" => drop(prior.vae().decode(&z)?),
                "vae_decode_backward" => backward(&z, |z| prior.vae().decode(z))?,
                "vocoder" => drop(prior.vocoder().forward(&mel)?),
                "vocoder_backward" => backward(&mel, |m| prior.vocoder().forward(m))?,
                _ => unreachable!("stages are checked above"),
            }
            device.synchronize()?;
            Ok(())
        };
        results.insert(stage, measure(args.repeats, run).with_context(|| format!("stage {stage}"))?);
    }
    if (reference.clip_seconds - args.seconds).abs() > 1e-6 {
        println!("note: the reference is for a {:.2} s clip, the ratios compare different sizes", reference.clip_seconds);
    }
    print_table(&results, &reference);
    Ok(())
}

/// PyTorch 2.11, fp32, one DGG step at 5.12 s on a 2-core machine of this kind (DESIGN §3).
const DESIGN_DGG_STEP_S: f64 = 9.5;

fn restore(args: RestoreBenchArgs) -> Result<()> {
    if args.steps == 0 {
        bail!("--steps must be positive");
    }
    check_seconds(args.seconds, 0.5)?;
    let (prior, device, line) = args.model.build()?;
    println!("{line}");
    let samples = (args.seconds * prior.sample_rate() as f64).round() as usize;
    let measurement = inpainting_window(&prior, samples, &device)?;
    println!("{:.2} s inpainting window, latent {:?}; median over {} steps (DITTO: iterations)", args.seconds, prior.latent_shape(samples), args.steps);
    println!("{:<8} {:>12} {:>16} {:>14}", "method", "s / step", "vs PyTorch DGG", "peak RSS (MB)");
    for kind in &args.methods {
        let method = match kind.with_strength(None) {
            Method::Ditto(d) => Method::Ditto(DittoSettings { iterations: args.steps, ..d }),
            m => m,
        };
        let settings = SamplerSettings::new(method, args.steps, 0);
        let peak = PeakMemory::start();
        let mut times = Vec::new();
        let mut last = Instant::now();
        sample(&prior, &measurement, samples, &settings, &mut |report| {
            if report.stage == Stage::Step {
                times.push(last.elapsed().as_secs_f64());
                last = Instant::now();
            }
            ControlFlow::Continue(())
        })?;
        device.synchronize()?;
        let peak = peak.finish().map_or("-".into(), |mb| format!("{mb:.0}"));
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let ratio = if *kind == MethodKind::Dgg { format!("{:.2}×", median / DESIGN_DGG_STEP_S) } else { "-".into() };
        println!("{:<8} {median:>12.2} {ratio:>16} {peak:>14}", kind.name());
    }
    println!("PyTorch reference: {DESIGN_DGG_STEP_S} s per DGG step (DESIGN.md §3, 2-core machine, fp32, 5.12 s).");
    Ok(())
}

/// The stages of a DGG step as `bench step` and `tools/bench/step_bench.py` name them.
const STEP_STAGES: [&str; 5] = ["unet_forward", "vae_decode_grad", "vocoder_grad", "loss", "update"];

/// Which of [`STEP_STAGES`] the time up to a report belongs to.
fn step_stage(stage: Stage) -> &'static str {
    match stage {
        Stage::Denoise | Stage::DenoiseGradient => "unet_forward",
        Stage::Decode(s) | Stage::DecodeGradient(s) if s.network == VAE_DECODE => "vae_decode_grad",
        Stage::Decode(_) | Stage::DecodeGradient(_) => "vocoder_grad",
        Stage::Loss => "loss",
        // `bench step` samples without the engine: no input is read between its steps.
        Stage::Step | Stage::Input => "update",
    }
}

fn step(args: StepBenchArgs) -> Result<()> {
    if args.steps == 0 {
        bail!("--steps must be positive");
    }
    check_seconds(args.seconds, 0.5)?;
    let reference = args.reference.as_deref().map(StepReference::read).transpose()?;
    let (prior, device, line) = args.model.build()?;
    println!("{line}");
    let samples = (args.seconds * prior.sample_rate() as f64).round() as usize;
    let measurement = inpainting_window(&prior, samples, &device)?;
    println!("{:.2} s inpainting window, latent {:?}; DGG, one warm-up step, then the median of {}", args.seconds, prior.latent_shape(samples), args.steps);

    // The sampler's own loop, timed at every stage boundary it reports.
    let settings = SamplerSettings::new(MethodKind::Dgg.with_strength(None), args.steps + 1, 0);
    let mut stages: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut whole = Vec::new();
    let mut peak = None;
    let (mut step_started, mut last) = (Instant::now(), Instant::now());
    // The longest time between two stage boundaries: how long a Cancel can wait.
    let mut longest = (0.0, Stage::Step);
    sample(&prior, &measurement, samples, &settings, &mut |report| {
        let now = Instant::now();
        if report.step > 1 {
            if (now - last).as_secs_f64() > longest.0 {
                longest = ((now - last).as_secs_f64(), report.stage);
            }
            let times = stages.entry(step_stage(report.stage)).or_default();
            if times.len() < report.step - 1 {
                times.push(0.0);
            }
            *times.last_mut().expect("pushed above") += (now - last).as_secs_f64();
        }
        if report.stage == Stage::Step {
            if report.step == 1 {
                peak = Some(PeakMemory::start());
            } else {
                whole.push((now - step_started).as_secs_f64());
            }
            step_started = Instant::now();
        }
        last = Instant::now();
        ControlFlow::Continue(())
    })?;
    device.synchronize()?;
    let peak = peak.and_then(PeakMemory::finish);

    let reference_of = |stage: &str| reference.as_ref().and_then(|r| r.medians.get(stage).copied());
    match &reference {
        Some(r) => println!("reference: {}", r.label),
        None => println!("reference: none (run tools/bench/step_bench.py --json REF.json and pass --reference REF.json)"),
    }
    println!("{:<18} {:>10} {:>10} {:>8}  runs (s)", "stage", "ours (s)", "ref (s)", "ratio");
    let row = |name: &str, runs: &[f64], reference: Option<f64>| {
        let m = median(runs);
        let (r, ratio) = reference.map_or(("-".into(), "-".into()), |r| (format!("{r:.3}"), format!("{:.2}×", m / r)));
        let runs: Vec<String> = runs.iter().map(|t| format!("{t:.3}")).collect();
        println!("{name:<18} {m:>10.3} {r:>10} {ratio:>8}  {}", runs.join(" "));
    };
    for stage in STEP_STAGES {
        row(stage, stages.get(stage).map_or(&[][..], |v| v.as_slice()), reference_of(stage));
    }
    row("step", &whole, reference_of("step"));
    let ours = peak.map_or("n/a".into(), |p| format!("{p:.0}"));
    let theirs = reference.as_ref().and_then(|r| r.peak_rss_mb);
    let ratio = peak.zip(theirs).map_or("-".into(), |(a, b)| format!("{:.2}×", a / b));
    println!("{:<18} {ours:>10} {:>10} {ratio:>8}", "peak RSS (MB)", theirs.map_or("-".into(), |t| format!("{t:.0}")));
    println!("ratio = ours / reference (lower is better); peak RSS: the high-water mark over the timed steps, models included");
    println!("longest stage (a Cancel waits at most this long): {:.2} s, up to {:?}", longest.0, longest.1);
    Ok(())
}

fn median(runs: &[f64]) -> f64 {
    let mut sorted = runs.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

/// An inpainting window of `samples`: a 440 Hz tone with the middle fifth silenced.
fn inpainting_window(prior: &AudioLdm2, samples: usize, device: &Device) -> Result<Measurement> {
    let rate = prior.sample_rate() as f32;
    let clean: Vec<f32> = (0..samples).map(|n| 0.3 * (n as f32 * 2.0 * std::f32::consts::PI * 440.0 / rate).sin()).collect();
    let mask: Vec<f32> = (0..samples).map(|n| if (2 * samples / 5..3 * samples / 5).contains(&n) { 0.0 } else { 1.0 }).collect();
    let observed: Vec<f32> = clean.iter().zip(&mask).map(|(x, m)| x * m).collect();
    Ok(Measurement::with_mask(mask, &Tensor::from_vec(observed, (1, samples), device)?, prior.sample_rate())?)
}

/// `tools/bench/step_bench.py --json`: medians by stage and of the whole step, the peak.
struct StepReference {
    label: String,
    medians: BTreeMap<String, f64>,
    peak_rss_mb: Option<f64>,
}

impl StepReference {
    fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        let stages =
            json["stages"].as_object().with_context(|| format!("{}: no `stages` object (write it with tools/bench/step_bench.py --json)", path.display()))?;
        let mut medians: BTreeMap<String, f64> = stages.iter().filter_map(|(k, v)| Some((k.clone(), v["median_s"].as_f64()?))).collect();
        let step = json["step"]["median_s"].as_f64().with_context(|| format!("{}: no `step.median_s`", path.display()))?;
        medians.insert("step".into(), step);
        let threads = json["threads"].as_u64().map(|t| format!(", {t} threads")).unwrap_or_default();
        Ok(Self {
            label: format!("PyTorch {}{threads} ({})", json["torch"].as_str().unwrap_or("?"), path.display()),
            medians,
            peak_rss_mb: json["peak_rss_mb"].as_f64(),
        })
    }
}

/// Gradient of `sum(f(x) · c)` w.r.t. `x` for a random cotangent `c`; forward included.
fn backward(x: &Tensor, f: impl Fn(&Tensor) -> candle_core::Result<Tensor>) -> Result<()> {
    let x = Var::from_tensor(x)?;
    let y = f(x.as_tensor())?;
    let c = Tensor::randn(0f32, 1.0, y.shape(), y.device())?.to_dtype(y.dtype())?;
    let grads = (y * c)?.sum_all()?.backward()?;
    if grads.get(x.as_tensor()).is_none() {
        bail!("no gradient reached the input");
    }
    Ok(())
}

struct Measured {
    median_s: f64,
    runs_s: Vec<f64>,
    peak_rss_mb: Option<f64>,
}

fn measure(repeats: usize, run: impl Fn() -> Result<()>) -> Result<Measured> {
    let peak = PeakMemory::start();
    let mut runs_s = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        run()?;
        runs_s.push(t.elapsed().as_secs_f64());
    }
    let mut sorted = runs_s.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(Measured { median_s: sorted[sorted.len() / 2], runs_s, peak_rss_mb: peak.finish() })
}

/// Peak resident memory of this process over a stretch of time (Linux: the high-water
/// mark `VmHWM`, reset by writing 5 to `/proc/self/clear_refs`). GPU memory is not counted.
struct PeakMemory {
    resettable: bool,
}

impl PeakMemory {
    fn start() -> Self {
        Self { resettable: std::fs::write("/proc/self/clear_refs", "5").is_ok() }
    }

    fn finish(self) -> Option<f64> {
        if !self.resettable {
            return None;
        }
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    }
}

/// Reference medians by stage, and where they come from.
struct Reference {
    label: String,
    clip_seconds: f64,
    medians: BTreeMap<String, f64>,
}

impl Reference {
    fn read(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Self {
                label: "PyTorch 2.11 fp32, 2 cores (DESIGN.md §3)".into(),
                clip_seconds: 5.12,
                medians: DESIGN_REFERENCE.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            });
        };
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        let stages =
            json["stages"].as_object().with_context(|| format!("{}: no `stages` object (write it with tools/bench/model_bench.py --json)", path.display()))?;
        let medians = stages.iter().filter_map(|(k, v)| Some((k.clone(), v["median_s"].as_f64()?))).collect();
        let torch = json["torch"].as_str().unwrap_or("?");
        let threads = json["threads"].as_u64().map(|t| format!(", {t} threads")).unwrap_or_default();
        let clip_seconds = json["clip_seconds"].as_f64().unwrap_or(5.12);
        Ok(Self { label: format!("PyTorch {torch}{threads} ({})", path.display()), clip_seconds, medians })
    }
}

fn print_table(results: &BTreeMap<&str, Measured>, reference: &Reference) {
    println!("reference: {}", reference.label);
    println!("{:<22} {:>10} {:>10} {:>8} {:>14}  runs (s)", "stage", "ours (s)", "ref (s)", "ratio", "peak RSS (MB)");
    for stage in STAGES {
        let Some(m) = results.get(stage) else { continue };
        let reference = reference.medians.get(stage);
        let fmt_ref = reference.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into());
        let ratio = reference.map(|r| format!("{:.2}×", m.median_s / r)).unwrap_or_else(|| "-".into());
        let peak = m.peak_rss_mb.map(|p| format!("{p:.0}")).unwrap_or_else(|| "n/a".into());
        let runs: Vec<String> = m.runs_s.iter().map(|r| format!("{r:.2}")).collect();
        println!("{stage:<22} {:>10.2} {fmt_ref:>10} {ratio:>8} {peak:>14}  {}", m.median_s, runs.join(" "));
    }
    println!("ratio = ours / reference (lower is better); peak RSS is this process's high-water mark during the stage");
}

fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => "CPU".into(),
        other => format!("{other:?}"),
    }
}

/// Random conditioning of the widths the UNet cross-attends with: 8 GPT-2 states and one
/// Flan-T5 state, as the empty prompt gives (DESIGN.md §3).
fn random_conditioning(cfgs: &ModelConfigs, device: &Device) -> Result<Conditioning> {
    let layout = &cfgs.unet_layout;
    let width = |context| layout.cross_attention_widths().find(|(c, _)| *c == context).map_or(1, |(_, w)| w);
    let (d, d1) = (width(0), width(1));
    Ok(Conditioning {
        encoder_hidden_states: Tensor::randn(0f32, 1.0, (1, 8, d), device)?,
        encoder_hidden_states_1: Tensor::randn(0f32, 1.0, (1, 1, d1), device)?,
        attention_mask_1: Some(Tensor::ones((1, 1), DType::F32, device)?),
    })
}

/// Weights drawn on the fly for any name and shape: N(0, 1/fan_in) for matrices and
/// kernels, ones for norm scales and the vocoder's `scale`, zeros for biases and `mean` —
/// so activations stay in range and the timings are those of real weights.
struct RandomWeights;

impl SimpleBackend for RandomWeights {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let leaf = name.rsplit('.').next().unwrap_or(name);
        let t = match (s.rank(), leaf) {
            (0 | 1, "weight" | "scale") => Tensor::ones(s, DType::F32, dev)?,
            (0 | 1, _) => Tensor::zeros(s, DType::F32, dev)?,
            _ => {
                let fan_in: usize = s.dims()[1..].iter().product();
                Tensor::randn(0f32, (1.0 / fan_in as f64).sqrt() as f32, s, dev)?
            }
        };
        t.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("random weights need a shape for `{name}`")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}
