//! How close a restoration is to the clean reference, as the paper scores it: the
//! log-spectral distance ([`crate::dsp::lsd`]) at 16 kHz, per channel.

use crate::audio::{resampled_len, AudioClip, AudioError, ClipReader, FrameSource, ResampleError, Resampler};
use crate::dsp::lsd::LsdAccumulator;
use crate::dsp::MODEL_SAMPLE_RATE;

/// LSD of each channel of an estimate against its reference (lower is better).
#[derive(Debug, Clone, PartialEq)]
pub struct LsdScore {
    pub per_channel: Vec<f64>,
}

impl LsdScore {
    /// The mean over channels: the file's score.
    pub fn mean(&self) -> f64 {
        self.per_channel.iter().sum::<f64>() / self.per_channel.len().max(1) as f64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("the reference has {reference} channels but the estimate has {estimate}: score like with like")]
    Channels { reference: usize, estimate: usize },
    #[error("the reference is {reference:.3} s long but the estimate is {estimate:.3} s: score clips of the same length")]
    Length { reference: f64, estimate: f64 },
    #[error("{0} channels: at most {MAX_CHANNELS} are scored; split the file")]
    TooManyChannels(usize),
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error(transparent)]
    Resample(#[from] ResampleError),
    #[error("computing the LSD failed: {0}")]
    Tensor(#[from] candle_core::Error),
    /// Samples so large (a float file can hold up to 3e38) that their power overflows.
    #[error("the {which} has samples too large to score (its spectrum overflows f32): its peak is {peak:e}; normalise it to ±1")]
    Overflow { which: &'static str, peak: f32 },
}

/// LSD of `estimate` against `reference`. Both are brought to 16 kHz first, so the rates may
/// differ (the model's raw output against a 44.1 kHz original); after that the lengths may
/// differ by the one sample that rounding allows, and the longer is cropped.
pub fn lsd_score(reference: &AudioClip, estimate: &AudioClip) -> Result<LsdScore, ScoreError> {
    lsd_score_stream(&mut ClipReader::new(reference), &mut ClipReader::new(estimate))
}

/// Frames read from each input at a time.
const BLOCK: usize = 1 << 16;
/// Most channels scored: each holds a segment of both signals (about 4 MiB).
pub const MAX_CHANNELS: usize = 32;

/// [`lsd_score`] for audio of any length: both inputs are read, resampled and scored block
/// by block.
pub fn lsd_score_stream(reference: &mut dyn FrameSource, estimate: &mut dyn FrameSource) -> Result<LsdScore, ScoreError> {
    let (channels, estimate_channels) = (reference.channels(), estimate.channels());
    if channels != estimate_channels {
        return Err(ScoreError::Channels { reference: channels, estimate: estimate_channels });
    }
    let at_16k = |s: &dyn FrameSource| resampled_len(s.frames(), s.sample_rate(), MODEL_SAMPLE_RATE);
    let (r_len, e_len) = (at_16k(reference), at_16k(estimate));
    if r_len.abs_diff(e_len) > 1 {
        let seconds = |s: &dyn FrameSource| s.frames() as f64 / s.sample_rate() as f64;
        return Err(ScoreError::Length { reference: seconds(reference), estimate: seconds(estimate) });
    }
    if channels > MAX_CHANNELS {
        return Err(ScoreError::TooManyChannels(channels));
    }
    let len = r_len.min(e_len);
    let (mut r, mut e) = (Side::new(reference)?, Side::new(estimate)?);
    let mut score = LsdAccumulator::new(channels, len)?;
    let mut scored = 0;
    while scored < len {
        r.fill(reference)?;
        e.fill(estimate)?;
        // Both at 16 kHz as far as both have come, up to the common length.
        let n = r.pending[0].len().min(e.pending[0].len()).min(len - scored);
        if n == 0 {
            break;
        }
        let head = |side: &mut Side| -> Vec<Vec<f32>> { side.pending.iter_mut().map(|p| p.drain(..n).collect()).collect() };
        score.push(&head(&mut r), &head(&mut e))?;
        scored += n;
    }
    let per_channel = score.finish()?;
    if per_channel.iter().any(|v| !v.is_finite()) {
        let (which, peak) = if e.peak >= r.peak { ("estimate", e.peak) } else { ("reference", r.peak) };
        return Err(ScoreError::Overflow { which, peak });
    }
    Ok(LsdScore { per_channel })
}

/// One input on its way to 16 kHz.
struct Side {
    resampler: Resampler,
    /// Resampled and not yet scored, per channel.
    pending: Vec<Vec<f32>>,
    /// The largest magnitude read so far.
    peak: f32,
}

impl Side {
    fn new(source: &dyn FrameSource) -> Result<Self, ScoreError> {
        let resampler = Resampler::new(source.channels(), source.frames(), source.sample_rate(), MODEL_SAMPLE_RATE)?;
        Ok(Self { resampler, pending: vec![Vec::new(); source.channels()], peak: 0.0 })
    }

    /// Reads until some output is pending or the source is done (a resampler's chunk can
    /// be longer than a block).
    fn fill(&mut self, source: &mut dyn FrameSource) -> Result<(), ScoreError> {
        while self.pending[0].is_empty() {
            let Some(block) = source.next_block(BLOCK)? else {
                return Ok(());
            };
            self.peak = block.iter().flatten().fold(self.peak, |m, v| m.max(v.abs()));
            for (p, b) in self.pending.iter_mut().zip(self.resampler.push(&block)?) {
                p.extend(b);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::resample;
    use crate::dsp::lsd::lsd;

    fn tone(rate: u32, seconds: f64, hz: f64, gain: f32) -> Vec<f32> {
        let n = (seconds * rate as f64) as usize;
        (0..n).map(|k| gain * (2.0 * std::f64::consts::PI * hz * k as f64 / rate as f64).sin() as f32).collect()
    }

    #[test]
    fn identical_clips_score_zero_at_any_rate() {
        let clip = AudioClip::new(44_100, vec![tone(44_100, 1.0, 440.0, 0.5), tone(44_100, 1.0, 660.0, 0.3)]);
        let score = lsd_score(&clip, &clip).unwrap();
        assert_eq!(score.per_channel.len(), 2);
        assert!(score.mean().abs() < 1e-12, "{score:?}");
    }

    #[test]
    fn rates_may_differ_and_the_score_matches_scoring_at_16_khz() {
        let reference = AudioClip::new(44_100, vec![tone(44_100, 1.0, 440.0, 0.5)]);
        let estimate_16k = AudioClip::new(16_000, vec![tone(16_000, 1.0, 440.0, 0.25)]);
        let at_16k = AudioClip::new(16_000, resample(&reference.channels, 44_100, 16_000).unwrap());
        let mixed = lsd_score(&reference, &estimate_16k).unwrap().mean();
        let direct = lsd(&at_16k.channels[0], &estimate_16k.channels[0]).unwrap();
        assert!((mixed - direct).abs() < 1e-12, "{mixed} vs {direct}");
        // Half the amplitude: log10(0.5) ≈ 0.30 wherever the tone dominates.
        assert!(mixed > 0.05, "{mixed}");
    }

    #[test]
    fn mismatched_channels_or_lengths_are_explained() {
        let mono = AudioClip::new(16_000, vec![tone(16_000, 1.0, 440.0, 0.5)]);
        let stereo = AudioClip::new(16_000, vec![mono.channels[0].clone(); 2]);
        let shorter = AudioClip::new(16_000, vec![mono.channels[0][..15_000].to_vec()]);
        assert!(matches!(lsd_score(&mono, &stereo), Err(ScoreError::Channels { reference: 1, estimate: 2 })));
        let err = lsd_score(&mono, &shorter).unwrap_err();
        assert!(err.to_string().contains("same length"), "{err}");
    }

    #[test]
    fn samples_too_large_to_score_are_an_error_not_nan() {
        let clip = AudioClip::new(16_000, vec![tone(16_000, 0.5, 440.0, 0.5)]);
        let huge = AudioClip::new(16_000, vec![tone(16_000, 0.5, 440.0, 1e30)]);
        let e = lsd_score(&clip, &huge).unwrap_err();
        assert!(e.to_string().contains("the estimate has samples too large"), "{e}");
    }

    #[test]
    fn a_rate_whose_resampler_chunk_outgrows_a_block_is_scored() {
        // At 384 kHz the resampler takes 98,304 frames before it gives any: more than a block.
        let clip = AudioClip::new(384_000, vec![tone(384_000, 1.0, 440.0, 0.5)]);
        assert!(lsd_score(&clip, &clip).unwrap().mean().abs() < 1e-12);
        let many = AudioClip::new(16_000, vec![vec![0.1; 1_000]; MAX_CHANNELS + 1]);
        assert!(matches!(lsd_score(&many, &many), Err(ScoreError::TooManyChannels(33))));
    }
}
