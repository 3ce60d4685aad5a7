//! diffusers' `Transformer2DModel` (continuous input) with its `BasicTransformerBlock`s,
//! `Attention` (default SDPA processor) and GEGLU `FeedForward`, forward only.

use crate::kernels::attention::{attention, Heads};
use crate::kernels::{self, geglu::Geglu};
use crate::model::nn::{group_norm, softmax_last_dim, Conv1x1, GroupNorm, LayerNorm};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use std::sync::Arc;

/// What a transformer attends to in its second attention (and, with `only_cross_attention`,
/// its first).
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// (B, L, cross_dim); `None` means self-attention.
    pub states: Option<&'a Tensor>,
    /// Additive key bias (B, 1, 1, L): 0 for kept keys, −10000 for masked ones.
    pub bias: Option<&'a Tensor>,
}

impl Context<'_> {
    pub const SELF: Context<'static> = Context { states: None, bias: None };
}

/// `Attention` with bias-free q/k/v, a biased `to_out.0`, scale `head_dim^−½`.
#[derive(Debug, Clone)]
pub struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    pub fn new(vb: VarBuilder, query_dim: usize, cross_dim: Option<usize>, heads: usize, head_dim: usize) -> Result<Self> {
        let inner = heads * head_dim;
        let kv_dim = cross_dim.unwrap_or(query_dim);
        Ok(Self {
            to_q: candle_nn::linear_no_bias(query_dim, inner, vb.pp("to_q"))?,
            to_k: candle_nn::linear_no_bias(kv_dim, inner, vb.pp("to_k"))?,
            to_v: candle_nn::linear_no_bias(kv_dim, inner, vb.pp("to_v"))?,
            to_out: candle_nn::linear(inner, query_dim, vb.pp("to_out").pp("0"))?,
            heads,
            head_dim,
        })
    }

    /// (B, L, heads·head_dim) → (B, heads, L, head_dim), contiguous.
    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, l, _) = x.dims3()?;
        x.reshape((b, l, self.heads, self.head_dim))?.transpose(1, 2)?.contiguous()
    }

    /// `x` (B, N, query_dim) contiguous; `ctx.states` (B, L, kv_dim) or self-attention.
    pub fn forward(&self, x: &Tensor, ctx: Context) -> Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        let kv_in = ctx.states.unwrap_or(x);
        if kernels::applies(x.device(), x.dtype()) && !x.track_op() && !kv_in.track_op() {
            return self.to_out.forward(&self.heads_in_place(x, kv_in, ctx.bias)?);
        }
        let q = self.split_heads(&(self.to_q.forward(x)? * (self.head_dim as f64).powf(-0.5))?)?;
        let k = self.split_heads(&self.to_k.forward(kv_in)?)?;
        let v = self.split_heads(&self.to_v.forward(kv_in)?)?;
        let scores = q.matmul(&k.t()?)?;
        let dtype = scores.dtype();
        // Softmax in f32 for half-precision weights (SDPA accumulates in f32 too).
        let scores = if dtype == DType::F32 { scores } else { scores.to_dtype(DType::F32)? };
        let scores = match ctx.bias {
            Some(bias) => scores.broadcast_add(&bias.to_dtype(DType::F32)?)?,
            None => scores,
        };
        let probs = softmax_last_dim(&scores)?.to_dtype(dtype)?;
        let out = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, n, self.heads * self.head_dim))?;
        self.to_out.forward(&out)
    }
}

impl Attention {
    /// The attention of the heads on the CPU kernel, forward only: q, k and v are read in
    /// place, (B, N, heads·head_dim).
    fn heads_in_place(&self, x: &Tensor, kv_in: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let (batch, queries, _) = x.dims3()?;
        let keys = kv_in.dim(1)?;
        let (q, k, v) = (self.to_q.forward(x)?, self.to_k.forward(kv_in)?, self.to_v.forward(kv_in)?);
        let bias = bias.map(|b| kernels::tensor::to_vec(&b.broadcast_as((batch, 1, 1, keys))?.contiguous()?)).transpose()?;
        let shape = Heads { batch, queries, keys, heads: self.heads, head_dim: self.head_dim };
        let scale = (self.head_dim as f32).powf(-0.5);
        let mut out = vec![0f32; batch * queries * self.heads * self.head_dim];
        kernels::tensor::with_elements(&q, |q| {
            kernels::tensor::with_elements(&k, |k| kernels::tensor::with_elements(&v, |v| attention(q, k, v, bias.as_deref(), shape, scale, &mut out)))
        })???;
        kernels::tensor::from_vec(out, (batch, queries, self.heads * self.head_dim))
    }
}

/// `FeedForward` with GEGLU: `net.0.proj` (dim → 2·4·dim), `h·gelu(gate)`, `net.2` (4·dim → dim).
#[derive(Debug, Clone)]
pub struct FeedForward {
    proj: Linear,
    out: Linear,
    inner: usize,
}

impl FeedForward {
    pub fn new(vb: VarBuilder, dim: usize) -> Result<Self> {
        let inner = 4 * dim;
        Ok(Self { proj: candle_nn::linear(dim, 2 * inner, vb.pp("net").pp("0").pp("proj"))?, out: candle_nn::linear(inner, dim, vb.pp("net").pp("2"))?, inner })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.proj.forward(x)?;
        let h = if kernels::applies(h.device(), h.dtype()) {
            kernels::op::apply(&Arc::new(Geglu), &h)?
        } else {
            let gate = h.narrow(2, self.inner, self.inner)?.gelu_erf()?;
            (h.narrow(2, 0, self.inner)? * gate)?
        };
        self.out.forward(&h)
    }
}

/// `BasicTransformerBlock` with `norm_type="layer_norm"` (eps 1e-5).
#[derive(Debug, Clone)]
pub struct BasicTransformerBlock {
    norm1: LayerNorm,
    attn1: Attention,
    /// `norm2`/`attn2`: present with a cross-attention width or with double self-attention.
    attn2: Option<(LayerNorm, Attention)>,
    norm3: LayerNorm,
    ff: FeedForward,
    only_cross_attention: bool,
}

impl BasicTransformerBlock {
    pub fn new(
        vb: VarBuilder,
        dim: usize,
        heads: usize,
        head_dim: usize,
        cross_dim: Option<usize>,
        only_cross_attention: bool,
        double_self_attention: bool,
    ) -> Result<Self> {
        let eps = 1e-5;
        let attn1_cross = if only_cross_attention { cross_dim } else { None };
        let attn2 = if cross_dim.is_some() || double_self_attention {
            let attn2_cross = if double_self_attention { None } else { cross_dim };
            Some((LayerNorm::new(vb.pp("norm2"), dim, eps)?, Attention::new(vb.pp("attn2"), dim, attn2_cross, heads, head_dim)?))
        } else {
            None
        };
        Ok(Self {
            norm1: LayerNorm::new(vb.pp("norm1"), dim, eps)?,
            attn1: Attention::new(vb.pp("attn1"), dim, attn1_cross, heads, head_dim)?,
            attn2,
            norm3: LayerNorm::new(vb.pp("norm3"), dim, eps)?,
            ff: FeedForward::new(vb.pp("ff"), dim)?,
            only_cross_attention,
        })
    }

    /// `x` (B, N, dim) contiguous.
    pub fn forward(&self, x: &Tensor, ctx: Context) -> Result<Tensor> {
        // attn1 sees the context only with only_cross_attention, and then without the
        // encoder mask (diffusers passes it the self-attention mask, which the UNet never sets).
        let ctx1 = if self.only_cross_attention { Context { states: ctx.states, bias: None } } else { Context::SELF };
        let x = (self.attn1.forward(&self.norm1.forward(x)?, ctx1)? + x)?;
        let x = match &self.attn2 {
            Some((norm2, attn2)) => (attn2.forward(&norm2.forward(&x)?, ctx)? + x)?,
            None => x,
        };
        self.ff.forward(&self.norm3.forward(&x)?)? + x
    }
}

/// Projection in/out of the token space: 1×1 conv (default) or linear.
#[derive(Debug, Clone)]
enum Projection {
    Conv(Conv1x1),
    Linear(Linear),
}

/// `Transformer2DModel` on continuous input: GroupNorm (eps 1e-6) → `proj_in` → blocks →
/// `proj_out` → + residual.
#[derive(Debug, Clone)]
pub struct Transformer2DModel {
    norm: GroupNorm,
    proj_in: Projection,
    blocks: Vec<BasicTransformerBlock>,
    proj_out: Projection,
    inner: usize,
}

/// Shape of one `Transformer2DModel`.
#[derive(Debug, Clone, Copy)]
pub struct TransformerSettings {
    pub channels: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub layers: usize,
    pub groups: usize,
    pub cross_dim: Option<usize>,
    pub only_cross_attention: bool,
    pub use_linear_projection: bool,
}

impl Transformer2DModel {
    pub fn new(vb: VarBuilder, s: &TransformerSettings) -> Result<Self> {
        let inner = s.heads * s.head_dim;
        let double_self_attention = s.cross_dim.is_none();
        let (proj_in, proj_out) = if s.use_linear_projection {
            (
                Projection::Linear(candle_nn::linear(s.channels, inner, vb.pp("proj_in"))?),
                Projection::Linear(candle_nn::linear(inner, s.channels, vb.pp("proj_out"))?),
            )
        } else {
            (
                Projection::Conv(Conv1x1::new(vb.pp("proj_in"), s.channels, inner, true)?),
                Projection::Conv(Conv1x1::new(vb.pp("proj_out"), inner, s.channels, true)?),
            )
        };
        let vbb = vb.pp("transformer_blocks");
        let blocks = (0..s.layers)
            .map(|i| BasicTransformerBlock::new(vbb.pp(i), inner, s.heads, s.head_dim, s.cross_dim, s.only_cross_attention, double_self_attention))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { norm: group_norm(s.groups, s.channels, 1e-6, vb.pp("norm"))?, proj_in, blocks, proj_out, inner })
    }

    pub fn forward(&self, x: &Tensor, ctx: Context) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let hn = self.norm.forward(x)?.reshape((b, c, h * w))?;
        // Tokens (B, H·W, inner), contiguous.
        let mut t = match &self.proj_in {
            Projection::Conv(conv) => conv.forward_flat(&hn)?.transpose(1, 2)?.contiguous()?,
            Projection::Linear(lin) => lin.forward(&hn.transpose(1, 2)?.contiguous()?)?,
        };
        for block in &self.blocks {
            t = block.forward(&t, ctx)?;
        }
        // Back to (B, C, H·W): the conv reads the transposed tokens in place.
        let out = match &self.proj_out {
            Projection::Conv(conv) => conv.forward_flat(&t.transpose(1, 2)?)?,
            Projection::Linear(lin) => lin.forward(&t)?.transpose(1, 2)?,
        };
        debug_assert_eq!(t.dim(2)?, self.inner);
        out.reshape((b, c, h, w))? + x
    }
}
