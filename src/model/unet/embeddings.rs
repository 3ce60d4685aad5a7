//! The UNet's time embedding: the sinusoidal projection and its MLP (diffusers'
//! `embeddings.py`).

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::model::nn::Activation;

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
        Ok(Self { linear_1: candle_nn::linear(in_dim, dim, vb.pp("linear_1"))?, linear_2: candle_nn::linear(dim, dim, vb.pp("linear_2"))?, act, post_act })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.act.forward(&self.linear_1.forward(x)?)?;
        let x = self.linear_2.forward(&x)?;
        match self.post_act {
            Some(a) => a.forward(&x),
            None => Ok(x),
        }
    }
}
