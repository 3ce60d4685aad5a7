//! The spectral front end: STFT, the two mel spectrograms, Griffin-Lim, LSD, resampling,
//! and the detection of a recording's bandwidth.
//!
//! Everything the guidance back-propagates through (`stft`, `mel`) is a candle graph, so
//! the same code serves plain evaluation and autograd. Settings follow DESIGN.md §2–3.

pub mod bandwidth;
pub mod fir;
pub mod griffin_lim;
pub mod lsd;
pub mod mel;
pub mod stft;

/// The prior's sample rate (AudioLDM2 works on 16 kHz audio).
pub const MODEL_SAMPLE_RATE: u32 = 16_000;
