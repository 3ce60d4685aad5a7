//! Super-resolution's splice: the original, plus the restoration's band above the cutoff
//! (the restoration less its own low-pass), plus, with an extension, the band above that
//! continued from the spectrum below.

use super::Blocks;
use crate::dsp::band_extension::{BandExtension, ExtensionStream};
use crate::dsp::fir::{lowpass, FirStream};

pub(super) struct CutoffSplicer {
    /// Each channel's restoration through the low-pass, and the original and restored
    /// samples waiting for it.
    lowpass: Vec<FirStream>,
    waiting: Vec<(Vec<f32>, Vec<f32>)>,
    /// Each channel's band above continued (none without an extension).
    extensions: Vec<ExtensionStream>,
}

impl CutoffSplicer {
    pub(super) fn new(cutoff_hz: f64, sample_rate: u32, extend_from: Option<f64>, channels: usize, len: usize) -> Self {
        let extension = extend_from.and_then(|from| BandExtension::new(sample_rate, from).map(|e| (e, from)));
        Self {
            lowpass: (0..channels).map(|_| FirStream::new(lowpass(cutoff_hz, sample_rate), len)).collect(),
            waiting: vec![(Vec::new(), Vec::new()); channels],
            extensions: extension.map_or_else(Vec::new, |(e, from)| (0..channels).map(|_| ExtensionStream::new(e, from, len)).collect()),
        }
    }
}

impl Blocks for CutoffSplicer {
    fn push(&mut self, original: &[Vec<f32>], restored: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let out: Vec<Vec<f32>> = original
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
            .collect();
        if self.extensions.is_empty() {
            return out;
        }
        out.iter().zip(&mut self.extensions).map(|(o, e)| e.push(o)).collect()
    }
}
