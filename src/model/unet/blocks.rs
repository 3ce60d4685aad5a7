//! The UNet's stages: `DownBlock2D` / `CrossAttnDownBlock2D`, `UNetMidBlock2DCrossAttn`,
//! `UpBlock2D` / `CrossAttnUpBlock2D` in AudioLDM2's variant (several Transformer2D modules
//! per layer, one per cross-attention width, stored as `attentions.{n·layer + j}`).

use super::transformer::{Context, Transformer2DModel, TransformerSettings};
use super::{AttentionLayout, BlockLayout};
use crate::model::nn::{Downsample2D, ResnetBlock2D, ResnetSettings, Upsample2D};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// The conditioning every attention stage draws from.
pub struct Conditioning<'a> {
    pub encoder_hidden_states: &'a Tensor,
    pub encoder_hidden_states_1: &'a Tensor,
    /// (B, 1, 1, L₁) additive bias for `encoder_hidden_states_1`.
    pub bias_1: Option<&'a Tensor>,
}

impl<'a> Conditioning<'a> {
    /// diffusers' routing by position `j` in a block's `cross_attention_dim` list: no width →
    /// self-attention (no mask); j ≤ 1 → `encoder_hidden_states` (with `encoder_attention_mask`,
    /// which this UNet never gets); j ≥ 2 → `encoder_hidden_states_1` with its mask.
    fn context(&self, j: usize, cross_dim: Option<usize>) -> Context<'a> {
        match cross_dim {
            None => Context::SELF,
            Some(_) if j <= 1 => Context { states: Some(self.encoder_hidden_states), bias: None },
            Some(_) => Context { states: Some(self.encoder_hidden_states_1), bias: self.bias_1 },
        }
    }
}

/// The Transformer2D modules of one block, `per_layer` of them per ResNet layer.
#[derive(Debug, Clone)]
struct Attentions {
    modules: Vec<Transformer2DModel>,
    cross_dims: Vec<Option<usize>>,
}

impl Attentions {
    fn new(vb: VarBuilder, layers: usize, channels: usize, a: &AttentionLayout, groups: usize, use_linear_projection: bool) -> Result<Self> {
        let mut modules = Vec::with_capacity(layers * a.cross_attention_dims.len());
        for _layer in 0..layers {
            for &cross_dim in &a.cross_attention_dims {
                let s = TransformerSettings {
                    channels,
                    heads: a.heads,
                    head_dim: a.head_dim,
                    layers: a.transformer_layers,
                    groups,
                    cross_dim,
                    only_cross_attention: a.only_cross_attention,
                    use_linear_projection,
                };
                modules.push(Transformer2DModel::new(vb.pp(modules.len()), &s)?);
            }
        }
        Ok(Self { modules, cross_dims: a.cross_attention_dims.clone() })
    }

    fn forward(&self, layer: usize, mut h: Tensor, cond: &Conditioning) -> Result<Tensor> {
        let n = self.cross_dims.len();
        for (j, &cross_dim) in self.cross_dims.iter().enumerate() {
            h = self.modules[layer * n + j].forward(&h, cond.context(j, cross_dim))?;
        }
        Ok(h)
    }
}

/// Shared construction settings.
#[derive(Debug, Clone, Copy)]
pub struct BlockSettings {
    pub resnet: ResnetSettings,
    pub use_linear_projection: bool,
    pub downsample_padding: usize,
}

#[derive(Debug, Clone)]
pub struct DownBlock {
    resnets: Vec<ResnetBlock2D>,
    attentions: Option<Attentions>,
    downsampler: Option<Downsample2D>,
}

impl DownBlock {
    pub fn new(vb: VarBuilder, l: &BlockLayout, s: &BlockSettings) -> Result<Self> {
        let resnets = (0..l.layers)
            .map(|i| {
                let c_in = if i == 0 { l.in_channels } else { l.out_channels };
                ResnetBlock2D::new(vb.pp("resnets").pp(i), c_in, l.out_channels, &s.resnet, 1.0)
            })
            .collect::<Result<Vec<_>>>()?;
        let attentions = match &l.attention {
            Some(a) => Some(Attentions::new(vb.pp("attentions"), l.layers, l.out_channels, a, s.resnet.groups, s.use_linear_projection)?),
            None => None,
        };
        let downsampler = if l.resample { Some(Downsample2D::new(vb.pp("downsamplers").pp(0), l.out_channels, s.downsample_padding)?) } else { None };
        Ok(Self { resnets, attentions, downsampler })
    }

    /// Returns the block output and appends its skip states to `skips`.
    pub fn forward(&self, mut h: Tensor, temb_act: &Tensor, cond: &Conditioning, skips: &mut Vec<Tensor>) -> Result<Tensor> {
        for (i, resnet) in self.resnets.iter().enumerate() {
            h = resnet.forward(&h, Some(temb_act))?;
            if let Some(att) = &self.attentions {
                h = att.forward(i, h, cond)?;
            }
            skips.push(h.clone());
        }
        if let Some(down) = &self.downsampler {
            h = down.forward(&h)?;
            skips.push(h.clone());
        }
        Ok(h)
    }
}

#[derive(Debug, Clone)]
pub struct MidBlock {
    resnets: Vec<ResnetBlock2D>,
    attentions: Attentions,
}

impl MidBlock {
    pub fn new(vb: VarBuilder, l: &BlockLayout, s: &BlockSettings, output_scale_factor: f64) -> Result<Self> {
        let c = l.out_channels;
        let resnets = (0..=l.layers).map(|i| ResnetBlock2D::new(vb.pp("resnets").pp(i), c, c, &s.resnet, output_scale_factor)).collect::<Result<Vec<_>>>()?;
        let a = l.attention.as_ref().ok_or_else(|| candle_core::Error::Msg("the mid block needs attention".into()))?;
        let attentions = Attentions::new(vb.pp("attentions"), l.layers, c, a, s.resnet.groups, s.use_linear_projection)?;
        Ok(Self { resnets, attentions })
    }

    pub fn forward(&self, h: &Tensor, temb_act: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        let mut h = self.resnets[0].forward(h, Some(temb_act))?;
        for (i, resnet) in self.resnets[1..].iter().enumerate() {
            h = self.attentions.forward(i, h, cond)?;
            h = resnet.forward(&h, Some(temb_act))?;
        }
        Ok(h)
    }
}

#[derive(Debug, Clone)]
pub struct UpBlock {
    resnets: Vec<ResnetBlock2D>,
    attentions: Option<Attentions>,
    upsampler: Option<Upsample2D>,
}

impl UpBlock {
    pub fn new(vb: VarBuilder, l: &BlockLayout, s: &BlockSettings) -> Result<Self> {
        let resnets = (0..l.layers)
            .map(|i| {
                let skip = if i == l.layers - 1 { l.in_channels } else { l.out_channels };
                let c_in = if i == 0 { l.prev_output_channels } else { l.out_channels };
                ResnetBlock2D::new(vb.pp("resnets").pp(i), c_in + skip, l.out_channels, &s.resnet, 1.0)
            })
            .collect::<Result<Vec<_>>>()?;
        let attentions = match &l.attention {
            Some(a) => Some(Attentions::new(vb.pp("attentions"), l.layers, l.out_channels, a, s.resnet.groups, s.use_linear_projection)?),
            None => None,
        };
        let upsampler = if l.resample { Some(Upsample2D::new(vb.pp("upsamplers").pp(0), l.out_channels)?) } else { None };
        Ok(Self { resnets, attentions, upsampler })
    }

    pub fn layers(&self) -> usize {
        self.resnets.len()
    }

    /// Pops one skip state per layer from the end of `skips`; `upsample_size` is the spatial
    /// size of the next skip state (what the following block concatenates with).
    pub fn forward(
        &self,
        mut h: Tensor,
        temb_act: &Tensor,
        cond: &Conditioning,
        skips: &mut Vec<Tensor>,
        upsample_size: Option<(usize, usize)>,
    ) -> Result<Tensor> {
        for (i, resnet) in self.resnets.iter().enumerate() {
            let skip = skips.pop().ok_or_else(|| candle_core::Error::Msg("UNet: ran out of skip connections".into()))?;
            h = Tensor::cat(&[&h, &skip], 1)?;
            h = resnet.forward(&h, Some(temb_act))?;
            if let Some(att) = &self.attentions {
                h = att.forward(i, h, cond)?;
            }
        }
        if let Some(up) = &self.upsampler {
            h = up.forward(&h, upsample_size)?;
        }
        Ok(h)
    }
}
