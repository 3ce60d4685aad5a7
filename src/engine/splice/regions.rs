//! Spectral repair's splice: the original but in the regions' cells of an STFT at the
//! file's rate, which take the restoration's, faded in time and frequency; each region
//! once the context after it has arrived.

use std::ops::Range;

use super::Blocks;
use crate::dsp::raised_cosine;
use crate::dsp::stft::{ComplexStft, StftConfig};
use crate::restore::operators::RegionAt;

pub(super) struct RegionSplicer {
    regions: Vec<RegionAt>,
    sample_rate: u32,
    len: usize,
    /// Frames pushed so far.
    received: usize,
    /// The original (repaired as regions complete) and the restoration, from `held_start`
    /// on; and the next region to repair.
    waiting: Vec<(Vec<f32>, Vec<f32>)>,
    held_start: usize,
    next: usize,
}

impl RegionSplicer {
    pub(super) fn new(regions: Vec<RegionAt>, sample_rate: u32, channels: usize, len: usize) -> Self {
        Self { regions, sample_rate, len, received: 0, waiting: vec![(Vec::new(), Vec::new()); channels], held_start: 0, next: 0 }
    }
}

impl Blocks for RegionSplicer {
    /// Holds the original and the restoration, repairs every region whose context after it
    /// has arrived, and returns the frames no region needs any more.
    fn push(&mut self, original: &[Vec<f32>], restored: &[Vec<f32>]) -> Vec<Vec<f32>> {
        self.received += original.first().map_or(0, Vec::len);
        for ((xs, rs), (x, r)) in self.waiting.iter_mut().zip(original.iter().zip(restored)) {
            xs.extend_from_slice(x);
            rs.extend_from_slice(r);
        }
        let (config, rate) = (region_stft(self.sample_rate), self.sample_rate);
        while let Some(region) = self.regions.get(self.next) {
            let span = region_span(region, config, rate, self.len);
            if self.received < span.end {
                break;
            }
            let local = span.start - self.held_start..span.end - self.held_start;
            for (xs, rs) in &mut self.waiting {
                let repaired = repair_region(&xs[local.clone()], &rs[local.clone()], region, span.start, rate);
                xs[local.clone()].copy_from_slice(&repaired);
            }
            self.next += 1;
        }
        let keep_from = self.regions.get(self.next).map_or(self.received, |r| region_span(r, config, rate, self.len).start.min(self.received));
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
    let fade = |distance: f64, width: f64| 1.0 - raised_cosine(distance / width);
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
