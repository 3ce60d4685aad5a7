//! The non-realtime side of a restoration: from a user's clip (any rate, mono or stereo,
//! any length) to model-length windows the prior restores, and from those back into the
//! clip at its own rate.
//!
//! Stereo is restored as mid and side: the side of most music is quiet and often silent
//! (then it is skipped, halving the work), and restoring L and R apart would let the prior
//! invent different content in each ear, which smears the stereo image. Long input is cut
//! into overlapping windows ([`windows`]); for inpainting each window treats what the
//! previous one restored as known, so the fill continues across window borders. The result
//! goes back into the original by [`splice`]. The plugin runs restorations on a
//! background [`worker`] that owns the prior.

pub mod splice;
pub mod windows;
pub mod worker;

use candle_core::Tensor;
use std::ops::{ControlFlow, Range};

use crate::audio::{resample, resample_mono, AudioClip, ResampleError};
use crate::restore::measurement::{Measurement, MeasurementError};
use crate::restore::operators::{Degradation, Operator, OperatorError};
use crate::restore::prior::LatentPrior;
use crate::restore::sampler::{sample, SampleError, SamplerSettings, StepReport};
use splice::Splice;

/// Shortest clip the loss's STFT and the prior can work on.
pub const MIN_SECONDS: f64 = 0.25;

/// What the engine writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// The input at its own rate, with only what was lost replaced ([`splice`]).
    Splice,
    /// The prior's raw output (16 kHz for AudioLDM2), as the paper evaluates it.
    Model,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RestoreRequest {
    pub degradation: Degradation,
    pub sampler: SamplerSettings,
    pub output: OutputMode,
    /// Length of the prior's windows, in seconds.
    pub window_seconds: f64,
    /// Overlap between consecutive windows, in seconds.
    pub overlap_seconds: f64,
}

impl RestoreRequest {
    /// 5.12 s windows (the paper's clip length, rounded to whole UNet levels) overlapping
    /// by 1 s.
    pub fn new(degradation: Degradation, sampler: SamplerSettings) -> Self {
        Self { degradation, sampler, output: OutputMode::Splice, window_seconds: 5.12, overlap_seconds: 1.0 }
    }
}

/// Where a restoration is: `window` of `windows` windows that need sampling (over all of
/// mid and side), and the sampler's step inside it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub window: usize,
    pub windows: usize,
    pub step: StepReport,
}

impl Progress {
    /// Fraction of the whole job done, 0..=1.
    pub fn fraction(&self) -> f64 {
        (self.window as f64 + self.step.completed() as f64 / self.step.total.max(1) as f64) / self.windows.max(1) as f64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the clip has {0} channels: only mono and stereo are supported (split it into mono or stereo files first)")]
    Channels(usize),
    #[error("the clip is {seconds:.3} s long: at least {MIN_SECONDS} s are needed")]
    TooShort { seconds: f64 },
    #[error("channel {channel} has a NaN or infinite sample at {sample}: repair or re-export the file")]
    NonFinite { channel: usize, sample: usize },
    /// A float file can hold samples up to 3e38, whose spectra overflow.
    #[error("channel {channel} has a sample of {value:e} at {sample}, far beyond full scale (±{MAX_SAMPLE} at most are taken): normalise the file")]
    OutOfRange { channel: usize, sample: usize, value: f32 },
    #[error("super-resolution cutoff {cutoff_hz} Hz is at or above the model's band limit ({limit_hz} Hz): there is nothing it can restore")]
    CutoffAboveModel { cutoff_hz: f64, limit_hz: f64 },
    #[error(transparent)]
    Operator(#[from] OperatorError),
    #[error(transparent)]
    Resample(#[from] ResampleError),
    #[error(transparent)]
    Measurement(#[from] MeasurementError),
    #[error(transparent)]
    Sample(#[from] SampleError),
}

impl From<candle_core::Error> for EngineError {
    fn from(e: candle_core::Error) -> Self {
        EngineError::Sample(SampleError::Candle(e))
    }
}

/// Restore `clip` as `request` says, reporting to `observer` (which may cancel).
pub fn restore_clip<P: LatentPrior + ?Sized>(
    prior: &P,
    clip: &AudioClip,
    request: &RestoreRequest,
    observer: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
) -> Result<AudioClip, EngineError> {
    check_clip(clip)?;
    let (rate, len) = (clip.sample_rate, clip.num_frames());
    let model_rate = prior.sample_rate();
    let splice = splice_for(&request.degradation, rate, len, model_rate)?;

    // Mid and side (or the mono channel) at the model's rate.
    let parts: Vec<Vec<f32>> = match clip.channels.as_slice() {
        [mono] => vec![mono.clone()],
        [l, r] => vec![
            l.iter().zip(r).map(|(a, b)| 0.5 * (a + b)).collect(),
            l.iter().zip(r).map(|(a, b)| 0.5 * (a - b)).collect(),
        ],
        _ => unreachable!("checked"),
    };
    let parts = resample(&parts, rate, model_rate)?;
    let model_len = parts[0].len();
    let window = ((request.window_seconds * model_rate as f64).round() as usize).max(1);
    let overlap = ((request.overlap_seconds * model_rate as f64).round() as usize).min(window / 2);
    let plan = windows::plan(model_len, window, overlap);
    let known = match &request.degradation {
        Degradation::Inpaint { .. } => Some(mask_at(&request.degradation, model_rate, model_len)?),
        _ => None,
    };
    let needs_sampling = |w: &Range<usize>| known.as_ref().is_none_or(|k| k[w.clone()].iter().any(|&m| m == 0.0));
    let silent = |p: &[f32]| p.iter().all(|&v| v == 0.0);
    let active: Vec<bool> = parts.iter().map(|p| !silent(p)).collect();
    let windows_total = plan.iter().filter(|w| needs_sampling(w)).count() * active.iter().filter(|&&a| a).count();

    let mut done = 0;
    let mut restored_parts = Vec::with_capacity(parts.len());
    for (part, &active) in parts.iter().zip(&active) {
        if !active {
            restored_parts.push(part.clone());
            continue;
        }
        let mut current = part.clone();
        let mut known = known.clone();
        let mut pieces = Vec::with_capacity(plan.len());
        for (k, w) in plan.iter().enumerate() {
            if !needs_sampling(w) {
                pieces.push(part[w.clone()].to_vec());
                continue;
            }
            let observed = Tensor::from_slice(&current[w.clone()], (1, w.len()), prior.device())?;
            let measurement = match &mut known {
                Some(known) => Measurement::with_mask(known[w.clone()].to_vec(), &observed, model_rate)?,
                None => Measurement::for_degradation(&request.degradation, &observed, model_rate, prior.device(), resample_mono)?,
            };
            let settings = SamplerSettings { seed: request.sampler.seed.wrapping_add(k as u64), ..request.sampler.clone() };
            let wave = sample(prior, &measurement, w.len(), &settings, &mut |step| {
                observer(&Progress { window: done, windows: windows_total, step: *step })
            })?;
            let piece: Vec<f32> = wave.flatten_all()?.to_vec1()?;
            if let Some(known) = &mut known {
                // Later windows are conditioned on this one: inside its gaps what it
                // restored now counts as known.
                for (i, n) in w.clone().enumerate() {
                    if known[n] == 0.0 {
                        current[n] = piece[i];
                        known[n] = 1.0;
                    }
                }
            }
            pieces.push(piece);
            done += 1;
        }
        restored_parts.push(windows::join(model_len, &plan, &pieces));
    }

    let model_channels: Vec<Vec<f32>> = match restored_parts.as_slice() {
        [mono] => vec![mono.clone()],
        [mid, side] => vec![
            mid.iter().zip(side).map(|(m, s)| m + s).collect(),
            mid.iter().zip(side).map(|(m, s)| m - s).collect(),
        ],
        _ => unreachable!("one or two parts"),
    };
    match request.output {
        OutputMode::Model => Ok(AudioClip::new(model_rate, model_channels)),
        OutputMode::Splice => {
            let at_rate = resample(&model_channels, model_rate, rate)?;
            let channels = clip
                .channels
                .iter()
                .zip(at_rate)
                .map(|(original, mut restored)| {
                    restored.resize(len, 0.0);
                    splice.apply(original, &restored)
                })
                .collect();
            Ok(AudioClip::new(rate, channels))
        }
    }
}

/// The largest sample magnitude taken (+60 dBFS): real audio, even float files with
/// headroom, stays far below; beyond it a clip is broken, and its spectra would overflow.
pub const MAX_SAMPLE: f32 = 1000.0;

fn check_clip(clip: &AudioClip) -> Result<(), EngineError> {
    if !(1..=2).contains(&clip.num_channels()) {
        return Err(EngineError::Channels(clip.num_channels()));
    }
    if clip.duration_secs() < MIN_SECONDS {
        return Err(EngineError::TooShort { seconds: clip.duration_secs() });
    }
    for (channel, samples) in clip.channels.iter().enumerate() {
        if let Some(sample) = samples.iter().position(|v| !v.is_finite()) {
            return Err(EngineError::NonFinite { channel, sample });
        }
        if let Some(sample) = samples.iter().position(|v| v.abs() > MAX_SAMPLE) {
            return Err(EngineError::OutOfRange { channel, sample, value: samples[sample] });
        }
    }
    Ok(())
}

/// The inpainting mask of `degradation` for `len` samples at `rate` (1 known, 0 lost).
fn mask_at(degradation: &Degradation, rate: u32, len: usize) -> Result<Vec<f32>, EngineError> {
    match Operator::new(degradation, rate, len, &candle_core::Device::Cpu, resample_mono)? {
        Operator::Mask { mask } => Ok(mask.flatten_all()?.to_vec1()?),
        _ => unreachable!("an inpainting degradation gives a mask"),
    }
}

/// How the restoration goes back into a clip of `len` samples at `rate`; also checks the
/// degradation against the clip and the model.
fn splice_for(degradation: &Degradation, rate: u32, len: usize, model_rate: u32) -> Result<Splice, EngineError> {
    Ok(match degradation {
        Degradation::Inpaint { .. } => {
            let mask = mask_at(degradation, rate, len)?;
            let mut gaps = Vec::new();
            let mut start = None;
            for (n, &m) in mask.iter().chain(std::iter::once(&1.0)).enumerate() {
                match (m == 0.0, start) {
                    (true, None) => start = Some(n),
                    (false, Some(s)) => {
                        gaps.push(s..n);
                        start = None;
                    }
                    _ => {}
                }
            }
            Splice::gaps(gaps, rate)
        }
        Degradation::SuperResolution { cutoff_hz } => {
            let limit_hz = model_rate as f64 / 2.0;
            if *cutoff_hz >= limit_hz {
                return Err(EngineError::CutoffAboveModel { cutoff_hz: *cutoff_hz, limit_hz });
            }
            // Checks the cutoff against the clip's own Nyquist too.
            Operator::new(degradation, rate, len, &candle_core::Device::Cpu, resample_mono)?;
            Splice::AboveCutoff { cutoff_hz: *cutoff_hz, sample_rate: rate }
        }
        Degradation::Dereverb { .. } | Degradation::PhaseRetrieval => Splice::Replace,
    })
}
