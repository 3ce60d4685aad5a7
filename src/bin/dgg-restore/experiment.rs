//! `dgg-restore experiment`: the paper's protocol over a directory of clips, resumable.

use anyhow::{bail, Context, Result};
use clap::Args;
use dgg_restore::audio::{read_wav, write_wav, AudioClip, WavFormat};
use dgg_restore::engine::{restore_clip, EngineError, OutputMode, Progress, RestoreRequest};
use dgg_restore::evaluation::degrade::{degrade, DegradeOptions};
use dgg_restore::evaluation::experiment::{degradation, segments, Results, Score, Segment, DEGRADED_ROW};
use dgg_restore::evaluation::score::lsd_score;
use dgg_restore::files::{write_atomic, FileError};
use dgg_restore::restore::guidance::MethodKind;
use dgg_restore::restore::operators::TaskKind;
use dgg_restore::restore::sampler::SampleError;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::eval::wav_names;
use crate::prior::{PriorArgs, SamplingArgs};
use crate::progress::Reporter;
use crate::signals::Signals;

/// Run the paper's protocol: cut every clip into mono 16 kHz segments, degrade each with
/// every task, restore it with every method (the model's raw output, as the paper scores
/// it), and write the LSD table in the paper's layout with all the audio.
#[derive(Args)]
#[command(after_help = "What it writes to --out:
  clean/<clip>_<k>.wav               the reference segments
  <task>/degraded/<clip>_<k>.wav     what each method was given
  <task>/<method>/<clip>_<k>.wav     the restorations
  results.md, results.csv            mean LSD, methods down and tasks across (as the paper)
  scores.csv                         every segment's LSD
  settings.json                      what the results depend on
For FAD, run an external tool (e.g. fadtk) on clean/ against each <task>/<method>/.

Stopped runs continue where they left off: run the same command again. Restorations
already in --out are scored, not redone; --out must not hold a run with other settings.

The paper's tasks: inpainting fills the middle fifth of each segment (1 s of 5 s),
super-resolution restores above 4 kHz (16 kHz audio downsampled by 2), dereverberation
removes a synthetic room (--rt60, seeded by --seed too), phase retrieval starts from |STFT|.
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
    /// Segment length in seconds (the paper: 5).
    #[arg(long, default_value_t = 5.0)]
    segment: f64,
    /// Take at most this many segments from each clip (default: all).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    segments_per_clip: Option<usize>,
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
    segment: f64,
    segments_per_clip: Option<usize>,
    steps: usize,
    iterations: usize,
    seed: u64,
    rt60: f64,
    prompt: String,
    guidance_scale: f64,
}

const SETTINGS_FILE: &str = "settings.json";

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

fn write_results(out: &Path, results: &Results, header: &str) -> Result<()> {
    write_text(&out.join("results.md"), &format!("{header}\n{}", results.markdown("LSD ↓")))?;
    write_text(&out.join("results.csv"), &results.csv())?;
    write_text(&out.join("scores.csv"), &results.scores_csv())
}

fn cut_segments(args: &ExperimentArgs) -> Result<Vec<Segment>> {
    let names = wav_names(&args.clips)?;
    if names.is_empty() {
        bail!("{} holds no WAV files", args.clips.display());
    }
    let mut all = Vec::new();
    for name in &names {
        let (clip, _) = read_wav(&args.clips.join(name))?;
        let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
        all.extend(segments(stem, &clip, args.segment, args.segments_per_clip).with_context(|| format!("cutting {name}"))?);
    }
    if all.is_empty() {
        bail!("no {} s segment with sound in {}: use longer clips or a shorter --segment", args.segment, args.clips.display());
    }
    Ok(all)
}

pub fn run(args: ExperimentArgs) -> Result<()> {
    if !(0.5..=60.0).contains(&args.segment) {
        bail!("--segment {} s: use 0.5 to 60 s (the paper: 5)", args.segment);
    }
    if args.tasks.is_empty() || args.methods.is_empty() {
        bail!("name at least one task and one method");
    }
    let segments = cut_segments(&args)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let prior = args.prior.load()?;
    let resolved_steps = args.sampling.settings(MethodKind::Ddim, None, &prior)?.steps;
    RunSettings {
        segment: args.segment,
        segments_per_clip: args.segments_per_clip,
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
    let header = format!(
        "# DGG Restore experiment\n\n{} segments of {} s from `{}`; {} steps, seed {}. Log-spectral distance at 16 kHz, lower is better. \
         FAD: run an external tool on `clean/` against each `<task>/<method>/`.\n",
        segments.len(),
        args.segment,
        args.clips.display(),
        resolved_steps,
        args.sampling.seed
    );
    let rows = std::iter::once(DEGRADED_ROW.to_string()).chain(args.methods.iter().map(|m| m.name().to_string())).collect();
    let mut results = Results::new(rows, args.tasks.clone());
    let jobs = args.tasks.len() * segments.len() * args.methods.len();
    let mut job = 0;
    for &task in &args.tasks {
        let degradation = degradation(task, args.segment, args.rt60, args.sampling.seed);
        let task_dir = args.out.join(task.name());
        for segment in &segments {
            let clean = segment.clip();
            let file = format!("{}.wav", segment.name);
            let degraded = degrade(&clean, &degradation, &DegradeOptions { seed: args.sampling.seed, ..Default::default() })
                .with_context(|| format!("degrading {} for {}", segment.name, task.name()))?;
            std::fs::create_dir_all(task_dir.join(DEGRADED_ROW))?;
            write_wav(&task_dir.join(DEGRADED_ROW).join(&file), &degraded, WavFormat::FLOAT32)?;
            let score = |row: &str, estimate: &AudioClip| -> Result<Score> {
                let lsd = lsd_score(&clean, estimate).with_context(|| format!("scoring {row} on {}", segment.name))?.mean();
                Ok(Score { segment: segment.name.clone(), task, row: row.to_string(), lsd })
            };
            let degraded_score = score(DEGRADED_ROW, &degraded)?;
            let degraded_lsd = degraded_score.lsd;
            results.add(degraded_score);
            // Phase retrieval observes |STFT| of the clean segment: what the paper measures,
            // and what a Griffin-Lim rebuild only approximates.
            let observed = if task == TaskKind::Phase { &clean } else { &degraded };
            for &kind in &args.methods {
                job += 1;
                let path = task_dir.join(kind.name()).join(&file);
                let label = format!("[{job}/{jobs}] {} · {} · {}", task.name(), kind.name(), segment.name);
                let restored = if path.is_file() {
                    eprintln!("{label}: kept from an earlier run");
                    read_wav(&path)?.0
                } else {
                    eprintln!("{label}");
                    let settings = args.sampling.settings(kind, None, &prior)?;
                    let request = RestoreRequest { output: OutputMode::Model, ..RestoreRequest::new(degradation.clone(), settings) };
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
                eprintln!("{label}: LSD {:.3} (degraded input {degraded_lsd:.3})", s.lsd);
                results.add(s);
                write_results(&args.out, &results, &header)?;
            }
        }
    }
    write_results(&args.out, &results, &header)?;
    print!("{}", results.markdown("LSD ↓"));
    eprintln!("wrote {}", args.out.join("results.md").display());
    Ok(())
}
