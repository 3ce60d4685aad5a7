//! The text branch of transformers' `ClapModel` (`get_text_features`): a RoBERTa encoder,
//! the pooler (first token, dense, tanh), the text projection and L2 normalisation.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{Linear, VarBuilder};
use candle_transformers::models::xlm_roberta::{self, XLMRobertaModel};
use serde::Deserialize;
use std::path::Path;

use crate::config::{read_config, ConfigError};

/// `ClapTextConfig`, the `text_config` of `text_encoder/config.json` (defaults are
/// transformers').
#[derive(Debug, Clone, Deserialize)]
pub struct TextConfig {
    #[serde(default = "default_vocab_size")]
    pub vocab_size: usize,
    #[serde(default = "default_hidden_size")]
    pub hidden_size: usize,
    #[serde(default = "default_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "default_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "default_intermediate_size")]
    pub intermediate_size: usize,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_pad_token_id")]
    pub pad_token_id: u32,
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
    #[serde(default = "default_projection_dim")]
    pub projection_dim: usize,
    #[serde(default = "default_projection_act")]
    pub projection_hidden_act: String,
}

fn default_vocab_size() -> usize {
    50265
}
fn default_hidden_size() -> usize {
    768
}
fn default_layers() -> usize {
    12
}
fn default_heads() -> usize {
    12
}
fn default_intermediate_size() -> usize {
    3072
}
fn default_hidden_act() -> String {
    "gelu".into()
}
fn default_max_positions() -> usize {
    514
}
fn default_type_vocab_size() -> usize {
    1
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_pad_token_id() -> u32 {
    1
}
fn default_position_embedding_type() -> String {
    "absolute".into()
}
fn default_projection_dim() -> usize {
    512
}
fn default_projection_act() -> String {
    "relu".into()
}

#[derive(Deserialize)]
struct ClapConfig {
    #[serde(default)]
    text_config: Option<TextConfig>,
}

impl TextConfig {
    /// The `text_config` of a `ClapModel` config.json.
    pub fn load(path: &Path) -> std::result::Result<Self, ConfigError> {
        let clap: ClapConfig = read_config(path)?;
        let cfg = match clap.text_config {
            Some(cfg) => cfg,
            None => serde_json::from_str("{}").expect("every field has a default"),
        };
        let bad = |field, value: &dyn std::fmt::Debug, why: &str| Err(ConfigError::unsupported(path, field, value, why));
        if cfg.hidden_act != "gelu" {
            return bad("text_config.hidden_act", &cfg.hidden_act, "only gelu (CLAP's) is implemented");
        }
        if cfg.projection_hidden_act != "relu" {
            return bad("text_config.projection_hidden_act", &cfg.projection_hidden_act, "only relu (CLAP's) is implemented");
        }
        if cfg.position_embedding_type != "absolute" {
            return bad("text_config.position_embedding_type", &cfg.position_embedding_type, "only absolute positions are implemented");
        }
        Ok(cfg)
    }

    fn roberta(&self) -> xlm_roberta::Config {
        xlm_roberta::Config {
            hidden_size: self.hidden_size,
            layer_norm_eps: self.layer_norm_eps,
            attention_probs_dropout_prob: 0.0,
            hidden_dropout_prob: 0.0,
            num_attention_heads: self.num_attention_heads,
            position_embedding_type: self.position_embedding_type.clone(),
            intermediate_size: self.intermediate_size,
            hidden_act: candle_nn::Activation::Gelu,
            num_hidden_layers: self.num_hidden_layers,
            vocab_size: self.vocab_size,
            max_position_embeddings: self.max_position_embeddings,
            type_vocab_size: self.type_vocab_size,
            pad_token_id: self.pad_token_id,
        }
    }
}

pub struct ClapTextEncoder {
    roberta: XLMRobertaModel,
    pooler: Linear,
    linear1: Linear,
    linear2: Linear,
}

impl ClapTextEncoder {
    /// `vb` is the root of a `ClapModel` checkpoint (the audio branch is not read).
    pub fn new(vb: VarBuilder, cfg: &TextConfig) -> Result<Self> {
        let (h, p) = (cfg.hidden_size, cfg.projection_dim);
        Ok(Self {
            roberta: XLMRobertaModel::new(&cfg.roberta(), vb.pp("text_model"))?,
            pooler: candle_nn::linear(h, h, vb.pp("text_model.pooler.dense"))?,
            linear1: candle_nn::linear(h, p, vb.pp("text_projection.linear1"))?,
            linear2: candle_nn::linear(p, p, vb.pp("text_projection.linear2"))?,
        })
    }

    /// Unit-norm text features (B, projection_dim) of token ids (B, L) without padding.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let mask = Tensor::ones(ids.dims2()?, DType::U8, ids.device())?;
        let token_types = ids.zeros_like()?;
        let hidden = self.roberta.forward(ids, &mask, &token_types, None, None, None)?;
        let pooled = self.pooler.forward(&hidden.narrow(1, 0, 1)?.squeeze(1)?)?.tanh()?;
        let features = self.linear2.forward(&self.linear1.forward(&pooled)?.relu()?)?;
        // F.normalize: x / max(‖x‖, 1e-12).
        let norm = features.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::INFINITY)?;
        features.broadcast_div(&norm)
    }
}
