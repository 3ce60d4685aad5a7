//! The guidance loss: how far a candidate waveform's measurement is from the one we have,
//! `L = ‖M(A(wave)) − M(y)‖_F` in the paper's loss-space mel (DESIGN.md §2, step 4).

use candle_core::{Device, Result, Tensor};

use super::operators::{Degradation, Operator, OperatorError};
use crate::dsp::mel::{LossMel, LossMelConfig};

/// The ±80 clamp of the loss space for every task but inpainting.
const CLAMP: f64 = 80.0;

/// Weight of the declipping penalty (squared shortfall, in full-scale units) against the
/// loss-space distance. Not tuned on the real model: a shortfall of 0.1 over a hundred
/// samples counts like a loss of 10.
const FLOOR_WEIGHT: f64 = 10.0;

/// A degradation operator, the loss space, and the observed measurement in that space.
#[derive(Debug, Clone)]
pub struct Measurement {
    operator: Operator,
    mel: LossMel,
    target: Tensor,
    /// Declipping: per sample, the magnitude a clipped sample is known to reach at least,
    /// and its sign (both 0 where nothing is known beyond the mask).
    floor: Option<(Tensor, Tensor)>,
    /// Spectral repair: 1 for the loss-space cells (frames × mel bands) that are measured,
    /// 0 for those that see a damaged region.
    cells: Option<Tensor>,
}

impl Measurement {
    /// `observed` (1, samples) is the degraded audio the user has, `y = A(x)` itself; or,
    /// where [`Operator::applies_to_observed`], the audio the measurement `A(observed)` is
    /// taken from (for phase retrieval, its STFT magnitude).
    pub fn new(operator: Operator, mel: LossMel, observed: &Tensor) -> Result<Self> {
        let target = match operator.applies_to_observed() {
            true => Self::features_of(&operator, &mel, observed)?,
            false => mel.forward(observed)?,
        };
        Ok(Self { operator, mel, target: target.detach(), floor: None, cells: None })
    }

    /// The paper's setup for `degradation` on clips of `observed`'s length at `sample_rate`:
    /// the 1024/160/64 loss mel, clamped except for inpainting.
    pub fn for_degradation(degradation: &Degradation, observed: &Tensor, sample_rate: u32, device: &Device) -> std::result::Result<Self, MeasurementError> {
        let len = observed.dim(1)?;
        let operator = Operator::new(degradation, sample_rate, len, device)?;
        let clamp = match degradation {
            Degradation::Inpaint { .. } => None,
            _ => Some(CLAMP),
        };
        Ok(Self::new(operator, Self::loss_mel(clamp, sample_rate, device)?, observed)?)
    }

    /// Inpainting with an explicit 0/1 `mask` (1 where `observed` is known), in the
    /// paper's unclamped loss space at `sample_rate`.
    pub fn with_mask(mask: Vec<f32>, observed: &Tensor, sample_rate: u32) -> Result<Self> {
        let device = observed.device();
        let mask = Tensor::from_vec(mask, observed.shape(), device)?;
        Self::new(Operator::Mask { mask }, Self::loss_mel(None, sample_rate, device)?, observed)
    }

    /// Spectral repair: `observed` measured in the paper's unclamped loss space but in the
    /// cells that see one of `regions` (sample range, band in Hz) ([`LossMel::cells_outside`]).
    pub fn outside_regions(observed: &Tensor, regions: &[(std::ops::Range<usize>, (f64, f64))], sample_rate: u32) -> Result<Self> {
        let (device, len) = (observed.device(), observed.dim(1)?);
        let mel = Self::loss_mel(None, sample_rate, device)?;
        let cells = mel.cells_outside(len, regions);
        let cells = Tensor::from_vec(cells, (1, mel.config().stft.frames(len), mel.config().n_mels), device)?;
        let ones = Tensor::ones((1, len), candle_core::DType::F32, device)?;
        Ok(Self { cells: Some(cells), ..Self::new(Operator::Mask { mask: ones }, mel, observed)? })
    }

    /// Declipping: [`Measurement::with_mask`] (the clipped samples unknown), plus a
    /// one-sided penalty that pulls each sample with a nonzero `floor` out to at least
    /// that value, on its side of zero: `FLOOR_WEIGHT · Σ max(0, |f| − sign(f)·x)²`.
    pub fn with_mask_and_floor(mask: Vec<f32>, floor: Vec<f32>, observed: &Tensor, sample_rate: u32) -> Result<Self> {
        let device = observed.device();
        let magnitude = Tensor::from_vec(floor.iter().map(|f| f.abs()).collect(), observed.shape(), device)?;
        let sign = Tensor::from_vec(floor.iter().map(|&f| if f == 0.0 { 0.0 } else { f.signum() }).collect(), observed.shape(), device)?;
        Ok(Self { floor: Some((magnitude, sign)), ..Self::with_mask(mask, observed, sample_rate)? })
    }

    fn loss_mel(clamp: Option<f64>, sample_rate: u32, device: &Device) -> Result<LossMel> {
        LossMel::new(LossMelConfig { sample_rate, ..LossMelConfig::paper(clamp) }, device)
    }

    pub fn operator(&self) -> &Operator {
        &self.operator
    }

    /// `M(A(wave))` for a (batch, samples) waveform.
    pub fn features(&self, wave: &Tensor) -> Result<Tensor> {
        Self::features_of(&self.operator, &self.mel, wave)
    }

    fn features_of(operator: &Operator, mel: &LossMel, wave: &Tensor) -> Result<Tensor> {
        let measured = operator.apply(wave)?;
        match operator {
            Operator::Magnitude(_) => mel.magnitude_features(&measured),
            _ => mel.forward(&measured),
        }
    }

    /// The scalar loss `‖M(A(wave)) − M(y)‖_F` (a rank-0 tensor, differentiable), plus
    /// the declipping penalty where there is one.
    pub fn loss(&self, wave: &Tensor) -> Result<Tensor> {
        let mut difference = self.features(wave)?.broadcast_sub(&self.target)?;
        if let Some(cells) = &self.cells {
            difference = difference.broadcast_mul(cells)?;
        }
        let distance = difference.sqr()?.sum_all()?.sqrt()?;
        match &self.floor {
            None => Ok(distance),
            Some((magnitude, sign)) => {
                let shortfall = magnitude.broadcast_sub(&wave.broadcast_mul(sign)?)?.relu()?;
                distance + (shortfall.sqr()?.sum_all()? * FLOOR_WEIGHT)?
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MeasurementError {
    #[error(transparent)]
    Operator(#[from] OperatorError),
    #[error("building the measurement failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::test_noise;
    use candle_core::Var;

    /// The declipping penalty adds `FLOOR_WEIGHT · Σ max(0, |f| − sign(f)·x)²` to the
    /// masked loss, and its gradient pushes short samples outward, leaves the rest alone.
    #[test]
    fn the_floor_penalises_only_samples_short_of_it_on_their_side() {
        let n = 4_000;
        let device = Device::Cpu;
        let observed = Tensor::from_vec(test_noise(n, 1), (1, n), &device).unwrap();
        let mask: Vec<f32> = (0..n).map(|i| if (1_000..1_100).contains(&i) { 0.0 } else { 1.0 }).collect();
        let mut floor = vec![0.0f32; n];
        floor[1_010] = 0.5; // x = 0.2: short by 0.3
        floor[1_020] = -0.5; // x = -0.7: beyond, no penalty
        floor[1_030] = -0.4; // x = 0.1: wrong side, short by 0.5
        let mut wave = test_noise(n, 2);
        (wave[1_010], wave[1_020], wave[1_030]) = (0.2, -0.7, 0.1);
        let wave = Var::from_vec(wave, (1, n), &device).unwrap();
        let plain = Measurement::with_mask(mask.clone(), &observed, 16_000).unwrap();
        let floored = Measurement::with_mask_and_floor(mask, floor, &observed, 16_000).unwrap();
        let value = |m: &Measurement| m.loss(wave.as_tensor()).unwrap().to_scalar::<f32>().unwrap() as f64;
        let expected = FLOOR_WEIGHT * (0.3f64.powi(2) + 0.5f64.powi(2));
        assert!((value(&floored) - value(&plain) - expected).abs() < 1e-4, "{} vs {}", value(&floored) - value(&plain), expected);
        let grads = floored.loss(wave.as_tensor()).unwrap().backward().unwrap();
        let g = grads.get(wave.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Descent (−g) moves 1010 up, 1030 down; 1020 and the other unknown samples feel nothing.
        assert!(g[1_010] < -1.0 && g[1_030] > 1.0 && g[1_020] == 0.0 && g[1_050] == 0.0, "{} {} {} {}", g[1_010], g[1_030], g[1_020], g[1_050]);
    }
}
