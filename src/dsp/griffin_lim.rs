//! Griffin-Lim phase reconstruction (the fast variant with momentum, as torchaudio's
//! `griffinlim`), so a magnitude-only measurement can be listened to.
//!
//! Not differentiable and not on the guidance path: plain f32 with real FFTs.

use realfft::num_complex::Complex32;

use super::stft::{ComplexStft, StftConfig};

/// Reconstruct `len` samples whose STFT magnitude is close to `magnitude`
/// (frames × bins, frame-major, as produced with `config`). Deterministic: phases start at 0.
pub fn reconstruct(magnitude: &[f32], len: usize, config: StftConfig, iterations: usize) -> Vec<f32> {
    const MOMENTUM: f32 = 0.99;
    let stft = ComplexStft::new(config);
    let mut angles = vec![Complex32::new(1.0, 0.0); magnitude.len()];
    let mut previous = vec![Complex32::new(0.0, 0.0); magnitude.len()];
    let apply = |angles: &[Complex32]| -> Vec<Complex32> { magnitude.iter().zip(angles).map(|(&m, &a)| a * m).collect() };
    for _ in 0..iterations {
        let rebuilt = stft.analyse(&stft.synthesise(&apply(&angles), len));
        for ((a, &r), p) in angles.iter_mut().zip(&rebuilt).zip(&previous) {
            let v = r - p * (MOMENTUM / (1.0 + MOMENTUM));
            *a = v / (v.norm() + 1e-16);
        }
        previous = rebuilt;
    }
    stft.synthesise(&apply(&angles), len)
}

/// STFT magnitude (frames × bins, frame-major) of a signal, with the same framing.
pub fn magnitude(x: &[f32], config: StftConfig) -> Vec<f32> {
    ComplexStft::new(config).analyse(x).iter().map(|c| c.norm()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spectral_convergence(target: &[f32], got: &[f32]) -> f32 {
        let num: f32 = target.iter().zip(got).map(|(a, b)| (a - b).powi(2)).sum();
        let den: f32 = target.iter().map(|a| a * a).sum();
        (num / den).sqrt()
    }

    #[test]
    fn synthesis_inverts_analysis() {
        let cfg = StftConfig { n_fft: 256, hop: 64 };
        let x: Vec<f32> = (0..4000).map(|n| ((n as f32) * 0.05).sin() * 0.5 + ((n * 7 % 13) as f32 - 6.0) * 0.01).collect();
        let stft = ComplexStft::new(cfg);
        let y = stft.synthesise(&stft.analyse(&x), x.len());
        let err = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(err < 1e-5, "max error {err}");
    }

    #[test]
    fn reconstruction_matches_the_magnitude() {
        let cfg = StftConfig { n_fft: 256, hop: 64 };
        let x: Vec<f32> = (0..8000)
            .map(|n| {
                let t = n as f32 / 8000.0;
                (2.0 * std::f32::consts::PI * 440.0 * t).sin() * (1.0 + (3.0 * t).sin()) * 0.3 + 0.2 * (2.0 * std::f32::consts::PI * 1250.0 * t).sin()
            })
            .collect();
        let target = magnitude(&x, cfg);
        let few = reconstruct(&target, x.len(), cfg, 2);
        let many = reconstruct(&target, x.len(), cfg, 64);
        let (sc_few, sc_many) = (spectral_convergence(&target, &magnitude(&few, cfg)), spectral_convergence(&target, &magnitude(&many, cfg)));
        assert!(sc_many < 0.25, "spectral convergence after 64 iterations: {sc_many}");
        assert!(sc_many < 0.5 * sc_few, "iterating must help: {sc_few} → {sc_many}");
    }
}
