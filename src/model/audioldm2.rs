//! AudioLDM2's diffusion core as a [`LatentPrior`]: the UNet, the VAE and the vocoder of a
//! model directory in the diffusers layout, with the text conditioning fixed per prior.
//!
//! Decoding follows diffusers' `AudioLDM2Pipeline`: latents divided by the VAE's
//! `scaling_factor`, VAE decode to a log-mel (B, 1, frames, bins), vocoder, crop.

use super::error::ModelError;
use super::text::cache::{ConditioningCache, Prompt};
use super::text::Conditioning;
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use std::path::Path;

use super::loader::WeightFiles;
use super::unet::{self, AudioLdm2UNet};
use super::vae::{self, AutoencoderKL};
use super::vocoder::{self, SpeechT5HifiGan};
use crate::restore::prior::{DecoderStage, LatentPrior, Part};
use crate::restore::schedule::DdimSchedule;

/// The configs of the four components the prior needs, checked against each other.
#[derive(Debug, Clone)]
pub struct ModelConfigs {
    pub unet: unet::Config,
    /// The UNet's architecture, resolved when its config was checked.
    pub unet_layout: unet::Layout,
    pub vae: vae::Config,
    pub vocoder: vocoder::Config,
    pub schedule: DdimSchedule,
}

impl ModelConfigs {
    /// Read `{unet,vae,vocoder}/config.json` and `scheduler/scheduler_config.json` under `dir`.
    pub fn load(dir: &Path) -> std::result::Result<Self, ModelError> {
        let (unet, unet_layout) = unet::Config::load(&dir.join("unet/config.json"))?;
        let vae = vae::Config::load(&dir.join("vae/config.json"))?;
        let vocoder = vocoder::Config::from_file(&dir.join("vocoder/config.json"))?;
        let schedule = DdimSchedule::from_file(&dir.join("scheduler/scheduler_config.json"))?;
        let cfgs = Self { unet, unet_layout, vae, vocoder, schedule };
        cfgs.check().map_err(|message| ModelError::Mismatch { dir: dir.to_path_buf(), message })?;
        Ok(cfgs)
    }

    /// The shapes that must agree between components.
    fn check(&self) -> std::result::Result<(), String> {
        let (u, v, voc) = (&self.unet, &self.vae, &self.vocoder);
        if u.in_channels != v.latent_channels || u.out_channels != v.latent_channels {
            return Err(format!(
                "unet/config.json maps {} → {} channels (in_channels, out_channels) but vae/config.json has latent_channels {}; \
                 all three must be equal",
                u.in_channels, u.out_channels, v.latent_channels
            ));
        }
        if v.in_channels != 1 || v.out_channels != 1 {
            return Err(format!(
                "vae/config.json has in_channels {} and out_channels {}; the VAE of a mel spectrogram needs 1 and 1",
                v.in_channels, v.out_channels
            ));
        }
        let k = v.downsample_factor();
        if voc.model_in_dim % k != 0 {
            return Err(format!(
                "vocoder/config.json has model_in_dim {} mel bins, which does not divide by vae/config.json's downsampling ×{k} \
                 ({} blocks)",
                voc.model_in_dim,
                v.block_out_channels.len()
            ));
        }
        Ok(())
    }
}

/// Where and in which precision the networks run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub device: Device,
    /// UNet and vocoder weights; the VAE stays f32 when its config says `force_upcast`.
    pub dtype: DType,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { device: Device::Cpu, dtype: DType::F32 }
    }
}

impl LoadOptions {
    /// Refuses a precision the device cannot run, before anything is read.
    fn check(&self) -> std::result::Result<(), ModelError> {
        if self.device.is_cpu() && self.dtype == DType::BF16 {
            return Err(ModelError::PrecisionOnCpu(self.dtype));
        }
        Ok(())
    }
}

impl Conditioning {
    /// Check the widths against the UNet's cross-attention and move to `device`/`dtype`.
    fn prepare(&self, layout: &unet::Layout, device: &Device, dtype: DType) -> std::result::Result<Self, ModelError> {
        let bad = |m: String| ModelError::BadConditioning(m);
        let (b, _, d) = self.encoder_hidden_states.dims3().map_err(|e| bad(format!("encoder_hidden_states: {e}")))?;
        let (b1, l1, d1) = self.encoder_hidden_states_1.dims3().map_err(|e| bad(format!("encoder_hidden_states_1: {e}")))?;
        if b != 1 || b1 != 1 {
            return Err(bad(format!("expected one item, got batches of {b} and {b1}")));
        }
        if let Some(mask) = &self.attention_mask_1 {
            if mask.dims() != [1, l1] {
                return Err(bad(format!("attention_mask_1 is {:?}, encoder_hidden_states_1 has {l1} tokens", mask.dims())));
            }
        }
        for (context, want) in layout.cross_attention_widths() {
            let (name, got) = [("encoder_hidden_states", d), ("encoder_hidden_states_1", d1)][context];
            if want != got {
                return Err(bad(format!("{name} has width {got} but the UNet cross-attends with width {want}")));
            }
        }
        let to = |t: &Tensor| t.to_device(device)?.to_dtype(dtype);
        let moved = (|| -> Result<Self> {
            Ok(Self {
                encoder_hidden_states: to(&self.encoder_hidden_states)?,
                encoder_hidden_states_1: to(&self.encoder_hidden_states_1)?,
                attention_mask_1: self.attention_mask_1.as_ref().map(to).transpose()?,
            })
        })();
        moved.map_err(|e| bad(e.to_string()))
    }
}

/// The weights of each component, however they were obtained.
pub struct ComponentWeights<'a> {
    pub unet: VarBuilder<'a>,
    pub vae: VarBuilder<'a>,
    pub vocoder: VarBuilder<'a>,
}

/// The networks of AudioLDM2's [`LatentPrior::decoder_stages`].
pub const VAE_DECODE: &str = "vae_decode";
pub const VOCODER: &str = "vocoder";

/// AudioLDM2's UNet, VAE and vocoder with a fixed conditioning.
pub struct AudioLdm2 {
    unet: AudioLdm2UNet,
    vae: AutoencoderKL,
    vocoder: SpeechT5HifiGan,
    /// The VAE decoder's blocks, then the vocoder's ([`LatentPrior::decoder_stages`]).
    decoder_stages: Vec<DecoderStage>,
    schedule: DdimSchedule,
    conditioning: Conditioning,
    guidance: Option<Guidance>,
    scaling_factor: f64,
    /// Mel frames per latent row times the UNet's total downsampling: the frame count is
    /// rounded up to a multiple of this.
    frame_multiple: usize,
    vae_factor: usize,
    latent_channels: usize,
    latent_width: usize,
    device: Device,
    dtype: DType,
    vae_dtype: DType,
    /// The UNet's, VAE's and vocoder's weight files, when loaded from a directory.
    weight_files: Option<[String; 3]>,
}

impl AudioLdm2 {
    /// Load a model directory in the diffusers layout (`model_index.json`, `unet/`, `vae/`,
    /// `vocoder/`, `scheduler/`).
    pub fn load(dir: &Path, options: &LoadOptions, conditioning: &Conditioning) -> std::result::Result<Self, ModelError> {
        options.check()?;
        if !dir.join("model_index.json").is_file() {
            return Err(ModelError::NotAModelDir(dir.to_path_buf()));
        }
        let configs = ModelConfigs::load(dir)?;
        let vae_dtype = configs.vae.dtype_for(options.dtype);
        let find = |sub: &str| WeightFiles::find(&dir.join(sub));
        let (unet, vae, vocoder) = (find("unet")?, find("vae")?, find("vocoder")?);
        let weights = ComponentWeights {
            unet: unet.var_builder(options.dtype, &options.device)?,
            vae: vae.var_builder(vae_dtype, &options.device)?,
            vocoder: vocoder.var_builder(options.dtype, &options.device)?,
        };
        let mut model = Self::new(configs, weights, conditioning)?;
        model.weight_files = Some([unet, vae, vocoder].map(|f| f.describe()));
        Ok(model)
    }

    /// Load `dir` conditioned on the text `prompt` ("" is the paper's null prompt), its
    /// conditioning taken from the cache or computed by the text models
    /// ([`ConditioningCache`]). A `guidance_scale` other than 1 turns on classifier-free
    /// guidance against the empty negative prompt.
    pub fn load_for_prompt(dir: &Path, options: &LoadOptions, prompt: &str, guidance_scale: f64) -> std::result::Result<Self, ModelError> {
        options.check()?;
        let guided = guidance_scale != 1.0;
        let prompt = Prompt { text: prompt.to_string(), negative: guided.then(String::new) };
        let (conditioning, _) = ConditioningCache::new(dir).get(&prompt, &options.device)?;
        let model = Self::load(dir, options, &conditioning.conditional)?;
        match (&conditioning.unconditional, guided) {
            (Some(unconditional), true) => model.with_guidance(unconditional, guidance_scale),
            _ => Ok(model),
        }
    }

    /// Build from configs and weights (e.g. random weights for benchmarks). The weights'
    /// dtypes and device are the networks'.
    pub fn new(configs: ModelConfigs, weights: ComponentWeights, conditioning: &Conditioning) -> std::result::Result<Self, ModelError> {
        let built = |component: &'static str| move |e: candle_core::Error| ModelError::Weights { component, message: e.to_string() };
        let (device, dtype, vae_dtype) = (weights.unet.device().clone(), weights.unet.dtype(), weights.vae.dtype());
        let unet = AudioLdm2UNet::with_layout(weights.unet, &configs.unet, configs.unet_layout.clone()).map_err(built("unet"))?;
        let vae = AutoencoderKL::new(weights.vae, &configs.vae).map_err(built("vae"))?;
        let vocoder = SpeechT5HifiGan::new(weights.vocoder, &configs.vocoder).map_err(built("vocoder"))?;
        let conditioning = conditioning.prepare(unet.layout(), &device, dtype)?;
        let k = configs.vae.downsample_factor();
        let blocks = |network, count| (0..count).map(move |block| DecoderStage { network, block });
        let decoder_stages = blocks(VAE_DECODE, vae.decode_blocks()).chain(blocks(VOCODER, vocoder.blocks())).collect();
        Ok(Self {
            frame_multiple: k << unet.layout().num_upsamplers(),
            vae_factor: k,
            latent_channels: configs.vae.latent_channels,
            latent_width: configs.vocoder.model_in_dim / k,
            scaling_factor: configs.vae.scaling_factor,
            schedule: configs.schedule,
            unet,
            vae,
            vocoder,
            decoder_stages,
            conditioning,
            guidance: None,
            device,
            dtype,
            vae_dtype,
            weight_files: None,
        })
    }

    /// Classifier-free guidance: ε = ε(uncond) + scale·(ε(cond) − ε(uncond)), the UNet run
    /// on both halves of a doubled batch. `unconditional` must have the conditional's
    /// Flan-T5 length (see `TextEncoders::encode_negative`).
    pub fn with_guidance(mut self, unconditional: &Conditioning, scale: f64) -> std::result::Result<Self, ModelError> {
        let unconditional = unconditional.prepare(self.unet.layout(), &self.device, self.dtype)?;
        let (l, l_u) = (self.conditioning.encoder_hidden_states_1.dims()[1], unconditional.encoder_hidden_states_1.dims()[1]);
        if l != l_u || !scale.is_finite() {
            return Err(ModelError::BadConditioning(format!(
                "guidance needs a finite scale and negative Flan-T5 states of the prompt's length {l} (got scale {scale}, length {l_u})"
            )));
        }
        self.guidance = Some(Guidance { unconditional, scale });
        Ok(self)
    }

    pub fn unet(&self) -> &AudioLdm2UNet {
        &self.unet
    }

    pub fn vae(&self) -> &AutoencoderKL {
        &self.vae
    }

    pub fn vocoder(&self) -> &SpeechT5HifiGan {
        &self.vocoder
    }

    /// Mel frames the VAE produces for `samples` samples (rounded up, see `frame_multiple`).
    fn frames(&self, samples: usize) -> usize {
        let hop = self.vocoder.config().hop_length();
        samples.div_ceil(hop).max(1).div_ceil(self.frame_multiple) * self.frame_multiple
    }
}

struct Guidance {
    unconditional: Conditioning,
    scale: f64,
}

/// The conditioning of every item of a batch of `b`: `c` repeated.
fn repeat(c: &Conditioning, b: usize) -> Result<Conditioning> {
    let rep = |x: &Tensor| -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        dims[0] = b;
        x.broadcast_as(dims)?.contiguous()
    };
    Ok(Conditioning {
        encoder_hidden_states: rep(&c.encoder_hidden_states)?,
        encoder_hidden_states_1: rep(&c.encoder_hidden_states_1)?,
        attention_mask_1: c.attention_mask_1.as_ref().map(rep).transpose()?,
    })
}

/// The Flan-T5 mask of `c`, all ones when it has none.
fn mask_or_ones(mask: &Option<Tensor>, c: &Conditioning) -> Result<Tensor> {
    match mask {
        Some(m) => Ok(m.clone()),
        None => {
            let (b, l, _) = c.encoder_hidden_states_1.dims3()?;
            Tensor::ones((b, l), c.encoder_hidden_states_1.dtype(), c.encoder_hidden_states_1.device())
        }
    }
}

impl LatentPrior for AudioLdm2 {
    fn sample_rate(&self) -> u32 {
        self.vocoder.config().sampling_rate as u32
    }

    fn latent_shape(&self, samples: usize) -> (usize, usize, usize) {
        (self.latent_channels, self.frames(samples) / self.vae_factor, self.latent_width)
    }

    fn schedule(&self) -> &DdimSchedule {
        &self.schedule
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn describe(&self, part: Part) -> String {
        match (part, &self.weight_files) {
            (Part::NoisePredictor, Some([unet, _, _])) => format!("UNet ({unet})"),
            (Part::Decoder, Some([_, vae, vocoder])) => format!("VAE or vocoder ({vae}, {vocoder})"),
            (Part::NoisePredictor, None) => "UNet".into(),
            (Part::Decoder, None) => "VAE or vocoder".into(),
        }
    }

    fn predict_noise(&self, z_t: &Tensor, timesteps: &[usize]) -> Result<Tensor> {
        self.eps(&z_t.detach(), timesteps)
    }

    fn predict_noise_differentiable(&self, z_t: &Tensor, timesteps: &[usize]) -> Result<Tensor> {
        self.eps(z_t, timesteps)
    }

    fn decode(&self, z: &Tensor, samples: usize) -> Result<Tensor> {
        (0..self.decoder_stages.len()).try_fold(z.clone(), |x, index| self.decode_stage(index, &x, samples))
    }

    /// The VAE decoder's blocks (latents → log-mel (B, frames, bins)), then the vocoder's
    /// (→ waveforms, cropped to `samples`): each takes at most about a second on a CPU.
    fn decoder_stages(&self) -> &[DecoderStage] {
        &self.decoder_stages
    }

    fn decode_stage(&self, index: usize, x: &Tensor, samples: usize) -> Result<Tensor> {
        let Some(&DecoderStage { network, block }) = self.decoder_stages.get(index) else {
            candle_core::bail!("decode_stage: AudioLDM2's decoder has {} stages, not {}", self.decoder_stages.len(), index + 1)
        };
        let last = |count: usize| block + 1 == count;
        if network == VAE_DECODE {
            let x = if block == 0 { (x.to_dtype(self.vae_dtype)? / self.scaling_factor)? } else { x.clone() };
            let y = self.vae.decode_block(block, &x)?;
            return if last(self.vae.decode_blocks()) { y.squeeze(1) } else { Ok(y) };
        }
        let x = if block == 0 { x.to_dtype(self.dtype)? } else { x.clone() };
        let y = self.vocoder.forward_block(block, &x)?;
        if !last(self.vocoder.blocks()) {
            return Ok(y);
        }
        let have = y.dim(1)?;
        if samples > have {
            candle_core::bail!("decode: the mel frames give {have} samples, {samples} were asked for");
        }
        y.narrow(1, 0, samples)?.to_dtype(DType::F32)
    }
}

impl AudioLdm2 {
    /// ε for the batch `z_t`, guided if configured; differentiable when `z_t` is tracked.
    fn eps(&self, z_t: &Tensor, timesteps: &[usize]) -> Result<Tensor> {
        let b = z_t.dim(0)?;
        let z = z_t.to_dtype(self.dtype)?;
        let t: Vec<f32> = timesteps.iter().map(|&t| t as f32).collect();
        let t = Tensor::from_vec(t, timesteps.len(), &self.device)?;
        let unet = |z: &Tensor, t: &Tensor, c: &Conditioning| {
            self.unet.forward(z, t, &c.encoder_hidden_states, &c.encoder_hidden_states_1, c.attention_mask_1.as_ref())
        };
        let cond = repeat(&self.conditioning, b)?;
        let eps = match &self.guidance {
            None => unet(&z, &t, &cond)?,
            Some(g) => {
                let uncond = repeat(&g.unconditional, b)?;
                let both = Conditioning {
                    encoder_hidden_states: Tensor::cat(&[&uncond.encoder_hidden_states, &cond.encoder_hidden_states], 0)?,
                    encoder_hidden_states_1: Tensor::cat(&[&uncond.encoder_hidden_states_1, &cond.encoder_hidden_states_1], 0)?,
                    attention_mask_1: match (&uncond.attention_mask_1, &cond.attention_mask_1) {
                        (None, None) => None,
                        (u, c) => Some(Tensor::cat(&[&mask_or_ones(u, &uncond)?, &mask_or_ones(c, &cond)?], 0)?),
                    },
                };
                let t = if t.dim(0)? == 1 { t } else { Tensor::cat(&[&t, &t], 0)? };
                let eps = unet(&Tensor::cat(&[&z, &z], 0)?, &t, &both)?;
                let (eps_u, eps_c) = (eps.narrow(0, 0, b)?, eps.narrow(0, b, b)?);
                (&eps_u + ((eps_c - &eps_u)? * g.scale)?)?
            }
        };
        eps.to_dtype(DType::F32)
    }
}
