//! The UNet's non-attention layers: activations, the sinusoidal time embedding and its MLP,
//! ResNet blocks with a time projection, and the down/up samplers (diffusers' `embeddings.py`,
//! `resnet.py`, `downsampling.py`, `upsampling.py`).

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, GroupNorm, Linear, VarBuilder};

/// diffusers' `get_activation` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `silu` / `swish`.
    Silu,
    /// `mish`: x·tanh(softplus(x)).
    Mish,
    /// `gelu` (exact, erf).
    Gelu,
    /// `relu`.
    Relu,
}

impl Activation {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "silu" | "swish" => Some(Self::Silu),
            "mish" => Some(Self::Mish),
            "gelu" => Some(Self::Gelu),
            "relu" => Some(Self::Relu),
            _ => None,
        }
    }

    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Silu => x.silu(),
            Self::Gelu => x.gelu_erf(),
            Self::Relu => x.relu(),
            Self::Mish => {
                // softplus(x) = ln(1 + e^x); for large x e^x overflows to inf and tanh(inf) = 1.
                let sp = x.exp()?.affine(1.0, 1.0)?.log()?;
                x * sp.tanh()?
            }
        }
    }
}

/// diffusers' `get_timestep_embedding` (max_period 10000, scale 1): per item
/// `[sin(t·f_i), cos(t·f_i)]` with `f_i = exp(−ln(10000)·i / (half − shift))`, swapped to
/// `[cos, sin]` when `flip_sin_to_cos`; a zero column is appended for an odd `dim`.
/// Computed in f32 as diffusers does (the frequencies are rounded exactly as torch rounds them).
pub fn timestep_embedding(timesteps: &Tensor, dim: usize, flip_sin_to_cos: bool, freq_shift: f64) -> Result<Tensor> {
    let half = dim / 2;
    let neg_log = -(10000f64.ln()) as f32;
    let denom = half as f32 - freq_shift as f32;
    let freqs: Vec<f32> = (0..half).map(|i| ((neg_log * i as f32) / denom).exp()).collect();
    let freqs = Tensor::from_vec(freqs, (1, half), timesteps.device())?;
    let t = timesteps.to_dtype(DType::F32)?.flatten_all()?.unsqueeze(1)?;
    let args = t.broadcast_mul(&freqs)?;
    let (sin, cos) = (args.sin()?, args.cos()?);
    let emb = if flip_sin_to_cos { Tensor::cat(&[&cos, &sin], 1)? } else { Tensor::cat(&[&sin, &cos], 1)? };
    if dim % 2 == 1 {
        emb.pad_with_zeros(1, 0, 1)
    } else {
        Ok(emb)
    }
}

/// `TimestepEmbedding`: `linear_1` → act → `linear_2` (→ optional post-act).
#[derive(Debug, Clone)]
pub struct TimestepEmbedding {
    linear_1: Linear,
    linear_2: Linear,
    act: Activation,
    post_act: Option<Activation>,
}

impl TimestepEmbedding {
    pub fn new(vb: VarBuilder, in_dim: usize, dim: usize, act: Activation, post_act: Option<Activation>) -> Result<Self> {
        Ok(Self {
            linear_1: candle_nn::linear(in_dim, dim, vb.pp("linear_1"))?,
            linear_2: candle_nn::linear(dim, dim, vb.pp("linear_2"))?,
            act,
            post_act,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.act.apply(&self.linear_1.forward(x)?)?;
        let x = self.linear_2.forward(&x)?;
        match self.post_act {
            Some(a) => a.apply(&x),
            None => Ok(x),
        }
    }
}

/// A 1×1 convolution as one matrix product: (B, C_in, H, W) → (B, C_out, H, W).
#[derive(Debug, Clone)]
pub struct Conv1x1 {
    /// (C_out, C_in)
    weight: Tensor,
    /// (1, C_out, 1)
    bias: Option<Tensor>,
}

impl Conv1x1 {
    pub fn new(vb: VarBuilder, c_in: usize, c_out: usize, bias: bool) -> Result<Self> {
        let weight = vb.get((c_out, c_in, 1, 1), "weight")?.reshape((c_out, c_in))?;
        let bias = if bias { Some(vb.get(c_out, "bias")?.reshape((1, c_out, 1))?) } else { None };
        Ok(Self { weight, bias })
    }

    /// (B, C_in, L) → (B, C_out, L); `x` may be strided (e.g. a transposed token matrix).
    pub fn forward_flat(&self, x: &Tensor) -> Result<Tensor> {
        let b = x.dim(0)?;
        let y = self.weight.broadcast_left(b)?.matmul(x)?;
        match &self.bias {
            Some(bias) => y.broadcast_add(bias),
            None => Ok(y),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let y = self.forward_flat(&x.reshape((b, c, h * w))?)?;
        y.reshape((b, (), h, w))
    }
}

pub fn conv2d(vb: VarBuilder, c_in: usize, c_out: usize, kernel: usize, stride: usize, padding: usize) -> Result<Conv2d> {
    let cfg = Conv2dConfig { padding, stride, ..Default::default() };
    candle_nn::conv2d(c_in, c_out, kernel, cfg, vb)
}

/// How the time embedding enters a ResNet block (`resnet_time_scale_shift`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeScaleShift {
    /// `default`: added before `norm2`.
    Add,
    /// `scale_shift`: `norm2(h)·(1 + scale) + shift`.
    ScaleShift,
}

/// Settings shared by every ResNet block of the UNet.
#[derive(Debug, Clone, Copy)]
pub struct ResnetSettings {
    pub groups: usize,
    pub eps: f64,
    pub act: Activation,
    pub temb_channels: usize,
    pub time_scale_shift: TimeScaleShift,
}

/// diffusers' `ResnetBlock2D` (pre-norm, 3×3 convs, time projection, 1×1 shortcut when the
/// width changes).
#[derive(Debug, Clone)]
pub struct ResnetBlock2D {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Linear,
    norm2: GroupNorm,
    conv2: Conv2d,
    conv_shortcut: Option<Conv1x1>,
    act: Activation,
    time_scale_shift: TimeScaleShift,
    output_scale_factor: f64,
}

impl ResnetBlock2D {
    pub fn new(vb: VarBuilder, c_in: usize, c_out: usize, s: &ResnetSettings, output_scale_factor: f64) -> Result<Self> {
        let temb_out = match s.time_scale_shift {
            TimeScaleShift::Add => c_out,
            TimeScaleShift::ScaleShift => 2 * c_out,
        };
        Ok(Self {
            norm1: candle_nn::group_norm(s.groups, c_in, s.eps, vb.pp("norm1"))?,
            conv1: conv2d(vb.pp("conv1"), c_in, c_out, 3, 1, 1)?,
            time_emb_proj: candle_nn::linear(s.temb_channels, temb_out, vb.pp("time_emb_proj"))?,
            norm2: candle_nn::group_norm(s.groups, c_out, s.eps, vb.pp("norm2"))?,
            conv2: conv2d(vb.pp("conv2"), c_out, c_out, 3, 1, 1)?,
            conv_shortcut: if c_in != c_out { Some(Conv1x1::new(vb.pp("conv_shortcut"), c_in, c_out, true)?) } else { None },
            act: s.act,
            time_scale_shift: s.time_scale_shift,
            output_scale_factor,
        })
    }

    /// `temb_act` is the time embedding after the block's non-linearity (the same for every
    /// block, so the caller computes it once).
    pub fn forward(&self, x: &Tensor, temb_act: &Tensor) -> Result<Tensor> {
        let h = self.act.apply(&self.norm1.forward(x)?)?;
        let h = self.conv1.forward(&h)?;
        let t = self.time_emb_proj.forward(temb_act)?.unsqueeze(2)?.unsqueeze(3)?;
        let h = match self.time_scale_shift {
            TimeScaleShift::Add => self.norm2.forward(&h.broadcast_add(&t)?)?,
            TimeScaleShift::ScaleShift => {
                let c = t.dim(1)? / 2;
                let (scale, shift) = (t.narrow(1, 0, c)?, t.narrow(1, c, c)?);
                self.norm2.forward(&h)?.broadcast_mul(&(scale + 1.0)?)?.broadcast_add(&shift)?
            }
        };
        let h = self.conv2.forward(&self.act.apply(&h)?)?;
        let x = match &self.conv_shortcut {
            Some(conv) => conv.forward(x)?,
            None => x.clone(),
        };
        let out = (x + h)?;
        if self.output_scale_factor == 1.0 {
            Ok(out)
        } else {
            out / self.output_scale_factor
        }
    }
}

/// `Downsample2D(use_conv=True)`: 3×3 conv, stride 2 (`padding` 0 pads right/bottom by one).
#[derive(Debug, Clone)]
pub struct Downsample2D {
    conv: Conv2d,
    pad_right_bottom: bool,
}

impl Downsample2D {
    pub fn new(vb: VarBuilder, channels: usize, padding: usize) -> Result<Self> {
        Ok(Self { conv: conv2d(vb.pp("conv"), channels, channels, 3, 2, padding)?, pad_right_bottom: padding == 0 })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.pad_right_bottom {
            let x = x.pad_with_zeros(3, 0, 1)?.pad_with_zeros(2, 0, 1)?;
            self.conv.forward(&x)
        } else {
            self.conv.forward(x)
        }
    }
}

/// `Upsample2D(use_conv=True)`: nearest-neighbour upsampling to `size` (twice the input when
/// the sizes divide evenly), then a 3×3 conv.
#[derive(Debug, Clone)]
pub struct Upsample2D {
    conv: Conv2d,
}

impl Upsample2D {
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(Self { conv: conv2d(vb.pp("conv"), channels, channels, 3, 1, 1)? })
    }

    pub fn forward(&self, x: &Tensor, size: Option<(usize, usize)>) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let (th, tw) = size.unwrap_or((2 * h, 2 * w));
        self.conv.forward(&x.upsample_nearest2d(th, tw)?)
    }
}
