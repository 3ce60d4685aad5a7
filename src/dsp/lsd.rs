//! Log-spectral distance, as the paper scores restorations.
//!
//! `X = |STFT(x)|` (n_fft 1024, hop 160, periodic Hann, centred reflect) at 16 kHz,
//! `L = log10(X + 1e-10)`; per frame the RMS of `L_ref − L_est` over frequency; the mean
//! over frames. Lower is better; 0 means identical spectra. The paper's own `eval.py` frames
//! coarser ([`lsd_eval_py`]).

use candle_core::{Device, Result};

use super::stft::{hann_periodic, wave_tensor, Stft, StftConfig};

/// LSD between two mono 16 kHz signals of equal length.
pub fn lsd(reference: &[f32], estimate: &[f32]) -> Result<f64> {
    if reference.len() != estimate.len() {
        candle_core::bail!("LSD needs signals of equal length, got {} and {} samples", reference.len(), estimate.len());
    }
    let mut accumulator = LsdAccumulator::new(1, reference.len())?;
    accumulator.push(&[reference.to_vec()], &[estimate.to_vec()])?;
    Ok(accumulator.finish()?[0])
}

/// Samples past the last scored frame before the next frames are scored.
const SEGMENT: usize = 1 << 19;

/// [`lsd`] over two signals of several channels that arrive in blocks: the same frames,
/// summed in the same order, holding one segment of each channel rather than the signals.
pub struct LsdAccumulator {
    stft: Stft,
    /// Length of the whole signals.
    len: usize,
    /// Each channel of both signals from sample `start` on.
    reference: Vec<Vec<f32>>,
    estimate: Vec<Vec<f32>>,
    start: usize,
    /// The next frame to score.
    next: usize,
    /// Per channel, the sum of the scored frames' distances.
    sums: Vec<f64>,
}

impl LsdAccumulator {
    /// For two signals of `channels` channels of `len` samples each.
    pub fn new(channels: usize, len: usize) -> Result<Self> {
        let stft = Stft::new(StftConfig::AUDIOLDM, &Device::Cpu)?;
        let empty = vec![Vec::new(); channels];
        Ok(Self { stft, len, reference: empty.clone(), estimate: empty, start: 0, next: 0, sums: vec![0.0; channels] })
    }

    /// The next samples of both signals (planar, all of equal length).
    pub fn push(&mut self, reference: &[Vec<f32>], estimate: &[Vec<f32>]) -> Result<()> {
        let n = reference.first().map_or(0, Vec::len);
        if reference.len() != self.sums.len() || estimate.len() != self.sums.len() || reference.iter().chain(estimate).any(|c| c.len() != n) {
            candle_core::bail!("LSD needs blocks of {} channels of equal length", self.sums.len());
        }
        for (buffer, block) in self.reference.iter_mut().zip(reference).chain(self.estimate.iter_mut().zip(estimate)) {
            buffer.extend_from_slice(block);
        }
        let received = self.start + self.reference[0].len();
        if received > self.len {
            candle_core::bail!("LSD was given {received} samples of the {} announced", self.len);
        }
        let scored = self.next * StftConfig::AUDIOLDM.hop;
        if received < self.len && received < scored + SEGMENT {
            return Ok(());
        }
        self.score(received)
    }

    /// Scores the frames the samples up to `received` determine.
    fn score(&mut self, received: usize) -> Result<()> {
        let StftConfig { n_fft, hop } = StftConfig::AUDIOLDM;
        let last = received == self.len;
        // Frame `f` spans samples f·hop ± n_fft/2: the segment starts that far before the
        // next frame (on a frame's centre), or at 0 where the signal's own edge reflects.
        let margin = (n_fft / 2).div_ceil(hop);
        let first = self.next.saturating_sub(margin);
        let end = if last { StftConfig::AUDIOLDM.frames(self.len) } else { received.saturating_sub(n_fft / 2) / hop + 1 };
        if end <= self.next {
            return Ok(());
        }
        let (a, b) = (first * hop - self.start, received - self.start);
        let log_mag = |x: &[f32]| -> Result<Vec<Vec<f32>>> {
            let mag = self.stft.magnitude(&wave_tensor(x, &Device::Cpu)?)?;
            mag.squeeze(0)?.narrow(0, self.next - first, end - self.next)?.to_vec2()
        };
        for ((r, e), sum) in self.reference.iter().zip(&self.estimate).zip(&mut self.sums) {
            // Identical samples give identical frames, each at distance 0: an inpainting
            // result is scored at the cost of its gaps.
            if r[a..b] == e[a..b] {
                continue;
            }
            let (r, e) = (log_mag(&r[a..b])?, log_mag(&e[a..b])?);
            *sum += r.iter().zip(&e).map(|(fr, fe)| frame_distance(fr, fe)).sum::<f64>();
        }
        self.next = end;
        let keep = self.next.saturating_sub(margin) * hop;
        for buffer in self.reference.iter_mut().chain(&mut self.estimate) {
            buffer.drain(..keep - self.start);
        }
        self.start = keep;
        Ok(())
    }

    /// The LSD of each channel, once all samples are in.
    pub fn finish(self) -> Result<Vec<f64>> {
        let frames = StftConfig::AUDIOLDM.frames(self.len);
        if self.next != frames {
            candle_core::bail!("LSD was given {} samples of the {} announced", self.start + self.reference[0].len(), self.len);
        }
        Ok(self.sums.iter().map(|s| s / frames as f64).collect())
    }
}

/// One frame's distance: the RMS over frequency of the difference of `log10(|X| + 1e-10)`.
fn frame_distance(reference: &[f32], estimate: &[f32]) -> f64 {
    let squares = reference.iter().zip(estimate).map(|(&a, &b)| ((a as f64 + 1e-10).log10() - (b as f64 + 1e-10).log10()).powi(2));
    (squares.sum::<f64>() / reference.len() as f64).sqrt()
}

/// The hop of the paper's official `eval.py`.
pub const EVAL_PY_HOP: usize = 512;

/// [`lsd`] as the paper's official `eval.py` scores it: librosa's STFT (n_fft 1024, hop
/// [`EVAL_PY_HOP`], periodic Hann, centred with zero padding). Coarser in time than ours,
/// and its edge frames see silence beyond the signal.
pub fn lsd_eval_py(reference: &[f32], estimate: &[f32]) -> Result<f64> {
    if reference.len() != estimate.len() {
        candle_core::bail!("LSD needs signals of equal length, got {} and {} samples", reference.len(), estimate.len());
    }
    let (n_fft, hop) = (StftConfig::AUDIOLDM.n_fft, EVAL_PY_HOP);
    let window = hann_periodic(n_fft);
    let fft = realfft::RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
    let magnitudes = |x: &[f32], frame: usize| -> Vec<f32> {
        let mut buffer: Vec<f64> =
            (0..n_fft).map(|t| (frame * hop + t).checked_sub(n_fft / 2).and_then(|i| x.get(i)).map_or(0.0, |&v| f64::from(v) * window[t])).collect();
        let mut spectrum = fft.make_output_vec();
        fft.process(&mut buffer, &mut spectrum).expect("sizes come from the plan");
        spectrum.iter().map(|c| c.norm() as f32).collect()
    };
    let frames = 1 + reference.len() / hop;
    let total: f64 = (0..frames).map(|f| frame_distance(&magnitudes(reference, f), &magnitudes(estimate, f))).sum();
    Ok(total / frames as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition on whole signals: one STFT of each.
    fn whole(reference: &[f32], estimate: &[f32]) -> f64 {
        let stft = Stft::new(StftConfig::AUDIOLDM, &Device::Cpu).unwrap();
        let log_mag = |x: &[f32]| stft.magnitude(&wave_tensor(x, &Device::Cpu).unwrap()).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        let (r, e) = (log_mag(reference), log_mag(estimate));
        let per_frame = r.iter().zip(&e).map(|(fr, fe)| {
            let d2 = fr.iter().zip(fe).map(|(&a, &b)| ((a as f64 + 1e-10).log10() - (b as f64 + 1e-10).log10()).powi(2));
            (d2.sum::<f64>() / fr.len() as f64).sqrt()
        });
        per_frame.sum::<f64>() / r.len() as f64
    }

    #[test]
    fn scoring_in_blocks_gives_the_whole_signals_score() {
        let len = 2 * SEGMENT + 12_345;
        let x: Vec<f32> = (0..len).map(|n| ((n * 7919) % 1013) as f32 / 1013.0 - 0.5).collect();
        let y: Vec<f32> = x.iter().enumerate().map(|(n, v)| v * (1.0 + (n % 17) as f32 * 0.01)).collect();
        let want = whole(&x, &y);
        for block in [len, 100_000, 4_099] {
            let mut acc = LsdAccumulator::new(2, len).unwrap();
            for (a, b) in x.chunks(block).zip(y.chunks(block)) {
                acc.push(&[a.to_vec(), b.to_vec()], &[b.to_vec(), b.to_vec()]).unwrap();
            }
            let got = acc.finish().unwrap();
            assert_eq!(got[1], 0.0);
            let got = got[0];
            assert!((got - want).abs() <= 1e-12 * want, "blocks of {block}: {got} vs {want}");
        }
        let mut short = LsdAccumulator::new(1, len).unwrap();
        short.push(&[x[..1000].to_vec()], &[y[..1000].to_vec()]).unwrap();
        assert!(short.finish().is_err());
    }
}
