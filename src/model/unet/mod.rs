//! diffusers' `AudioLDM2UNet2DConditionModel` in candle, forward only.
//!
//! Layout as diffusers: `sample` (B, C, H, W) — for AudioLDM2 (B, 8, T/4, 16) —, one timestep
//! per batch item, `encoder_hidden_states` (B, L, d₀), `encoder_hidden_states_1` (B, L₁, d₁)
//! with an optional 0/1 mask (B, L₁). Weights are named as in the diffusers checkpoint
//! (`conv_in`, `time_embedding.linear_{1,2}`, `down_blocks.{i}.resnets.{j}`,
//! `down_blocks.{i}.attentions.{n·layer + j}`, `mid_block…`, `up_blocks…`, `conv_norm_out`,
//! `conv_out`).
//!
//! Every attention stage holds, per ResNet layer, one `Transformer2DModel` per entry of the
//! block's `cross_attention_dim` list (AudioLDM2-music: `[null, 768, 1024]`):
//! - an entry `null` is a double self-attention transformer (its `attn2` is self-attention
//!   too, with its own `norm2`/`attn2` weights);
//! - an entry at position j ≤ 1 cross-attends to `encoder_hidden_states` (unmasked);
//! - an entry at position j ≥ 2 cross-attends to `encoder_hidden_states_1`, masked keys
//!   getting a −10000 bias (`(1 − mask)·−10000`, as diffusers).
//!
//! `attention_head_dim` is, as in diffusers' UNets, the number of **heads** (the naming
//! issue diffusers #2011); each head is `channels / heads` wide. `num_attention_heads` must
//! be null (diffusers rejects it for this model too).
//!
//! The guidance runs the UNet without autograd; only DITTO differentiates through it. The
//! softmax and layer norms take candle's fused kernels unless a gradient is wanted
//! (`model::nn`).

mod blocks;
mod embeddings;
mod transformer;

pub use crate::model::nn::{Activation, TimeScaleShift};
pub use embeddings::timestep_embedding;

use crate::config::{default_act_fn, default_true, read_config, ConfigError, PerBlock};
use crate::model::nn::{group_norm, Conv2d, GroupNorm, ResnetSettings};
use blocks::{BlockSettings, Conditioning, DownBlock, MidBlock, UpBlock};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use embeddings::TimestepEmbedding;
use serde::{Deserialize, Deserializer};
use std::path::Path;

/// One block's `cross_attention_dim`: a width, or a list of widths / nulls (one
/// Transformer2D module per entry).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum CrossAttentionDims {
    One(usize),
    Each(Vec<Option<usize>>),
}

/// `cross_attention_dim`: a number (every block), or a list with one entry per block, each a
/// number or a list (diffusers treats a top-level list as per block, so `[768, 1024, …]` is
/// one width per block, not two modules).
fn de_cross_attention_dim<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<PerBlock<Option<CrossAttentionDims>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Each(Vec<Option<CrossAttentionDims>>),
        One(usize),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::Each(list) => PerBlock::Each(list),
        Raw::One(n) => PerBlock::One(Some(CrossAttentionDims::One(n))),
    })
}

fn default_io_channels() -> usize {
    4
}
fn default_down_block_types() -> Vec<String> {
    ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"].map(String::from).to_vec()
}
fn default_mid_block_type() -> Option<String> {
    Some("UNetMidBlock2DCrossAttn".into())
}
fn default_up_block_types() -> Vec<String> {
    ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"].map(String::from).to_vec()
}
fn default_only_cross_attention() -> PerBlock<bool> {
    PerBlock::One(false)
}
fn default_block_out_channels() -> Vec<usize> {
    vec![320, 640, 1280, 1280]
}
fn default_layers_per_block() -> PerBlock<usize> {
    PerBlock::One(2)
}
fn default_one() -> usize {
    1
}
fn default_one_f64() -> f64 {
    1.0
}
fn default_norm_num_groups() -> Option<usize> {
    Some(32)
}
fn default_norm_eps() -> f64 {
    1e-5
}
fn default_cross_attention_dim() -> PerBlock<Option<CrossAttentionDims>> {
    PerBlock::One(Some(CrossAttentionDims::One(1280)))
}
fn default_transformer_layers_per_block() -> PerBlock<usize> {
    PerBlock::One(1)
}
fn default_attention_head_dim() -> PerBlock<usize> {
    PerBlock::One(8)
}
fn default_resnet_time_scale_shift() -> String {
    "default".into()
}
fn default_time_embedding_type() -> String {
    "positional".into()
}
fn default_kernel() -> usize {
    3
}

/// `unet/config.json` of a diffusers `AudioLDM2UNet2DConditionModel`. Unknown keys are
/// ignored; defaults are diffusers' own. [`Config::layout`] checks it and resolves the
/// per-block settings.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    #[serde(default = "default_io_channels")]
    pub in_channels: usize,
    #[serde(default = "default_io_channels")]
    pub out_channels: usize,
    #[serde(default = "default_true")]
    pub flip_sin_to_cos: bool,
    #[serde(default)]
    pub freq_shift: f64,
    #[serde(default = "default_down_block_types")]
    pub down_block_types: Vec<String>,
    #[serde(default = "default_mid_block_type")]
    pub mid_block_type: Option<String>,
    #[serde(default = "default_up_block_types")]
    pub up_block_types: Vec<String>,
    #[serde(default = "default_only_cross_attention")]
    pub only_cross_attention: PerBlock<bool>,
    #[serde(default = "default_block_out_channels")]
    pub block_out_channels: Vec<usize>,
    #[serde(default = "default_layers_per_block")]
    pub layers_per_block: PerBlock<usize>,
    #[serde(default = "default_one")]
    pub downsample_padding: usize,
    #[serde(default = "default_one_f64")]
    pub mid_block_scale_factor: f64,
    #[serde(default = "default_act_fn")]
    pub act_fn: String,
    #[serde(default = "default_norm_num_groups")]
    pub norm_num_groups: Option<usize>,
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f64,
    #[serde(default = "default_cross_attention_dim", deserialize_with = "de_cross_attention_dim")]
    pub cross_attention_dim: PerBlock<Option<CrossAttentionDims>>,
    #[serde(default = "default_transformer_layers_per_block")]
    pub transformer_layers_per_block: PerBlock<usize>,
    /// The number of heads per block (diffusers' historical name).
    #[serde(default = "default_attention_head_dim")]
    pub attention_head_dim: PerBlock<usize>,
    /// Must be null (diffusers raises otherwise for this model).
    #[serde(default)]
    pub num_attention_heads: Option<PerBlock<usize>>,
    #[serde(default)]
    pub use_linear_projection: bool,
    #[serde(default)]
    pub class_embed_type: Option<String>,
    #[serde(default)]
    pub num_class_embeds: Option<usize>,
    /// No effect with diffusers' default (SDPA) attention processor; we always take the
    /// softmax in f32.
    #[serde(default)]
    pub upcast_attention: bool,
    #[serde(default = "default_resnet_time_scale_shift")]
    pub resnet_time_scale_shift: String,
    #[serde(default = "default_time_embedding_type")]
    pub time_embedding_type: String,
    #[serde(default)]
    pub time_embedding_dim: Option<usize>,
    #[serde(default)]
    pub time_embedding_act_fn: Option<String>,
    #[serde(default)]
    pub timestep_post_act: Option<String>,
    #[serde(default)]
    pub time_cond_proj_dim: Option<usize>,
    #[serde(default = "default_kernel")]
    pub conv_in_kernel: usize,
    #[serde(default = "default_kernel")]
    pub conv_out_kernel: usize,
    #[serde(default)]
    pub class_embeddings_concat: bool,
    /// Informative only.
    #[serde(default)]
    pub sample_size: Option<serde_json::Value>,
}

/// One attention stage's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionLayout {
    pub heads: usize,
    /// `channels / heads` (floor, as diffusers).
    pub head_dim: usize,
    /// `BasicTransformerBlock`s per Transformer2D module.
    pub transformer_layers: usize,
    /// One Transformer2D module per entry, per ResNet layer; `None`: double self-attention.
    pub cross_attention_dims: Vec<Option<usize>>,
    pub only_cross_attention: bool,
}

/// One down, mid or up block.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockLayout {
    /// Down: the first ResNet's input width. Up: diffusers' `in_channels` (the width of the
    /// skip state its last ResNet concatenates). Mid: the block width.
    pub in_channels: usize,
    pub out_channels: usize,
    /// Up blocks: the width coming from the block below (the first ResNet's non-skip input).
    pub prev_output_channels: usize,
    /// ResNet layers (the mid block has one more ResNet than this).
    pub layers: usize,
    pub attention: Option<AttentionLayout>,
    /// Down/up blocks: whether a down/up sampler follows.
    pub resample: bool,
}

/// The resolved architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub time_proj_dim: usize,
    pub time_embed_dim: usize,
    pub act: Activation,
    pub time_embed_act: Option<Activation>,
    pub timestep_post_act: Option<Activation>,
    pub groups: usize,
    pub time_scale_shift: TimeScaleShift,
    pub down: Vec<BlockLayout>,
    pub mid: BlockLayout,
    pub up: Vec<BlockLayout>,
}

impl Layout {
    /// Number of down/up samplers (the spatial size is divided by 2^this).
    pub fn num_upsamplers(&self) -> usize {
        self.up.iter().filter(|b| b.resample).count()
    }

    /// Every cross-attention width with the context it reads: 0 for
    /// `encoder_hidden_states` (transformers 0 and 1 of a stage), 1 for
    /// `encoder_hidden_states_1` (transformers 2 and up).
    pub fn cross_attention_widths(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let stages = self.down.iter().chain([&self.mid]).chain(&self.up).filter_map(|b| b.attention.as_ref());
        stages.flat_map(|a| a.cross_attention_dims.iter().enumerate().filter_map(|(j, w)| w.map(|w| (usize::from(j >= 2), w))))
    }
}

impl Config {
    /// Read `config.json` and check it (errors name the file and the field).
    pub fn load(path: &Path) -> std::result::Result<Self, ConfigError> {
        let cfg: Self = read_config(path)?;
        cfg.layout(path)?;
        Ok(cfg)
    }

    /// Check the config and resolve every block's shape; `path` only names the file in errors.
    pub fn layout(&self, path: &Path) -> std::result::Result<Layout, ConfigError> {
        let bad = |field: &'static str, value: &dyn std::fmt::Debug, why: &str| ConfigError::unsupported(path, field, format!("{value:?}"), why);
        let n = self.block_out_channels.len();
        if n == 0 {
            return Err(bad("block_out_channels", &self.block_out_channels, "needs at least one block"));
        }
        if self.down_block_types.len() != n {
            return Err(bad("down_block_types", &self.down_block_types, &format!("needs one entry per block_out_channels entry ({n})")));
        }
        if self.up_block_types.len() != n {
            return Err(bad("up_block_types", &self.up_block_types, &format!("needs one entry per block_out_channels entry ({n})")));
        }
        if let Some(h) = &self.num_attention_heads {
            return Err(bad("num_attention_heads", h, "must be null for AudioLDM2's UNet; the head count is `attention_head_dim`"));
        }
        if let Some(t) = &self.class_embed_type {
            return Err(bad("class_embed_type", t, "class embeddings are not supported"));
        }
        if let Some(t) = &self.num_class_embeds {
            return Err(bad("num_class_embeds", t, "class embeddings are not supported"));
        }
        if self.class_embeddings_concat {
            return Err(bad("class_embeddings_concat", &true, "class embeddings are not supported"));
        }
        if self.time_embedding_type != "positional" {
            return Err(bad("time_embedding_type", &self.time_embedding_type, "only `positional` is supported"));
        }
        if let Some(d) = self.time_cond_proj_dim {
            return Err(bad("time_cond_proj_dim", &d, "timestep conditioning is not supported"));
        }
        match self.mid_block_type.as_deref() {
            Some("UNetMidBlock2DCrossAttn") => {}
            other => return Err(bad("mid_block_type", &other, "only `UNetMidBlock2DCrossAttn` is supported")),
        }
        // GroupNorm divides by sqrt(var + eps): eps ≤ 0 gives NaN on a flat input.
        if !(self.norm_eps > 0.0 && self.norm_eps <= 1.0) {
            return Err(bad("norm_eps", &self.norm_eps, "must lie in (0, 1] (AudioLDM2: 1e-5)"));
        }
        let act = Activation::parse(&self.act_fn).ok_or_else(|| bad("act_fn", &self.act_fn, "expected silu, swish, mish, gelu or relu"))?;
        let parse_opt = |field: &'static str, v: &Option<String>| -> std::result::Result<Option<Activation>, ConfigError> {
            match v {
                None => Ok(None),
                Some(name) => Activation::parse(name).map(Some).ok_or_else(|| bad(field, name, "expected silu, swish, mish, gelu or relu")),
            }
        };
        let time_embed_act = parse_opt("time_embedding_act_fn", &self.time_embedding_act_fn)?;
        let timestep_post_act = parse_opt("timestep_post_act", &self.timestep_post_act)?;
        let groups = self.norm_num_groups.ok_or_else(|| bad("norm_num_groups", &None::<usize>, "normalisation-free UNets are not supported"))?;
        if groups == 0 {
            return Err(bad("norm_num_groups", &groups, "must be positive"));
        }
        if let Some(c) = self.block_out_channels.iter().find(|&&c| c == 0 || c % groups != 0) {
            return Err(bad("block_out_channels", &self.block_out_channels, &format!("{c} is not a positive multiple of norm_num_groups ({groups})")));
        }
        let time_scale_shift = match self.resnet_time_scale_shift.as_str() {
            "default" => TimeScaleShift::Add,
            "scale_shift" => TimeScaleShift::ScaleShift,
            other => return Err(bad("resnet_time_scale_shift", &other, "expected `default` or `scale_shift`")),
        };
        if self.conv_in_kernel.is_multiple_of(2) {
            return Err(bad("conv_in_kernel", &self.conv_in_kernel, "only odd kernels keep the size"));
        }
        if self.conv_out_kernel.is_multiple_of(2) {
            return Err(bad("conv_out_kernel", &self.conv_out_kernel, "only odd kernels keep the size"));
        }

        let heads = self.attention_head_dim.resolve(n, "attention_head_dim", path)?;
        if heads.contains(&0) {
            return Err(bad("attention_head_dim", &heads, "head counts must be positive"));
        }
        let layers = self.layers_per_block.resolve(n, "layers_per_block", path)?;
        if layers.contains(&0) {
            return Err(bad("layers_per_block", &layers, "must be positive"));
        }
        let tlayers = self.transformer_layers_per_block.resolve(n, "transformer_layers_per_block", path)?;
        let only_cross = self.only_cross_attention.resolve(n, "only_cross_attention", path)?;
        let cross: Vec<Option<Vec<Option<usize>>>> = self
            .cross_attention_dim
            .resolve(n, "cross_attention_dim", path)?
            .into_iter()
            .map(|c| match c {
                None => None,
                Some(CrossAttentionDims::One(d)) => Some(vec![Some(d)]),
                Some(CrossAttentionDims::Each(list)) => Some(list),
            })
            .collect();
        for c in cross.iter().flatten() {
            if c.is_empty() || c.len() > 4 {
                return Err(bad("cross_attention_dim", &cross, "each block needs 1 to 4 entries"));
            }
        }
        let boc = &self.block_out_channels;
        let attention = |i: usize, only_cross_attention: bool| -> std::result::Result<AttentionLayout, ConfigError> {
            let dims = cross[i].clone().ok_or_else(|| bad("cross_attention_dim", &cross, &format!("block {i} has attention but no cross_attention_dim")))?;
            Ok(AttentionLayout {
                heads: heads[i],
                head_dim: boc[i] / heads[i],
                transformer_layers: tlayers[i],
                cross_attention_dims: dims,
                only_cross_attention,
            })
        };
        let strip = |s: &str| s.strip_prefix("UNetRes").unwrap_or(s).to_string();

        let mut down = Vec::with_capacity(n);
        for i in 0..n {
            let attention = match strip(&self.down_block_types[i]).as_str() {
                "DownBlock2D" => None,
                "CrossAttnDownBlock2D" => Some(attention(i, only_cross[i])?),
                other => return Err(bad("down_block_types", &other, "expected DownBlock2D or CrossAttnDownBlock2D")),
            };
            down.push(BlockLayout {
                in_channels: boc[i.saturating_sub(1)],
                out_channels: boc[i],
                prev_output_channels: boc[i.saturating_sub(1)],
                layers: layers[i],
                attention,
                resample: i + 1 < n,
            });
        }
        let mid = BlockLayout {
            in_channels: boc[n - 1],
            out_channels: boc[n - 1],
            prev_output_channels: boc[n - 1],
            layers: 1,
            attention: Some(attention(n - 1, false)?),
            resample: false,
        };
        let mut up = Vec::with_capacity(n);
        for i in 0..n {
            let r = n - 1 - i;
            let attention = match strip(&self.up_block_types[i]).as_str() {
                "UpBlock2D" => None,
                "CrossAttnUpBlock2D" => Some(attention(r, only_cross[r])?),
                other => return Err(bad("up_block_types", &other, "expected UpBlock2D or CrossAttnUpBlock2D")),
            };
            up.push(BlockLayout {
                in_channels: boc[r.saturating_sub(1)],
                out_channels: boc[r],
                prev_output_channels: if i == 0 { boc[n - 1] } else { boc[r + 1] },
                layers: layers[r] + 1,
                attention,
                resample: i + 1 < n,
            });
        }
        // The up path pops exactly the skip states the down path pushes.
        let pushed: usize = 1 + down.iter().map(|b| b.layers + usize::from(b.resample)).sum::<usize>();
        let popped: usize = up.iter().map(|b| b.layers).sum();
        if pushed != popped {
            return Err(bad("layers_per_block", &layers, &format!("the down path makes {pushed} skip states but the up path takes {popped}")));
        }
        Ok(Layout {
            time_proj_dim: boc[0],
            time_embed_dim: self.time_embedding_dim.unwrap_or(4 * boc[0]),
            act,
            time_embed_act,
            timestep_post_act,
            groups,
            time_scale_shift,
            down,
            mid,
            up,
        })
    }
}

/// `AudioLDM2UNet2DConditionModel`.
#[derive(Debug, Clone)]
pub struct AudioLdm2UNet {
    conv_in: Conv2d,
    time_embedding: TimestepEmbedding,
    down_blocks: Vec<DownBlock>,
    mid_block: MidBlock,
    up_blocks: Vec<UpBlock>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
    layout: Layout,
    flip_sin_to_cos: bool,
    freq_shift: f64,
}

/// Short name.
pub type UNet = AudioLdm2UNet;

impl AudioLdm2UNet {
    pub fn new(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let layout = cfg.layout(Path::new("unet/config.json")).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let boc = &cfg.block_out_channels;
        let resnet = ResnetSettings { groups: layout.groups, eps: cfg.norm_eps, act: layout.act, time: Some((layout.time_embed_dim, layout.time_scale_shift)) };
        let s = BlockSettings { resnet, use_linear_projection: cfg.use_linear_projection, downsample_padding: cfg.downsample_padding };
        let conv_in = Conv2d::new(vb.pp("conv_in"), cfg.in_channels, boc[0], cfg.conv_in_kernel, 1, (cfg.conv_in_kernel - 1) / 2)?;
        let time_embedding =
            TimestepEmbedding::new(vb.pp("time_embedding"), layout.time_proj_dim, layout.time_embed_dim, layout.act, layout.timestep_post_act)?;
        let down_blocks = layout.down.iter().enumerate().map(|(i, l)| DownBlock::new(vb.pp("down_blocks").pp(i), l, &s)).collect::<Result<Vec<_>>>()?;
        let mid_block = MidBlock::new(vb.pp("mid_block"), &layout.mid, &s, cfg.mid_block_scale_factor)?;
        let up_blocks = layout.up.iter().enumerate().map(|(i, l)| UpBlock::new(vb.pp("up_blocks").pp(i), l, &s)).collect::<Result<Vec<_>>>()?;
        let conv_norm_out = group_norm(layout.groups, boc[0], cfg.norm_eps, vb.pp("conv_norm_out"))?;
        let conv_out = Conv2d::new(vb.pp("conv_out"), boc[0], cfg.out_channels, cfg.conv_out_kernel, 1, (cfg.conv_out_kernel - 1) / 2)?;
        Ok(Self {
            conv_in,
            time_embedding,
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out,
            conv_out,
            layout,
            flip_sin_to_cos: cfg.flip_sin_to_cos,
            freq_shift: cfg.freq_shift,
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Predicted noise (B, out_channels, H, W).
    ///
    /// - `sample`: (B, in_channels, H, W); H and W need not divide by 2^levels (the up path
    ///   resizes to the skip states, as diffusers).
    /// - `timestep`: (B) — or a single value for the whole batch —, any dtype.
    /// - `encoder_hidden_states`: (B, L, d) for the transformers at positions j ≤ 1.
    /// - `encoder_hidden_states_1`: (B, L₁, d₁) for positions j ≥ 2 (unused by configs with
    ///   fewer than three cross-attention entries per block).
    /// - `encoder_attention_mask_1`: (B, L₁), 1 = keep, 0 = mask.
    pub fn forward(
        &self,
        sample: &Tensor,
        timestep: &Tensor,
        encoder_hidden_states: &Tensor,
        encoder_hidden_states_1: &Tensor,
        encoder_attention_mask_1: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (b, _, _, _) = sample.dims4()?;
        let dtype = sample.dtype();
        let t = timestep.flatten_all()?;
        let t = match t.dim(0)? {
            n if n == b => t,
            1 => t.broadcast_as(b)?,
            n => candle_core::bail!("UNet: {n} timesteps for a batch of {b}"),
        };
        let t_emb = timestep_embedding(&t, self.layout.time_proj_dim, self.flip_sin_to_cos, self.freq_shift)?.to_dtype(dtype)?;
        let mut emb = self.time_embedding.forward(&t_emb)?;
        if let Some(act) = self.layout.time_embed_act {
            emb = act.forward(&emb)?;
        }
        // Every ResNet applies the same non-linearity to the embedding before its projection.
        let temb_act = self.layout.act.forward(&emb)?;

        let ehs = encoder_hidden_states.to_dtype(dtype)?.contiguous()?;
        let ehs_1 = encoder_hidden_states_1.to_dtype(dtype)?.contiguous()?;
        let bias_1 = match encoder_attention_mask_1 {
            Some(mask) => {
                let (mb, ml) = mask.dims2()?;
                let (eb, el, _) = ehs_1.dims3()?;
                if mb != eb || ml != el {
                    candle_core::bail!("UNet: encoder_attention_mask_1 is {:?} but encoder_hidden_states_1 is {:?}", mask.dims(), ehs_1.dims());
                }
                // (1 − mask)·−10000
                Some(mask.to_dtype(dtype)?.affine(10000.0, -10000.0)?.reshape((mb, 1, 1, ml))?)
            }
            None => None,
        };
        let cond = Conditioning { encoder_hidden_states: &ehs, encoder_hidden_states_1: &ehs_1, bias_1: bias_1.as_ref() };

        let mut h = self.conv_in.forward(sample)?;
        let mut skips = vec![h.clone()];
        for block in &self.down_blocks {
            h = block.forward(h, &temb_act, &cond, &mut skips)?;
        }
        h = self.mid_block.forward(&h, &temb_act, &cond)?;
        for block in &self.up_blocks {
            let layers = block.layers();
            // The skip state the next block starts with sets the upsampled size.
            let size = if skips.len() > layers {
                let (_, _, sh, sw) = skips[skips.len() - layers - 1].dims4()?;
                Some((sh, sw))
            } else {
                None
            };
            h = block.forward(h, &temb_act, &cond, &mut skips, size)?;
        }
        let h = self.conv_norm_out.forward_act(&h, self.layout.act)?;
        self.conv_out.forward(&h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Shape};
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// The full-size AudioLDM2-music `unet/config.json` (DESIGN.md §3).
    const MUSIC_CONFIG: &str = r#"{
      "_class_name": "AudioLDM2UNet2DConditionModel", "_diffusers_version": "0.42.1",
      "act_fn": "silu", "attention_head_dim": 8, "block_out_channels": [128, 256, 384, 640],
      "class_embed_type": null, "class_embeddings_concat": false, "conv_in_kernel": 3, "conv_out_kernel": 3,
      "cross_attention_dim": [[null, 768, 1024], [null, 768, 1024], [null, 768, 1024], [null, 768, 1024]],
      "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
      "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 8, "layers_per_block": 2,
      "mid_block_scale_factor": 1, "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": 1e-05,
      "norm_num_groups": 32, "num_attention_heads": null, "num_class_embeds": null, "only_cross_attention": false,
      "out_channels": 8, "projection_class_embeddings_input_dim": null, "resnet_time_scale_shift": "default",
      "sample_size": 256, "time_cond_proj_dim": null, "time_embedding_act_fn": null, "time_embedding_dim": null,
      "time_embedding_type": "positional", "timestep_post_act": null, "transformer_layers_per_block": 1,
      "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
      "upcast_attention": false, "use_linear_projection": false
    }"#;

    fn music() -> Config {
        serde_json::from_str(MUSIC_CONFIG).unwrap()
    }

    /// A weight source that records every requested name and shape and hands out
    /// zero-strided zeros (no memory), to check the architecture without weights.
    #[derive(Default)]
    struct Recorder(Mutex<BTreeMap<String, Vec<usize>>>);

    impl candle_nn::var_builder::SimpleBackend for Recorder {
        fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> Result<Tensor> {
            self.0.lock().unwrap().insert(name.to_string(), s.dims().to_vec());
            Tensor::zeros((), dtype, dev)?.broadcast_as(s)
        }
        fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
            candle_core::bail!("unexpected unchecked get of {name}")
        }
        fn contains_tensor(&self, _: &str) -> bool {
            true
        }
    }

    fn record(cfg: &Config) -> BTreeMap<String, Vec<usize>> {
        let rec = std::sync::Arc::new(Recorder::default());
        struct Shared(std::sync::Arc<Recorder>);
        impl candle_nn::var_builder::SimpleBackend for Shared {
            fn get(&self, s: Shape, name: &str, h: candle_nn::Init, dtype: DType, dev: &Device) -> Result<Tensor> {
                self.0.get(s, name, h, dtype, dev)
            }
            fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
                self.0.get_unchecked(name, dtype, dev)
            }
            fn contains_tensor(&self, name: &str) -> bool {
                self.0.contains_tensor(name)
            }
        }
        let vb = VarBuilder::from_backend(Box::new(Shared(rec.clone())), DType::F32, Device::Cpu);
        AudioLdm2UNet::new(vb, cfg).unwrap();
        let map = rec.0.lock().unwrap().clone();
        map
    }

    #[test]
    fn music_layout() {
        let layout = music().layout(Path::new("config.json")).unwrap();
        assert_eq!(layout.time_embed_dim, 512);
        assert_eq!(layout.num_upsamplers(), 3);
        assert!(layout.down[0].attention.is_none());
        let dims = vec![None, Some(768), Some(1024)];
        for (i, (c, head_dim)) in [(256, 32), (384, 48), (640, 80)].into_iter().enumerate() {
            let a = layout.down[i + 1].attention.as_ref().unwrap();
            assert_eq!((layout.down[i + 1].out_channels, a.heads, a.head_dim, a.transformer_layers), (c, 8, head_dim, 1));
            assert_eq!(a.cross_attention_dims, dims);
            assert!(!a.only_cross_attention);
        }
        let mid = layout.mid.attention.as_ref().unwrap();
        assert_eq!((layout.mid.out_channels, mid.heads, mid.head_dim), (640, 8, 80));
        let up: Vec<_> =
            layout.up.iter().map(|b| (b.prev_output_channels, b.in_channels, b.out_channels, b.layers, b.attention.is_some(), b.resample)).collect();
        assert_eq!(up, vec![(640, 384, 640, 3, true, true), (640, 256, 384, 3, true, true), (384, 128, 256, 3, true, true), (256, 128, 128, 3, false, false)]);
    }

    #[test]
    fn music_weights() {
        let w = record(&music());
        let params: usize = w.values().map(|s| s.iter().product::<usize>()).sum();
        // DESIGN.md: 347 M parameters.
        assert!((346_000_000..348_000_000).contains(&params), "{params} parameters");
        let get = |n: &str| w.get(n).unwrap_or_else(|| panic!("no weight {n}")).clone();
        assert_eq!(get("conv_in.weight"), vec![128, 8, 3, 3]);
        assert_eq!(get("time_embedding.linear_1.weight"), vec![512, 128]);
        // Layer 1 of down block 1: attentions 3..6 (self, GPT-2 768, Flan-T5 1024).
        let t = "down_blocks.1.attentions";
        assert_eq!(get(&format!("{t}.3.transformer_blocks.0.attn2.to_k.weight")), vec![256, 256]);
        assert_eq!(get(&format!("{t}.4.transformer_blocks.0.attn2.to_k.weight")), vec![256, 768]);
        assert_eq!(get(&format!("{t}.5.transformer_blocks.0.attn2.to_v.weight")), vec![256, 1024]);
        assert_eq!(get(&format!("{t}.5.transformer_blocks.0.attn1.to_k.weight")), vec![256, 256]);
        assert_eq!(get(&format!("{t}.5.proj_in.weight")), vec![256, 256, 1, 1]);
        assert_eq!(get(&format!("{t}.5.transformer_blocks.0.ff.net.0.proj.weight")), vec![2048, 256]);
        assert!(!w.contains_key(&format!("{t}.6.norm.weight")));
        assert!(!w.contains_key(&format!("{t}.3.transformer_blocks.0.attn1.to_q.bias")));
        assert_eq!(get("mid_block.attentions.2.transformer_blocks.0.attn2.to_k.weight"), vec![640, 1024]);
        assert!(w.contains_key("mid_block.resnets.1.conv2.weight") && !w.contains_key("mid_block.resnets.2.conv1.weight"));
        assert_eq!(get("up_blocks.0.resnets.0.conv1.weight"), vec![640, 1280, 3, 3]);
        assert_eq!(get("up_blocks.0.resnets.2.conv1.weight"), vec![640, 1024, 3, 3]);
        assert_eq!(get("up_blocks.0.attentions.8.transformer_blocks.0.attn2.to_k.weight"), vec![640, 1024]);
        assert_eq!(get("up_blocks.3.resnets.2.conv_shortcut.weight"), vec![128, 256, 1, 1]);
        assert!(w.contains_key("up_blocks.2.upsamplers.0.conv.weight") && !w.contains_key("up_blocks.3.upsamplers.0.conv.weight"));
        assert!(w.contains_key("down_blocks.0.downsamplers.0.conv.weight") && !w.contains_key("down_blocks.3.downsamplers.0.conv.weight"));
        assert_eq!(get("conv_out.weight"), vec![8, 128, 3, 3]);
    }

    #[test]
    fn cross_attention_dim_forms() {
        let parse = |json: &str| -> Config { serde_json::from_str(json).unwrap() };
        let p = Path::new("config.json");
        // A number: one cross-attention transformer per layer, on encoder_hidden_states.
        let c = parse(
            r#"{"block_out_channels": [32, 64], "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "cross_attention_dim": 48}"#,
        );
        let l = c.layout(p).unwrap();
        assert_eq!(l.down[0].attention.as_ref().unwrap().cross_attention_dims, vec![Some(48)]);
        // A flat list is per block.
        let c = parse(
            r#"{"block_out_channels": [32, 64], "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "cross_attention_dim": [48, 96], "attention_head_dim": [2, 4]}"#,
        );
        let l = c.layout(p).unwrap();
        assert_eq!(l.mid.attention.as_ref().unwrap().cross_attention_dims, vec![Some(96)]);
        assert_eq!(l.mid.attention.as_ref().unwrap().heads, 4);
        assert_eq!(l.up[1].attention.as_ref().unwrap().cross_attention_dims, vec![Some(48)]);
        assert_eq!(l.up[1].attention.as_ref().unwrap().heads, 2);
    }

    #[test]
    fn rejects_unsupported() {
        let p = Path::new("unet/config.json");
        for (json, field) in [
            (r#"{"num_attention_heads": 8}"#, "num_attention_heads"),
            (r#"{"class_embed_type": "timestep"}"#, "class_embed_type"),
            (r#"{"time_embedding_type": "fourier"}"#, "time_embedding_type"),
            (r#"{"act_fn": "tanh"}"#, "act_fn"),
            (r#"{"attention_head_dim": [8, 8]}"#, "attention_head_dim"),
            (r#"{"down_block_types": ["A", "B", "C", "D"]}"#, "down_block_types"),
            (r#"{"mid_block_type": "UNetMidBlock2D"}"#, "mid_block_type"),
            (r#"{"norm_eps": -1}"#, "norm_eps"),
            (r#"{"norm_eps": 0}"#, "norm_eps"),
        ] {
            let c: Config = serde_json::from_str(json).unwrap();
            let err = c.layout(p).unwrap_err().to_string();
            assert!(err.contains(&format!("`{field}`")) && err.contains("unet/config.json"), "{json}: {err}");
        }
    }
}
