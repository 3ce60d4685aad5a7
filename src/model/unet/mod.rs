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
mod config;
mod embeddings;
mod transformer;

pub use crate::model::nn::{Activation, TimeScaleShift};
pub use config::{AttentionLayout, BlockLayout, Config, CrossAttentionDims, Layout};
pub use embeddings::timestep_embedding;

use crate::model::nn::{group_norm, Conv2d, GroupNorm, ResnetSettings};
use blocks::{BlockSettings, Conditioning, DownBlock, MidBlock, UpBlock};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use embeddings::TimestepEmbedding;
use std::path::Path;

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
        Self::with_layout(vb, cfg, layout)
    }

    /// [`AudioLdm2UNet::new`] with the layout [`Config::load`] already resolved.
    pub fn with_layout(vb: VarBuilder, cfg: &Config, layout: Layout) -> Result<Self> {
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
