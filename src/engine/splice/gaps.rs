//! Inpainting's splice: the restoration inside the gaps, faded in and out at their edges;
//! with the band extension, the band above the prior's added to each gap once the context
//! after it has arrived.

use std::ops::Range;

use super::Blocks;
use crate::dsp::band_extension::BandExtension;

pub(super) struct GapSplicer {
    gaps: Vec<Range<usize>>,
    fade: usize,
    extension: Option<BandExtension>,
    len: usize,
    /// Frames spliced so far.
    position: usize,
    /// With the extension: the spliced frames from `held_start` on, held until the band of
    /// the gaps they are context of is made; and the next such gap.
    held: Vec<Vec<f32>>,
    held_start: usize,
    next_gap: usize,
}

impl GapSplicer {
    pub(super) fn new(gaps: Vec<Range<usize>>, fade: usize, extension: Option<BandExtension>, channels: usize, len: usize) -> Self {
        Self { gaps, fade, extension, len, position: 0, held: vec![Vec::new(); channels], held_start: 0, next_gap: 0 }
    }

    /// Holds `spliced`, adds the high band to every gap whose context after it has
    /// arrived, and returns the frames no gap needs any more.
    fn extend_gaps(&mut self, extension: BandExtension, spliced: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
        self.held.iter_mut().zip(spliced).for_each(|(h, s)| h.extend(s));
        let context = extension.context();
        while let Some(gap) = self.gaps.get(self.next_gap) {
            let region = gap.start.saturating_sub(context)..(gap.end + context).min(self.len);
            if self.position < region.end {
                break;
            }
            let local = gap.start - self.held_start..gap.end - self.held_start;
            for channel in &mut self.held {
                let window = &mut channel[region.start - self.held_start..region.end - self.held_start];
                let offset = region.start - self.held_start;
                extension.extend(window, local.start - offset..local.end - offset, |i| gap_weight(i, gap.len(), self.fade));
            }
            self.next_gap += 1;
        }
        // Frames before the next gap's context are final.
        let keep_from = self.gaps.get(self.next_gap).map_or(self.position, |g| g.start.saturating_sub(context).min(self.position));
        let done = keep_from.max(self.held_start) - self.held_start;
        self.held_start += done;
        self.held.iter_mut().map(|h| h.drain(..done).collect()).collect()
    }
}

impl Blocks for GapSplicer {
    fn push(&mut self, original: &[Vec<f32>], restored: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let at = self.position;
        let out: Vec<Vec<f32>> = original
            .iter()
            .zip(restored)
            .map(|(x, r)| {
                let mut out = x.clone();
                for gap in self.gaps.iter().filter(|g| g.start < at + x.len() && at < g.end) {
                    splice_gap(&mut out, r, at, gap.clone(), self.fade);
                }
                out
            })
            .collect();
        self.position += out.first().map_or(0, Vec::len);
        match self.extension {
            Some(extension) => self.extend_gaps(extension, out),
            None => out,
        }
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
