//! Declipping's splice: the original but in its clipped samples, repaired run by run
//! ([`repair_runs`]); a run that may go on, or whose context after it has not arrived, is
//! held.

use super::Blocks;
use crate::dsp::clipping::{repair_runs, safe_cut, RUN_CONTEXT};

pub(super) struct ClippedSplicer {
    level: f32,
    len: usize,
    /// Frames pushed so far.
    received: usize,
    /// Each channel's original and restoration not given out yet, and the last samples
    /// given out (the next run's context before it).
    waiting: Vec<(Vec<f32>, Vec<f32>)>,
    before: Vec<Vec<f32>>,
}

impl ClippedSplicer {
    pub(super) fn new(level: f32, channels: usize, len: usize) -> Self {
        Self { level, len, received: 0, waiting: vec![(Vec::new(), Vec::new()); channels], before: vec![Vec::new(); channels] }
    }
}

impl Blocks for ClippedSplicer {
    fn push(&mut self, original: &[Vec<f32>], restored: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let level = self.level;
        self.received += original.first().map_or(0, Vec::len);
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
        let out = self.waiting.iter().zip(&self.before).map(|((xs, rs), before)| repair_runs(before, xs, rs, cut, level)).collect();
        for ((xs, rs), before) in self.waiting.iter_mut().zip(&mut self.before) {
            before.extend_from_slice(&xs[..cut]);
            before.drain(..before.len().saturating_sub(RUN_CONTEXT));
            xs.drain(..cut);
            rs.drain(..cut);
        }
        out
    }
}
