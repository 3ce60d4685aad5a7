//! diffusers' `AudioLDM2ProjectionModel`: projects the CLAP and Flan-T5 embeddings to the
//! language model's width and frames each sequence with learned start/end embeddings.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::Deserialize;
use std::path::Path;

use crate::config::{read_config, ConfigError};

/// `projection_model/config.json` (diffusers keeps the `langauge_model_dim` spelling).
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub text_encoder_dim: usize,
    pub text_encoder_1_dim: usize,
    pub langauge_model_dim: usize,
    /// Only the VITS (text-to-speech) variant sets it.
    #[serde(default)]
    pub use_learned_position_embedding: Option<bool>,
}

impl Config {
    pub fn load(path: &Path) -> std::result::Result<Self, ConfigError> {
        let cfg: Self = read_config(path)?;
        if cfg.use_learned_position_embedding.is_some() {
            return Err(ConfigError::unsupported(
                path,
                "use_learned_position_embedding",
                cfg.use_learned_position_embedding,
                "the text-to-speech variant is not supported; use a music/audio AudioLDM2 model",
            ));
        }
        Ok(cfg)
    }
}

#[derive(Debug, Clone)]
pub struct AudioLdm2ProjectionModel {
    projection: Linear,
    projection_1: Linear,
    sos_embed: Tensor,
    eos_embed: Tensor,
    sos_embed_1: Tensor,
    eos_embed_1: Tensor,
}

impl AudioLdm2ProjectionModel {
    pub fn new(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let d = cfg.langauge_model_dim;
        Ok(Self {
            projection: candle_nn::linear(cfg.text_encoder_dim, d, vb.pp("projection"))?,
            projection_1: candle_nn::linear(cfg.text_encoder_1_dim, d, vb.pp("projection_1"))?,
            sos_embed: vb.get(d, "sos_embed")?,
            eos_embed: vb.get(d, "eos_embed")?,
            sos_embed_1: vb.get(d, "sos_embed_1")?,
            eos_embed_1: vb.get(d, "eos_embed_1")?,
        })
    }

    /// `[sos, P(h), eos, sos₁, P₁(h₁), eos₁]` and its mask, from the CLAP embeddings
    /// `h` (B, L, d) with `mask` (B, L) and the Flan-T5 ones `h1` (B, L₁, d₁) with `mask1`.
    pub fn forward(&self, h: &Tensor, mask: &Tensor, h1: &Tensor, mask1: &Tensor) -> Result<(Tensor, Tensor)> {
        let (a, ma) = frame(&self.projection.forward(h)?, mask, &self.sos_embed, &self.eos_embed)?;
        let (b, mb) = frame(&self.projection_1.forward(h1)?, mask1, &self.sos_embed_1, &self.eos_embed_1)?;
        Ok((Tensor::cat(&[&a, &b], 1)?, Tensor::cat(&[&ma, &mb], 1)?))
    }
}

/// diffusers' `add_special_tokens`.
fn frame(h: &Tensor, mask: &Tensor, sos: &Tensor, eos: &Tensor) -> Result<(Tensor, Tensor)> {
    let (b, _, d) = h.dims3()?;
    let token = |t: &Tensor| t.reshape((1, 1, d))?.broadcast_as((b, 1, d))?.to_dtype(h.dtype());
    let one = Tensor::ones((b, 1), mask.dtype(), mask.device())?;
    Ok((Tensor::cat(&[&token(sos)?, h, &token(eos)?], 1)?, Tensor::cat(&[&one, mask, &one], 1)?))
}
