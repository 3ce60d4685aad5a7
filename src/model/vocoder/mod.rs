//! The HiFi-GAN vocoder of AudioLDM2: transformers' `SpeechT5HifiGan` in candle.
//!
//! Log-mel (batch, frames, mel bins) → waveform (batch, samples). All weights are frozen;
//! the forward is differentiable with respect to the mel input (the guidance
//! back-propagates through it). Two implementations of the same [`Layout`]:
//! - [`fused`] (CPU, f32): each upsampling block is one autograd node over the CPU kernels,
//!   with a hand-written backward that keeps one bit per activation;
//! - [`graph`] (any other device or dtype): candle ops with the input-gradient-only ops of
//!   [`super::ops`] (candle has no backward for `conv_transpose1d`).

mod fused;
mod graph;

use crate::config::{read_config, ConfigError};
use crate::kernels;
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use std::path::Path;

/// `SpeechT5HifiGanConfig` as transformers writes it to `config.json` (defaults are
/// transformers' defaults; unknown keys are ignored).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Config {
    #[serde(default = "default_model_in_dim")]
    pub model_in_dim: usize,
    #[serde(default = "default_sampling_rate")]
    pub sampling_rate: usize,
    #[serde(default = "default_upsample_initial_channel")]
    pub upsample_initial_channel: usize,
    #[serde(default = "default_upsample_rates")]
    pub upsample_rates: Vec<usize>,
    #[serde(default = "default_upsample_kernel_sizes")]
    pub upsample_kernel_sizes: Vec<usize>,
    #[serde(default = "default_resblock_kernel_sizes")]
    pub resblock_kernel_sizes: Vec<usize>,
    #[serde(default = "default_resblock_dilation_sizes")]
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
    #[serde(default = "default_leaky_relu_slope")]
    pub leaky_relu_slope: f64,
    #[serde(default = "default_normalize_before")]
    pub normalize_before: bool,
}

fn default_model_in_dim() -> usize {
    80
}
fn default_sampling_rate() -> usize {
    16000
}
fn default_upsample_initial_channel() -> usize {
    512
}
fn default_upsample_rates() -> Vec<usize> {
    vec![4, 4, 4, 4]
}
fn default_upsample_kernel_sizes() -> Vec<usize> {
    vec![8, 8, 8, 8]
}
fn default_resblock_kernel_sizes() -> Vec<usize> {
    vec![3, 7, 11]
}
fn default_resblock_dilation_sizes() -> Vec<Vec<usize>> {
    vec![vec![1, 3, 5]; 3]
}
fn default_leaky_relu_slope() -> f64 {
    0.1
}
fn default_normalize_before() -> bool {
    true
}

/// Slope of the `leaky_relu` before `conv_post` (transformers calls it without a slope).
const FINAL_LEAKY_RELU_SLOPE: f64 = 0.01;

impl Config {
    /// Read and check `config.json`.
    pub fn from_file(path: &Path) -> std::result::Result<Self, ConfigError> {
        let cfg: Self = read_config(path)?;
        cfg.check().map_err(|(field, value, why)| ConfigError::unsupported(path, field, value, why))?;
        Ok(cfg)
    }

    fn check(&self) -> std::result::Result<(), (&'static str, String, String)> {
        let rates = crate::audio::MIN_SAMPLE_RATE as usize..=crate::audio::MAX_SAMPLE_RATE as usize;
        if !rates.contains(&self.sampling_rate) {
            return Err(("sampling_rate", self.sampling_rate.to_string(), format!("must lie within {}–{} Hz (AudioLDM2: 16000)", rates.start(), rates.end())));
        }
        if !(0.0..=1.0).contains(&self.leaky_relu_slope) {
            return Err(("leaky_relu_slope", self.leaky_relu_slope.to_string(), "must lie between 0 and 1 (AudioLDM2: 0.1)".into()));
        }
        let n = self.upsample_rates.len();
        if n == 0 {
            return Err(("upsample_rates", "[]".into(), "at least one upsampler is needed".into()));
        }
        if self.upsample_kernel_sizes.len() != n {
            return Err(("upsample_kernel_sizes", format!("{:?}", self.upsample_kernel_sizes), format!("needs one entry per upsample rate ({n})")));
        }
        if let Some((r, k)) = self.upsample_rates.iter().zip(&self.upsample_kernel_sizes).find(|(r, k)| **r == 0 || k < r) {
            return Err((
                "upsample_kernel_sizes",
                format!("{:?}", self.upsample_kernel_sizes),
                format!("kernel {k} for rate {r}: the kernel must be at least the (non-zero) rate"),
            ));
        }
        if !self.upsample_initial_channel.is_multiple_of(1 << n) || self.upsample_initial_channel >> n == 0 {
            return Err((
                "upsample_initial_channel",
                self.upsample_initial_channel.to_string(),
                format!("must be divisible by 2^{n} (channels halve at every upsampler)"),
            ));
        }
        if self.resblock_kernel_sizes.is_empty() || self.resblock_kernel_sizes.contains(&0) {
            return Err(("resblock_kernel_sizes", format!("{:?}", self.resblock_kernel_sizes), "needs non-zero kernel sizes".into()));
        }
        if self.resblock_dilation_sizes.len() != self.resblock_kernel_sizes.len() {
            return Err((
                "resblock_dilation_sizes",
                format!("{:?}", self.resblock_dilation_sizes),
                format!("needs one list per resblock kernel size ({})", self.resblock_kernel_sizes.len()),
            ));
        }
        if self.resblock_dilation_sizes.iter().any(|d| d.contains(&0)) {
            return Err(("resblock_dilation_sizes", format!("{:?}", self.resblock_dilation_sizes), "dilations must be non-zero".into()));
        }
        if self.model_in_dim == 0 {
            return Err(("model_in_dim", "0".into(), "must be non-zero".into()));
        }
        Ok(())
    }

    /// Samples per input frame (the product of the upsample rates).
    pub fn hop_length(&self) -> usize {
        self.upsample_rates.iter().product()
    }

    /// Number of output samples for `frames` input frames (PyTorch's transposed-conv length
    /// formula per upsampler; HiFi-GAN convs keep the length otherwise).
    pub fn output_len(&self, frames: usize) -> usize {
        self.upsample_rates.iter().zip(&self.upsample_kernel_sizes).fold(frames, |l, (&r, &k)| if l == 0 { 0 } else { (l - 1) * r + k - 2 * ((k - r) / 2) })
    }
}

/// A conv weight, plain or stored with weight norm (old `weight_g`/`weight_v`, or the
/// parametrization's `original0`/`original1`); weight norm over all dims but 0.
fn conv_weight(vb: &VarBuilder, shape: (usize, usize, usize)) -> Result<Tensor> {
    let (g, v) = if vb.contains_tensor("weight") {
        return vb.get(shape, "weight");
    } else if vb.contains_tensor("weight_g") {
        (vb.get((shape.0, 1, 1), "weight_g")?, vb.get(shape, "weight_v")?)
    } else if vb.contains_tensor("parametrizations.weight.original0") {
        (vb.get((shape.0, 1, 1), "parametrizations.weight.original0")?, vb.get(shape, "parametrizations.weight.original1")?)
    } else {
        return vb.get(shape, "weight"); // the loader's "missing tensor" error
    };
    let norm = v.sqr()?.sum_keepdim(2)?.sum_keepdim(1)?.sqrt()?;
    v.broadcast_mul(&g.broadcast_div(&norm)?)
}

/// A convolution of the checkpoint: where its weights are, and its geometry (stride 1).
#[derive(Debug, Clone)]
struct ConvSpec {
    name: String,
    c_in: usize,
    c_out: usize,
    kernel: usize,
    padding: usize,
    dilation: usize,
}

impl ConvSpec {
    /// (weight (c_out, c_in, kernel), bias).
    fn load(&self, vb: &VarBuilder) -> Result<(Tensor, Tensor)> {
        let vb = vb.pp(&self.name);
        Ok((conv_weight(&vb, (self.c_out, self.c_in, self.kernel))?, vb.get(self.c_out, "bias")?))
    }
}

/// A transposed convolution (upsampler) of the checkpoint.
#[derive(Debug, Clone)]
struct UpsamplerSpec {
    name: String,
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl UpsamplerSpec {
    /// (weight (c_in, c_out, kernel), bias).
    fn load(&self, vb: &VarBuilder) -> Result<(Tensor, Tensor)> {
        let vb = vb.pp(&self.name);
        Ok((conv_weight(&vb, (self.c_in, self.c_out, self.kernel))?, vb.get(self.c_out, "bias")?))
    }
}

/// One upsampling stage: `x ← mean_j resblock_j(upsampler(leaky_relu(x)))`, where a
/// resblock is a chain of pairs `x ← x + conv2(leaky_relu(conv1(leaky_relu(x))))`.
#[derive(Debug, Clone)]
struct StageSpec {
    upsampler: UpsamplerSpec,
    /// Per resblock, its (`convs1.i`, `convs2.i`) pairs.
    resblocks: Vec<Vec<(ConvSpec, ConvSpec)>>,
}

/// The network as transformers builds it from a [`Config`], with the checkpoint's names.
#[derive(Debug, Clone)]
struct Layout {
    conv_pre: ConvSpec,
    stages: Vec<StageSpec>,
    conv_post: ConvSpec,
    /// The leaky ReLU slope inside the stages ([`FINAL_LEAKY_RELU_SLOPE`] before `conv_post`).
    slope: f64,
}

impl Layout {
    fn of(cfg: &Config) -> Self {
        let conv = |name: String, c_in, c_out, kernel, padding, dilation| ConvSpec { name, c_in, c_out, kernel, padding, dilation };
        let ch0 = cfg.upsample_initial_channel;
        let nk = cfg.resblock_kernel_sizes.len();
        let stages = cfg
            .upsample_rates
            .iter()
            .zip(&cfg.upsample_kernel_sizes)
            .enumerate()
            .map(|(i, (&stride, &kernel))| {
                let (c_in, c_out) = (ch0 >> i, ch0 >> (i + 1));
                let upsampler = UpsamplerSpec { name: format!("upsampler.{i}"), c_in, c_out, kernel, stride, padding: (kernel - stride) / 2 };
                let resblocks = cfg
                    .resblock_kernel_sizes
                    .iter()
                    .zip(&cfg.resblock_dilation_sizes)
                    .enumerate()
                    .map(|(j, (&k, dilations))| {
                        let name = format!("resblocks.{}", i * nk + j);
                        let padding = |d: usize| (k * d - d) / 2;
                        dilations
                            .iter()
                            .enumerate()
                            .map(|(p, &d)| {
                                (
                                    conv(format!("{name}.convs1.{p}"), c_out, c_out, k, padding(d), d),
                                    conv(format!("{name}.convs2.{p}"), c_out, c_out, k, padding(1), 1),
                                )
                            })
                            .collect()
                    })
                    .collect();
                StageSpec { upsampler, resblocks }
            })
            .collect();
        let c_last = ch0 >> cfg.upsample_rates.len();
        Self {
            conv_pre: conv("conv_pre".into(), cfg.model_in_dim, ch0, 7, 3, 1),
            stages,
            conv_post: conv("conv_post".into(), c_last, 1, 7, 3, 1),
            slope: cfg.leaky_relu_slope,
        }
    }
}

/// The layers, in the implementation the weights' device and dtype call for.
#[derive(Debug, Clone)]
enum Network {
    Fused(fused::Network),
    Graph(graph::Network),
}

/// transformers' `SpeechT5HifiGan` with frozen weights.
#[derive(Debug, Clone)]
pub struct SpeechT5HifiGan {
    network: Network,
    /// (mean, scale), each (model_in_dim,), when `normalize_before`.
    normalize: Option<(Tensor, Tensor)>,
    cfg: Config,
}

impl SpeechT5HifiGan {
    pub fn new(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        cfg.check().map_err(|(field, value, why)| candle_core::Error::Msg(format!("vocoder config: `{field}` = {value}: {why}")))?;
        let layout = Layout::of(cfg);
        let network = if kernels::applies(vb.device(), vb.dtype()) {
            Network::Fused(fused::Network::new(&vb, &layout)?)
        } else {
            Network::Graph(graph::Network::new(&vb, &layout)?)
        };
        let normalize = if cfg.normalize_before { Some((vb.get(cfg.model_in_dim, "mean")?, vb.get(cfg.model_in_dim, "scale")?)) } else { None };
        Ok(Self { network, normalize, cfg: cfg.clone() })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Log-mel (batch, frames, model_in_dim) → waveform (batch, `cfg.output_len(frames)`);
    /// an unbatched (frames, model_in_dim) input gives (samples,). Differentiable w.r.t. `mel`.
    pub fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        let batched = match mel.rank() {
            3 => true,
            2 => false,
            _ => candle_core::bail!("vocoder: expected (batch, frames, {}) mel, got {:?}", self.cfg.model_in_dim, mel.dims()),
        };
        let mel = if batched { mel.clone() } else { mel.unsqueeze(0)? };
        let wave = (0..self.blocks()).try_fold(mel, |x, block| self.forward_block(block, &x))?;
        if batched {
            Ok(wave)
        } else {
            wave.squeeze(0)
        }
    }

    /// How many blocks [`SpeechT5HifiGan::forward`] runs, one after the other: one per
    /// upsampler.
    pub fn blocks(&self) -> usize {
        self.cfg.upsample_rates.len()
    }

    /// Block `block` of the forward: the log-mel (batch, frames, model_in_dim) for block 0
    /// (normalised here, then `conv_pre`), the previous block's output (batch, channels,
    /// samples) after that; the last block (`conv_post`, tanh) gives the waveform (batch,
    /// samples). Differentiable w.r.t. `x`.
    pub fn forward_block(&self, block: usize, x: &Tensor) -> Result<Tensor> {
        let x = if block > 0 {
            x.clone()
        } else {
            let (_, frames, bins) = x
                .dims3()
                .map_err(|_| candle_core::Error::Msg(format!("vocoder: expected (batch, frames, {}) mel, got {:?}", self.cfg.model_in_dim, x.dims())))?;
            if bins != self.cfg.model_in_dim || frames == 0 {
                candle_core::bail!("vocoder: expected (batch, frames > 0, {}) mel, got {:?}", self.cfg.model_in_dim, x.dims())
            }
            match &self.normalize {
                Some((mean, scale)) => x.broadcast_sub(mean)?.broadcast_div(scale)?,
                None => x.clone(),
            }
        };
        match &self.network {
            Network::Fused(n) => n.forward_block(block, &x),
            Network::Graph(n) => n.forward_block(block, &x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audioldm2_output_length() {
        let cfg: Config = serde_json::from_str(
            r#"{"model_in_dim": 64, "upsample_rates": [5,4,2,2,2], "upsample_kernel_sizes": [16,16,8,4,4],
                "upsample_initial_channel": 1024, "normalize_before": false, "unknown": 1}"#,
        )
        .unwrap();
        assert!(cfg.check().is_ok());
        assert_eq!(cfg.hop_length(), 160);
        assert_eq!(cfg.output_len(512), 160 * 512 + 32);
        assert_eq!(cfg.resblock_dilation_sizes, vec![vec![1, 3, 5]; 3]);
    }

    #[test]
    fn bad_config_names_the_field() {
        let cfg: Config = serde_json::from_str(r#"{"upsample_rates": [4,4], "upsample_kernel_sizes": [8]}"#).unwrap();
        assert_eq!(cfg.check().unwrap_err().0, "upsample_kernel_sizes");
        for rate in [0, 1, 1_000_000_000] {
            let cfg: Config = serde_json::from_str(&format!(r#"{{"sampling_rate": {rate}, "upsample_rates": [4], "upsample_kernel_sizes": [8]}}"#)).unwrap();
            assert_eq!(cfg.check().unwrap_err().0, "sampling_rate");
        }
        for slope in ["-0.1", "1.5", "1e308"] {
            let cfg: Config =
                serde_json::from_str(&format!(r#"{{"leaky_relu_slope": {slope}, "upsample_rates": [4], "upsample_kernel_sizes": [8]}}"#)).unwrap();
            assert_eq!(cfg.check().unwrap_err().0, "leaky_relu_slope");
        }
    }
}
