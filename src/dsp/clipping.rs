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

/// The samples either side of a clipped run that shape its arc.
pub const RUN_CONTEXT: usize = 2;
/// The arc over a run goes at most this many times the level out.
const MAX_ARC: f32 = 2.0;

/// Where `x` can be cut so that no clipped run is split and every run before the cut has
/// [`RUN_CONTEXT`] samples after it: at most `at`, moved back to the start of a run it
/// would cut.
pub fn safe_cut(x: &[f32], at: usize, level: f32) -> usize {
    let mut cut = at.min(x.len().saturating_sub(RUN_CONTEXT));
    while cut > 0 && is_clipped(x[cut - 1], level) {
        cut -= 1;
    }
    cut
}

/// `x[..cut]` with its clipped samples (in runs of one sign) repaired from `r`: the restoration where it goes
/// beyond the level on the sample's side, else the higher of two arcs, at most [`MAX_ARC`]
/// times the level. One is a parabola fitted to the [`RUN_CONTEXT`] samples either side of
/// the run (`before` holds those preceding `x`); it follows the music's curvature but can
/// stay under the level when the neighbours do not rise. The other, [`edge_arc`], always
/// rises: every clipped sample was beyond the level before it was clipped. Unclipped
/// samples are returned as they are.
pub fn repair_runs(before: &[f32], x: &[f32], r: &[f32], cut: usize, level: f32) -> Vec<f32> {
    let mut out = x[..cut].to_vec();
    let mut i = 0;
    while i < cut {
        if !is_clipped(x[i], level) {
            i += 1;
            continue;
        }
        // A run is clipped on one side: loud high frequencies can clip both in turn.
        let (start, side) = (i, x[i].signum());
        while i < cut && is_clipped(x[i], level) && x[i].signum() == side {
            i += 1;
        }
        // The context, as (position, value on the run's side).
        let at = |k: isize| -> Option<f32> {
            if k < 0 {
                before.len().checked_sub(k.unsigned_abs()).map(|j| before[j])
            } else {
                x.get(k as usize).copied()
            }
        };
        let points: Vec<(f32, f32)> = (1..=RUN_CONTEXT as isize)
            .map(|d| start as isize - d)
            .chain((0..RUN_CONTEXT as isize).map(|d| i as isize + d))
            .filter_map(|k| at(k).map(|v| (k as f32 - start as f32, side * v)))
            .collect();
        let fitted = (points.len() == 2 * RUN_CONTEXT).then(|| parabola(&points)).flatten();
        let entry = at(start as isize - 1).map(|v| level - side * v);
        let exit = at(i as isize).map(|v| level - side * v);
        for k in start..i {
            let restored = side * r[k];
            let t = (k - start) as f32;
            let parabola = fitted.map_or(level, |(a, b, c)| a + b * t + c * t * t);
            let floor = parabola.max(edge_arc(level, entry, exit, i - start, k - start)).min(MAX_ARC * level);
            out[k] = side * if restored > level { restored } else { floor };
        }
    }
    out
}

/// The arc over sample `k` of a run of `n` clipped samples that leaves the level with the
/// slopes the music entered and left it with: `entry` and `exit` are how far the samples
/// either side of the run sit under the level (`None` at an end of the audio, where the
/// other side's stands in). The parabola that meets the level at those two samples with
/// that mean slope peaks `slope·(n+1)/4` beyond it, and every sample in the run lies
/// strictly beyond the level.
fn edge_arc(level: f32, entry: Option<f32>, exit: Option<f32>, n: usize, k: usize) -> f32 {
    let slope = match (entry, exit) {
        (Some(a), Some(b)) => (a + b) / 2.0,
        (Some(a), None) | (None, Some(a)) => a,
        // A file that is one clipped run: nothing shows how far it went.
        (None, None) => level,
    };
    let span = (n + 1) as f32;
    let u = (k + 1) as f32 / span;
    level + slope.max(0.0) * span * u * (1.0 - u)
}

/// The least-squares parabola `a + b·t + c·t²` through `points` (Cramer's rule on the
/// normal equations); `None` if they do not fix one.
fn parabola(points: &[(f32, f32)]) -> Option<(f32, f32, f32)> {
    let sum = |f: &dyn Fn(f64, f64) -> f64| points.iter().map(|&(t, y)| f(t as f64, y as f64)).sum::<f64>();
    let s: Vec<f64> = (0..5).map(|p| sum(&|t, _| t.powi(p))).collect();
    let v: Vec<f64> = (0..3).map(|p| sum(&|t, y| t.powi(p) * y)).collect();
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let normal = [[s[0], s[1], s[2]], [s[1], s[2], s[3]], [s[2], s[3], s[4]]];
    let d = det(normal);
    if d.abs() < 1e-9 {
        return None;
    }
    let solve = |col: usize| {
        let mut m = normal;
        (0..3).for_each(|row| m[row][col] = v[row]);
        (det(m) / d) as f32
    };
    Some((solve(0), solve(1), solve(2)))
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

    #[test]
    fn every_repaired_sample_lies_beyond_the_level_even_where_the_neighbours_do_not_rise() {
        // Runs at both ends of the audio, one between neighbours that fall away from it
        // (so the fitted parabola opens the wrong way), one on the negative side, and a
        // restoration that stays at zero throughout.
        let x = [0.5, 0.5, 0.2, 0.45, 0.5, 0.5, 0.5, 0.45, 0.2, -0.1, -0.5, -0.5, 0.0, 0.3, 0.5];
        let out = repair_runs(&[], &x, &[0.0; 15], x.len(), 0.5);
        for (k, (&v, &r)) in x.iter().zip(&out).enumerate() {
            if is_clipped(v, 0.5) {
                assert!(r * v.signum() > 0.5 && r.abs() <= 1.0, "sample {k}: {r} for {v}");
            } else {
                assert_eq!(r, v, "sample {k} was not clipped");
            }
        }
        // The arc is highest mid-run: the music went furthest there.
        assert!(out[5] > out[4] && out[5] > out[6], "{:?}", &out[4..7]);
    }
}
