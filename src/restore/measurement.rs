//! The guidance loss: how far a candidate waveform's measurement is from the one we have,
//! `L = ‖M(A(wave)) − M(y)‖_F` in the paper's loss-space mel (DESIGN.md §2, step 4).

use candle_core::{Device, Result, Tensor};

use super::operators::{Degradation, Operator, OperatorError};
use crate::dsp::mel::{LossMel, LossMelConfig};

/// The ±80 clamp of the loss space for every task but inpainting.
const CLAMP: f64 = 80.0;

/// A degradation operator, the loss space, and the observed measurement in that space.
#[derive(Debug, Clone)]
pub struct Measurement {
    operator: Operator,
    mel: LossMel,
    target: Tensor,
}

impl Measurement {
    /// `observed` (1, samples) is the degraded audio the user has: for phase retrieval only
    /// its STFT magnitude is used; for the other operators it is `y = A(x)` itself.
    pub fn new(operator: Operator, mel: LossMel, observed: &Tensor) -> Result<Self> {
        let target = match &operator {
            Operator::Magnitude(stft) => mel.magnitude_features(&stft.magnitude(observed)?)?,
            _ => mel.forward(observed)?,
        };
        Ok(Self { operator, mel, target: target.detach() })
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

    fn loss_mel(clamp: Option<f64>, sample_rate: u32, device: &Device) -> Result<LossMel> {
        LossMel::new(LossMelConfig { sample_rate, ..LossMelConfig::paper(clamp) }, device)
    }

    pub fn operator(&self) -> &Operator {
        &self.operator
    }

    /// `M(A(wave))` for a (batch, samples) waveform.
    pub fn features(&self, wave: &Tensor) -> Result<Tensor> {
        let measured = self.operator.apply(wave)?;
        match self.operator {
            Operator::Magnitude(_) => self.mel.magnitude_features(&measured),
            _ => self.mel.forward(&measured),
        }
    }

    /// The scalar loss `‖M(A(wave)) − M(y)‖_F` (a rank-0 tensor, differentiable).
    pub fn loss(&self, wave: &Tensor) -> Result<Tensor> {
        self.features(wave)?.broadcast_sub(&self.target)?.sqr()?.sum_all()?.sqrt()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MeasurementError {
    #[error(transparent)]
    Operator(#[from] OperatorError),
    #[error("building the measurement failed: {0}")]
    Tensor(#[from] candle_core::Error),
}
