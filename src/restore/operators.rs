//! Degradation operators `A`: what happened to the audio, as a differentiable map from the
//! clean waveform to the measurement the user has.
//!
//! A [`Degradation`] is what the user asked for (gaps in seconds, a cutoff in Hz, an impulse
//! response); an [`Operator`] is that degradation bound to one sample rate and clip length,
//! ready to apply to (batch, samples) candle tensors with gradients flowing through.

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::ops::Range;

use super::noise::NoiseSource;
use super::random_walk::RandomWalkReverb;
use crate::audio::{resample, ResampleError};
use crate::dsp::fir::{lowpass, FirFilter};
use crate::dsp::sinc_resample::SincResampler;
use crate::dsp::stft::{Stft, StftConfig, Window};

/// A gap to fill, in seconds from the start of the clip: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gap {
    pub start: f64,
    pub end: f64,
}

impl std::str::FromStr for Gap {
    type Err = String;

    /// Parses `START-END` in seconds, e.g. `2.0-3.0` (a negative start is read as one, and
    /// refused as outside the clip).
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = split_range(s).ok_or_else(|| format!("gap '{s}' must look like START-END in seconds, e.g. 2.0-3.0"))?;
        let parse = |v: &str| v.trim().parse::<f64>().map_err(|_| format!("gap '{s}': '{v}' is not a number of seconds"));
        Ok(Gap { start: parse(a)?, end: parse(b)? })
    }
}

/// `A-B` split at its first '-' that is not a sign.
fn split_range(s: &str) -> Option<(&str, &str)> {
    let at = s.char_indices().skip(1).find(|&(i, c)| c == '-' && !s[..i].ends_with(['e', 'E']))?.0;
    Some((&s[..at], &s[at + 1..]))
}

/// A time-frequency region to repair: `[start, end)` in seconds from the start of the clip,
/// `[low_hz, high_hz]` in frequency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    pub start: f64,
    pub end: f64,
    pub low_hz: f64,
    pub high_hz: f64,
}

impl std::str::FromStr for Region {
    type Err = String;

    /// Parses `START-END@LOW-HIGH` (seconds @ Hz), e.g. `2.10-2.45@1500-6000`.
    fn from_str(s: &str) -> Result<Self, String> {
        let shape = || format!("region '{s}' must look like START-END@LOW-HIGH (seconds @ Hz), e.g. 2.10-2.45@1500-6000");
        let (time, band) = s.split_once('@').ok_or_else(shape)?;
        let pair = |part: &str| -> Result<(f64, f64), String> {
            let (a, b) = split_range(part).ok_or_else(shape)?;
            let parse = |v: &str| v.trim().parse::<f64>().map_err(|_| format!("region '{s}': '{v}' is not a number"));
            Ok((parse(a)?, parse(b)?))
        };
        let ((start, end), (low_hz, high_hz)) = (pair(time)?, pair(band)?);
        Ok(Region { start, end, low_hz, high_hz })
    }
}

/// A [`Region`] in samples at one rate: `samples` in time, `band` in Hz.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionAt {
    pub samples: Range<usize>,
    pub band: (f64, f64),
}

/// An impulse response for dereverberation.
#[derive(Debug, Clone, PartialEq)]
pub enum ImpulseResponse {
    /// A measured response (mono) at its own sample rate.
    Recorded { samples: Vec<f32>, sample_rate: u32 },
    /// Seeded decaying Gaussian noise after a direct path; drawn once, never redrawn.
    Synthetic { rt60: f64, seed: u64 },
    /// The paper's: a seeded random walk, redrawn every time it is applied
    /// ([`RandomWalkReverb`]).
    RandomWalk { seed: u64 },
}

/// Which restoration task, independent of its settings (the CLI's `--task`, the plugin's
/// *Task*, a column of the experiment's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskKind {
    Inpaint,
    SuperResolution,
    Dereverb,
    Phase,
    Declip,
}

impl TaskKind {
    pub const ALL: [Self; 5] = [Self::Inpaint, Self::SuperResolution, Self::Dereverb, Self::Phase, Self::Declip];
    /// The paper's four.
    pub const PAPER: [Self; 4] = [Self::Inpaint, Self::SuperResolution, Self::Dereverb, Self::Phase];

    /// The name on the command line and in file paths.
    pub fn name(self) -> &'static str {
        match self {
            Self::Inpaint => "inpaint",
            Self::SuperResolution => "superres",
            Self::Dereverb => "dereverb",
            Self::Phase => "phase",
            Self::Declip => "declip",
        }
    }
}

impl std::str::FromStr for TaskKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|t| t.name()).collect();
            format!("unknown task '{s}': use one of {}", names.join(", "))
        })
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What was done to the audio.
#[derive(Debug, Clone, PartialEq)]
pub enum Degradation {
    /// Silence over one or more gaps (a 0/1 time mask).
    Inpaint { gaps: Vec<Gap> },
    /// Everything above `cutoff_hz` removed (a sharp zero-phase low-pass).
    SuperResolution { cutoff_hz: f64 },
    /// The paper's super-resolution: the audio resampled to 1/`factor` of its rate
    /// (torchaudio's resampler) and measured there.
    Downsample { factor: u32 },
    /// Convolution with a room impulse response.
    Dereverb { response: ImpulseResponse },
    /// Only the STFT magnitude is known (`window`: ours is Hann, the paper's rectangular).
    PhaseRetrieval { window: Window },
    /// Every sample beyond ±`level` was clipped to it.
    Declip { level: f64 },
    /// Time-frequency regions damaged (a cough, a squeak), the rest intact.
    SpectralRepair { regions: Vec<Region> },
}

impl Degradation {
    /// Phase retrieval with our Hann window.
    pub const PHASE_RETRIEVAL: Self = Self::PhaseRetrieval { window: Window::Hann };
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OperatorError {
    #[error("gap {start}-{end} s is empty or reversed: the end must come after the start")]
    EmptyGap { start: f64, end: f64 },
    #[error("gap {start}-{end} s lies outside the clip, which is {clip:.3} s long")]
    GapOutsideClip { start: f64, end: f64, clip: f64 },
    #[error("the gaps cover the whole clip: keep some audio around them for the restoration to follow")]
    NothingKept,
    #[error("no gaps given: name at least one with --gap START-END")]
    NoGaps,
    #[error("cutoff {cutoff_hz} Hz must lie between 100 Hz and the Nyquist frequency {nyquist} Hz")]
    CutoffOutOfRange { cutoff_hz: f64, nyquist: f64 },
    #[error("RT60 {0} s is outside 0.05-10 s")]
    Rt60OutOfRange(f64),
    #[error("the impulse response is empty or silent")]
    SilentImpulseResponse,
    #[error("the impulse response contains NaN or infinite samples")]
    NonFiniteImpulseResponse,
    #[error("the clip ({samples} samples) is too short for the STFT (needs more than {needed})")]
    ClipTooShort { samples: usize, needed: usize },
    #[error("region band {low_hz}-{high_hz} Hz must satisfy 0 <= low < high <= {nyquist} Hz (the Nyquist frequency)")]
    BandOutOfRange { low_hz: f64, high_hz: f64, nyquist: f64 },
    #[error("clip level {0} is not a level a sample can be clipped at: use a positive value (full scale is 1)")]
    ClipLevelOutOfRange(f64),
    #[error("downsampling by {factor} needs a factor of 2 or more that divides the rate, {sample_rate} Hz")]
    DownsampleFactor { factor: u32, sample_rate: u32 },
    #[error("resampling the impulse response failed: {0}")]
    Resample(#[from] ResampleError),
}

/// Super-resolution cutoff for "downsampled by `factor`" at `sample_rate`: the new Nyquist.
pub fn cutoff_for_factor(sample_rate: u32, factor: u32) -> f64 {
    sample_rate as f64 / (2.0 * factor.max(1) as f64)
}

/// The reverberation times a synthetic room can have, in seconds.
pub const RT60_RANGE: std::ops::RangeInclusive<f64> = 0.05..=10.0;

/// Seeded synthetic room response at `sample_rate`: a unit direct path, then Gaussian noise
/// under an exponential envelope that falls 60 dB in `rt60` seconds, carrying as much
/// energy as the direct path; normalised to unit energy so loudness is kept.
pub fn synthetic_impulse_response(rt60: f64, seed: u64, sample_rate: u32) -> Result<Vec<f32>, OperatorError> {
    if !RT60_RANGE.contains(&rt60) {
        return Err(OperatorError::Rt60OutOfRange(rt60));
    }
    let len = (rt60 * sample_rate as f64).ceil() as usize;
    let decay = 6.907_755_278_982_137 / (rt60 * sample_rate as f64); // ln(1000) per RT60
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tail: Vec<f64> = (1..len)
        .map(|k| {
            let n: f64 = StandardNormal.sample(&mut rng);
            n * (-decay * k as f64).exp()
        })
        .collect();
    let tail_energy: f64 = tail.iter().map(|v| v * v).sum();
    tail.iter_mut().for_each(|v| *v /= tail_energy.sqrt());
    let norm = 2f64.sqrt();
    Ok(std::iter::once(1.0).chain(tail).map(|v| (v / norm) as f32).collect())
}

/// A degradation bound to a sample rate and a clip length.
#[derive(Debug, Clone)]
pub enum Operator {
    Mask { mask: Tensor },
    Filter(FirFilter),
    Magnitude(Stft),
    Clip { level: f64 },
    Decimate(SincResampler),
    RandomWalk(RandomWalkReverb),
}

impl Operator {
    /// Bind `degradation` to clips of `len` samples at `sample_rate`, on `device` (a
    /// recorded impulse response resampled to `sample_rate`).
    pub fn new(degradation: &Degradation, sample_rate: u32, len: usize, device: &Device) -> Result<Self, OperatorError> {
        let sr = sample_rate as f64;
        match degradation {
            Degradation::Inpaint { gaps } => {
                let mask = inpainting_mask(gaps, sample_rate, len)?;
                Ok(Operator::Mask { mask: Tensor::from_vec(mask, (1, len), device).expect("shape matches") })
            }
            Degradation::SuperResolution { cutoff_hz } => {
                if !(100.0..sr / 2.0).contains(cutoff_hz) {
                    return Err(OperatorError::CutoffOutOfRange { cutoff_hz: *cutoff_hz, nyquist: sr / 2.0 });
                }
                Ok(Operator::Filter(lowpass(*cutoff_hz, sample_rate)))
            }
            Degradation::Downsample { factor } => {
                if *factor < 2 || !sample_rate.is_multiple_of(*factor) {
                    return Err(OperatorError::DownsampleFactor { factor: *factor, sample_rate });
                }
                Ok(Operator::Decimate(SincResampler::torchaudio(sample_rate, sample_rate / factor)))
            }
            Degradation::Dereverb { response: ImpulseResponse::RandomWalk { seed } } => Ok(Operator::RandomWalk(RandomWalkReverb::new(*seed))),
            Degradation::Dereverb { response } => {
                let taps = match response {
                    ImpulseResponse::Synthetic { rt60, seed } => synthetic_impulse_response(*rt60, *seed, sample_rate)?,
                    ImpulseResponse::Recorded { samples, sample_rate: from } => {
                        if samples.iter().any(|v| !v.is_finite()) {
                            return Err(OperatorError::NonFiniteImpulseResponse);
                        }
                        let taps = resample(std::slice::from_ref(samples), *from, sample_rate)?.remove(0);
                        let energy: f64 = taps.iter().map(|&v| v as f64 * v as f64).sum();
                        if energy <= 1e-20 {
                            return Err(OperatorError::SilentImpulseResponse);
                        }
                        taps.iter().map(|&v| (v as f64 / energy.sqrt()) as f32).collect()
                    }
                    ImpulseResponse::RandomWalk { .. } => unreachable!("matched above"),
                };
                Ok(Operator::Filter(FirFilter::new(taps, 0)))
            }
            Degradation::PhaseRetrieval { window } => {
                let config = StftConfig::AUDIOLDM;
                if len <= config.n_fft / 2 {
                    return Err(OperatorError::ClipTooShort { samples: len, needed: config.n_fft / 2 });
                }
                Ok(Operator::Magnitude(Stft::with_window(config, *window, device).expect("valid STFT settings")))
            }
            Degradation::SpectralRepair { regions } => {
                region_ranges(regions, sample_rate, len)?;
                Ok(Operator::Mask { mask: Tensor::ones((1, len), candle_core::DType::F32, device).expect("a clip's length") })
            }
            Degradation::Declip { level } => {
                if !(*level > 0.0 && *level <= crate::audio::MAX_SAMPLE as f64) {
                    return Err(OperatorError::ClipLevelOutOfRange(*level));
                }
                Ok(Operator::Clip { level: *level })
            }
        }
    }

    /// `A(wave)` for a (batch, samples) tensor: a waveform of the same shape, or for phase
    /// retrieval the (batch, frames, bins) magnitude; the paper's downsampled and
    /// random-walk reverberated waveforms are shorter and one sample longer.
    pub fn apply(&self, wave: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Operator::Mask { mask } => wave.broadcast_mul(mask),
            Operator::Filter(fir) => fir.forward(wave),
            Operator::Magnitude(stft) => stft.magnitude(wave),
            Operator::Clip { level } => wave.clamp(-level, *level),
            Operator::Decimate(resampler) => resampler.decimate(wave),
            Operator::RandomWalk(reverb) => reverb.apply(wave),
        }
    }

    /// Whether the measurement is this operator applied to the audio given rather than that
    /// audio itself: a magnitude, audio at another rate or length, are not audio a user
    /// holds, so a restoration is given the clean audio and measures it through `A`.
    pub fn applies_to_observed(&self) -> bool {
        matches!(self, Operator::Magnitude(_) | Operator::Decimate(_) | Operator::RandomWalk(_))
    }
}

/// The sample ranges `gaps` cover in `len` samples at `sample_rate`: sorted, disjoint and
/// merged where they touch. Refuses empty, reversed and outside gaps, and gaps that leave
/// nothing known.
pub fn gap_ranges(gaps: &[Gap], sample_rate: u32, len: usize) -> Result<Vec<Range<usize>>, OperatorError> {
    if gaps.is_empty() {
        return Err(OperatorError::NoGaps);
    }
    let mut ranges = Vec::with_capacity(gaps.len());
    for &Gap { start, end } in gaps {
        ranges.extend(span(start, end, sample_rate, len)?);
    }
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    if merged.first().is_some_and(|r| *r == (0..len)) {
        return Err(OperatorError::NothingKept);
    }
    Ok(merged)
}

/// `regions` in samples at `sample_rate` in clips of `len`, sorted by start. Refuses empty,
/// reversed and outside regions, and bands outside 0..Nyquist.
pub fn region_ranges(regions: &[Region], sample_rate: u32, len: usize) -> Result<Vec<RegionAt>, OperatorError> {
    if regions.is_empty() {
        return Err(OperatorError::NoGaps);
    }
    let nyquist = sample_rate as f64 / 2.0;
    let mut out = Vec::with_capacity(regions.len());
    for &Region { start, end, low_hz, high_hz } in regions {
        let samples = span(start, end, sample_rate, len)?;
        if !(low_hz >= 0.0 && low_hz < high_hz && high_hz <= nyquist) {
            return Err(OperatorError::BandOutOfRange { low_hz, high_hz, nyquist });
        }
        out.extend(samples.map(|samples| RegionAt { samples, band: (low_hz, high_hz) }));
    }
    out.sort_by_key(|r| r.samples.start);
    Ok(out)
}

/// The samples from `start` to `end` seconds in `len` samples at `sample_rate` (none if
/// they round to nothing). Refuses empty, reversed and outside spans.
fn span(start: f64, end: f64, sample_rate: u32, len: usize) -> Result<Option<Range<usize>>, OperatorError> {
    if start.is_nan() || end.is_nan() || end <= start {
        return Err(OperatorError::EmptyGap { start, end });
    }
    let clip = len as f64 / sample_rate as f64;
    if start < 0.0 || end > clip + 1e-9 {
        return Err(OperatorError::GapOutsideClip { start, end, clip });
    }
    let at = |t: f64| ((t * sample_rate as f64).round() as usize).min(len);
    Ok((at(start) < at(end)).then(|| at(start)..at(end)))
}

/// 1 where a sample is known, 0 inside [`gap_ranges`].
fn inpainting_mask(gaps: &[Gap], sample_rate: u32, len: usize) -> Result<Vec<f32>, OperatorError> {
    let mut mask = vec![1f32; len];
    for r in gap_ranges(gaps, sample_rate, len)? {
        mask[r].iter_mut().for_each(|m| *m = 0.0);
    }
    Ok(mask)
}

pub fn add_measurement_noise(y: &Tensor, std: f64, seed: u64) -> candle_core::Result<Tensor> {
    if std <= 0.0 {
        return Ok(y.clone());
    }
    let noise = NoiseSource::new(seed, 0).draw(y.shape(), y.device())?.to_dtype(y.dtype())?;
    y + (noise * std)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inpainting_zeroes_exactly_the_gaps() {
        let gaps = vec![Gap { start: 0.25, end: 0.5 }, Gap { start: 0.75, end: 0.8 }];
        let op = Operator::new(&Degradation::Inpaint { gaps }, 1000, 1000, &Device::Cpu).unwrap();
        let y: Vec<f32> = op.apply(&Tensor::ones((1, 1000), candle_core::DType::F32, &Device::Cpu).unwrap()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        for (i, &v) in y.iter().enumerate() {
            let in_gap = (250..500).contains(&i) || (750..800).contains(&i);
            assert_eq!(v, if in_gap { 0.0 } else { 1.0 }, "sample {i}");
        }
    }

    #[test]
    fn impossible_gaps_are_errors() {
        let op = |gaps: Vec<Gap>| Operator::new(&Degradation::Inpaint { gaps }, 1000, 1000, &Device::Cpu).unwrap_err();
        assert_eq!(op(vec![]), OperatorError::NoGaps);
        assert!(matches!(op(vec![Gap { start: 0.5, end: 0.5 }]), OperatorError::EmptyGap { .. }));
        assert!(matches!(op(vec![Gap { start: 0.5, end: 2.0 }]), OperatorError::GapOutsideClip { .. }));
        assert!(matches!(op(vec![Gap { start: -0.1, end: 0.2 }]), OperatorError::GapOutsideClip { .. }));
        assert_eq!(op(vec![Gap { start: 0.0, end: 1.0 }]), OperatorError::NothingKept);
        assert!("2.0-3.0".parse::<Gap>().is_ok() && "2.0".parse::<Gap>().is_err() && "a-3".parse::<Gap>().is_err());
        // A negative start is a number, outside the clip; so is one in exponent notation.
        assert_eq!("-1-2".parse::<Gap>(), Ok(Gap { start: -1.0, end: 2.0 }));
        assert_eq!("1e-3-2".parse::<Gap>(), Ok(Gap { start: 1e-3, end: 2.0 }));
        assert!(matches!(op(vec!["-1-0.5".parse().unwrap()]), OperatorError::GapOutsideClip { .. }));
    }

    #[test]
    fn synthetic_response_is_seeded_decaying_and_unit_energy() {
        let a = synthetic_impulse_response(0.5, 3, 16_000).unwrap();
        assert_eq!(a, synthetic_impulse_response(0.5, 3, 16_000).unwrap());
        assert_ne!(a, synthetic_impulse_response(0.5, 4, 16_000).unwrap());
        let energy: f64 = a.iter().map(|&v| v as f64 * v as f64).sum();
        assert!((energy - 1.0).abs() < 1e-5, "energy {energy}");
        let rms = |s: &[f32]| (s.iter().map(|v| v * v).sum::<f32>() / s.len() as f32).sqrt();
        // 60 dB down over the RT60: the last tenth is far quieter than the first (after the direct path).
        assert!(rms(&a[7200..]) < 1e-2 * rms(&a[1..800]));
        assert!(matches!(synthetic_impulse_response(20.0, 0, 16_000), Err(OperatorError::Rt60OutOfRange(_))));
    }

    #[test]
    fn cutoff_must_lie_below_nyquist() {
        let err = Operator::new(&Degradation::SuperResolution { cutoff_hz: 9000.0 }, 16_000, 16_000, &Device::Cpu).unwrap_err();
        assert!(matches!(err, OperatorError::CutoffOutOfRange { .. }));
        assert_eq!(cutoff_for_factor(16_000, 2), 4000.0);
    }

    #[test]
    fn measurement_noise_is_seeded() {
        let y = Tensor::zeros((2, 500), candle_core::DType::F32, &Device::Cpu).unwrap();
        let a: Vec<f32> = add_measurement_noise(&y, 0.1, 1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = add_measurement_noise(&y, 0.1, 1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a, b);
        let std = (a.iter().map(|v| v * v).sum::<f32>() / a.len() as f32).sqrt();
        assert!((std - 0.1).abs() < 0.01, "std {std}");
    }
}
