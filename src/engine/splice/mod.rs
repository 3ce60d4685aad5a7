//! Putting restored audio back into the original, at the original's own rate: only what
//! the degradation destroyed is replaced, so nothing the user still has is altered.
//!
//! One file per splice, each with what it holds between blocks: [`gaps`] (and the band
//! above the prior's inside them), [`cutoff`] (the band above a cutoff), [`regions`]
//! (time-frequency regions), [`clipped`] (clipped runs).

mod clipped;
mod cutoff;
mod gaps;
mod regions;

use std::ops::Range;

use crate::dsp::band_extension::BandExtension;
use crate::restore::operators::RegionAt;

/// What of the original is kept.
#[derive(Debug, Clone, PartialEq)]
pub enum Splice {
    /// Inpainting: the original everywhere but in these sample ranges, which fade in and
    /// out over `fade` samples at their edges (see [`Splice::gaps`]); with `extension`,
    /// the band above the prior's inside them is made from the audio around.
    Gaps { gaps: Vec<Range<usize>>, fade: usize, extension: Option<BandExtension> },
    /// Super-resolution: the original, plus the restored band above `cutoff_hz`; with
    /// `extend_from`, plus the band above that frequency continued from the spectrum below
    /// ([`BandExtension::above`]).
    AboveCutoff { cutoff_hz: f64, sample_rate: u32, extend_from: Option<f64> },
    /// Dereverberation, phase retrieval: nothing; the restored audio replaces it all.
    Replace,
    /// Spectral repair: the original but in the regions' cells of an STFT at
    /// `sample_rate`, which take the restoration's, faded in time and frequency
    /// ([`regions`]).
    Regions { regions: Vec<RegionAt>, sample_rate: u32 },
    /// Declipping: the original but in its clipped samples, which take the restoration
    /// where it goes beyond `level` on their side, else an arc over their run
    /// ([`clipped`]).
    Clipped { level: f32 },
}

/// Longest crossfade at a gap's edges, in seconds; at most a quarter of the gap is used.
const GAP_FADE_SECONDS: f64 = 0.005;

impl Splice {
    /// Inpainting splice at `sample_rate`: fades of 5 ms, at most a quarter of the
    /// shortest gap.
    pub fn gaps(gaps: Vec<Range<usize>>, sample_rate: u32) -> Self {
        let shortest = gaps.iter().map(|g| g.len()).min().unwrap_or(0);
        let fade = ((GAP_FADE_SECONDS * sample_rate as f64) as usize).min(shortest / 4);
        Splice::Gaps { gaps, fade, extension: None }
    }

    /// The same, with the band above `limit_hz` (the prior's) made for the gaps, where
    /// `sample_rate` has such a band.
    pub fn full_band_gaps(gaps: Vec<Range<usize>>, sample_rate: u32, limit_hz: f64) -> Self {
        match Self::gaps(gaps, sample_rate) {
            Splice::Gaps { gaps, fade, .. } => Splice::Gaps { gaps, fade, extension: BandExtension::new(sample_rate, limit_hz) },
            _ => unreachable!("gaps() makes gaps"),
        }
    }

    /// One channel: `original` and `restored` have the same length and rate.
    pub fn apply(&self, original: &[f32], restored: &[f32]) -> Vec<f32> {
        assert_eq!(original.len(), restored.len(), "splice needs equal lengths");
        let mut splicer = Splicer::new(self.clone(), 1, original.len());
        splicer.push(&[original.to_vec()], &[restored.to_vec()]).remove(0)
    }
}

/// How one splice takes a clip that arrives in blocks.
trait Blocks {
    /// The next frames of the original and of the restoration (equal lengths); returns the
    /// spliced frames ready so far (all of them once the last frame is in).
    fn push(&mut self, original: &[Vec<f32>], restored: &[Vec<f32>]) -> Vec<Vec<f32>>;
}

/// A [`Splice`] applied to a clip that arrives in blocks, all channels together.
pub struct Splicer(Box<dyn Blocks>);

impl Splicer {
    /// For `channels` channels of `len` frames in all.
    pub fn new(splice: Splice, channels: usize, len: usize) -> Self {
        Self(match splice {
            Splice::Gaps { gaps, fade, extension } => Box::new(gaps::GapSplicer::new(gaps, fade, extension, channels, len)),
            Splice::AboveCutoff { cutoff_hz, sample_rate, extend_from } => {
                Box::new(cutoff::CutoffSplicer::new(cutoff_hz, sample_rate, extend_from, channels, len))
            }
            Splice::Replace => Box::new(Replace),
            Splice::Regions { regions, sample_rate } => Box::new(regions::RegionSplicer::new(regions, sample_rate, channels, len)),
            Splice::Clipped { level } => Box::new(clipped::ClippedSplicer::new(level, channels, len)),
        })
    }

    /// The next frames of the original and of the restoration (equal lengths); returns the
    /// spliced frames ready so far (all of them once the last frame is in).
    pub fn push(&mut self, original: &[Vec<f32>], restored: &[Vec<f32>]) -> Vec<Vec<f32>> {
        self.0.push(original, restored)
    }
}

/// Dereverberation, phase retrieval: the restoration as it is.
struct Replace;

impl Blocks for Replace {
    fn push(&mut self, _original: &[Vec<f32>], restored: &[Vec<f32>]) -> Vec<Vec<f32>> {
        restored.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::griffin_lim::magnitude;
    use crate::dsp::stft::StftConfig;

    #[test]
    fn inpainting_keeps_everything_outside_the_gaps_bit_exactly() {
        let original: Vec<f32> = (0..4000).map(|n| (n as f32 * 0.37).sin() * 0.3).collect();
        let restored: Vec<f32> = (0..4000).map(|n| (n as f32 * 0.11).cos() * 0.5).collect();
        let splice = Splice::gaps(vec![1000..1800, 3000..3100], 16_000);
        assert_eq!(splice, Splice::Gaps { gaps: vec![1000..1800, 3000..3100], fade: 25, extension: None });
        let out = splice.apply(&original, &restored);
        for n in 0..4000 {
            let in_gap = (1000..1800).contains(&n) || (3000..3100).contains(&n);
            if !in_gap {
                assert_eq!(out[n].to_bits(), original[n].to_bits(), "sample {n}");
            }
        }
        // the middle of a gap is the restoration; its edges fade
        assert_eq!(out[1400], restored[1400]);
        assert!((out[1000] - original[1000]).abs() < (out[1000] - restored[1000]).abs());
    }

    /// With the band extension, only the gaps change too, and they gain a high band.
    #[test]
    fn full_band_gaps_change_nothing_outside_the_gaps() {
        let rate = 48_000;
        let original = crate::dsp::test_noise(96_000, 8);
        let restored = crate::dsp::fir::lowpass(7_000.0, rate).filter(&crate::dsp::test_noise(96_000, 9));
        let gaps = vec![30_000..50_000, 60_000..61_000];
        let plain = Splice::gaps(gaps.clone(), rate).apply(&original, &restored);
        let full = Splice::full_band_gaps(gaps.clone(), rate, 8_000.0).apply(&original, &restored);
        for n in (0..96_000).filter(|n| !gaps.iter().any(|g| g.contains(n))) {
            assert_eq!(full[n].to_bits(), original[n].to_bits(), "sample {n}");
        }
        let high = |x: &[f32]| {
            let y = crate::dsp::fir::lowpass(9_000.0, rate).filter(x);
            x.iter().zip(&y).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>()
        };
        assert!(high(&full[32_000..48_000]) > 100.0 * high(&plain[32_000..48_000]), "the gap gained highs");
    }

    /// Declipping: unclipped samples stay, bit for bit; a clipped run whose restoration
    /// stays under the level gets an arc beyond it (a sine's flat tops become peaks again,
    /// near the sine's own); in blocks as whole.
    #[test]
    fn clipped_runs_are_repaired_and_nothing_else_changes() {
        let sine: Vec<f32> = (0..20_000).map(|n| 0.8 * (n as f32 * 0.01).sin()).collect();
        let original: Vec<f32> = sine.iter().map(|v| v.clamp(-0.5, 0.5)).collect();
        let restored = vec![0.1f32; original.len()];
        let splice = Splice::Clipped { level: 0.5 };
        let whole = splice.apply(&original, &restored);
        for n in 0..original.len() {
            if original[n].abs() < 0.5 {
                assert_eq!(whole[n].to_bits(), original[n].to_bits(), "sample {n}");
            } else {
                assert!(whole[n] * original[n].signum() >= 0.5, "sample {n}: {}", whole[n]);
            }
        }
        // The first peak's top: an arc beyond the level, near the sine's 0.8.
        let peak = (0..629).map(|n| whole[n]).fold(0f32, f32::max);
        assert!(peak > 0.6 && peak <= 1.0, "{peak}");
        for block in [1, 7, 1_000, 7_001] {
            let mut splicer = Splicer::new(splice.clone(), 1, original.len());
            let got: Vec<f32> =
                original.chunks(block).zip(restored.chunks(block)).flat_map(|(x, r)| splicer.push(&[x.to_vec()], &[r.to_vec()]).remove(0)).collect();
            assert_eq!(got, whole, "blocks of {block}");
        }
    }

    #[test]
    fn super_resolution_keeps_the_band_below_the_cutoff() {
        let sr = 16_000;
        let cutoff = 4000.0;
        let tone = |f: f32, n: usize| (2.0 * std::f32::consts::PI * f * n as f32 / sr as f32).sin();
        let original: Vec<f32> = (0..16_000).map(|n| 0.5 * tone(440.0, n) + 0.3 * tone(2500.0, n)).collect();
        // a restoration whose low band is wrong (other tones) and whose high band is new
        let restored: Vec<f32> = (0..16_000).map(|n| 0.4 * tone(1000.0, n) + 0.2 * tone(6000.0, n)).collect();
        let out = Splice::AboveCutoff { cutoff_hz: cutoff, sample_rate: sr, extend_from: None }.apply(&original, &restored);
        let config = StftConfig { n_fft: 1024, hop: 256 };
        let bins = config.bins();
        let (a, b) = (magnitude(&out, config), magnitude(&original, config));
        let band_below = (0.9 * cutoff as f32 / sr as f32 * config.n_fft as f32) as usize;
        let frames = a.len() / bins;
        let (mut diff, mut energy) = (0f64, 0f64);
        for f in 2..frames - 2 {
            for k in 0..band_below {
                diff += ((a[f * bins + k] - b[f * bins + k]) as f64).powi(2);
                energy += (b[f * bins + k] as f64).powi(2);
            }
        }
        // below 0.9 × cutoff the output is the original to within the filter's stop band
        assert!(diff / energy < 1e-6, "relative error below the cutoff {}", diff / energy);
        // and the restored 6 kHz tone is there
        let k6 = (6000.0 / sr as f32 * config.n_fft as f32) as usize;
        assert!(a[8 * bins + k6] > 20.0, "6 kHz magnitude {}", a[8 * bins + k6]);
    }

    #[test]
    fn splicing_in_blocks_matches_splicing_whole() {
        let original: Vec<f32> = (0..50_000).map(|n| (n as f32 * 0.37).sin() * 0.3).collect();
        let restored: Vec<f32> = (0..50_000).map(|n| (n as f32 * 0.11).cos() * 0.5).collect();
        let splices = [
            Splice::gaps(vec![1000..1800, 20_000..33_000], 16_000),
            Splice::full_band_gaps(vec![1000..1800, 20_000..33_000, 40_000..41_000], 48_000, 8_000.0),
            Splice::AboveCutoff { cutoff_hz: 3000.0, sample_rate: 16_000, extend_from: None },
            Splice::AboveCutoff { cutoff_hz: 3000.0, sample_rate: 48_000, extend_from: Some(8_000.0) },
            Splice::Replace,
        ];
        for splice in splices {
            let whole = splice.apply(&original, &restored);
            let mut splicer = Splicer::new(splice.clone(), 1, original.len());
            let got: Vec<f32> =
                original.chunks(7_001).zip(restored.chunks(7_001)).flat_map(|(x, r)| splicer.push(&[x.to_vec()], &[r.to_vec()]).remove(0)).collect();
            assert_eq!(got.len(), whole.len());
            let err = got.iter().zip(&whole).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err < 1e-5, "{splice:?}: {err}");
            if !matches!(splice, Splice::AboveCutoff { .. }) {
                assert_eq!(got, whole);
            }
        }
    }
}
