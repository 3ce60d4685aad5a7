//! Full-band gap fills: the band above the prior's Nyquist inside a filled gap, made from
//! the audio around it.
//!
//! The prior hears 16 kHz audio, so a gap it fills in a 48 kHz track holds nothing above
//! 8 kHz: a dull patch anyone hears on a cymbal. Above a crossover just below the prior's
//! band limit, each STFT frame in the gap gets:
//! - the magnitude envelope of the same band around the gap, its energy interpolated across
//!   it (the RMS over the frames before the gap, and over those after, per bin);
//! - the phases and the frame-to-frame loudness of the restored band below, replicated
//!   upwards, so the transients the prior put in the gap carry into the highs.
//!
//! The result is added under the splice's own weight, so nothing outside the gap changes.
//!
//! Above a super-resolution cutoff the prior cannot reach there is no band around to copy
//! the envelope from: [`BandExtension::above`] continues the spectrum's slope over the two
//! octaves below the cutoff from each frame's top band, with the same replicated phases
//! ([`ExtensionStream`] for audio that arrives in blocks).

use realfft::num_complex::Complex32;
use std::ops::Range;

use super::raised_cosine;
use super::stft::{ComplexStft, StftConfig};

/// How much of the audio on each side of a gap sets the envelope, in seconds.
pub const CONTEXT_SECONDS: f64 = 0.5;

/// The crossover, as fractions of the prior's band limit: the synthesised band fades in
/// from the first to the second; the replicated source band spans the third to the first.
const CROSSOVER: (f64, f64) = (0.85, 0.98);
const SOURCE_FROM: f64 = 0.25;
/// Above a cutoff, the band fades in over the 5 % above it, and each frame's level is that
/// of its band from 70 % of the cutoff up.
const ABOVE_CROSSOVER: f64 = 1.05;
const TOP_BAND: f64 = 0.7;

/// The frame-to-frame loudness carried up from the band below is kept within this factor
/// of its mean, so one click in the fill does not become a burst of hiss.
const MAX_GAIN: f32 = 4.0;

/// The high band of gaps filled below `limit_hz` in audio at `sample_rate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandExtension {
    pub sample_rate: u32,
    pub limit_hz: f64,
}

impl BandExtension {
    /// `None` when the audio has (almost) nothing above the limit to restore.
    pub fn new(sample_rate: u32, limit_hz: f64) -> Option<Self> {
        (sample_rate as f64 / 2.0 > limit_hz / CROSSOVER.1).then_some(Self { sample_rate, limit_hz })
    }

    /// Samples of context each side of a gap, plus half a frame.
    pub fn context(&self) -> usize {
        (CONTEXT_SECONDS * self.sample_rate as f64).round() as usize + self.config().n_fft
    }

    /// About 21 ms frames whatever the rate, a quarter frame apart.
    fn config(&self) -> StftConfig {
        let n_fft = ((self.sample_rate as f64 * 1024.0 / 48_000.0).round() as usize).next_power_of_two().max(256);
        StftConfig { n_fft, hop: n_fft / 4 }
    }

    /// The first bin of [`Self::config`]'s STFT at or above `hz`.
    fn bin_of(&self, hz: f64) -> usize {
        (hz * self.config().n_fft as f64 / self.sample_rate as f64).ceil() as usize
    }

    /// Adds the high band to `audio`'s `gap` (sample indexes into `audio`, which holds the
    /// audio around the gap too). `weight(i)` is how much of sample `gap.start + i` the
    /// fill replaced (the splice's fades; 1 in the gap's body).
    pub fn extend(&self, audio: &mut [f32], gap: Range<usize>, weight: impl Fn(usize) -> f32) {
        let config = self.config();
        let (n_fft, hop, bins) = (config.n_fft, config.hop, config.bins());
        if gap.is_empty() || audio.len() <= n_fft {
            return;
        }
        let stft = ComplexStft::new(config);
        let spectrum = stft.analyse(audio);
        let frames = spectrum.len() / bins;
        let frame = |f: usize| &spectrum[f * bins..(f + 1) * bins];
        let Some(moved) = Replication::new(
            config,
            self.bin_of(CROSSOVER.0 * self.limit_hz),
            self.bin_of(CROSSOVER.1 * self.limit_hz),
            self.bin_of(SOURCE_FROM * self.limit_hz),
        ) else {
            return;
        };
        let (fade_in, source) = (moved.fade_in, moved.source.clone());
        // Frames whose window stays clear of the gap give the envelope on each side.
        let half = n_fft / 2;
        let clear_before = |f: usize| f * hop + half <= gap.start;
        let clear_after = |f: usize| f * hop >= gap.end + half && f * hop + half <= audio.len();
        let envelope = |clear: &dyn Fn(usize) -> bool| -> Option<Vec<f32>> {
            let chosen: Vec<usize> = (0..frames).filter(|&f| clear(f) && f * hop >= half).collect();
            (!chosen.is_empty())
                .then(|| (0..bins).map(|b| (chosen.iter().map(|&f| frame(f)[b].norm_sqr()).sum::<f32>() / chosen.len() as f32).sqrt()).collect())
        };
        let (before, after) = match (envelope(&clear_before), envelope(&clear_after)) {
            (Some(b), Some(a)) => (b, a),
            (Some(b), None) => (b.clone(), b),
            (None, Some(a)) => (a.clone(), a),
            (None, None) => return,
        };
        // Frames that touch the gap, and the loudness of their source band.
        let touching: Vec<usize> = (0..frames).filter(|&f| f * hop + half > gap.start && f * hop < gap.end + half).collect();
        let loudness: Vec<f32> = touching.iter().map(|&f| frame(f)[source.clone()].iter().map(|c| c.norm_sqr()).sum::<f32>()).collect();
        // The mean over the frames that hold only the fill: those at the edges also hold the
        // original, whose loudness is not the fill's.
        let inside: Vec<f32> =
            touching.iter().zip(&loudness).filter(|&(&f, _)| f * hop >= gap.start + half && f * hop + half <= gap.end).map(|(_, &e)| e).collect();
        let typical = if inside.is_empty() { &loudness } else { &inside };
        let mean = typical.iter().sum::<f32>() / typical.len().max(1) as f32;
        if mean <= 0.0 {
            return;
        }
        let mut high = vec![Complex32::new(0.0, 0.0); spectrum.len()];
        for (&f, &energy) in touching.iter().zip(&loudness) {
            let gain = (energy / mean).sqrt().clamp(1.0 / MAX_GAIN, MAX_GAIN);
            let along = ((f * hop) as f64 - gap.start as f64) / gap.len() as f64;
            let along = along.clamp(0.0, 1.0) as f32;
            for b in fade_in..bins {
                let level = ((1.0 - along) * before[b].powi(2) + along * after[b].powi(2)).sqrt();
                high[f * bins + b] = moved.cell(frame(f), b, level * gain);
            }
        }
        let band = moved.synthesise(&stft, &high, &touching, audio.len());
        for i in gap.clone() {
            audio[i] += weight(i - gap.start) * band[i];
        }
    }

    /// The band above `from_hz` for `audio` that has none: each frame's top band (the 30 %
    /// below `from_hz`) continued upward with the slope of the average spectrum over the two
    /// octaves below (within −3 to −24 dB per octave), with replicated phases.
    pub fn above(&self, audio: &[f32], from_hz: f64) -> Vec<f32> {
        let config = self.config();
        let (n_fft, bins) = (config.n_fft, config.bins());
        let hz = |b: usize| b as f64 * self.sample_rate as f64 / n_fft as f64;
        let silence = vec![0.0; audio.len()];
        if audio.len() <= n_fft {
            return silence;
        }
        let Some(moved) = Replication::new(config, self.bin_of(from_hz), self.bin_of(ABOVE_CROSSOVER * from_hz), self.bin_of(SOURCE_FROM * from_hz)) else {
            return silence;
        };
        let stft = ComplexStft::new(config);
        let spectrum = stft.analyse(audio);
        let frames = spectrum.len() / bins;
        let frame = |f: usize| &spectrum[f * bins..(f + 1) * bins];
        // The slope: log magnitude against log frequency over the two octaves below.
        let fit: Vec<(f64, f64)> = (self.bin_of(from_hz / 4.0).max(1)..moved.fade_in)
            .filter_map(|b| {
                let mean = (0..frames).map(|f| frame(f)[b].norm() as f64).sum::<f64>() / frames as f64;
                (mean > 0.0).then(|| (hz(b).ln(), mean.ln()))
            })
            .collect();
        if fit.len() < 2 {
            return silence;
        }
        let (mx, my) = (fit.iter().map(|p| p.0).sum::<f64>() / fit.len() as f64, fit.iter().map(|p| p.1).sum::<f64>() / fit.len() as f64);
        let slope = fit.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / fit.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>();
        let slope = slope.clamp(-4.0, -0.5);
        let top = self.bin_of(TOP_BAND * from_hz)..moved.fade_in;
        let reference = hz((top.start + top.end) / 2);
        let mut high = vec![Complex32::new(0.0, 0.0); spectrum.len()];
        for f in 0..frames {
            let level = (frame(f)[top.clone()].iter().map(|c| c.norm_sqr()).sum::<f32>() / top.len().max(1) as f32).sqrt();
            for b in moved.fade_in..bins {
                high[f * bins + b] = moved.cell(frame(f), b, level * (hz(b) / reference).powf(slope) as f32);
            }
        }
        moved.synthesise(&stft, &high, &(0..frames).collect::<Vec<_>>(), audio.len())
    }
}

/// Samples extended at a time by [`ExtensionStream`] (its slope and energy are per chunk),
/// and the context either side.
const CHUNK: usize = 1 << 17;

/// [`BandExtension::above`] added to audio that arrives in blocks, a chunk at a time with a
/// frame of context either side: it holds a chunk, not the signal.
#[derive(Debug)]
pub struct ExtensionStream {
    extension: BandExtension,
    from_hz: f64,
    /// Length of the whole signal.
    len: usize,
    /// The input from sample `start` on.
    history: Vec<f32>,
    start: usize,
    received: usize,
    /// The next output sample.
    next: usize,
}

impl ExtensionStream {
    pub fn new(extension: BandExtension, from_hz: f64, len: usize) -> Self {
        Self { extension, from_hz, len, history: Vec::new(), start: 0, received: 0, next: 0 }
    }

    /// Feeds the next samples and returns the output they complete: the outputs of all calls
    /// together are the `len` samples of the signal with its band above added.
    pub fn push(&mut self, x: &[f32]) -> Vec<f32> {
        self.history.extend_from_slice(x);
        self.received += x.len();
        let margin = 2 * self.extension.config().n_fft;
        let mut out = Vec::new();
        loop {
            let complete = self.received >= self.len;
            let ready = if complete { self.len } else { self.received.saturating_sub(margin) };
            if ready <= self.next || (!complete && ready - self.next < CHUNK) {
                return out;
            }
            let end = ready.min(self.next + CHUNK);
            let region = self.next.saturating_sub(margin)..(end + margin).min(self.received);
            let band = self.extension.above(&self.history[region.start - self.start..region.end - self.start], self.from_hz);
            out.extend((self.next..end).map(|i| self.history[i - self.start] + band[i - region.start]));
            self.next = end;
            let keep = self.next.saturating_sub(margin);
            self.history.drain(..keep - self.start);
            self.start = keep;
        }
    }
}

/// Where a frame's band below is replicated into the band above: bins from `fade_in` up
/// (full weight from `full`) take the phases of `source`, cyclically.
struct Replication {
    fade_in: usize,
    full: usize,
    source: Range<usize>,
}

impl Replication {
    /// `None` when the source would be empty or the band above holds no bin.
    fn new(config: StftConfig, fade_in: usize, full: usize, source_from: usize) -> Option<Self> {
        // Moved up by a multiple of n_fft / hop bins, a bin's phase turns by whole turns more
        // per hop, so the moved frames still overlap-add coherently.
        let turns = config.n_fft / config.hop;
        let width = fade_in.saturating_sub(source_from) / turns * turns;
        (width > 0 && fade_in < config.bins()).then(|| Self { fade_in, full, source: fade_in - width..fade_in })
    }

    /// Bin `b` (at least `fade_in`) of a frame: the phase of its source in `frame`, at
    /// magnitude `level` under the crossover's raised-cosine ramp.
    fn cell(&self, frame: &[Complex32], b: usize, level: f32) -> Complex32 {
        let from = frame[self.source.start + (b - self.fade_in) % self.source.len()];
        if from.norm_sqr() == 0.0 {
            return Complex32::new(0.0, 0.0);
        }
        let ramp = if b >= self.full { 1.0 } else { raised_cosine((b - self.fade_in) as f64 / (self.full - self.fade_in).max(1) as f64) as f32 };
        from / from.norm() * (ramp * level)
    }

    /// The band `high` asks for, as audio of `len` samples. Frames moved in frequency do
    /// not overlap-add quite as they were: the band's energy in `frames` is brought back
    /// to what they asked for.
    fn synthesise(&self, stft: &ComplexStft, high: &[Complex32], frames: &[usize], len: usize) -> Vec<f32> {
        let bins = stft.config().bins();
        let band = stft.synthesise(high, len);
        let energy = |spectrum: &[Complex32]| -> f32 {
            frames.iter().map(|&f| spectrum[f * bins + self.fade_in..(f + 1) * bins].iter().map(|c| c.norm_sqr()).sum::<f32>()).sum()
        };
        let made = energy(&stft.analyse(&band));
        let scale = if made > 0.0 { (energy(high) / made).sqrt() } else { 0.0 };
        band.into_iter().map(|v| v * scale).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::test_noise;

    /// Energy of `x` above `hz`, per sample.
    fn band_energy(x: &[f32], rate: u32, hz: f64) -> f64 {
        let config = StftConfig { n_fft: 1024, hop: 256 };
        let spectrum = ComplexStft::new(config).analyse(x);
        let first = (hz * 1024.0 / rate as f64).ceil() as usize;
        let frames = spectrum.len() / config.bins();
        (0..frames).map(|f| spectrum[f * config.bins() + first..(f + 1) * config.bins()].iter().map(|c| c.norm_sqr() as f64).sum::<f64>()).sum::<f64>()
            / frames as f64
    }

    /// A gap in white noise at 48 kHz, filled with audio that stops at 8 kHz: the filled
    /// gap gets the band above back at the level around it, and nothing outside changes.
    #[test]
    fn a_gap_filled_below_8_khz_gets_its_highs_from_around_it() {
        let rate = 48_000;
        let noise = test_noise(3 * rate as usize, 4);
        let dull = crate::dsp::fir::lowpass(7_500.0, rate).filter(&test_noise(3 * rate as usize, 5));
        let gap = rate as usize..2 * rate as usize;
        let mut audio = noise.clone();
        audio[gap.clone()].copy_from_slice(&dull[gap.clone()]);
        let before = audio.clone();
        let extension = BandExtension::new(rate, 8_000.0).unwrap();
        extension.extend(&mut audio, gap.clone(), |_| 1.0);
        assert_eq!(audio[..gap.start], before[..gap.start], "before the gap: untouched");
        assert_eq!(audio[gap.end..], before[gap.end..], "after the gap: untouched");
        let around = band_energy(&noise[gap.start - rate as usize / 2..gap.start], rate, 8_000.0);
        let filled = band_energy(&audio[gap.start + 2_048..gap.end - 2_048], rate, 8_000.0);
        let dull_band = band_energy(&before[gap.start + 2_048..gap.end - 2_048], rate, 8_000.0);
        let db = |x: f64| 10.0 * x.log10();
        assert!(db(dull_band / around) < -40.0, "the test's fill is dull: {} dB", db(dull_band / around));
        assert!(db(filled / around).abs() < 1.5, "filled highs {} dB from the surroundings", db(filled / around));
    }

    /// Noise that stops at 11 kHz gets a band above it at about the level the noise had
    /// there (white noise's flat slope is taken as −3 dB per octave), in blocks as whole.
    #[test]
    fn a_band_above_a_cutoff_continues_the_spectrum() {
        let rate = 48_000;
        let full = test_noise(4 * rate as usize, 6);
        let dull = crate::dsp::fir::lowpass(11_000.0, rate).filter(&full);
        let extension = BandExtension::new(rate, 8_000.0).unwrap();
        let whole: Vec<f32> = dull.iter().zip(extension.above(&dull, 11_000.0)).map(|(a, b)| a + b).collect();
        let mut stream = ExtensionStream::new(extension, 11_000.0, dull.len());
        let streamed: Vec<f32> = dull.chunks(30_001).flat_map(|block| stream.push(block)).collect();
        assert_eq!(streamed.len(), dull.len());
        let db = |x: f64| 10.0 * x.log10();
        let band = |x: &[f32]| band_energy(&x[48_000..144_000], rate, 12_000.0) - band_energy(&x[48_000..144_000], rate, 16_000.0);
        for (what, made) in [("whole", &whole), ("streamed", &streamed)] {
            let level = db(band(made) / band(&full));
            assert!(level.abs() < 4.0, "{what}: 12-16 kHz at {level:.1} dB of the original's");
        }
        assert!(db(band(&dull) / band(&full)) < -40.0, "the test's input is dull");
        let low = |x: &[f32]| crate::dsp::fir::lowpass(9_000.0, rate).filter(x);
        let (a, b) = (low(&whole), low(&dull));
        let leak = a.iter().zip(&b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / b.iter().map(|y| (*y as f64).powi(2)).sum::<f64>();
        assert!(leak < 1e-5, "the band below is kept: {leak:e}");
    }

    #[test]
    fn nothing_is_added_where_the_audio_has_no_band_above_the_prior() {
        assert!(BandExtension::new(16_000, 8_000.0).is_none());
        assert!(BandExtension::new(22_050, 8_000.0).is_some());
    }
}
