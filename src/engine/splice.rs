//! Putting restored audio back into the original, at the original's own rate: only what
//! the degradation destroyed is replaced, so nothing the user still has is altered.

use std::ops::Range;

use crate::dsp::fir::lowpass;

/// What of the original is kept.
#[derive(Debug, Clone, PartialEq)]
pub enum Splice {
    /// Inpainting: the original everywhere but in these sample ranges, which fade in and
    /// out over `fade` samples at their edges (see [`Splice::gaps`]).
    Gaps { gaps: Vec<Range<usize>>, fade: usize },
    /// Super-resolution: the original, plus the restored band above `cutoff_hz`.
    AboveCutoff { cutoff_hz: f64, sample_rate: u32 },
    /// Dereverberation, phase retrieval: nothing; the restored audio replaces it all.
    Replace,
}

/// Longest crossfade at a gap's edges, in seconds; at most a quarter of the gap is used.
const GAP_FADE_SECONDS: f64 = 0.005;

impl Splice {
    /// Inpainting splice at `sample_rate`: fades of 5 ms, at most a quarter of the
    /// shortest gap.
    pub fn gaps(gaps: Vec<Range<usize>>, sample_rate: u32) -> Self {
        let shortest = gaps.iter().map(|g| g.len()).min().unwrap_or(0);
        let fade = ((GAP_FADE_SECONDS * sample_rate as f64) as usize).min(shortest / 4);
        Splice::Gaps { gaps, fade }
    }

    /// One channel: `original` and `restored` have the same length and rate.
    pub fn apply(&self, original: &[f32], restored: &[f32]) -> Vec<f32> {
        assert_eq!(original.len(), restored.len(), "splice needs equal lengths");
        match self {
            Splice::Replace => restored.to_vec(),
            Splice::AboveCutoff { cutoff_hz, sample_rate } => {
                let low = lowpass(*cutoff_hz, *sample_rate).filter(restored);
                original.iter().zip(restored).zip(low).map(|((&x, &r), l)| x + (r - l)).collect()
            }
            Splice::Gaps { gaps, fade } => {
                let mut out = original.to_vec();
                for gap in gaps {
                    splice_gap(&mut out, restored, gap.clone(), *fade);
                }
                out
            }
        }
    }
}

/// The gap's samples from `restored`, faded in over its first `fade` samples and out over
/// its last, so that the edges do not click. Samples outside the gap are not touched.
fn splice_gap(out: &mut [f32], restored: &[f32], gap: Range<usize>, fade: usize) {
    let n = gap.len();
    for (i, k) in gap.enumerate() {
        let edge = i.min(n - 1 - i);
        let w = if edge < fade { (edge as f32 + 0.5) / fade as f32 } else { 1.0 };
        out[k] = (1.0 - w) * out[k] + w * restored[k];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::stft::StftConfig;
    use crate::dsp::griffin_lim::magnitude;

    #[test]
    fn inpainting_keeps_everything_outside_the_gaps_bit_exactly() {
        let original: Vec<f32> = (0..4000).map(|n| (n as f32 * 0.37).sin() * 0.3).collect();
        let restored: Vec<f32> = (0..4000).map(|n| (n as f32 * 0.11).cos() * 0.5).collect();
        let splice = Splice::gaps(vec![1000..1800, 3000..3100], 16_000);
        assert_eq!(splice, Splice::Gaps { gaps: vec![1000..1800, 3000..3100], fade: 25 });
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

    #[test]
    fn super_resolution_keeps_the_band_below_the_cutoff() {
        let sr = 16_000;
        let cutoff = 4000.0;
        let tone = |f: f32, n: usize| (2.0 * std::f32::consts::PI * f * n as f32 / sr as f32).sin();
        let original: Vec<f32> = (0..16_000).map(|n| 0.5 * tone(440.0, n) + 0.3 * tone(2500.0, n)).collect();
        // a restoration whose low band is wrong (other tones) and whose high band is new
        let restored: Vec<f32> = (0..16_000).map(|n| 0.4 * tone(1000.0, n) + 0.2 * tone(6000.0, n)).collect();
        let out = Splice::AboveCutoff { cutoff_hz: cutoff, sample_rate: sr }.apply(&original, &restored);
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
}
