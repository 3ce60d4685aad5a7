//! Putting restored audio back into the original, at the original's own rate: only what
//! the degradation destroyed is replaced, so nothing the user still has is altered.

use std::ops::Range;

use crate::dsp::band_extension::{BandExtension, ExtensionStream};
use crate::dsp::clipping::{repair_runs, safe_cut, RUN_CONTEXT};
use crate::dsp::fir::{lowpass, FirStream};
use crate::dsp::stft::{ComplexStft, StftConfig};
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
    /// ([`repair_region`]).
    Regions { regions: Vec<RegionAt>, sample_rate: u32 },
    /// Declipping: the original but in its clipped samples, which take the restoration
    /// where it goes beyond `level` on their side, else an arc over their run
    /// ([`repair_runs`]).
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

/// A [`Splice`] applied to a clip that arrives in blocks, all channels together.
pub struct Splicer {
    splice: Splice,
    /// Frames returned so far.
    position: usize,
    /// Super-resolution: each channel's restoration through the low-pass, and the original
    /// and restored samples waiting for it.
    lowpass: Vec<FirStream>,
    waiting: Vec<(Vec<f32>, Vec<f32>)>,
    /// Full-band gaps: the spliced frames from `held_start` on, held until the band of the
    /// gaps they are context of is made; and the next such gap.
    held: Vec<Vec<f32>>,
    held_start: usize,
    next_gap: usize,
    len: usize,
    /// Frames pushed so far.
    received: usize,
    /// Super-resolution: each channel's band above the cutoff continued.
    extensions: Vec<ExtensionStream>,
}

impl Splicer {
    /// For `channels` channels of `len` frames in all.
    pub fn new(splice: Splice, channels: usize, len: usize) -> Self {
        let lowpass = match &splice {
            Splice::AboveCutoff { cutoff_hz, sample_rate, .. } => (0..channels).map(|_| FirStream::new(lowpass(*cutoff_hz, *sample_rate), len)).collect(),
            _ => Vec::new(),
        };
        let extensions = match &splice {
            Splice::AboveCutoff { sample_rate, extend_from: Some(from), .. } => match BandExtension::new(*sample_rate, *from) {
                Some(extension) => (0..channels).map(|_| ExtensionStream::new(extension, *from, len)).collect(),
                None => Vec::new(),
            },
            _ => Vec::new(),
        };
        let waiting = vec![(Vec::new(), Vec::new()); channels];
        Self { splice, position: 0, lowpass, waiting, held: vec![Vec::new(); channels], held_start: 0, next_gap: 0, len, received: 0, extensions }
    }

    /// The next frames of the original and of the restoration (equal lengths); returns the
    /// spliced frames ready so far (all of them once the last frame is in).
    pub fn push(&mut self, original: &[Vec<f32>], restored: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let at = self.position;
        self.received += original.first().map_or(0, Vec::len);
        if let Splice::Regions { .. } | Splice::Clipped { .. } = self.splice {
            let out = match self.splice {
                Splice::Clipped { level } => self.repair_clipped(original, restored, level),
                _ => self.repair_regions(original, restored),
            };
            self.position += out.first().map_or(0, Vec::len);
            return out;
        }
        let out: Vec<Vec<f32>> = match &self.splice {
            Splice::Replace => restored.to_vec(),
            Splice::Regions { .. } => unreachable!("repaired above"),
            Splice::Clipped { .. } => unreachable!("repaired above"),
            Splice::Gaps { gaps, fade, .. } => original
                .iter()
                .zip(restored)
                .map(|(x, r)| {
                    let mut out = x.clone();
                    for gap in gaps.iter().filter(|g| g.start < at + x.len() && at < g.end) {
                        splice_gap(&mut out, r, at, gap.clone(), *fade);
                    }
                    out
                })
                .collect(),
            Splice::AboveCutoff { .. } => original
                .iter()
                .zip(restored)
                .zip(self.lowpass.iter_mut().zip(&mut self.waiting))
                .map(|((x, r), (filter, (xs, rs)))| {
                    xs.extend_from_slice(x);
                    rs.extend_from_slice(r);
                    let low = filter.push(r);
                    let out = xs.iter().zip(rs.iter()).zip(&low).map(|((&x, &r), &l)| x + (r - l)).collect();
                    xs.drain(..low.len());
                    rs.drain(..low.len());
                    out
                })
                .collect(),
        };
        self.position += out.first().map_or(0, Vec::len);
        match &self.splice {
            Splice::AboveCutoff { .. } if !self.extensions.is_empty() => out.iter().zip(&mut self.extensions).map(|(o, e)| e.push(o)).collect(),
            Splice::Gaps { extension: Some(extension), .. } => {
                let extension = *extension;
                self.extend_gaps(extension, out)
            }
            _ => out,
        }
    }

    /// Holds the original and the restoration from the start of a clipped run that may go on
    /// (or whose context after it has not arrived), and repairs the runs before that. The
    /// last samples given out stay as the next run's context before it.
    fn repair_clipped(&mut self, original: &[Vec<f32>], restored: &[Vec<f32>], level: f32) -> Vec<Vec<f32>> {
        for ((xs, rs), (x, r)) in self.waiting.iter_mut().zip(original.iter().zip(restored)) {
            xs.extend_from_slice(x);
            rs.extend_from_slice(r);
        }
        let mut cut = self.waiting.first().map_or(0, |(xs, _)| xs.len());
        if self.received < self.len {
            // One cut for all channels, clear of every channel's runs.
            loop {
                let next = self.waiting.iter().map(|(xs, _)| safe_cut(xs, cut, level)).min().unwrap_or(0);
                if next == cut {
                    break;
                }
                cut = next;
            }
        }
        let out = self.waiting.iter().zip(&self.held).map(|((xs, rs), before)| repair_runs(before, xs, rs, cut, level)).collect();
        for ((xs, rs), before) in self.waiting.iter_mut().zip(&mut self.held) {
            before.extend_from_slice(&xs[..cut]);
            before.drain(..before.len().saturating_sub(RUN_CONTEXT));
            xs.drain(..cut);
            rs.drain(..cut);
        }
        out
    }

    /// Holds the original and the restoration, repairs every region whose context after it
    /// has arrived, and returns the frames no region needs any more.
    fn repair_regions(&mut self, original: &[Vec<f32>], restored: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let Splice::Regions { regions, sample_rate } = &self.splice else { unreachable!("only regions are repaired") };
        for ((xs, rs), (x, r)) in self.waiting.iter_mut().zip(original.iter().zip(restored)) {
            xs.extend_from_slice(x);
            rs.extend_from_slice(r);
        }
        let config = region_stft(*sample_rate);
        while let Some(region) = regions.get(self.next_gap) {
            let span = region_span(region, config, *sample_rate, self.len);
            if self.received < span.end {
                break;
            }
            let local = span.start - self.held_start..span.end - self.held_start;
            for (xs, rs) in &mut self.waiting {
                let repaired = repair_region(&xs[local.clone()], &rs[local.clone()], region, span.start, *sample_rate);
                xs[local.clone()].copy_from_slice(&repaired);
            }
            self.next_gap += 1;
        }
        let keep_from = regions.get(self.next_gap).map_or(self.received, |r| region_span(r, config, *sample_rate, self.len).start.min(self.received));
        let done = keep_from.max(self.held_start) - self.held_start;
        self.held_start += done;
        self.waiting
            .iter_mut()
            .map(|(xs, rs)| {
                rs.drain(..done);
                xs.drain(..done).collect()
            })
            .collect()
    }

    /// Holds `spliced`, adds the high band to every gap whose context after it has
    /// arrived, and returns the frames no gap needs any more.
    fn extend_gaps(&mut self, extension: BandExtension, spliced: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
        let Splice::Gaps { gaps, fade, .. } = &self.splice else { unreachable!("only gaps are extended") };
        self.held.iter_mut().zip(spliced).for_each(|(h, s)| h.extend(s));
        let context = extension.context();
        while let Some(gap) = gaps.get(self.next_gap) {
            let region = gap.start.saturating_sub(context)..(gap.end + context).min(self.len);
            if self.position < region.end {
                break;
            }
            let local = gap.start - self.held_start..gap.end - self.held_start;
            for channel in &mut self.held {
                let window = &mut channel[region.start - self.held_start..region.end - self.held_start];
                let offset = region.start - self.held_start;
                extension.extend(window, local.start - offset..local.end - offset, |i| gap_weight(i, gap.len(), *fade));
            }
            self.next_gap += 1;
        }
        // Frames before the next gap's context are final.
        let keep_from = gaps.get(self.next_gap).map_or(self.position, |g| g.start.saturating_sub(context).min(self.position));
        let done = keep_from.max(self.held_start) - self.held_start;
        self.held_start += done;
        self.held.iter_mut().map(|h| h.drain(..done).collect()).collect()
    }
}

/// The gap's samples from `restored`, faded in over its first `fade` samples and out over
/// its last, so that the edges do not click; `out` and `restored` hold the frames from
/// `at` on. Samples outside the gap are not touched.
fn splice_gap(out: &mut [f32], restored: &[f32], at: usize, gap: Range<usize>, fade: usize) {
    for k in gap.start.max(at)..gap.end.min(at + out.len()) {
        let w = gap_weight(k - gap.start, gap.len(), fade);
        out[k - at] = (1.0 - w) * out[k - at] + w * restored[k - at];
    }
}

/// Fades of a repaired region: in time, and in frequency.
const REGION_FADE_SECONDS: f64 = 0.01;
const REGION_FADE_HZ: f64 = 100.0;

/// About 43 ms frames whatever the rate, a quarter frame apart.
fn region_stft(sample_rate: u32) -> StftConfig {
    let n_fft = ((sample_rate as f64 * 2048.0 / 48_000.0).round() as usize).next_power_of_two().max(256);
    StftConfig { n_fft, hop: n_fft / 4 }
}

/// The samples a region's repair reads: a frame and a fade beyond it either side.
fn region_span(region: &RegionAt, config: StftConfig, sample_rate: u32, len: usize) -> Range<usize> {
    let pad = config.n_fft + (REGION_FADE_SECONDS * sample_rate as f64).ceil() as usize;
    region.samples.start.saturating_sub(pad)..(region.samples.end + pad).min(len)
}

/// `original` (the samples of the region's span, from `at`) with the region's STFT cells
/// taken from `restored`: weight 1 inside the region, raised-cosine fades over
/// [`REGION_FADE_SECONDS`] and [`REGION_FADE_HZ`] outside it, 0 beyond. Samples no faded
/// frame reaches are the original's, bit for bit.
fn repair_region(original: &[f32], restored: &[f32], region: &RegionAt, at: usize, sample_rate: u32) -> Vec<f32> {
    let config = region_stft(sample_rate);
    let (bins, hop, half) = (config.bins(), config.hop, config.n_fft / 2);
    let stft = ComplexStft::new(config);
    let (x, r) = (stft.analyse(original), stft.analyse(restored));
    let fade = |distance: f64, width: f64| {
        if distance <= 0.0 {
            1.0
        } else if distance >= width {
            0.0
        } else {
            0.5 + 0.5 * (std::f64::consts::PI * distance / width).cos()
        }
    };
    let fade_samples = REGION_FADE_SECONDS * sample_rate as f64;
    let (low, high) = region.band;
    let in_band: Vec<f32> = (0..bins)
        .map(|k| {
            let hz = k as f64 * sample_rate as f64 / config.n_fft as f64;
            fade((low - hz).max(hz - high), REGION_FADE_HZ) as f32
        })
        .collect();
    let mut blend = x.clone();
    for f in 0..x.len() / bins {
        let centre = (at + f * hop) as f64;
        let w = fade((region.samples.start as f64 - centre).max(centre - region.samples.end as f64), fade_samples) as f32;
        if w == 0.0 {
            continue;
        }
        let cells = f * bins..(f + 1) * bins;
        for ((b, (&x, &r)), &g) in blend[cells.clone()].iter_mut().zip(x[cells.clone()].iter().zip(&r[cells])).zip(&in_band) {
            *b = x + (r - x) * (w * g);
        }
    }
    let y = stft.synthesise(&blend, original.len());
    // What a frame with weight reaches: its window, around the faded span.
    let reach = (region.samples.start as f64 - fade_samples).floor() as isize - half as isize
        ..(region.samples.end as f64 + fade_samples).ceil() as isize + half as isize;
    (0..original.len()).map(|i| if reach.contains(&((at + i) as isize)) { y[i] } else { original[i] }).collect()
}

/// How much of sample `i` of a gap of `n` samples the restoration replaces: 1 but within
/// `fade` of its edges.
fn gap_weight(i: usize, n: usize, fade: usize) -> f32 {
    let edge = i.min(n - 1 - i);
    if edge < fade {
        (edge as f32 + 0.5) / fade as f32
    } else {
        1.0
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
