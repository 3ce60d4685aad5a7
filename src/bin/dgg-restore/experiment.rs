//! `dgg-restore experiment`: the paper's protocol over a directory of clips, resumable.

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::Args;
use dgg_restore::audio::{read_wav, write_wav, AudioClip, WavFormat};
use dgg_restore::dsp::lsd::lsd_eval_py;
use dgg_restore::dsp::MODEL_SAMPLE_RATE;
use dgg_restore::engine::{restore_clip, EngineError, OutputMode, Progress, RestoreRequest};
use dgg_restore::evaluation::degrade::{degrade, DegradeOptions};
use dgg_restore::evaluation::experiment::{paper_table_markdown, segments, Excerpts, Lsd, Protocol, Results, Score, Segment, DEGRADED_ROW};
use dgg_restore::evaluation::score::lsd_score;
use dgg_restore::files::{write_atomic, FileError};
use dgg_restore::restore::guidance::{Method, MethodKind};
use dgg_restore::restore::operators::{Operator, OperatorError, TaskKind, RT60_RANGE};
use dgg_restore::restore::sampler::{SampleError, SamplerSettings};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::eval::wav_names;
use crate::prior::{PriorArgs, SamplingArgs};
use crate::progress::Reporter;
use crate::signals::Signals;

/// Run the paper's protocol: take mono 16 kHz segments of every clip, degrade each with
/// every task, restore it with every method (the model's raw output, as the paper scores
/// it), and write the LSD tables in the paper's layout, beside the paper's own, with all
/// the audio.
#[derive(Args)]
#[command(after_help = "What it writes to --out:
  clean/<clip>_<k>.wav               the reference segments
  <task>/degraded/<clip>_<k>.wav     what each method was given
  <task>/<method>/<clip>_<k>.wav     the restorations
  results.md                         the setup, mean LSDs (methods down, tasks across, as
                                     the paper) and the paper's own table
  results.csv                        the means: <task>_lsd_hop512 (the paper's eval.py:
                                     hop 512, zero padding), <task>_lsd_hop160 (ours)
  scores.csv                         every segment's two LSDs
  settings.json                      what the results depend on
For FAD, run an external tool (e.g. fadtk) on clean/ against each <task>/<method>/.

Stopped runs continue where they left off: run the same command again. Restorations
already in --out are scored, not redone; --out must not hold a run with other settings.

The tasks: inpainting fills the middle fifth of each segment (2-3 s of 5 s),
super-resolution restores above 4 kHz, dereverberation removes a room, phase retrieval
starts from |STFT|. --protocol paper (the default) runs them as the paper's official code
does: 16 kHz audio resampled to 8 kHz (torchaudio) with the 16 kHz mel on both sides, a
5000-tap random-walk room redrawn at every guidance step, |STFT| without a window, DITTO's
chain with eta 1, 500 steps; the paper scored one excerpt per clip (--excerpt-at 10 for
MoisesDB). --protocol ours runs restore's operators: a low-pass, one synthetic room
(--rt60, seeded by --seed), a Hann window.
DITTO is left out of the default methods: on a CPU it takes hours per segment.")]
pub struct ExperimentArgs {
    /// Directory of clean music WAVs (any rate; stereo is downmixed).
    #[arg(long)]
    clips: PathBuf,
    /// Where to write the audio and the tables.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_delimiter = ',', default_value = "inpaint,superres,dereverb,phase")]
    tasks: Vec<TaskKind>,
    #[arg(long, value_delimiter = ',', default_value = "dgg,dps,mpgd,dsg", value_parser = |s: &str| s.parse::<MethodKind>())]
    methods: Vec<MethodKind>,
    /// The setup: `paper` (the official code's operators and metric, to reproduce its table)
    /// or `ours` (restore's operators).
    #[arg(long, default_value = "paper", value_parser = |s: &str| s.parse::<Protocol>())]
    protocol: Protocol,
    /// Segment length in seconds (the paper: 5).
    #[arg(long, default_value_t = 5.0)]
    segment: f64,
    /// Score one segment per clip, starting this many seconds in, as the paper's official
    /// loader does (10 for MoisesDB, 0 for MusicCaps).
    #[arg(long, conflicts_with = "segments")]
    excerpt_at: Option<f64>,
    /// Score consecutive segments of every clip: `all` (the default), or at most N per clip.
    /// Near-silent ones are skipped.
    #[arg(long, value_parser = parse_segments, alias = "segments-per-clip")]
    segments: Option<PerClip>,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Dereverberation: reverberation time of the synthetic room, in seconds.
    #[arg(long, default_value_t = 0.8)]
    rt60: f64,
    #[command(flatten)]
    prior: PriorArgs,
}

/// Everything a stored restoration depends on besides its task and method. A run in an
/// --out made with other settings would mix incomparable results, so it is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RunSettings {
    /// Runs from before the protocols existed ran ours.
    #[serde(default = "ours")]
    protocol: String,
    segment: f64,
    /// The excerpt's start in seconds, or none for consecutive segments.
    #[serde(default)]
    excerpt_at: Option<f64>,
    #[serde(default)]
    segments_per_clip: Option<usize>,
    steps: usize,
    iterations: usize,
    seed: u64,
    rt60: f64,
    prompt: String,
    guidance_scale: f64,
}

const SETTINGS_FILE: &str = "settings.json";

fn ours() -> String {
    Protocol::Ours.name().into()
}

/// `--segments`: how many segments of each clip, all if none.
#[derive(Debug, Clone, Copy)]
struct PerClip(Option<usize>);

/// `all`, or a number of segments per clip.
fn parse_segments(s: &str) -> std::result::Result<PerClip, String> {
    match s {
        "all" => Ok(PerClip(None)),
        n => match n.parse::<usize>() {
            Ok(n) if n > 0 => Ok(PerClip(Some(n))),
            _ => Err(format!("'{s}': use all, or how many segments per clip (1 or more)")),
        },
    }
}

impl RunSettings {
    /// Records these settings in `out`, or checks them against the ones recorded there.
    fn claim(&self, out: &Path) -> Result<()> {
        let path = out.join(SETTINGS_FILE);
        if path.is_file() {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let stored: RunSettings =
                serde_json::from_str(&text).with_context(|| format!("{} is not a settings file of this tool: use another --out", path.display()))?;
            if &stored != self {
                bail!(
                    "{} holds a run made with other settings:\n  there: {}\n  now:   {}\nuse another --out, or the same settings to continue that run",
                    out.display(),
                    serde_json::to_string(&stored)?,
                    serde_json::to_string(self)?
                );
            }
            return Ok(());
        }
        write_text(&path, &serde_json::to_string_pretty(self)?)
    }
}

/// Writes `text` to `path` atomically, so a reader never sees half of it.
fn write_text(path: &Path, text: &str) -> Result<()> {
    Ok(write_atomic(path, |out| out.write_all(text.as_bytes()).map_err(|source| FileError { path: path.to_owned(), action: "write", source }))?)
}

fn write_results(out: &Path, results: &Results, header: &str, protocol: Protocol, tasks: &[TaskKind]) -> Result<()> {
    let mut md = header.to_string();
    for lsd in Lsd::in_order(protocol) {
        md.push_str(&format!("\n## {} ↓\n\n{}", lsd.title(), results.markdown("LSD ↓", lsd)));
    }
    let comparable = match protocol {
        Protocol::Paper => "The same protocol, on MoisesDB excerpts at 10–15 s (its FAD is not computed here)",
        Protocol::Ours => "Its numbers come from the paper's protocol, not this one: for a comparison, run `--protocol paper`",
    };
    md.push_str(&format!("\n## The paper's table (LSD / FAD, eval.py's LSD, 500 steps)\n\n{}\n{}.\n", paper_table_markdown(tasks), comparable));
    write_text(&out.join("results.md"), &md)?;
    write_text(&out.join("results.csv"), &results.csv())?;
    write_text(&out.join("scores.csv"), &results.scores_csv())
}

fn cut_segments(args: &ExperimentArgs, excerpts: Excerpts) -> Result<Vec<Segment>> {
    let names = wav_names(&args.clips)?;
    if names.is_empty() {
        bail!("{} holds no WAV files", args.clips.display());
    }
    let mut all = Vec::new();
    for name in &names {
        let (clip, _) = read_wav(&args.clips.join(name))?;
        let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
        let taken = segments(stem, &clip, args.segment, excerpts).with_context(|| format!("cutting {name}"))?;
        if taken.is_empty() {
            eprintln!("{name}: no {} s segment taken ({})", args.segment, describe(excerpts, args.segment));
        }
        all.extend(taken);
    }
    if all.is_empty() {
        let hint = match excerpts {
            Excerpts::At(_) => "use longer clips, an earlier --excerpt-at, or --segments all",
            Excerpts::All { .. } => "use longer clips or a shorter --segment",
        };
        bail!("no {} s segment in {}: {hint}", args.segment, args.clips.display());
    }
    Ok(all)
}

/// What `excerpts` takes of each clip, in words.
fn describe(excerpts: Excerpts, seconds: f64) -> String {
    match excerpts {
        Excerpts::At(at) => format!("one excerpt of each clip, {at} s to {} s", at + seconds),
        Excerpts::All { limit: None } => "every segment of each clip with sound".into(),
        Excerpts::All { limit: Some(n) } => format!("at most {n} segments of each clip with sound"),
    }
}

pub fn run(args: ExperimentArgs) -> Result<()> {
    if !(0.5..=60.0).contains(&args.segment) {
        bail!("--segment {} s: use 0.5 to 60 s (the paper: 5)", args.segment);
    }
    if args.tasks.is_empty() || args.methods.is_empty() {
        bail!("name at least one task and one method");
    }
    // Checked whatever the protocol (the paper's room is a random walk), so that a run
    // never records a room that could not be made.
    if !RT60_RANGE.contains(&args.rt60) {
        bail!("--rt60 {}: {}", args.rt60, OperatorError::Rt60OutOfRange(args.rt60));
    }
    let protocol = args.protocol;
    let excerpts = match (args.excerpt_at, args.segments) {
        (Some(at), _) if !(at.is_finite() && at >= 0.0) => bail!("--excerpt-at {at}: use the seconds into each clip where the excerpt starts, 0 or more"),
        (Some(at), _) => Excerpts::At(at),
        (None, Some(PerClip(limit))) => Excerpts::All { limit },
        (None, None) => Excerpts::All { limit: None },
    };
    let segments = cut_segments(&args, excerpts)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let prior = args.prior.load()?;
    // The protocol's sampler for `kind`: the paper ran 500 steps and DITTO's chain with eta 1.
    let sampler = |kind: MethodKind| -> Result<SamplerSettings> {
        let mut settings = args.sampling.settings(kind, None, &prior)?;
        if protocol == Protocol::Paper && args.sampling.steps.is_none() {
            settings.steps = Protocol::PAPER_STEPS;
        }
        if let Method::Ditto(d) = &mut settings.method {
            d.eta = protocol.ditto_eta();
        }
        Ok(settings)
    };
    let resolved_steps = sampler(MethodKind::Ddim)?.steps;
    RunSettings {
        protocol: protocol.name().into(),
        segment: args.segment,
        excerpt_at: match excerpts {
            Excerpts::At(at) => Some(at),
            Excerpts::All { .. } => None,
        },
        segments_per_clip: match excerpts {
            Excerpts::At(_) => None,
            Excerpts::All { limit } => limit,
        },
        steps: resolved_steps,
        iterations: args.sampling.iterations,
        seed: args.sampling.seed,
        rt60: args.rt60,
        prompt: args.prior.prompt.clone(),
        guidance_scale: args.prior.guidance_scale,
    }
    .claim(&args.out)?;

    let clean_dir = args.out.join("clean");
    std::fs::create_dir_all(&clean_dir)?;
    for s in &segments {
        write_wav(&clean_dir.join(format!("{}.wav", s.name)), &s.clip(), WavFormat::FLOAT32)?;
    }
    let header = header(&args, &segments, excerpts, resolved_steps, &sampler)?;
    let rows = std::iter::once(DEGRADED_ROW.to_string()).chain(args.methods.iter().map(|m| m.name().to_string())).collect();
    let mut results = Results::new(rows, args.tasks.clone());
    let jobs = args.tasks.len() * segments.len() * args.methods.len();
    let mut job = 0;
    let [first_lsd, _] = Lsd::in_order(protocol);
    let save = |results: &Results| write_results(&args.out, results, &header, protocol, &args.tasks);
    for &task in &args.tasks {
        let degradation = protocol.degradation(task, args.segment, args.rt60, args.sampling.seed);
        let task_dir = args.out.join(task.name());
        for segment in &segments {
            let clean = segment.clip();
            let file = format!("{}.wav", segment.name);
            let degraded = degrade(&clean, &degradation, &DegradeOptions { seed: args.sampling.seed, ..Default::default() })
                .with_context(|| format!("degrading {} for {}", segment.name, task.name()))?;
            std::fs::create_dir_all(task_dir.join(DEGRADED_ROW))?;
            write_wav(&task_dir.join(DEGRADED_ROW).join(&file), &degraded, WavFormat::FLOAT32)?;
            let score = |row: &str, estimate: &AudioClip| -> Result<Score> {
                let scoring = || format!("scoring {row} on {}", segment.name);
                let lsd = lsd_score(&clean, estimate).with_context(scoring)?.mean();
                let (reference, estimate) = (&clean.channels[0], &estimate.channels[0]);
                let len = reference.len().min(estimate.len());
                let lsd_hop512 = lsd_eval_py(&reference[..len], &estimate[..len]).with_context(scoring)?;
                Ok(Score { segment: segment.name.clone(), task, row: row.to_string(), lsd, lsd_hop512 })
            };
            let degraded_score = score(DEGRADED_ROW, &degraded)?;
            let degraded_lsd = degraded_score.value(first_lsd);
            results.add(degraded_score);
            // Phase retrieval observes |STFT| of the clean segment, the paper's operators
            // their resampled or reverberated version of it: what the paper measures, and
            // what the degraded audio only approximates.
            let operator = Operator::new(&degradation, MODEL_SAMPLE_RATE, clean.num_frames(), &Device::Cpu)
                .with_context(|| format!("{} on {}", task.name(), segment.name))?;
            let observed = if operator.applies_to_observed() { &clean } else { &degraded };
            for &kind in &args.methods {
                job += 1;
                let path = task_dir.join(kind.name()).join(&file);
                let label = format!("[{job}/{jobs}] {} · {} · {}", task.name(), kind.name(), segment.name);
                let restored = if path.is_file() {
                    eprintln!("{label}: kept from an earlier run");
                    read_wav(&path)?.0
                } else {
                    eprintln!("{label}");
                    let request = RestoreRequest { output: OutputMode::Model, ..RestoreRequest::new(degradation.clone(), sampler(kind)?) };
                    let mut reporter = Reporter::new();
                    let work = Signals::cancellable();
                    let result = restore_clip(&prior, observed, &request, &mut |p: &Progress| reporter.observe(p, &work));
                    reporter.finish();
                    drop(work);
                    let restored = match result {
                        Ok(r) => r,
                        Err(EngineError::Sample(SampleError::Cancelled)) => {
                            bail!("stopped by a signal: finished restorations are kept in {}; run the same command again to continue", args.out.display())
                        }
                        Err(e) => return Err(e).with_context(|| label.clone()),
                    };
                    std::fs::create_dir_all(path.parent().expect("a task directory"))?;
                    write_wav(&path, &restored, WavFormat::FLOAT32)?;
                    restored
                };
                let s = score(kind.name(), &restored)?;
                eprintln!("{label}: {} {:.3} (degraded input {degraded_lsd:.3})", first_lsd.column(), s.value(first_lsd));
                results.add(s);
                save(&results)?;
            }
        }
    }
    save(&results)?;
    print!("{}\n{}", first_lsd.title(), results.markdown("LSD ↓", first_lsd));
    eprintln!("wrote {}", args.out.join("results.md").display());
    Ok(())
}

/// The top of results.md: the protocol and everything else the numbers depend on.
fn header(
    args: &ExperimentArgs,
    segments: &[Segment],
    excerpts: Excerpts,
    steps: usize,
    sampler: &dyn Fn(MethodKind) -> Result<SamplerSettings>,
) -> Result<String> {
    let protocol = args.protocol;
    let mut out = format!(
        "# DGG Restore experiment\n\n\
         - Protocol: **{}**, {}.\n\
         - Segments: {} of {} s from `{}` ({}).\n\
         - Steps: {steps}; seed {}; commit `{}`.\n",
        protocol.name(),
        protocol.description(),
        segments.len(),
        args.segment,
        args.clips.display(),
        describe(excerpts, args.segment),
        args.sampling.seed,
        env!("DGG_COMMIT"),
    );
    let strengths: Vec<String> =
        args.methods.iter().filter(|&&k| k != MethodKind::Ddim).map(|k| format!("{} {}", k.name().to_uppercase(), k.default_strength())).collect();
    if !strengths.is_empty() {
        out.push_str(&format!("- Strengths (the paper's): {}.\n", strengths.join(", ")));
    }
    if args.methods.contains(&MethodKind::Ditto) {
        if let Method::Ditto(d) = sampler(MethodKind::Ditto)?.method {
            out.push_str(&format!("- DITTO: a {}-step chain with eta {}, {} iterations.\n", d.chain_steps, d.eta, d.iterations));
        }
    }
    if protocol == Protocol::Paper && steps < Protocol::PAPER_STEPS {
        let warning = format!("{steps} steps, fewer than the paper's {}: the numbers are not comparable to its table", Protocol::PAPER_STEPS);
        eprintln!("warning: {warning}");
        out.push_str(&format!("- **Warning: {warning}.**\n"));
    }
    out.push_str("\nLog-spectral distance at 16 kHz, lower is better. FAD: run an external tool on `clean/` against each `<task>/<method>/`.\n");
    Ok(out)
}
