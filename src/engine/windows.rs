//! Cutting a long signal into model-length windows that overlap, and joining restored
//! windows back with complementary crossfades.

use std::ops::Range;

use crate::dsp::raised_cosine;

/// Windows of at most `window` samples covering `0..len`, consecutive ones overlapping by
/// `overlap`; the last is aligned to the end (so it may overlap its neighbour by more).
pub fn plan(len: usize, window: usize, overlap: usize) -> Vec<Range<usize>> {
    assert!(window > overlap, "a window must be longer than its overlap");
    if len <= window {
        return vec![Range { start: 0, end: len }];
    }
    let hop = window - overlap;
    let mut windows: Vec<Range<usize>> = (0..).map(|k| k * hop).take_while(|&s| s + window < len).map(|s| s..s + window).collect();
    windows.push(len - window..len);
    windows
}

/// Weight of window `k` of `windows` at each of its samples: 1 where it is alone, and
/// raised-cosine ramps across its overlaps with the neighbours, so that at every sample the
/// weights of all windows sum to 1.
pub fn crossfade_weights(windows: &[Range<usize>], k: usize) -> Vec<f32> {
    let w = &windows[k];
    let mut weights = vec![1f32; w.len()];
    // Rising ramp over the overlap with the previous window, falling over the next's.
    if k > 0 {
        let overlap = windows[k - 1].end.saturating_sub(w.start).min(w.len());
        for (i, x) in weights.iter_mut().take(overlap).enumerate() {
            *x *= ramp(i, overlap);
        }
    }
    if k + 1 < windows.len() {
        let overlap = w.end.saturating_sub(windows[k + 1].start).min(w.len());
        let n = weights.len();
        for i in 0..overlap {
            weights[n - overlap + i] *= 1.0 - ramp(i, overlap);
        }
    }
    weights
}

/// Raised-cosine rise from 0 to 1 over `n` samples, sampled at half-sample offsets so that
/// a rise and the matching fall (`1 − ramp`) sum to exactly 1.
fn ramp(i: usize, n: usize) -> f32 {
    raised_cosine((i as f64 + 0.5) / n as f64) as f32
}

/// Overlap-add the restored `pieces` (one per window of `windows`) into a signal of `len`.
pub fn join(len: usize, windows: &[Range<usize>], pieces: &[Vec<f32>]) -> Vec<f32> {
    let mut out = vec![0f32; len];
    for (k, (w, piece)) in windows.iter().zip(pieces).enumerate() {
        for ((o, &p), g) in out[w.clone()].iter_mut().zip(piece).zip(crossfade_weights(windows, k)) {
            *o += g * p;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_signal_with_the_overlap() {
        assert_eq!(plan(50, 100, 20), vec![0..50]);
        assert_eq!(plan(100, 100, 20), vec![0..100]);
        assert_eq!(plan(250, 100, 20), vec![0..100, 80..180, 150..250]);
        assert_eq!(plan(260, 100, 20), vec![0..100, 80..180, 160..260]);
    }

    #[test]
    fn crossfades_sum_to_one_and_join_is_exact_for_equal_pieces() {
        for len in [250, 260, 1000] {
            let windows = plan(len, 100, 20);
            let signal: Vec<f32> = (0..len).map(|n| (n as f32 * 0.1).sin()).collect();
            let pieces: Vec<Vec<f32>> = windows.iter().map(|w| signal[w.clone()].to_vec()).collect();
            let joined = join(len, &windows, &pieces);
            for (n, (a, b)) in joined.iter().zip(&signal).enumerate() {
                assert!((a - b).abs() < 1e-6, "len {len}, sample {n}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn a_ramp_and_its_fall_are_complementary() {
        for i in 0..7 {
            assert!((ramp(i, 7) + (1.0 - ramp(i, 7)) - 1.0).abs() < 1e-7);
            assert!(ramp(i, 7) < ramp(i + 1, 7) || i == 6);
        }
    }
}
