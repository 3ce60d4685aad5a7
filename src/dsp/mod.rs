//! The spectral front end: STFT, the two mel spectrograms, Griffin-Lim, LSD, the paper's
//! resampler, and the detection of a recording's bandwidth.
//!
//! Everything the guidance back-propagates through (`stft`, `mel`) is a candle graph, so
//! the same code serves plain evaluation and autograd. Settings follow DESIGN.md §2–3.

pub mod band_extension;
pub mod bandwidth;
pub mod clipping;
pub mod fir;
pub mod griffin_lim;
pub mod lsd;
pub mod mel;
pub mod sinc_resample;
pub mod stft;

/// The prior's sample rate (AudioLDM2 works on 16 kHz audio).
pub const MODEL_SAMPLE_RATE: u32 = 16_000;

/// The raised-cosine ramp `0.5 − 0.5·cos(π·x)` (= sin²(π·x/2)): 0 at `x` ≤ 0, 1 at `x` ≥ 1,
/// and a rise and the matching fall sum to 1. Every fade here has this shape.
pub fn raised_cosine(x: f64) -> f64 {
    0.5 - 0.5 * (std::f64::consts::PI * x.clamp(0.0, 1.0)).cos()
}

/// Deterministic white noise in [−0.5, 0.5) (xorshift64), for the unit tests.
#[cfg(test)]
pub(crate) fn test_noise(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}
