//! Finding the level a recording was clipped at: its loudest samples pile up there.
//!
//! A clean recording reaches its peak in a sample or two; a clipped one holds it for runs
//! of samples, every time the music would have gone beyond. So the level is the peak, if
//! enough samples sit at it.

/// Samples within this fraction of the peak count as at the peak (a 16-bit step is
/// 3e-5 of full scale).
const TOLERANCE: f32 = 1e-4;
/// Samples at the peak that make a clipped recording: at least this many, and this
/// fraction of all samples.
const MIN_AT_PEAK: usize = 16;
const MIN_FRACTION_AT_PEAK: f64 = 1e-5;

/// Whether `sample` counts as clipped at `level` (as clipped files store it).
pub fn is_clipped(sample: f32, level: f32) -> bool {
    sample.abs() >= level * (1.0 - TOLERANCE)
}

/// [`ClipDetector::level`] over a clip held whole.
pub fn detect_clip_level(channels: &[Vec<f32>]) -> Option<f64> {
    let mut detector = ClipDetector::default();
    detector.push(channels);
    detector.level()
}

/// The clip level of audio that arrives in blocks.
#[derive(Debug, Default, Clone)]
pub struct ClipDetector {
    peak: f32,
    at_peak: usize,
    samples: usize,
}

impl ClipDetector {
    pub fn push(&mut self, block: &[Vec<f32>]) {
        for &v in block.iter().flatten() {
            let v = v.abs();
            if v > self.peak * (1.0 + TOLERANCE) {
                // A new peak: the samples counted were below it.
                (self.peak, self.at_peak) = (v, 1);
            } else if is_clipped(v, self.peak) {
                self.peak = self.peak.max(v);
                self.at_peak += 1;
            }
        }
        self.samples += block.iter().map(Vec::len).sum::<usize>();
    }

    /// The level the audio was clipped at, if its loudest samples pile up.
    pub fn level(&self) -> Option<f64> {
        let enough = self.at_peak >= MIN_AT_PEAK && self.at_peak as f64 >= MIN_FRACTION_AT_PEAK * self.samples as f64;
        (enough && self.peak > 0.0).then_some(self.peak as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::test_noise;

    #[test]
    fn a_clipped_signal_gives_its_level_and_a_clean_one_none() {
        let clean: Vec<f32> = test_noise(48_000, 3).iter().map(|v| 0.2 * v).collect();
        assert_eq!(detect_clip_level(std::slice::from_ref(&clean)), None);
        let clipped: Vec<f32> = clean.iter().map(|v| (10.0 * v).clamp(-0.7, 0.7)).collect();
        assert_eq!(detect_clip_level(std::slice::from_ref(&clipped)), Some(0.7f32 as f64));
        // In blocks, with a quiet channel beside it, and rounded to 16 bits.
        let rounded: Vec<f32> = clipped.iter().map(|v| (v * 32_768.0).round() / 32_768.0).collect();
        let mut detector = ClipDetector::default();
        for block in rounded.chunks(1_000) {
            detector.push(&[block.to_vec(), vec![0.01; block.len()]]);
        }
        let level = detector.level().unwrap();
        assert!((level / 0.7 - 1.0).abs() < 1e-4, "{level}");
    }
}
