//! The vocoder on the CPU kernels. Each block (upsampling stage) is one autograd node: its
//! forward keeps one bit per leaky-ReLU input (the sign is all the derivative needs) and,
//! in the last block, the final tanh's output, and its backward runs every layer's adjoint
//! in reverse. A full-size 5 s clip keeps a few MB for the backward where a graph of
//! candle ops keeps GBs.

use super::{ConvSpec, Layout, FINAL_LEAKY_RELU_SLOPE};
use crate::kernels::conv1d::{Conv1d, ConvTranspose1d};
use crate::kernels::{elementwise, tensor, Activation1d, SignMask};
use candle_core::{CpuStorage, CustomOp1, Layout as TensorLayout, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use std::sync::{Arc, Mutex};

fn conv1d(vb: &VarBuilder, spec: &ConvSpec) -> Result<Conv1d> {
    let (w, b) = spec.load(vb)?;
    Ok(Conv1d::new(&tensor::to_vec(&w)?, Some(tensor::to_vec(&b)?), (spec.c_out, spec.c_in, spec.kernel), spec.padding, spec.dilation))
}

#[derive(Debug)]
struct Stage {
    upsampler: ConvTranspose1d,
    resblocks: Vec<Vec<(Conv1d, Conv1d)>>,
}

#[derive(Debug)]
struct Layers {
    conv_pre: Conv1d,
    stages: Vec<Stage>,
    conv_post: Conv1d,
    slope: f32,
}

/// What the backward of one block needs of one batch item: the leaky-ReLU masks in
/// forward order and, for the last block, the output of the final tanh.
struct Saved {
    masks: Vec<SignMask>,
    tanh: Vec<f32>,
}

impl Layers {
    fn blocks(&self) -> usize {
        self.stages.len()
    }

    /// The samples out of block `block` for `len_in` in.
    fn out_len(&self, block: usize, len_in: usize) -> Result<usize> {
        self.stages[block].upsampler.out_len(len_in).ok_or_else(|| candle_core::Error::Msg(format!("vocoder: block {block} cannot upsample {len_in} samples")))
    }

    /// One item through block `block` (its upsampling stage; the first block starts with
    /// `conv_pre`, the last ends with `conv_post` and tanh): the normalised mel (bins,
    /// frames) or the previous block's output (channels, `len_in`) → (channels, len) or
    /// the waveform. The masks go to `saved`.
    fn forward(&self, block: usize, input: &[f32], len_in: usize, mut saved: Option<&mut Vec<SignMask>>) -> Result<Vec<f32>> {
        let len = self.out_len(block, len_in)?;
        let mut save = |x: &[f32]| {
            if let Some(masks) = saved.as_deref_mut() {
                masks.push(SignMask::of(x));
            }
        };
        let act = Activation1d::LeakyRelu(self.slope);
        let pre;
        let x = if block == 0 {
            let mut x = vec![0f32; self.conv_pre.channels().1 * len_in];
            self.conv_pre.forward(input, len_in, Activation1d::Identity, None, &mut x);
            pre = x;
            &pre
        } else {
            input
        };
        let stage = &self.stages[block];
        save(x);
        let c = stage.upsampler.channels().1;
        let mut up = vec![0f32; c * len];
        stage.upsampler.forward(x, len_in, act, &mut up);
        let (mut h, mut next) = (vec![0f32; c * len], vec![0f32; c * len]);
        let mut acc = vec![0f32; c * len];
        for pairs in &stage.resblocks {
            // The first pair reads the upsampled input itself; later ones the chain.
            let mut cur: Option<Vec<f32>> = None;
            for (c1, c2) in pairs {
                let x = cur.as_deref().unwrap_or(&up);
                save(x);
                c1.forward(x, len, act, None, &mut h);
                save(&h);
                c2.forward(&h, len, act, Some(x), &mut next);
                next = cur.replace(next).unwrap_or_else(|| vec![0f32; c * len]);
            }
            elementwise::zip_map(&mut acc, cur.as_deref().unwrap_or(&up), |a, x| *a += x);
        }
        let n = stage.resblocks.len() as f32;
        if n != 1.0 {
            elementwise::map(&mut acc, |v| *v /= n);
        }
        if block + 1 < self.blocks() {
            return Ok(acc);
        }
        save(&acc);
        let mut wave = vec![0f32; len];
        self.conv_post.forward(&acc, len, Activation1d::LeakyRelu(FINAL_LEAKY_RELU_SLOPE as f32), None, &mut wave);
        elementwise::map(&mut wave, |v| *v = v.tanh());
        Ok(wave)
    }

    /// One item: the gradient of block `block`'s output → the gradient of its input, in
    /// the layouts of [`Layers::forward`].
    fn backward(&self, block: usize, grad: &[f32], len_in: usize, saved: &Saved) -> Result<Vec<f32>> {
        let len = self.out_len(block, len_in)?;
        let mut masks = saved.masks.iter().rev();
        let mut next_mask = || masks.next().ok_or_else(|| candle_core::Error::Msg("vocoder backward: fewer masks than activations".into()));
        let stage = &self.stages[block];
        let c = stage.upsampler.channels().1;
        let mut gx = if block + 1 < self.blocks() {
            grad.to_vec()
        } else {
            let mut g = grad.to_vec();
            elementwise::zip_map(&mut g, &saved.tanh, |g, y| *g *= 1.0 - y * y);
            let mut gx = vec![0f32; c * len];
            self.conv_post.input_grad(&g, len, &mut gx);
            next_mask()?.leaky_relu_grad(&mut gx, FINAL_LEAKY_RELU_SLOPE as f32);
            gx
        };
        let n = stage.resblocks.len() as f32;
        if n != 1.0 {
            elementwise::map(&mut gx, |v| *v /= n);
        }
        let (mut gh, mut t) = (vec![0f32; c * len], vec![0f32; c * len]);
        let mut gup = vec![0f32; c * len];
        for pairs in stage.resblocks.iter().rev() {
            let mut gcur = gx.clone();
            for (c1, c2) in pairs.iter().rev() {
                // y = x + c2(lrelu(h)), h = c1(lrelu(x)): gx = gy + lrelu'(x)·c1ᵀ(lrelu'(h)·c2ᵀ(gy)).
                let (mask_h, mask_x) = (next_mask()?, next_mask()?);
                c2.input_grad(&gcur, len, &mut gh);
                mask_h.leaky_relu_grad(&mut gh, self.slope);
                c1.input_grad(&gh, len, &mut t);
                mask_x.leaky_relu_grad(&mut t, self.slope);
                elementwise::zip_map(&mut gcur, &t, |a, x| *a += x);
            }
            elementwise::zip_map(&mut gup, &gcur, |a, x| *a += x);
        }
        let mut gx = vec![0f32; stage.upsampler.channels().0 * len_in];
        stage.upsampler.input_grad(&gup, len_in, &mut gx);
        next_mask()?.leaky_relu_grad(&mut gx, self.slope);
        if block > 0 {
            return Ok(gx);
        }
        let mut gmel = vec![0f32; self.conv_pre.channels().0 * len_in];
        self.conv_pre.input_grad(&gx, len_in, &mut gmel);
        Ok(gmel)
    }
}

/// (rows, cols) row-major → (cols, rows).
fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; x.len()];
    for (r, row) in x.chunks(cols).enumerate() {
        for (c, v) in row.iter().enumerate() {
            t[c * rows + r] = *v;
        }
    }
    t
}

#[derive(Debug, Clone)]
pub(super) struct Network {
    layers: Arc<Layers>,
}

impl Network {
    pub fn new(vb: &VarBuilder, layout: &Layout) -> Result<Self> {
        let stages = layout
            .stages
            .iter()
            .map(|stage| {
                let u = &stage.upsampler;
                let (w, b) = u.load(vb)?;
                let upsampler = ConvTranspose1d::new(&tensor::to_vec(&w)?, Some(tensor::to_vec(&b)?), (u.c_in, u.c_out, u.kernel), u.padding, 0, u.stride);
                let resblocks =
                    stage.resblocks.iter().map(|pairs| pairs.iter().map(|(c1, c2)| Ok((conv1d(vb, c1)?, conv1d(vb, c2)?))).collect()).collect::<Result<_>>()?;
                Ok(Stage { upsampler, resblocks })
            })
            .collect::<Result<_>>()?;
        let layers = Layers { conv_pre: conv1d(vb, &layout.conv_pre)?, stages, conv_post: conv1d(vb, &layout.conv_post)?, slope: layout.slope as f32 };
        Ok(Self { layers: Arc::new(layers) })
    }

    pub fn blocks(&self) -> usize {
        self.layers.blocks()
    }

    /// Block `block` of the network (see [`super::SpeechT5HifiGan::forward_block`]).
    pub fn forward_block(&self, block: usize, x: &Tensor) -> Result<Tensor> {
        if block >= self.blocks() {
            candle_core::bail!("vocoder: block {block} of {}", self.blocks());
        }
        let op = BlockOp { layers: self.layers.clone(), block, saved: Mutex::new(None) };
        if x.track_op() {
            return x.apply_op1_arc(Arc::new(Box::new(op)));
        }
        let dims = x.dims3()?;
        let (out, shape) = tensor::with_elements(x, |x| op.run(x, dims, false))??;
        tensor::from_vec(out, shape)
    }
}

/// One block of the network as an autograd node.
struct BlockOp {
    layers: Arc<Layers>,
    block: usize,
    /// The input length and, per batch item, what the backward needs; set by the forward.
    saved: Mutex<Option<(usize, Vec<Saved>)>>,
}

impl BlockOp {
    /// The length of the block's input along time: block 0 reads mel (batch, frames,
    /// bins), the others (batch, channels, samples).
    fn len_in(&self, (_, a, b): (usize, usize, usize)) -> usize {
        if self.block == 0 {
            a
        } else {
            b
        }
    }

    /// The input (row-major, `dims`) → the output and its shape: (batch, channels, samples),
    /// or (batch, samples) from the last block.
    fn run(&self, input: &[f32], dims: (usize, usize, usize), keep: bool) -> Result<(Vec<f32>, Vec<usize>)> {
        let (batch, a, b) = dims;
        let len_in = self.len_in(dims);
        let mut out = Vec::new();
        let mut saved = Vec::with_capacity(batch);
        for item in input.chunks(a * b) {
            let mut masks = Vec::new();
            let item = if self.block == 0 { std::borrow::Cow::Owned(transpose(item, a, b)) } else { std::borrow::Cow::Borrowed(item) };
            let y = self.layers.forward(self.block, &item, len_in, keep.then_some(&mut masks))?;
            if keep {
                let last = self.block + 1 == self.layers.blocks();
                saved.push(Saved { masks, tanh: if last { y.clone() } else { Vec::new() } });
            }
            out.extend_from_slice(&y);
        }
        let len = self.layers.out_len(self.block, len_in)?;
        let shape =
            if self.block + 1 == self.layers.blocks() { vec![batch, len] } else { vec![batch, self.layers.stages[self.block].upsampler.channels().1, len] };
        if keep {
            *self.saved.lock().expect("vocoder state poisoned") = Some((len_in, saved));
        }
        Ok((out, shape))
    }
}

impl CustomOp1 for BlockOp {
    fn name(&self) -> &'static str {
        "vocoder-block"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &TensorLayout) -> Result<(CpuStorage, Shape)> {
        let (out, shape) = self.run(&tensor::elements(storage, layout)?, layout.shape().dims3()?, true)?;
        Ok((CpuStorage::F32(out), shape.into()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let guard = self.saved.lock().expect("vocoder state poisoned");
        let Some((len_in, saved)) = guard.as_ref() else { candle_core::bail!("vocoder backward before its forward") };
        let (batch, a, b) = arg.dims3()?;
        let per_item = grad.elem_count() / batch.max(1);
        let gx = tensor::with_elements(grad, |g| -> Result<Vec<f32>> {
            let mut out = Vec::with_capacity(batch * a * b);
            for (g, saved) in g.chunks(per_item).zip(saved) {
                let gx = self.layers.backward(self.block, g, *len_in, saved)?;
                // Block 0's input gradient is (bins, frames); the mel is (frames, bins).
                out.extend(if self.block == 0 { transpose(&gx, b, a) } else { gx });
            }
            Ok(out)
        })??;
        Ok(Some(tensor::from_vec(gx, (batch, a, b))?))
    }
}
