//! diffusers' `AutoencoderKL` as AudioLDM2 uses it (1 channel in and out), in candle.
//!
//! Layout as diffusers: mel spectrograms are (batch, channels, time, freq), latents
//! (batch, latent_channels, time / 2^(blocks−1), freq / 2^(blocks−1)). Weights are named as
//! in the diffusers checkpoint (`encoder.down_blocks.{i}.resnets.{j}.conv1`, …,
//! `encoder.mid_block.attentions.0.to_q`, `quant_conv`, `post_quant_conv`, `decoder.…`).
//!
//! [`AutoencoderKL::decode`] supports autograd with respect to the latent (the guidance
//! back-propagates through it; the attention's softmax is `nn::softmax_last_dim`).
//!
//! The ResNet blocks, samplers and convolutions are shared with the UNet ([`super::nn`]).

use super::nn::{group_norm, softmax_last_dim, Activation, Conv2d, Downsample2D, GroupNorm, ResnetBlock2D, ResnetSettings, Upsample2D};
use crate::config::{default_act_fn, default_true, read_config, ConfigError};
use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::Deserialize;
use std::path::Path;

/// `vae/config.json` of a diffusers `AutoencoderKL`. Unknown keys are ignored; defaults are
/// diffusers' own.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    #[serde(default = "default_io_channels")]
    pub in_channels: usize,
    #[serde(default = "default_io_channels")]
    pub out_channels: usize,
    #[serde(default = "default_down_block_types")]
    pub down_block_types: Vec<String>,
    #[serde(default = "default_up_block_types")]
    pub up_block_types: Vec<String>,
    #[serde(default = "default_block_out_channels")]
    pub block_out_channels: Vec<usize>,
    #[serde(default = "default_layers_per_block")]
    pub layers_per_block: usize,
    #[serde(default = "default_act_fn")]
    pub act_fn: String,
    #[serde(default = "default_latent_channels")]
    pub latent_channels: usize,
    #[serde(default = "default_norm_num_groups")]
    pub norm_num_groups: usize,
    /// Tiling size in diffusers (a number or a pair); unused here.
    #[serde(default)]
    pub sample_size: Option<serde_json::Value>,
    /// The latent the UNet sees is `scaling_factor · (z − shift_factor)`; the caller applies it.
    #[serde(default = "default_scaling_factor")]
    pub scaling_factor: f64,
    #[serde(default)]
    pub shift_factor: Option<f64>,
    #[serde(default)]
    pub latents_mean: Option<Vec<f64>>,
    #[serde(default)]
    pub latents_std: Option<Vec<f64>>,
    /// diffusers runs the VAE in f32 when the pipeline is in f16; we always run f32.
    #[serde(default = "default_true")]
    pub force_upcast: bool,
    #[serde(default = "default_true")]
    pub use_quant_conv: bool,
    #[serde(default = "default_true")]
    pub use_post_quant_conv: bool,
    #[serde(default = "default_true")]
    pub mid_block_add_attention: bool,
}

fn default_io_channels() -> usize {
    3
}
fn default_down_block_types() -> Vec<String> {
    vec!["DownEncoderBlock2D".into()]
}
fn default_up_block_types() -> Vec<String> {
    vec!["UpDecoderBlock2D".into()]
}
fn default_block_out_channels() -> Vec<usize> {
    vec![64]
}
fn default_layers_per_block() -> usize {
    1
}
fn default_latent_channels() -> usize {
    4
}
fn default_norm_num_groups() -> usize {
    32
}
fn default_scaling_factor() -> f64 {
    0.18215
}

impl Config {
    /// Read and check a `config.json`.
    pub fn load(path: &Path) -> std::result::Result<Self, ConfigError> {
        let cfg: Self = read_config(path)?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Reject what this implementation does not cover; the error names the field.
    pub fn validate(&self, path: &Path) -> std::result::Result<(), ConfigError> {
        let blocks = self.block_out_channels.len();
        if blocks == 0 {
            return Err(ConfigError::unsupported(path, "block_out_channels", &self.block_out_channels, "must not be empty"));
        }
        // Every block after the first halves the mel: 2^15 is far beyond any spectrogram.
        if blocks > 16 {
            return Err(ConfigError::unsupported(path, "block_out_channels", blocks, "at most 16 blocks (AudioLDM2: 3)"));
        }
        if let Some(bad) = self.down_block_types.iter().find(|t| t.as_str() != "DownEncoderBlock2D") {
            return Err(ConfigError::unsupported(path, "down_block_types", bad, "only DownEncoderBlock2D is implemented"));
        }
        if let Some(bad) = self.up_block_types.iter().find(|t| t.as_str() != "UpDecoderBlock2D") {
            return Err(ConfigError::unsupported(path, "up_block_types", bad, "only UpDecoderBlock2D is implemented"));
        }
        if self.down_block_types.len() != blocks {
            return Err(ConfigError::unsupported(
                path,
                "down_block_types",
                &self.down_block_types,
                format!("has {} entries but block_out_channels has {blocks}", self.down_block_types.len()),
            ));
        }
        if self.up_block_types.len() != blocks {
            return Err(ConfigError::unsupported(
                path,
                "up_block_types",
                &self.up_block_types,
                format!("has {} entries but block_out_channels has {blocks}", self.up_block_types.len()),
            ));
        }
        if Activation::parse(&self.act_fn).is_none() {
            return Err(ConfigError::unsupported(path, "act_fn", &self.act_fn, "implemented: silu, swish, gelu, relu, mish"));
        }
        if self.norm_num_groups == 0 || self.block_out_channels.iter().any(|c| c % self.norm_num_groups != 0) {
            return Err(ConfigError::unsupported(
                path,
                "norm_num_groups",
                self.norm_num_groups,
                format!("must divide every entry of block_out_channels {:?}", self.block_out_channels),
            ));
        }
        for (field, v) in [("in_channels", self.in_channels), ("out_channels", self.out_channels), ("latent_channels", self.latent_channels)] {
            if v == 0 {
                return Err(ConfigError::unsupported(path, field, v, "must be positive"));
            }
        }
        // AudioLDM2's is 0.18; far from 1 either way the latents leave f32's range.
        if !(1e-6..=1e6).contains(&self.scaling_factor) {
            return Err(ConfigError::unsupported(path, "scaling_factor", self.scaling_factor, "must lie between 1e-6 and 1e6 (AudioLDM2: 0.18215)"));
        }
        if let Some(shift) = self.shift_factor.filter(|s| !s.is_finite() || s.abs() > 1e6) {
            return Err(ConfigError::unsupported(path, "shift_factor", shift, "must lie between -1e6 and 1e6"));
        }
        for (field, values) in [("latents_mean", &self.latents_mean), ("latents_std", &self.latents_std)] {
            if let Some(v) = values.as_ref().filter(|v| v.len() != self.latent_channels) {
                return Err(ConfigError::unsupported(path, field, v.len(), format!("needs one value per latent channel ({})", self.latent_channels)));
            }
        }
        Ok(())
    }

    /// The precision to run in when the rest of the pipeline runs in `dtype`: diffusers keeps
    /// a `force_upcast` VAE in f32.
    pub fn dtype_for(&self, dtype: candle_core::DType) -> candle_core::DType {
        if self.force_upcast {
            candle_core::DType::F32
        } else {
            dtype
        }
    }

    /// Time and frequency are each divided by this between mel and latent.
    pub fn downsample_factor(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }
}

/// The ε of every group norm in diffusers' VAE encoder and decoder.
const EPS: f64 = 1e-6;

/// Every VAE ResNet: no time embedding.
fn resnet_settings(groups: usize, act: Activation) -> ResnetSettings {
    ResnetSettings { groups, eps: EPS, act, time: None }
}

/// The mid-block's single-head spatial self-attention (diffusers `Attention` with
/// `_from_deprecated_attn_block`, group norm, residual connection).
#[derive(Debug, Clone)]
struct SpatialAttention {
    group_norm: GroupNorm,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
    scale: f64,
}

impl SpatialAttention {
    fn new(vb: VarBuilder, channels: usize, head_dim: usize, groups: usize, eps: f64) -> Result<Self> {
        let group_norm = group_norm(groups, channels, eps, vb.pp("group_norm"))?;
        // Checkpoints converted before diffusers 0.14 name these query/key/value/proj_attn.
        let (q, k, v, o) = if vb.contains_tensor("to_q.weight") || !vb.contains_tensor("query.weight") {
            (vb.pp("to_q"), vb.pp("to_k"), vb.pp("to_v"), vb.pp("to_out").pp("0"))
        } else {
            (vb.pp("query"), vb.pp("key"), vb.pp("value"), vb.pp("proj_attn"))
        };
        Ok(Self {
            group_norm,
            to_q: candle_nn::linear(channels, channels, q)?,
            to_k: candle_nn::linear(channels, channels, k)?,
            to_v: candle_nn::linear(channels, channels, v)?,
            to_out: candle_nn::linear(channels, channels, o)?,
            heads: channels / head_dim,
            scale: 1.0 / (head_dim as f64).sqrt(),
        })
    }
}

impl Module for SpatialAttention {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = xs.dims4()?;
        let hs = self.group_norm.forward(xs)?;
        // candle_nn::Linear gives wrong values on this transposed view: make it contiguous.
        let hs = hs.reshape((b, c, h * w))?.transpose(1, 2)?.contiguous()?; // (b, hw, c)
        let head_dim = c / self.heads;
        let split = |t: Tensor| -> Result<Tensor> {
            t.reshape((b, h * w, self.heads, head_dim))?.transpose(1, 2)?.contiguous()
            // (b, heads, hw, d)
        };
        let q = split(self.to_q.forward(&hs)?)?;
        let k = split(self.to_k.forward(&hs)?)?;
        let v = split(self.to_v.forward(&hs)?)?;
        let scores = (q.matmul(&k.t()?.contiguous()?)? * self.scale)?;
        let attn = softmax_last_dim(&scores)?;
        let out = attn.matmul(&v)?; // (b, heads, hw, d)
        let out = out.transpose(1, 2)?.reshape((b, h * w, c))?;
        let out = self.to_out.forward(&out)?;
        let out = out.transpose(1, 2)?.reshape((b, c, h, w))?;
        out + xs
    }
}

/// diffusers `UNetMidBlock2D` without a time embedding: resnet, (attention, resnet).
#[derive(Debug, Clone)]
struct MidBlock {
    resnets: Vec<ResnetBlock2D>,
    attention: Option<SpatialAttention>,
}

impl MidBlock {
    fn new(vb: VarBuilder, channels: usize, groups: usize, act: Activation, add_attention: bool) -> Result<Self> {
        let resnets =
            (0..2).map(|j| ResnetBlock2D::new(vb.pp("resnets").pp(j), channels, channels, &resnet_settings(groups, act), 1.0)).collect::<Result<Vec<_>>>()?;
        let attention = if add_attention { Some(SpatialAttention::new(vb.pp("attentions").pp("0"), channels, channels, groups, EPS)?) } else { None };
        Ok(Self { resnets, attention })
    }
}

impl Module for MidBlock {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut h = self.resnets[0].forward(xs, None)?;
        if let Some(attn) = &self.attention {
            h = attn.forward(&h)?;
        }
        self.resnets[1].forward(&h, None)
    }
}

/// `DownEncoderBlock2D` / `UpDecoderBlock2D`: resnets, then an optional resampler.
#[derive(Debug, Clone)]
struct ResnetStack {
    resnets: Vec<ResnetBlock2D>,
    down: Option<Downsample2D>,
    up: Option<Upsample2D>,
}

impl Module for ResnetStack {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut h = xs.clone();
        for r in &self.resnets {
            h = r.forward(&h, None)?;
        }
        if let Some(d) = &self.down {
            h = d.forward(&h)?;
        }
        if let Some(u) = &self.up {
            h = u.forward(&h, None)?;
        }
        Ok(h)
    }
}

#[derive(Debug, Clone)]
struct Encoder {
    conv_in: Conv2d,
    down_blocks: Vec<ResnetStack>,
    mid_block: MidBlock,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Encoder {
    fn new(vb: VarBuilder, cfg: &Config, act: Activation) -> Result<Self> {
        let ch = &cfg.block_out_channels;
        let groups = cfg.norm_num_groups;
        let conv_in = Conv2d::new(vb.pp("conv_in"), cfg.in_channels, ch[0], 3, 1, 1)?;
        let mut down_blocks = Vec::with_capacity(ch.len());
        let mut c_out = ch[0];
        for (i, &c) in ch.iter().enumerate() {
            let c_in = c_out;
            c_out = c;
            let vbb = vb.pp("down_blocks").pp(i);
            let resnets = (0..cfg.layers_per_block)
                .map(|j| ResnetBlock2D::new(vbb.pp("resnets").pp(j), if j == 0 { c_in } else { c_out }, c_out, &resnet_settings(groups, act), 1.0))
                .collect::<Result<Vec<_>>>()?;
            let down = if i + 1 < ch.len() { Some(Downsample2D::new(vbb.pp("downsamplers").pp("0"), c_out, 0)?) } else { None };
            down_blocks.push(ResnetStack { resnets, down, up: None });
        }
        let last = *ch.last().unwrap();
        let mid_block = MidBlock::new(vb.pp("mid_block"), last, groups, act, cfg.mid_block_add_attention)?;
        let conv_norm_out = group_norm(groups, last, EPS, vb.pp("conv_norm_out"))?;
        let conv_out = Conv2d::new(vb.pp("conv_out"), last, 2 * cfg.latent_channels, 3, 1, 1)?;
        Ok(Self { conv_in, down_blocks, mid_block, conv_norm_out, conv_out })
    }
}

impl Module for Encoder {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut h = self.conv_in.forward(xs)?;
        for b in &self.down_blocks {
            h = b.forward(&h)?;
        }
        let h = self.mid_block.forward(&h)?;
        let h = self.conv_norm_out.forward_act(&h, Activation::Silu)?; // conv_act is always SiLU
        self.conv_out.forward(&h)
    }
}

#[derive(Debug, Clone)]
struct Decoder {
    conv_in: Conv2d,
    mid_block: MidBlock,
    up_blocks: Vec<ResnetStack>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Decoder {
    fn new(vb: VarBuilder, cfg: &Config, act: Activation) -> Result<Self> {
        let rev: Vec<usize> = cfg.block_out_channels.iter().rev().copied().collect();
        let groups = cfg.norm_num_groups;
        let conv_in = Conv2d::new(vb.pp("conv_in"), cfg.latent_channels, rev[0], 3, 1, 1)?;
        let mid_block = MidBlock::new(vb.pp("mid_block"), rev[0], groups, act, cfg.mid_block_add_attention)?;
        let mut up_blocks = Vec::with_capacity(rev.len());
        let mut c_out = rev[0];
        for (i, &c) in rev.iter().enumerate() {
            let c_prev = c_out;
            c_out = c;
            let vbb = vb.pp("up_blocks").pp(i);
            let resnets = (0..cfg.layers_per_block + 1)
                .map(|j| ResnetBlock2D::new(vbb.pp("resnets").pp(j), if j == 0 { c_prev } else { c_out }, c_out, &resnet_settings(groups, act), 1.0))
                .collect::<Result<Vec<_>>>()?;
            let up = if i + 1 < rev.len() { Some(Upsample2D::new(vbb.pp("upsamplers").pp("0"), c_out)?) } else { None };
            up_blocks.push(ResnetStack { resnets, down: None, up });
        }
        let first = cfg.block_out_channels[0];
        let conv_norm_out = group_norm(groups, first, EPS, vb.pp("conv_norm_out"))?;
        let conv_out = Conv2d::new(vb.pp("conv_out"), first, cfg.out_channels, 3, 1, 1)?;
        Ok(Self { conv_in, mid_block, up_blocks, conv_norm_out, conv_out })
    }
}

impl Decoder {
    /// `conv_in` with the mid block, then one block per up block.
    fn blocks(&self) -> usize {
        1 + self.up_blocks.len()
    }

    /// Block `block` of [`Decoder::blocks`]; the last one ends with the output layers.
    fn forward_block(&self, block: usize, xs: &Tensor) -> Result<Tensor> {
        let h = match block {
            0 => self.mid_block.forward(&self.conv_in.forward(xs)?)?,
            b if b < self.blocks() => self.up_blocks[b - 1].forward(xs)?,
            _ => candle_core::bail!("VAE decoder: block {block} of {}", self.blocks()),
        };
        if block + 1 < self.blocks() {
            return Ok(h);
        }
        let h = self.conv_norm_out.forward_act(&h, Activation::Silu)?; // conv_act is always SiLU
        self.conv_out.forward(&h)
    }
}

/// diffusers `AutoencoderKL`.
#[derive(Debug, Clone)]
pub struct AutoencoderKL {
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: Option<Conv2d>,
    post_quant_conv: Option<Conv2d>,
    latent_channels: usize,
}

impl AutoencoderKL {
    pub fn new(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        cfg.validate(Path::new("vae/config.json")).map_err(candle_core::Error::wrap)?;
        let act = Activation::parse(&cfg.act_fn).ok_or_else(|| candle_core::Error::Msg(format!("unsupported `act_fn` = {:?}", cfg.act_fn)))?;
        let l = cfg.latent_channels;
        let encoder = Encoder::new(vb.pp("encoder"), cfg, act)?;
        let decoder = Decoder::new(vb.pp("decoder"), cfg, act)?;
        let quant_conv = if cfg.use_quant_conv { Some(Conv2d::new(vb.pp("quant_conv"), 2 * l, 2 * l, 1, 1, 0)?) } else { None };
        let post_quant_conv = if cfg.use_post_quant_conv { Some(Conv2d::new(vb.pp("post_quant_conv"), l, l, 1, 1, 0)?) } else { None };
        Ok(Self { encoder, decoder, quant_conv, post_quant_conv, latent_channels: l })
    }

    /// `vae.decode(z).sample`: (B, latent_channels, t, f) → (B, out_channels, t·k, f·k) with
    /// k = 2^(blocks−1). Differentiable w.r.t. `z`. The caller divides latents by
    /// `scaling_factor` first.
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        (0..self.decode_blocks()).try_fold(z.clone(), |x, block| self.decode_block(block, &x))
    }

    /// How many blocks [`AutoencoderKL::decode`] runs, one after the other.
    pub fn decode_blocks(&self) -> usize {
        self.decoder.blocks()
    }

    /// Block `block` of the decode: the latents (scaled as for `decode`) for block 0, the
    /// previous block's output after that; the last block gives `decode`'s output.
    pub fn decode_block(&self, block: usize, x: &Tensor) -> Result<Tensor> {
        match (block, &self.post_quant_conv) {
            (0, Some(conv)) => self.decoder.forward_block(0, &conv.forward(x)?),
            _ => self.decoder.forward_block(block, x),
        }
    }

    /// The latent distribution of `vae.encode(x).latent_dist`: (mean, std), each
    /// (B, latent_channels, t/k, f/k); log-variance clamped to [−30, 20] as diffusers does.
    pub fn encode(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = self.encoder.forward(x)?;
        let h = match &self.quant_conv {
            Some(conv) => conv.forward(&h)?,
            None => h,
        };
        let l = self.latent_channels;
        let mean = h.narrow(1, 0, l)?;
        let logvar = h.narrow(1, l, l)?.clamp(-30f32, 20f32)?;
        let std = (logvar * 0.5)?.exp()?;
        Ok((mean, std))
    }
}
