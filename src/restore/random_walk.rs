//! The paper's dereverberation operator, as its official code runs it: a 5000-tap random
//! walk (`cumsum(randn)·0.99`, normalised to peak 1), applied as `conv1d` with padding
//! 2500 (a non-causal cross-correlation, one sample longer than its input), and redrawn
//! every time the operator is applied. So the measurement is made through one response
//! and every guidance step sees the candidate through another: the official code's bug,
//! and the setup its table comes from (`experiment --protocol paper`). The responses are
//! the ones torch draws from the same seed ([`TorchNormal`]). A user's room is
//! [`super::operators::ImpulseResponse::Synthetic`] or a recording, fixed per job.

use candle_core::{Result, Tensor};
use parking_lot::Mutex;
use std::sync::Arc;

use super::torch_random::TorchNormal;
use crate::dsp::fir::FirFilter;

/// The response's length.
pub const TAPS: usize = 5_000;
/// The factor on the running sum (it cancels in the normalisation, as in the official code).
const SCALE: f32 = 0.99;

/// The random walk of `normals`, scaled and normalised to a peak of 1.
pub fn random_walk_response(normals: &[f32]) -> Vec<f32> {
    let mut sum = 0f32;
    let walk: Vec<f32> = normals
        .iter()
        .map(|&n| {
            sum += n;
            sum * SCALE
        })
        .collect();
    let peak = walk.iter().fold(0f32, |m, v| m.max(v.abs()));
    walk.iter().map(|v| v / peak).collect()
}

/// `conv1d(x, response, padding = len/2)` as a filter: `y[n] = Σ_j response[j]·x[n − len/2 + j]`.
/// Its output is [`cross_correlation_len`] long; [`cross_correlate`] pads the input to it.
pub fn cross_correlation(response: &[f32]) -> FirFilter {
    FirFilter::new(response.iter().rev().copied().collect(), response.len() - 1 - response.len() / 2)
}

/// The length of the cross-correlation of `len` samples with a response of `taps`.
pub fn cross_correlation_len(len: usize, taps: usize) -> usize {
    len + 2 * (taps / 2) + 1 - taps
}

/// [`cross_correlation`] on the rows of a (batch, samples) tensor, differentiable.
pub fn cross_correlate(filter: &FirFilter, wave: &Tensor) -> Result<Tensor> {
    let len = wave.dim(1)?;
    let out = cross_correlation_len(len, filter.taps().len());
    filter.forward(&wave.pad_with_zeros(1, 0, out.saturating_sub(len))?)?.narrow(1, 0, out)
}

/// A seeded stream of random-walk responses: the walks of successive `torch.randn(5000)`
/// from a generator seeded with the seed. Clones share the stream.
#[derive(Debug, Clone)]
pub struct RandomWalkReverb {
    stream: Arc<Mutex<TorchNormal>>,
}

impl RandomWalkReverb {
    pub fn new(seed: u64) -> Self {
        Self { stream: Arc::new(Mutex::new(TorchNormal::new(seed))) }
    }

    /// The stream's next response (its first makes the measurement).
    pub fn next_response(&self) -> Vec<f32> {
        random_walk_response(&self.stream.lock().randn(TAPS))
    }

    /// The wave through the stream's next response.
    pub fn apply(&self, wave: &Tensor) -> Result<Tensor> {
        cross_correlate(&cross_correlation(&self.next_response()), wave)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::test_noise;
    use candle_core::Device;

    #[test]
    fn each_application_draws_the_next_response() {
        let (first, second) = {
            let stream = RandomWalkReverb::new(7);
            (stream.next_response(), stream.next_response())
        };
        let reverb = RandomWalkReverb::new(7);
        assert_eq!(first.len(), TAPS);
        assert_eq!(first.iter().fold(0f32, |m, v| m.max(v.abs())), 1.0);
        assert_ne!(first, second);
        let x = test_noise(3_000, 1);
        let wave = Tensor::from_vec(x.clone(), (1, 3_000), &Device::Cpu).unwrap();
        let through = |r: &RandomWalkReverb| -> Vec<f32> { r.apply(&wave).unwrap().flatten_all().unwrap().to_vec1().unwrap() };
        let shared = reverb.clone();
        let (a, b) = (through(&reverb), through(&shared));
        assert_eq!(a.len(), 3_001, "conv1d with padding 2500 is one sample longer");
        // Direct: y[n] = Σ_j h[j]·x[n − 2500 + j].
        let direct = |h: &[f32], n: usize| -> f32 { (0..TAPS).filter_map(|j| (n + j).checked_sub(2_500).and_then(|i| x.get(i)).map(|v| h[j] * v)).sum() };
        for n in [0, 1, 1_500, 2_999, 3_000] {
            assert!((a[n] - direct(&first, n)).abs() < 1e-3, "sample {n}: {} vs {}", a[n], direct(&first, n));
            assert!((b[n] - direct(&second, n)).abs() < 1e-3, "a clone continues the stream");
        }
    }
}
