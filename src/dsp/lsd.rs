//! Log-spectral distance, as the paper scores restorations.
//!
//! `X = |STFT(x)|` (n_fft 1024, hop 160, periodic Hann, centred reflect) at 16 kHz,
//! `L = log10(X + 1e-10)`; per frame the RMS of `L_ref − L_est` over frequency; the mean
//! over frames. Lower is better; 0 means identical spectra.

use candle_core::{Device, Result};

use super::stft::{wave_tensor, Stft, StftConfig};

/// LSD between two mono 16 kHz signals of equal length.
pub fn lsd(reference: &[f32], estimate: &[f32]) -> Result<f64> {
    if reference.len() != estimate.len() {
        candle_core::bail!(
            "LSD needs signals of equal length, got {} and {} samples",
            reference.len(),
            estimate.len()
        );
    }
    let stft = Stft::new(StftConfig::AUDIOLDM, &Device::Cpu)?;
    let log_mag = |x: &[f32]| -> Result<Vec<Vec<f32>>> {
        let mag = stft.magnitude(&wave_tensor(x, &Device::Cpu)?)?;
        mag.squeeze(0)?.to_vec2()
    };
    let (r, e) = (log_mag(reference)?, log_mag(estimate)?);
    let per_frame = r.iter().zip(&e).map(|(fr, fe)| {
        let mean_sq = fr
            .iter()
            .zip(fe)
            .map(|(&a, &b)| {
                let d = (a as f64 + 1e-10).log10() - (b as f64 + 1e-10).log10();
                d * d
            })
            .sum::<f64>()
            / fr.len() as f64;
        mean_sq.sqrt()
    });
    Ok(per_frame.sum::<f64>() / r.len() as f64)
}
