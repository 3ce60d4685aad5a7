//! The task options `degrade` and `restore` share: which degradation, and its settings.

use anyhow::{bail, Result};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::Args;
use dgg_restore::audio::{read_wav, FrameSource, WavReader};
use dgg_restore::dsp::bandwidth::CutoffDetector;
use dgg_restore::dsp::clipping::ClipDetector;
use dgg_restore::restore::operators::{cutoff_for_factor, Degradation, Gap, ImpulseResponse, Region, TaskKind};
use std::path::{Path, PathBuf};

/// `--task`: one of [`TaskKind::ALL`] by name, each with its line in `--help`.
fn task_parser() -> impl TypedValueParser<Value = TaskKind> {
    let help = |task| match task {
        TaskKind::Inpaint => "Gaps (--gap): silence to fill",
        TaskKind::SuperResolution => "Missing highs above a cutoff (--cutoff or --factor)",
        TaskKind::Dereverb => "Room reverberation (--rir or --rt60)",
        TaskKind::Phase => "Only the STFT magnitude is known",
        TaskKind::Declip => "Peaks clipped at a level (--clip-level, or detected)",
    };
    PossibleValuesParser::new(TaskKind::ALL.map(|t| PossibleValue::new(t.name()).help(help(t)))).map(|name| name.parse().expect("a possible value"))
}

#[derive(Args)]
pub struct TaskArgs {
    #[arg(long, value_parser = task_parser())]
    pub task: TaskKind,
    /// Inpainting: a gap START-END in seconds; repeat for several gaps.
    #[arg(long = "gap", value_name = "START-END", allow_hyphen_values = true)]
    pub gaps: Vec<Gap>,
    /// Inpainting of a time-frequency region only (spectral repair): START-END@LOW-HIGH in
    /// seconds @ Hz, e.g. 2.10-2.45@1500-6000; repeat for several. Only the region's STFT
    /// cells are replaced.
    #[arg(long = "region", value_name = "START-END@LOW-HIGH", conflicts_with = "gaps", allow_hyphen_values = true)]
    pub regions: Vec<Region>,
    /// Super-resolution: the band below this frequency (Hz) is intact. `restore` detects
    /// it from the spectrum when neither this nor --factor is given.
    #[arg(long, conflicts_with = "factor")]
    pub cutoff: Option<f64>,
    /// Super-resolution: as if recorded at 1/FACTOR of the file's rate.
    #[arg(long)]
    pub factor: Option<u32>,
    /// Dereverberation: a recorded room impulse response (WAV; the first channel is used).
    #[arg(long, conflicts_with = "rt60")]
    pub rir: Option<PathBuf>,
    /// Dereverberation: reverberation time of a synthetic room, in seconds.
    #[arg(long, default_value_t = 0.8)]
    pub rt60: f64,
    /// Declipping: the level the peaks were clipped at (full scale is 1). `restore` detects
    /// it where the loudest samples pile up when not given; `degrade` clips at 1.
    #[arg(long)]
    pub clip_level: Option<f64>,
}

impl TaskArgs {
    /// The degradation for a file at `sample_rate`; `room_seed` draws the synthetic room.
    /// A super-resolution cutoff or a clip level not given is detected in `detect_in`, if
    /// given (the degraded file).
    pub fn degradation(&self, sample_rate: u32, room_seed: u64, detect_in: Option<&Path>) -> Result<Degradation> {
        Ok(match self.task {
            TaskKind::Inpaint if !self.regions.is_empty() => match detect_in {
                Some(_) => Degradation::SpectralRepair { regions: self.regions.clone() },
                None => bail!("--region: degrade makes gaps (--gap); regions are repaired by restore"),
            },
            TaskKind::Inpaint => Degradation::Inpaint { gaps: self.gaps.clone() },
            TaskKind::SuperResolution => {
                let cutoff_hz = match (self.cutoff, self.factor, detect_in) {
                    (Some(hz), _, _) => hz,
                    (None, Some(f), _) if f >= 2 => {
                        let hz = cutoff_for_factor(sample_rate, f);
                        if hz < 100.0 {
                            bail!(
                                "--factor {f}: a {sample_rate} Hz file would keep only {hz:.1} Hz (100 Hz at least); use a factor of at most {}",
                                sample_rate / 200
                            );
                        }
                        hz
                    }
                    (None, Some(f), _) => bail!("--factor {f}: use an integer of 2 or more"),
                    (None, None, Some(path)) => match detect_cutoff_in(path)? {
                        Some(hz) => {
                            eprintln!("detected the cutoff at {hz:.0} Hz (set --cutoff to override)");
                            hz
                        }
                        None => bail!("the spectrum reaches the Nyquist frequency: no cutoff to restore above was found; give --cutoff HZ"),
                    },
                    (None, None, None) => bail!("super-resolution needs --cutoff HZ or --factor N"),
                };
                Degradation::SuperResolution { cutoff_hz }
            }
            TaskKind::Dereverb => {
                let response = match &self.rir {
                    Some(path) => {
                        let (clip, _) = read_wav(path)?;
                        if clip.channels[0].iter().all(|&v| v.abs() < 1e-9) {
                            bail!(
                                "{}: the impulse response (its first channel) is silent: give a recorded response, or --rt60 for a synthetic room",
                                path.display()
                            );
                        }
                        ImpulseResponse::Recorded { samples: clip.channels[0].clone(), sample_rate: clip.sample_rate }
                    }
                    None => ImpulseResponse::Synthetic { rt60: self.rt60, seed: room_seed },
                };
                Degradation::Dereverb { response }
            }
            TaskKind::Phase => Degradation::PHASE_RETRIEVAL,
            TaskKind::Declip => {
                let level = match (self.clip_level, detect_in) {
                    (Some(level), _) => level,
                    (None, Some(path)) => match detect_clip_level_in(path)? {
                        Some(level) => {
                            eprintln!("detected the clip level at {level:.4} ({:.2} dBFS; set --clip-level to override)", 20.0 * level.log10());
                            level
                        }
                        None => bail!("{}: the loudest samples do not pile up at one level, so no clipping was found; give --clip-level", path.display()),
                    },
                    (None, None) => 1.0,
                };
                if !(level > 0.0 && level.is_finite()) {
                    bail!("--clip-level {level}: use a positive level (full scale is 1)");
                }
                Degradation::Declip { level }
            }
        })
    }
}

/// Where the spectrum of the WAV file at `path` ends ([`CutoffDetector`]), read block by block.
fn detect_cutoff_in(path: &Path) -> Result<Option<f64>> {
    let mut input = WavReader::open(path)?;
    let mut detector = CutoffDetector::new(input.channels(), input.sample_rate());
    each_block(&mut input, |block| detector.push(block))?;
    Ok(detector.cutoff())
}

/// The level the WAV file at `path` was clipped at ([`ClipDetector`]), read block by block.
fn detect_clip_level_in(path: &Path) -> Result<Option<f64>> {
    let mut input = WavReader::open(path)?;
    let mut detector = ClipDetector::default();
    each_block(&mut input, |block| detector.push(block))?;
    Ok(detector.level())
}

/// `f` on every block of `input`, 2^17 samples at a time however many channels.
fn each_block(input: &mut WavReader, mut f: impl FnMut(&[Vec<f32>])) -> Result<()> {
    let max = ((1 << 17) / input.channels()).max(1);
    while let Some(block) = input.next_block(max)? {
        f(&block);
    }
    Ok(())
}
