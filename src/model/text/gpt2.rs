//! transformers' `GPT2Model` (no LM head), as AudioLDM2's `language_model`: it turns the
//! projected text embeddings into the 8 hidden states the UNet cross-attends to.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder};
use serde::Deserialize;
use std::path::Path;

use crate::config::{default_true, read_config, ConfigError};

/// `language_model/config.json` (`GPT2Config`; defaults are transformers').
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    #[serde(default = "default_n_embd")]
    pub n_embd: usize,
    #[serde(default = "default_n_layer")]
    pub n_layer: usize,
    #[serde(default = "default_n_head")]
    pub n_head: usize,
    #[serde(default = "default_n_positions")]
    pub n_positions: usize,
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "default_layer_norm_epsilon")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_activation")]
    pub activation_function: String,
    #[serde(default = "default_true")]
    pub scale_attn_weights: bool,
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    #[serde(default)]
    pub reorder_and_upcast_attn: bool,
    #[serde(default = "default_vocab_size")]
    pub vocab_size: usize,
    /// States AudioLDM2 generates (its pipeline reads this from the GPT-2 config).
    #[serde(default = "default_max_new_tokens")]
    pub max_new_tokens: usize,
}

fn default_max_new_tokens() -> usize {
    8
}

fn default_n_embd() -> usize {
    768
}
fn default_n_layer() -> usize {
    12
}
fn default_n_head() -> usize {
    12
}
fn default_n_positions() -> usize {
    1024
}
fn default_layer_norm_epsilon() -> f64 {
    1e-5
}
fn default_activation() -> String {
    "gelu_new".into()
}
fn default_vocab_size() -> usize {
    50257
}

impl Config {
    pub fn load(path: &Path) -> std::result::Result<Self, ConfigError> {
        let cfg: Self = read_config(path)?;
        let bad = |field, value: &dyn std::fmt::Debug, why: &str| Err(ConfigError::unsupported(path, field, value, why));
        if cfg.activation_function != "gelu_new" {
            return bad("activation_function", &cfg.activation_function, "only gelu_new (GPT-2's) is implemented");
        }
        if !cfg.scale_attn_weights || cfg.scale_attn_by_inverse_layer_idx {
            return bad("scale_attn_by_inverse_layer_idx", &cfg.scale_attn_by_inverse_layer_idx, "only GPT-2's 1/sqrt(head_dim) scaling is implemented");
        }
        if cfg.n_head == 0 || !cfg.n_embd.is_multiple_of(cfg.n_head) {
            return bad("n_head", &cfg.n_head, "must divide n_embd");
        }
        Ok(cfg)
    }
}

/// GPT-2's `Conv1D`: a linear layer whose weight is stored (in, out).
#[derive(Debug, Clone)]
struct Conv1D {
    weight: Tensor,
    bias: Tensor,
}

impl Conv1D {
    fn new(vb: VarBuilder, d_in: usize, d_out: usize) -> Result<Self> {
        Ok(Self { weight: vb.get((d_in, d_out), "weight")?, bias: vb.get(d_out, "bias")? })
    }
}

impl Module for Conv1D {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.broadcast_matmul(&self.weight)?.broadcast_add(&self.bias)
    }
}

#[derive(Debug, Clone)]
struct Block {
    ln_1: LayerNorm,
    c_attn: Conv1D,
    attn_proj: Conv1D,
    ln_2: LayerNorm,
    c_fc: Conv1D,
    mlp_proj: Conv1D,
    heads: usize,
}

impl Block {
    fn new(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let (d, inner) = (cfg.n_embd, cfg.n_inner.unwrap_or(4 * cfg.n_embd));
        Ok(Self {
            ln_1: candle_nn::layer_norm(d, cfg.layer_norm_epsilon, vb.pp("ln_1"))?,
            c_attn: Conv1D::new(vb.pp("attn.c_attn"), d, 3 * d)?,
            attn_proj: Conv1D::new(vb.pp("attn.c_proj"), d, d)?,
            ln_2: candle_nn::layer_norm(d, cfg.layer_norm_epsilon, vb.pp("ln_2"))?,
            c_fc: Conv1D::new(vb.pp("mlp.c_fc"), d, inner)?,
            mlp_proj: Conv1D::new(vb.pp("mlp.c_proj"), inner, d)?,
            heads: cfg.n_head,
        })
    }

    /// `bias`: (B, 1, L, L) additive attention bias (causal and padding).
    fn forward(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (b, l, d) = x.dims3()?;
        let hd = d / self.heads;
        let qkv = self.c_attn.forward(&self.ln_1.forward(x)?)?;
        let split = |i: usize| qkv.narrow(2, i * d, d)?.reshape((b, l, self.heads, hd))?.transpose(1, 2)?.contiguous();
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?.broadcast_add(bias)?;
        let attn = candle_nn::ops::softmax_last_dim(&scores)?.matmul(&v)?;
        let attn = attn.transpose(1, 2)?.reshape((b, l, d))?;
        let x = (x + self.attn_proj.forward(&attn)?)?;
        let h = self.c_fc.forward(&self.ln_2.forward(&x)?)?.gelu()?; // gelu_new: the tanh form
        x + self.mlp_proj.forward(&h)?
    }
}

#[derive(Debug, Clone)]
pub struct Gpt2Model {
    wpe: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    n_positions: usize,
}

impl Gpt2Model {
    pub fn new(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let wpe = candle_nn::embedding(cfg.n_positions, cfg.n_embd, vb.pp("wpe"))?;
        let blocks = (0..cfg.n_layer).map(|i| Block::new(vb.pp("h").pp(i), cfg)).collect::<Result<_>>()?;
        let ln_f = candle_nn::layer_norm(cfg.n_embd, cfg.layer_norm_epsilon, vb.pp("ln_f"))?;
        Ok(Self { wpe, blocks, ln_f, n_positions: cfg.n_positions })
    }

    /// The last hidden states (after `ln_f`) for input embeddings (B, L, d) at positions
    /// 0..L, with `mask` (B, L) (1 = attend, 0 = padding).
    pub fn forward(&self, inputs_embeds: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, l, _) = inputs_embeds.dims3()?;
        if l > self.n_positions {
            candle_core::bail!("GPT-2: {l} positions, the model has {}", self.n_positions);
        }
        let device = inputs_embeds.device();
        let positions = Tensor::arange(0u32, l as u32, device)?;
        let mut x = inputs_embeds.broadcast_add(&self.wpe.forward(&positions)?)?;
        // Additive bias: −∞-like where the key is in the future or padding.
        let causal: Vec<f32> = (0..l).flat_map(|i| (0..l).map(move |j| if j > i { f32::MIN } else { 0.0 })).collect();
        let causal = Tensor::from_vec(causal, (1, 1, l, l), device)?;
        let padding = mask.to_dtype(DType::F32)?.affine(-(f32::MIN as f64), f32::MIN as f64)?.reshape((b, 1, 1, l))?;
        let bias = causal.broadcast_add(&padding)?.clamp(f32::MIN, 0f32)?.to_dtype(x.dtype())?;
        for block in &self.blocks {
            x = block.forward(&x, &bias)?;
        }
        self.ln_f.forward(&x)
    }

    /// AudioLDM2's `generate_language_model`: `steps` times, run the model on the sequence
    /// and append the last position's final hidden state to it. Returns the appended states
    /// (B, steps, d).
    pub fn generate(&self, inputs_embeds: &Tensor, mask: &Tensor, steps: usize) -> Result<Tensor> {
        let (b, l, _) = inputs_embeds.dims3()?;
        let (mut seq, mut mask) = (inputs_embeds.clone(), mask.clone());
        let one = Tensor::ones((b, 1), mask.dtype(), mask.device())?;
        for step in 0..steps {
            let h = self.forward(&seq, &mask)?;
            let next = h.narrow(1, l + step - 1, 1)?;
            seq = Tensor::cat(&[&seq, &next], 1)?;
            mask = Tensor::cat(&[&mask, &one], 1)?;
        }
        seq.narrow(1, l, steps)
    }
}
