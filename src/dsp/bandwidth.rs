//! Where a recording's spectrum ends: the cutoff a super-resolution should restore above,
//! detected from the long-term spectrum so the editor can propose it.

use realfft::RealFftPlanner;

use super::stft::hann_periodic;

const FRAME: usize = 4096;
/// Content this far below the spectrum's peak counts as absent.
const FLOOR_DB: f64 = 50.0;
/// Smoothing of the spectrum before the search, in bins either side.
const SMOOTH: usize = 4;

/// The frequency (Hz) above which `channels` hold nothing but noise floor, or `None` when
/// the spectrum reaches (nearly) to the Nyquist frequency or the clip is silent or short.
pub fn detect_cutoff(channels: &[Vec<f32>], sample_rate: u32) -> Option<f64> {
    let mut detector = CutoffDetector::new(channels.len(), sample_rate);
    detector.push(channels);
    detector.cutoff()
}

/// [`detect_cutoff`] for audio that arrives in blocks: the same frames, one spectrum of
/// sums, and a frame's worth of samples per channel held between blocks.
pub struct CutoffDetector {
    sample_rate: u32,
    window: Vec<f32>,
    fft: std::sync::Arc<dyn realfft::RealToComplex<f32>>,
    /// Each channel's samples not yet in a frame that has started.
    pending: Vec<Vec<f32>>,
    power: Vec<f64>,
    frames: usize,
}

impl CutoffDetector {
    pub fn new(channels: usize, sample_rate: u32) -> Self {
        Self {
            sample_rate,
            window: hann_periodic(FRAME).into_iter().map(|w| w as f32).collect(),
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(FRAME),
            pending: vec![Vec::new(); channels],
            power: vec![0f64; FRAME / 2 + 1],
            frames: 0,
        }
    }

    /// The next frames of every channel (planar).
    pub fn push(&mut self, block: &[Vec<f32>]) {
        let (mut input, mut spectrum) = (self.fft.make_input_vec(), self.fft.make_output_vec());
        for (pending, samples) in self.pending.iter_mut().zip(block) {
            pending.extend_from_slice(samples);
            let mut start = 0;
            while start + FRAME <= pending.len() {
                for (x, (s, w)) in input.iter_mut().zip(pending[start..start + FRAME].iter().zip(&self.window)) {
                    *x = s * w;
                }
                if self.fft.process(&mut input, &mut spectrum).is_ok() {
                    for (p, c) in self.power.iter_mut().zip(&spectrum) {
                        *p += c.norm_sqr() as f64;
                    }
                    self.frames += 1;
                }
                start += FRAME / 2;
            }
            pending.drain(..start);
        }
    }

    /// The cutoff of everything pushed (see [`detect_cutoff`]).
    pub fn cutoff(&self) -> Option<f64> {
        let (power, sample_rate) = (&self.power, self.sample_rate);
        if self.frames == 0 {
            return None;
        }
        let db: Vec<f64> = power.iter().map(|p| 10.0 * (p + 1e-30).log10()).collect();
        let smoothed: Vec<f64> = (0..db.len())
            .map(|k| {
                let (a, b) = (k.saturating_sub(SMOOTH), (k + SMOOTH + 1).min(db.len()));
                db[a..b].iter().sum::<f64>() / (b - a) as f64
            })
            .collect();
        let bin_hz = sample_rate as f64 / FRAME as f64;
        let first = (50.0 / bin_hz).ceil() as usize;
        let peak = smoothed[first..].iter().copied().fold(f64::MIN, f64::max);
        if power[first..].iter().all(|&p| p <= 1e-20) {
            return None;
        }
        let last_loud = (first..smoothed.len()).rev().find(|&k| smoothed[k] >= peak - FLOOR_DB)?;
        let cutoff = (last_loud + 1) as f64 * bin_hz;
        (cutoff < 0.95 * sample_rate as f64 / 2.0).then_some(cutoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::fir::lowpass;
    use crate::dsp::test_noise as noise;

    #[test]
    fn a_low_passed_recording_is_found_at_its_cutoff() {
        for (rate, cutoff) in [(44_100, 4_000.0), (48_000, 11_025.0), (16_000, 3_000.0)] {
            let x = lowpass(cutoff, rate).filter(&noise(rate as usize * 2, 1));
            let found = detect_cutoff(&[x.clone(), x], rate).unwrap_or_else(|| panic!("{rate} Hz: no cutoff found"));
            assert!((found - cutoff).abs() < 0.05 * cutoff, "{rate} Hz: found {found} for {cutoff}");
        }
    }

    #[test]
    fn full_band_silent_or_short_audio_has_no_cutoff() {
        assert_eq!(detect_cutoff(&[noise(88_200, 2)], 44_100), None);
        assert_eq!(detect_cutoff(&[vec![0.0; 88_200]], 44_100), None);
        assert_eq!(detect_cutoff(&[noise(1_000, 3)], 44_100), None);
        assert_eq!(detect_cutoff(&[], 44_100), None);
    }

    #[test]
    fn blocks_of_any_size_find_the_same_cutoff() {
        let x = lowpass(5_000.0, 32_000).filter(&noise(100_000, 4));
        let whole = detect_cutoff(std::slice::from_ref(&x), 32_000);
        let mut detector = CutoffDetector::new(1, 32_000);
        x.chunks(3_001).for_each(|b| detector.push(&[b.to_vec()]));
        assert!(whole.is_some());
        assert_eq!(detector.cutoff(), whole);
    }
}
