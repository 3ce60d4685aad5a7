//! Layers the UNet and the VAE share, named as diffusers names them (`resnet.py`,
//! `downsampling.py`, `upsampling.py`, `activations.py`).
//!
//! All weights are frozen: where a gradient must flow (the VAE decoder), it flows to the
//! input only, and the convolutions skip the weight gradient candle would compute.

use candle_core::op::BackpropOp;
use candle_core::{CpuStorage, CustomOp1, Layout, Module, Result, Shape, Storage, Tensor, D};
use candle_nn::{GroupNorm, Linear, VarBuilder};

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

/// Softmax along the last axis. candle's fused kernel has no backward (and raises no
/// error: the input silently gets no gradient), so when a gradient is wanted the composite
/// form runs; its shift by the maximum is detached, as softmax does not depend on it.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
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
/// Its backward computes the input gradient only, as one ordinary convolution with the
/// flipped, transposed kernel. candle's own `conv2d` backward also computes the (unused)
/// weight gradient and routes the input gradient through a direct-loop transposed
/// convolution: at the VAE decoder's full size (5.12 s clip, 2 busy cores) decode + backward
/// took 75 s against a 12 s forward with it, about 2.5× the forward with this one.
/// Stride-1 convolutions on the CPU take this path; others use candle's own backward.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    padding: usize,
    stride: usize,
}

impl Conv2d {
    /// A square `kernel` with a bias, as diffusers builds every 2-D convolution.
    pub fn new(vb: VarBuilder, c_in: usize, c_out: usize, kernel: usize, stride: usize, padding: usize) -> Result<Self> {
        let weight = vb.get((c_out, c_in, kernel, kernel), "weight")?;
        let bias = vb.get(c_out, "bias")?.reshape((1, c_out, 1, 1))?;
        Ok(Self { weight, bias: Some(bias), padding, stride })
    }
}

impl Module for Conv2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (_, _, k_h, k_w) = self.weight.dims4()?;
        let own_backward = xs.track_op() && xs.device().is_cpu() && self.stride == 1 && k_h == k_w && self.padding < k_h;
        let ys = if own_backward {
            xs.contiguous()?.apply_op1(FrozenConv2dOp { weight: self.weight.clone(), padding: self.padding })?
        } else {
            xs.conv2d(&self.weight, self.padding, self.stride, 1, 1)?
        };
        match &self.bias {
            Some(b) => ys.broadcast_add(b),
            None => Ok(ys),
        }
    }
}

/// Stride-1 square-kernel convolution with a constant kernel; backward w.r.t. the input only.
struct FrozenConv2dOp {
    weight: Tensor,
    padding: usize,
}

impl CustomOp1 for FrozenConv2dOp {
    fn name(&self) -> &'static str {
        "frozen-conv2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        // Rebuild an untracked tensor over (a copy of) the input, convolve, hand the result back.
        let n = layout.shape().elem_count();
        let flat = Tensor::from_storage(Storage::Cpu(storage.clone()), storage_len(storage), BackpropOp::none(), false);
        let xs = match layout.contiguous_offsets() {
            Some((start, end)) if end - start == n => flat.narrow(0, start, n)?.reshape(layout.shape())?,
            _ => candle_core::bail!("frozen-conv2d: input must be contiguous"),
        };
        let ys = xs.conv2d(&self.weight, self.padding, 1, 1, 1)?.contiguous()?;
        let shape = ys.shape().clone();
        let (st, l) = ys.storage_and_layout();
        match (&*st, l.contiguous_offsets()) {
            (Storage::Cpu(cpu), Some((0, end))) if end == shape.elem_count() => Ok((cpu.clone(), shape)),
            _ => candle_core::bail!("frozen-conv2d: unexpected output storage"),
        }
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        // d(conv(x, W, p))/dx applied to g = conv(g, flip(Wᵀ), k − 1 − p).
        let k = self.weight.dim(2)?;
        let w_t = self.weight.transpose(0, 1)?.contiguous()?.flip(&[2, 3])?.contiguous()?;
        Ok(Some(grad_res.contiguous()?.conv2d(&w_t, k - 1 - self.padding, 1, 1, 1)?))
    }
}

fn storage_len(storage: &CpuStorage) -> usize {
    match storage {
        CpuStorage::U8(v) => v.len(),
        CpuStorage::U32(v) => v.len(),
        CpuStorage::I16(v) => v.len(),
        CpuStorage::I32(v) => v.len(),
        CpuStorage::I64(v) => v.len(),
        CpuStorage::BF16(v) => v.len(),
        CpuStorage::F16(v) => v.len(),
        CpuStorage::F32(v) => v.len(),
        CpuStorage::F64(v) => v.len(),
        _ => 0,
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
            norm1: candle_nn::group_norm(s.groups, c_in, s.eps, vb.pp("norm1"))?,
            conv1: Conv2d::new(vb.pp("conv1"), c_in, c_out, 3, 1, 1)?,
            time_emb_proj,
            norm2: candle_nn::group_norm(s.groups, c_out, s.eps, vb.pp("norm2"))?,
            conv2: Conv2d::new(vb.pp("conv2"), c_out, c_out, 3, 1, 1)?,
            conv_shortcut: if c_in != c_out { Some(Conv1x1::new(vb.pp("conv_shortcut"), c_in, c_out, true)?) } else { None },
            act: s.act,
            output_scale_factor,
        })
    }

    /// `temb_act` is the time embedding after the block's non-linearity (the same for every
    /// block, so the caller computes it once); `None` for blocks without a time projection.
    pub fn forward(&self, x: &Tensor, temb_act: Option<&Tensor>) -> Result<Tensor> {
        let h = self.act.forward(&self.norm1.forward(x)?)?;
        let h = self.conv1.forward(&h)?;
        let h = match (&self.time_emb_proj, temb_act) {
            (None, _) => self.norm2.forward(&h)?,
            (Some(_), None) => candle_core::bail!("ResnetBlock2D: this block needs a time embedding"),
            (Some((proj, shift)), Some(temb)) => {
                let t = proj.forward(temb)?.unsqueeze(2)?.unsqueeze(3)?;
                match shift {
                    TimeScaleShift::Add => self.norm2.forward(&h.broadcast_add(&t)?)?,
                    TimeScaleShift::ScaleShift => {
                        let c = t.dim(1)? / 2;
                        let (scale, shift) = (t.narrow(1, 0, c)?, t.narrow(1, c, c)?);
                        self.norm2.forward(&h)?.broadcast_mul(&(scale + 1.0)?)?.broadcast_add(&shift)?
                    }
                }
            }
        };
        let h = self.conv2.forward(&self.act.forward(&h)?)?;
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

/// Nearest-neighbour ×2 upsampling written with broadcast + reshape, so its backward is an
/// ordinary (accumulating) sum; candle's `upsample_nearest2d` backward overwrites instead.
fn upsample_nearest_2x(xs: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = xs.dims4()?;
    xs.reshape((b, c, h, 1, w, 1))?.broadcast_as((b, c, h, 2, w, 2))?.reshape((b, c, 2 * h, 2 * w))
}
