//! Layers the UNet and the VAE share, named as diffusers names them (`resnet.py`,
//! `downsampling.py`, `upsampling.py`, `activations.py`).
//!
//! All weights are frozen: where a gradient must flow (the VAE decoder), it flows to the
//! input only, and the convolutions skip the weight gradient candle would compute.

use crate::kernels;
use candle_core::{Module, Result, Tensor, D};
use candle_nn::{Linear, VarBuilder};
use std::sync::Arc;

/// diffusers' `get_activation` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `silu` / `swish`.
    Silu,
    /// `gelu` (exact, erf).
    Gelu,
    Relu,
    /// x·tanh(softplus(x)).
    Mish,
}

impl Activation {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "silu" | "swish" => Some(Self::Silu),
            "gelu" => Some(Self::Gelu),
            "relu" => Some(Self::Relu),
            "mish" => Some(Self::Mish),
            _ => None,
        }
    }
}

impl Module for Activation {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::Silu => xs.silu(),
            Self::Gelu => xs.gelu_erf(),
            Self::Relu => xs.relu(),
            // softplus = max(x, 0) + ln(1 + e^−|x|), stable for large |x|.
            Self::Mish => {
                let softplus = (xs.relu()? + (xs.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
                xs * softplus.tanh()?
            }
        }
    }
}

/// `nn.LayerNorm` over the last axis. candle's fused kernel has no backward, so when a
/// gradient is wanted (DITTO differentiates through the UNet) the composite form runs.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    fused: candle_nn::LayerNorm,
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn new(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        let (weight, bias) = (vb.get(dim, "weight")?, vb.get(dim, "bias")?);
        Ok(Self { fused: candle_nn::LayerNorm::new(weight.clone(), bias.clone(), eps), weight, bias, eps })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !x.track_op() {
            return self.fused.forward(x);
        }
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        centred.broadcast_div(&(var + self.eps)?.sqrt()?)?.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

/// Softmax along the last axis: the CPU kernel (with its input gradient) in f32. candle's
/// fused kernel has no backward (and raises no error: the input silently gets no
/// gradient), so elsewhere, when a gradient is wanted, the composite form runs; its shift
/// by the maximum is detached, as softmax does not depend on it.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    if kernels::applies(xs.device(), xs.dtype()) {
        return kernels::op::apply(&Arc::new(kernels::softmax::Softmax), xs);
    }
    if !xs.track_op() {
        return candle_nn::ops::softmax_last_dim(xs);
    }
    let max = xs.max_keepdim(D::Minus1)?.detach();
    let num = xs.broadcast_sub(&max)?.exp()?;
    let den = num.sum_keepdim(D::Minus1)?;
    num.broadcast_div(&den)
}

/// `nn.Conv2d` with frozen weights (`weight` (out, in, k, k), `bias` (out)).
///
/// On the CPU in f32, stride-1 convolutions run on the im2col kernels
/// ([`kernels::conv2d`]), whose backward is the input gradient alone (the convolution with
/// the flipped, transposed kernel). candle's own `conv2d` backward also computes the unused
/// weight gradient and routes the input gradient through a direct-loop transposed
/// convolution (at the VAE decoder's full size, decode + backward took 75 s against a 12 s
/// forward). Other devices, dtypes and strides use candle's `conv2d`.
#[derive(Debug, Clone)]
pub enum Conv2d {
    Kernel(Arc<kernels::conv2d::Conv2d>),
    Candle { weight: Tensor, bias: Tensor, padding: usize, stride: usize },
}

impl Conv2d {
    /// A square `kernel` with a bias, as diffusers builds every 2-D convolution.
    pub fn new(vb: VarBuilder, c_in: usize, c_out: usize, kernel: usize, stride: usize, padding: usize) -> Result<Self> {
        let weight = vb.get((c_out, c_in, kernel, kernel), "weight")?;
        let bias = vb.get(c_out, "bias")?;
        if stride == 1 && kernels::applies(vb.device(), vb.dtype()) {
            let conv = kernels::conv2d::Conv2d::new(
                kernels::tensor::to_vec(&weight)?,
                Some(kernels::tensor::to_vec(&bias)?),
                (c_out, c_in, kernel, kernel),
                stride,
                padding,
            );
            return Ok(Self::Kernel(Arc::new(conv)));
        }
        Ok(Self::Candle { weight, bias: bias.reshape((1, c_out, 1, 1))?, padding, stride })
    }
}

impl Module for Conv2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::Kernel(conv) => kernels::op::apply(conv, xs),
            Self::Candle { weight, bias, padding, stride } => xs.conv2d(weight, *padding, *stride, 1, 1)?.broadcast_add(bias),
        }
    }
}

/// `nn.GroupNorm`, and the activation after it fused in when it is SiLU on the CPU
/// ([`kernels::norm`]: one pass forward, one backward, the input the only thing kept).
#[derive(Debug, Clone)]
pub enum GroupNorm {
    Kernel { plain: Arc<kernels::norm::GroupNorm>, silu: Arc<kernels::norm::GroupNorm> },
    Candle(candle_nn::GroupNorm),
}

/// `nn.GroupNorm(groups, channels, eps)` with weights `weight` and `bias` under `vb`.
pub fn group_norm(groups: usize, channels: usize, eps: f64, vb: VarBuilder) -> Result<GroupNorm> {
    let (weight, bias) = (vb.get(channels, "weight")?, vb.get(channels, "bias")?);
    if groups == 0 || !channels.is_multiple_of(groups) {
        candle_core::bail!("group norm: {groups} groups do not divide {channels} channels")
    }
    if kernels::applies(vb.device(), vb.dtype()) {
        let (w, b) = (kernels::tensor::to_vec(&weight)?, kernels::tensor::to_vec(&bias)?);
        let norm = |silu| Arc::new(kernels::norm::GroupNorm::new(groups, eps, w.clone(), b.clone(), silu));
        return Ok(GroupNorm::Kernel { plain: norm(false), silu: norm(true) });
    }
    Ok(GroupNorm::Candle(candle_nn::GroupNorm::new(weight, bias, channels, groups, eps)?))
}

impl GroupNorm {
    /// `act(norm(x))`.
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        match (self, act) {
            (Self::Kernel { silu, .. }, Activation::Silu) => kernels::op::apply(silu, x),
            _ => act.forward(&self.forward(x)?),
        }
    }
}

impl Module for GroupNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Kernel { plain, .. } => kernels::op::apply(plain, x),
            Self::Candle(norm) => norm.forward(x),
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
}

impl Module for Conv1x1 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let y = self.forward_flat(&x.reshape((b, c, h * w))?)?;
        y.reshape((b, (), h, w))
    }
}

/// How the time embedding enters a ResNet block (`resnet_time_scale_shift`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeScaleShift {
    /// `default`: added before `norm2`.
    Add,
    /// `scale_shift`: `norm2(h)·(1 + scale) + shift`.
    ScaleShift,
}

/// Settings shared by the ResNet blocks of one network.
#[derive(Debug, Clone, Copy)]
pub struct ResnetSettings {
    pub groups: usize,
    pub eps: f64,
    pub act: Activation,
    /// Width of the time embedding and how it enters; `None` for the VAE (no time).
    pub time: Option<(usize, TimeScaleShift)>,
}

/// diffusers' `ResnetBlock2D`: pre-norm, 3×3 convs, an optional time projection, a 1×1
/// shortcut when the width changes.
#[derive(Debug, Clone)]
pub struct ResnetBlock2D {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Option<(Linear, TimeScaleShift)>,
    norm2: GroupNorm,
    conv2: Conv2d,
    conv_shortcut: Option<Conv1x1>,
    act: Activation,
    output_scale_factor: f64,
}

impl ResnetBlock2D {
    pub fn new(vb: VarBuilder, c_in: usize, c_out: usize, s: &ResnetSettings, output_scale_factor: f64) -> Result<Self> {
        let time_emb_proj = match s.time {
            Some((temb_channels, shift)) => {
                let out = if shift == TimeScaleShift::ScaleShift { 2 * c_out } else { c_out };
                Some((candle_nn::linear(temb_channels, out, vb.pp("time_emb_proj"))?, shift))
            }
            None => None,
        };
        Ok(Self {
            norm1: group_norm(s.groups, c_in, s.eps, vb.pp("norm1"))?,
            conv1: Conv2d::new(vb.pp("conv1"), c_in, c_out, 3, 1, 1)?,
            time_emb_proj,
            norm2: group_norm(s.groups, c_out, s.eps, vb.pp("norm2"))?,
            conv2: Conv2d::new(vb.pp("conv2"), c_out, c_out, 3, 1, 1)?,
            conv_shortcut: if c_in != c_out { Some(Conv1x1::new(vb.pp("conv_shortcut"), c_in, c_out, true)?) } else { None },
            act: s.act,
            output_scale_factor,
        })
    }

    /// `temb_act` is the time embedding after the block's non-linearity (the same for every
    /// block, so the caller computes it once); `None` for blocks without a time projection.
    pub fn forward(&self, x: &Tensor, temb_act: Option<&Tensor>) -> Result<Tensor> {
        let h = self.conv1.forward(&self.norm1.forward_act(x, self.act)?)?;
        let h = match (&self.time_emb_proj, temb_act) {
            (None, _) => self.norm2.forward_act(&h, self.act)?,
            (Some(_), None) => candle_core::bail!("ResnetBlock2D: this block needs a time embedding"),
            (Some((proj, shift)), Some(temb)) => {
                let t = proj.forward(temb)?.unsqueeze(2)?.unsqueeze(3)?;
                match shift {
                    TimeScaleShift::Add => self.norm2.forward_act(&h.broadcast_add(&t)?, self.act)?,
                    TimeScaleShift::ScaleShift => {
                        let c = t.dim(1)? / 2;
                        let (scale, shift) = (t.narrow(1, 0, c)?, t.narrow(1, c, c)?);
                        self.act.forward(&self.norm2.forward(&h)?.broadcast_mul(&(scale + 1.0)?)?.broadcast_add(&shift)?)?
                    }
                }
            }
        };
        let h = self.conv2.forward(&h)?;
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
        Ok(Self { conv: Conv2d::new(vb.pp("conv"), channels, channels, 3, 2, padding)?, pad_right_bottom: padding == 0 })
    }
}

impl Module for Downsample2D {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.pad_right_bottom {
            self.conv.forward(&x.pad_with_zeros(D::Minus1, 0, 1)?.pad_with_zeros(D::Minus2, 0, 1)?)
        } else {
            self.conv.forward(x)
        }
    }
}

/// `Upsample2D(use_conv=True)`: nearest-neighbour upsampling to `size` (twice the input when
/// not given), then a 3×3 conv.
#[derive(Debug, Clone)]
pub struct Upsample2D {
    conv: Conv2d,
}

impl Upsample2D {
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(Self { conv: Conv2d::new(vb.pp("conv"), channels, channels, 3, 1, 1)? })
    }

    pub fn forward(&self, x: &Tensor, size: Option<(usize, usize)>) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let up = match size {
            None => upsample_nearest_2x(x)?,
            Some(s) if s == (2 * h, 2 * w) => upsample_nearest_2x(x)?,
            // Uneven sizes only occur in the UNet, which runs without autograd.
            Some((th, tw)) => x.upsample_nearest2d(th, tw)?,
        };
        self.conv.forward(&up)
    }
}

/// Nearest-neighbour ×2 upsampling: the CPU kernel in f32; elsewhere broadcast + reshape,
/// so that its backward is an ordinary (accumulating) sum (candle's `upsample_nearest2d`
/// backward overwrites instead).
fn upsample_nearest_2x(xs: &Tensor) -> Result<Tensor> {
    if kernels::applies(xs.device(), xs.dtype()) {
        return kernels::op::apply(&Arc::new(kernels::upsample::Upsample2x), xs);
    }
    let (b, c, h, w) = xs.dims4()?;
    xs.reshape((b, c, h, 1, w, 1))?.broadcast_as((b, c, h, 2, w, 2))?.reshape((b, c, 2 * h, 2 * w))
}
