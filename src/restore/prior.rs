//! What the restoration algorithm needs from a latent diffusion prior, and nothing more.
//!
//! The guidance methods are generic over [`LatentPrior`], so DGG runs on any latent
//! diffusion model with an ε-prediction UNet and a differentiable latent → waveform decoder,
//! as the paper claims, and tests can use tiny or analytic priors. AudioLDM2 implements it
//! in [`crate::model::audioldm2`].

use candle_core::{Device, Result, Tensor};

use super::schedule::DdimSchedule;

/// A frozen latent diffusion prior over mono audio at [`LatentPrior::sample_rate`].
///
/// Every tensor going in or out is f32 on [`LatentPrior::device`]; an implementation that
/// runs in another precision converts at its boundary.
pub trait LatentPrior {
    /// Sample rate of the waveforms [`LatentPrior::decode`] produces.
    fn sample_rate(&self) -> u32;

    /// The latent (channels, height, width) of one item that decodes to at least `samples`
    /// samples. The size is rounded up to what the networks accept; `decode` crops back.
    fn latent_shape(&self, samples: usize) -> (usize, usize, usize);

    /// The noise schedule the prior was trained with.
    fn schedule(&self) -> &DdimSchedule;

    fn device(&self) -> &Device;

    /// Predicted noise ε(z_t, t) for a batch (B, C, H, W) of latents; `timesteps` holds one
    /// training timestep per item, or one for the whole batch. No gradient flows back.
    fn predict_noise(&self, z_t: &Tensor, timesteps: &[usize]) -> Result<Tensor>;

    /// [`LatentPrior::predict_noise`] with the graph kept, so that a loss downstream
    /// back-propagates to `z_t` through the network. Much slower and hungrier; only DITTO
    /// needs it.
    fn predict_noise_differentiable(&self, z_t: &Tensor, timesteps: &[usize]) -> Result<Tensor>;

    /// Latents (B, C, H, W) → waveforms (B, `samples`). Differentiable w.r.t. `z`: the
    /// guidance back-propagates a loss on the waveform to the latent.
    fn decode(&self, z: &Tensor, samples: usize) -> Result<Tensor>;

    /// `part` of the prior as an error that blames it should name it: where its weights
    /// are read from, when the prior has files.
    fn describe(&self, part: Part) -> String {
        part.to_string()
    }

    /// The decoder's stages, in order: [`LatentPrior::decode`] is their composition. The
    /// guidance back-propagates through them one at a time, so that a run can stop between
    /// two (a stage should take about a second at most on a CPU), each stage's graph is
    /// freed as soon as its gradient has passed, and a benchmark can time each. One stage
    /// unless a prior says otherwise.
    fn decoder_stages(&self) -> &[DecoderStage] {
        &[DecoderStage { network: "decode", block: 0 }]
    }

    /// Stage `index` of [`LatentPrior::decoder_stages`] applied to `x`: the latents for the
    /// first stage, the previous stage's output after that; the last stage gives the
    /// waveforms (B, `samples`). Differentiable w.r.t. `x`.
    fn decode_stage(&self, index: usize, x: &Tensor, samples: usize) -> Result<Tensor> {
        match index {
            0 => self.decode(x, samples),
            _ => candle_core::bail!("decode_stage: this prior's decoder has one stage, not {}", index + 1),
        }
    }
}

/// One stage of a prior's decoder: a block of one of its networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderStage {
    /// The network, e.g. `"vae_decode"` or `"vocoder"`.
    pub network: &'static str,
    /// The block of that network, counted from its input.
    pub block: usize,
}

/// The two networks of a prior, as errors blame them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// [`LatentPrior::predict_noise`].
    NoisePredictor,
    /// [`LatentPrior::decode`].
    Decoder,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::NoisePredictor => "noise predictor",
            Part::Decoder => "decoder",
        })
    }
}
