//! `unet/config.json` and the architecture it resolves to ([`Layout`]): every block's
//! widths, layers and attention stages, checked once when the config is read.

use serde::{Deserialize, Deserializer};
use std::path::Path;

use crate::config::{default_act_fn, default_true, read_config, ConfigError, PerBlock};
use crate::model::nn::{Activation, TimeScaleShift};

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
fn de_cross_attention_dim<'de, D: Deserializer<'de>>(d: D) -> Result<PerBlock<Option<CrossAttentionDims>>, D::Error> {
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
    /// Read `config.json` and check it (errors name the file and the field); with the
    /// layout the check resolved.
    pub fn load(path: &Path) -> Result<(Self, Layout), ConfigError> {
        let cfg: Self = read_config(path)?;
        let layout = cfg.layout(path)?;
        Ok((cfg, layout))
    }

    /// Check the config and resolve every block's shape; `path` only names the file in errors.
    pub fn layout(&self, path: &Path) -> Result<Layout, ConfigError> {
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
        let parse_opt = |field: &'static str, v: &Option<String>| -> Result<Option<Activation>, ConfigError> {
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
        let attention = |i: usize, only_cross_attention: bool| -> Result<AttentionLayout, ConfigError> {
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
