//! What the editor draws of a clip, computed once per clip rather than every frame: the
//! waveform's peaks and a spectrogram image.

use egui::{Color32, ColorImage};
use realfft::RealFftPlanner;

use crate::dsp::stft::hann_periodic;

/// The smallest and largest sample of each of a number of equal stretches of a clip (all
/// channels together): a waveform drawn from them shows every peak at any width.
#[derive(Debug, Clone, PartialEq)]
pub struct Peaks {
    pub min: Vec<f32>,
    pub max: Vec<f32>,
}

impl Peaks {
    /// `columns` stretches of `channels` (fewer if the clip is shorter).
    pub fn of(channels: &[Vec<f32>], columns: usize) -> Self {
        let len = channels.first().map_or(0, Vec::len);
        let columns = columns.min(len);
        let (mut min, mut max) = (vec![0.0; columns], vec![0.0; columns]);
        for c in 0..columns {
            let stretch = c * len / columns..(c + 1) * len / columns;
            let samples = channels.iter().flat_map(|ch| &ch[stretch.clone()]);
            (min[c], max[c]) = samples.fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        }
        Self { min, max }
    }

    pub fn len(&self) -> usize {
        self.min.len()
    }

    pub fn is_empty(&self) -> bool {
        self.min.is_empty()
    }
}

const FFT: usize = 1024;
/// The quietest level shown, below the loudest bin of the clip.
const RANGE_DB: f32 = 90.0;

/// A spectrogram of the channels' mid as an image `width` columns (time, left to right) by
/// `height` rows (frequency from 0 Hz at the bottom to the Nyquist frequency at the top,
/// linear, so a lost band reads as a flat edge), coloured by level relative to the loudest.
pub fn spectrogram(channels: &[Vec<f32>], width: usize, height: usize) -> ColorImage {
    let len = channels.first().map_or(0, Vec::len);
    if len == 0 || width == 0 || height == 0 {
        return ColorImage::filled([width.max(1), height.max(1)], level_colour(0.0));
    }
    let mid: Vec<f32> = (0..len).map(|n| channels.iter().map(|c| c[n]).sum::<f32>() / channels.len() as f32).collect();
    let window: Vec<f32> = hann_periodic(FFT).into_iter().map(|w| w as f32).collect();
    let fft = RealFftPlanner::<f32>::new().plan_fft_forward(FFT);
    let (mut frame, mut spectrum) = (fft.make_input_vec(), fft.make_output_vec());
    let bins = FFT / 2 + 1;
    // Level (dB) per column and row: each row averages the power of its bins.
    let mut db = vec![0f32; width * height];
    for x in 0..width {
        let centre = (x * len / width + len / (2 * width)) as isize;
        for (k, v) in frame.iter_mut().enumerate() {
            let n = centre - FFT as isize / 2 + k as isize;
            *v = if (0..len as isize).contains(&n) { mid[n as usize] * window[k] } else { 0.0 };
        }
        if fft.process(&mut frame, &mut spectrum).is_err() {
            continue;
        }
        for y in 0..height {
            let rows = y * bins / height..((y + 1) * bins / height).max(y * bins / height + 1);
            let power = rows.clone().map(|b| spectrum[b].norm_sqr()).sum::<f32>() / rows.len() as f32;
            db[(height - 1 - y) * width + x] = 10.0 * (power + 1e-20).log10();
        }
    }
    let loudest = db.iter().copied().fold(f32::MIN, f32::max);
    let pixels = db.iter().map(|&v| level_colour(((v - loudest + RANGE_DB) / RANGE_DB).clamp(0.0, 1.0))).collect();
    ColorImage::new([width, height], pixels)
}

/// A perceptual dark-to-bright colour scale (near magma) for a level in 0..=1.
pub fn level_colour(level: f32) -> Color32 {
    const STOPS: [[f32; 3]; 5] = [[0.0, 0.0, 4.0], [59.0, 15.0, 112.0], [140.0, 41.0, 129.0], [222.0, 73.0, 104.0], [252.0, 253.0, 191.0]];
    let t = level.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (t as usize).min(STOPS.len() - 2);
    let f = t - i as f32;
    let c = |k: usize| (STOPS[i][k] + f * (STOPS[i + 1][k] - STOPS[i][k])).round() as u8;
    Color32::from_rgb(c(0), c(1), c(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_hold_every_extreme_of_their_stretch() {
        let mut left = vec![0.0f32; 1_000];
        left[10] = 0.9;
        left[999] = -0.7;
        let right: Vec<f32> = left.iter().map(|_| 0.1).collect();
        let p = Peaks::of(&[left, right], 10);
        assert_eq!(p.len(), 10);
        assert_eq!((p.max[0], p.min[0]), (0.9, 0.0));
        assert_eq!((p.max[9], p.min[9]), (0.1, -0.7));
        assert!(p.max[1..9].iter().all(|&v| v == 0.1));
        assert_eq!(Peaks::of(&[vec![0.5; 3]], 10).len(), 3, "no more columns than samples");
    }

    #[test]
    fn a_low_passed_clip_is_dark_above_its_cutoff() {
        // A tone at 1/8 of the sample rate: a bright row a quarter of the way up.
        let tone: Vec<f32> = (0..16_000).map(|n| (n as f32 * std::f32::consts::TAU / 8.0).sin()).collect();
        let image = spectrogram(&[tone], 20, 64);
        assert_eq!(image.size, [20, 64]);
        let row_level = |y: usize| image.pixels[y * 20 + 10].r() as u32 + image.pixels[y * 20 + 10].g() as u32;
        let brightest = (0..64).max_by_key(|&y| row_level(y)).unwrap();
        assert_eq!(brightest, 64 - 1 - 16, "the tone's row");
        assert!(row_level(2) < row_level(brightest) / 4, "the top rows are dark");
    }

    #[test]
    fn the_colour_scale_runs_dark_to_bright() {
        let luma = |c: Color32| c.r() as u32 + c.g() as u32 + c.b() as u32;
        assert_eq!(level_colour(0.0), Color32::from_rgb(0, 0, 4));
        assert_eq!(level_colour(1.0), Color32::from_rgb(252, 253, 191));
        assert!((1..=10).all(|k| luma(level_colour(k as f32 / 10.0)) >= luma(level_colour((k - 1) as f32 / 10.0))));
    }
}
