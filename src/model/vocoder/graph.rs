//! The vocoder in candle ops, for every device and dtype the CPU kernels do not cover: each
//! layer an autograd node whose backward is its hand-written input gradient
//! ([`crate::model::ops`]).

use super::{ConvSpec, Layout, FINAL_LEAKY_RELU_SLOPE};
use crate::model::ops::{attach_input_grad, leaky_relu, leaky_relu_input_grad, leaky_relu_value, FrozenConv1d, FrozenConvTranspose1d};
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

fn conv1d(vb: &VarBuilder, spec: &ConvSpec) -> Result<FrozenConv1d> {
    let (w, b) = spec.load(vb)?;
    FrozenConv1d::new(w, Some(b), spec.padding, 1, spec.dilation)
}

#[derive(Debug, Clone)]
struct ResBlock {
    pairs: Vec<(FrozenConv1d, FrozenConv1d)>,
    slope: f64,
}

impl ResBlock {
    /// Σ over the (conv1, conv2) pairs of `x ← x + conv2(lrelu(conv1(lrelu(x))))`. Each
    /// pair is one autograd node with a hand-written backward (two adjoint convs, two
    /// leaky-ReLU masks, one add) instead of five: candle's per-node gradient bookkeeping
    /// (a zero tensor and an add per node) costs as much as the masks themselves.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (c1, c2) in &self.pairs {
            let xd = x.detach();
            let h = c1.value(&leaky_relu_value(&xd, self.slope)?)?;
            let y = (c2.value(&leaky_relu_value(&h, self.slope)?)? + &xd)?;
            let (c1, c2, slope) = (c1.clone(), c2.clone(), self.slope);
            x = attach_input_grad(&x, y, move |x, g| {
                let gh = leaky_relu_input_grad(&h, &c2.input_grad(h.dim(2)?, g)?, slope)?;
                let ga = c1.input_grad(x.dim(2)?, &gh)?;
                g + leaky_relu_input_grad(x, &ga, slope)?
            })?;
        }
        Ok(x)
    }
}

#[derive(Debug, Clone)]
pub(super) struct Network {
    conv_pre: FrozenConv1d,
    /// Per stage: the upsampler and its resblocks.
    stages: Vec<(FrozenConvTranspose1d, Vec<ResBlock>)>,
    conv_post: FrozenConv1d,
    slope: f64,
}

impl Network {
    pub fn new(vb: &VarBuilder, layout: &Layout) -> Result<Self> {
        let stages = layout
            .stages
            .iter()
            .map(|stage| {
                let u = &stage.upsampler;
                let (w, b) = u.load(vb)?;
                let upsampler = FrozenConvTranspose1d::new(w, Some(b), u.padding, 0, u.stride, 1)?;
                let resblocks = stage
                    .resblocks
                    .iter()
                    .map(|pairs| {
                        let pairs = pairs.iter().map(|(c1, c2)| Ok((conv1d(vb, c1)?, conv1d(vb, c2)?))).collect::<Result<_>>()?;
                        Ok(ResBlock { pairs, slope: layout.slope })
                    })
                    .collect::<Result<_>>()?;
                Ok((upsampler, resblocks))
            })
            .collect::<Result<_>>()?;
        Ok(Self { conv_pre: conv1d(vb, &layout.conv_pre)?, stages, conv_post: conv1d(vb, &layout.conv_post)?, slope: layout.slope })
    }

    pub fn blocks(&self) -> usize {
        self.stages.len()
    }

    /// Block `block` of the network (see [`super::SpeechT5HifiGan::forward_block`]).
    pub fn forward_block(&self, block: usize, x: &Tensor) -> Result<Tensor> {
        let Some((upsampler, resblocks)) = self.stages.get(block) else { candle_core::bail!("vocoder: block {block} of {}", self.blocks()) };
        let x = if block == 0 { self.conv_pre.forward(&x.transpose(1, 2)?.contiguous()?)? } else { x.clone() };
        let x = upsampler.forward(&leaky_relu(&x, self.slope)?)?;
        let mut acc = resblocks[0].forward(&x)?;
        for b in &resblocks[1..] {
            acc = (acc + b.forward(&x)?)?;
        }
        let x = if resblocks.len() == 1 { acc } else { (acc / resblocks.len() as f64)? };
        if block + 1 < self.blocks() {
            return Ok(x);
        }
        self.conv_post.forward(&leaky_relu(&x, FINAL_LEAKY_RELU_SLOPE)?)?.tanh()?.squeeze(1)
    }
}
