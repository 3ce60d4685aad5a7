//! The vocoder on the CPU kernels. The whole network is one autograd node: its forward
//! keeps one bit per leaky-ReLU input (the sign is all the derivative needs) and the final
//! tanh's output, and its backward runs every layer's adjoint in reverse. A full-size 5 s
//! clip keeps a few MB for the backward where a graph of candle ops keeps GBs.

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

/// What the backward needs of one batch item: the leaky-ReLU masks in forward order and
/// the output of the final tanh.
struct Saved {
    masks: Vec<SignMask>,
    tanh: Vec<f32>,
}


impl Layers {
    /// Samples after each stage for `frames` input frames: `lens[0] = frames`, then one per
    /// upsampler.
    fn lengths(&self, frames: usize) -> Result<Vec<usize>> {
        let mut lens = vec![frames];
        for stage in &self.stages {
            let last = *lens.last().expect("starts non-empty");
            lens.push(stage.upsampler.out_len(last).ok_or_else(|| candle_core::Error::Msg(format!("vocoder: {frames} frames are too few")))?);
        }
        Ok(lens)
    }

    /// One item: normalised mel (bins, frames) → waveform; the masks go to `saved`.
    fn forward(&self, mel: &[f32], frames: usize, mut saved: Option<&mut Vec<SignMask>>) -> Result<Vec<f32>> {
        let lens = self.lengths(frames)?;
        let mut save = |x: &[f32]| {
            if let Some(masks) = saved.as_deref_mut() {
                masks.push(SignMask::of(x));
            }
        };
        let act = Activation1d::LeakyRelu(self.slope);
        let mut x = vec![0f32; self.conv_pre.channels().1 * frames];
        self.conv_pre.forward(mel, frames, Activation1d::Identity, None, &mut x);
        for (stage, (&len_in, &len)) in self.stages.iter().zip(lens.iter().zip(&lens[1..])) {
            save(&x);
            let c = stage.upsampler.channels().1;
            let mut up = vec![0f32; c * len];
            stage.upsampler.forward(&x, len_in, act, &mut up);
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
            x = acc;
        }
        save(&x);
        let len = *lens.last().expect("starts non-empty");
        let mut wave = vec![0f32; len];
        self.conv_post.forward(&x, len, Activation1d::LeakyRelu(FINAL_LEAKY_RELU_SLOPE as f32), None, &mut wave);
        elementwise::map(&mut wave, |v| *v = v.tanh());
        Ok(wave)
    }

    /// One item: the gradient of the waveform → the gradient of the mel (bins, frames).
    fn backward(&self, grad: &[f32], frames: usize, saved: &Saved) -> Result<Vec<f32>> {
        let lens = self.lengths(frames)?;
        let mut masks = saved.masks.iter().rev();
        let mut next_mask = || masks.next().ok_or_else(|| candle_core::Error::Msg("vocoder backward: fewer masks than activations".into()));
        let mut g = grad.to_vec();
        elementwise::zip_map(&mut g, &saved.tanh, |g, y| *g *= 1.0 - y * y);
        let len = *lens.last().expect("starts non-empty");
        let mut gx = vec![0f32; self.conv_post.channels().0 * len];
        self.conv_post.input_grad(&g, len, &mut gx);
        next_mask()?.leaky_relu_grad(&mut gx, FINAL_LEAKY_RELU_SLOPE as f32);
        for (stage, (&len_in, &len)) in self.stages.iter().zip(lens.iter().zip(&lens[1..])).rev() {
            let c = stage.upsampler.channels().1;
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
            gx = vec![0f32; stage.upsampler.channels().0 * len_in];
            stage.upsampler.input_grad(&gup, len_in, &mut gx);
            next_mask()?.leaky_relu_grad(&mut gx, self.slope);
        }
        let mut gmel = vec![0f32; self.conv_pre.channels().0 * frames];
        self.conv_pre.input_grad(&gx, frames, &mut gmel);
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
                let resblocks = stage.resblocks.iter().map(|pairs| pairs.iter().map(|(c1, c2)| Ok((conv1d(vb, c1)?, conv1d(vb, c2)?))).collect()).collect::<Result<_>>()?;
                Ok(Stage { upsampler, resblocks })
            })
            .collect::<Result<_>>()?;
        let layers = Layers { conv_pre: conv1d(vb, &layout.conv_pre)?, stages, conv_post: conv1d(vb, &layout.conv_post)?, slope: layout.slope as f32 };
        Ok(Self { layers: Arc::new(layers) })
    }

    /// Normalised log-mel (batch, frames, bins) → waveform (batch, samples).
    pub fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        let op = VocoderOp { layers: self.layers.clone(), saved: Mutex::new(None) };
        if mel.track_op() {
            return mel.apply_op1_arc(Arc::new(Box::new(op)));
        }
        let dims = mel.dims3()?;
        let (wave, shape) = tensor::with_elements(mel, |m| op.run(m, dims, false))??;
        tensor::from_vec(wave, shape)
    }
}

/// One forward of the network as an autograd node.
struct VocoderOp {
    layers: Arc<Layers>,
    /// Per batch item, what the backward needs; set by the forward.
    saved: Mutex<Option<(usize, Vec<Saved>)>>,
}

impl VocoderOp {
    /// Mel (batch, frames, bins), row-major → waveforms (batch, samples).
    fn run(&self, mel: &[f32], (batch, frames, bins): (usize, usize, usize), keep: bool) -> Result<(Vec<f32>, (usize, usize))> {
        let mut waves = Vec::new();
        let mut saved = Vec::with_capacity(batch);
        for item in mel.chunks(frames * bins) {
            let mut masks = Vec::new();
            let wave = self.layers.forward(&transpose(item, frames, bins), frames, keep.then_some(&mut masks))?;
            if keep {
                saved.push(Saved { masks, tanh: wave.clone() });
            }
            waves.extend_from_slice(&wave);
        }
        let samples = waves.len() / batch.max(1);
        if keep {
            *self.saved.lock().expect("vocoder state poisoned") = Some((frames, saved));
        }
        Ok((waves, (batch, samples)))
    }
}

impl CustomOp1 for VocoderOp {
    fn name(&self) -> &'static str {
        "vocoder"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &TensorLayout) -> Result<(CpuStorage, Shape)> {
        let (wave, shape) = self.run(&tensor::elements(storage, layout)?, layout.shape().dims3()?, true)?;
        Ok((CpuStorage::F32(wave), shape.into()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let guard = self.saved.lock().expect("vocoder state poisoned");
        let Some((frames, saved)) = guard.as_ref() else { candle_core::bail!("vocoder backward before its forward") };
        let (batch, _, bins) = arg.dims3()?;
        let samples = grad.dim(1)?;
        let gmel = tensor::with_elements(grad, |g| -> Result<Vec<f32>> {
            let mut out = Vec::with_capacity(batch * frames * bins);
            for (g, saved) in g.chunks(samples).zip(saved) {
                out.extend(transpose(&self.layers.backward(g, *frames, saved)?, bins, *frames));
            }
            Ok(out)
        })??;
        Ok(Some(tensor::from_vec(gmel, (batch, *frames, bins))?))
    }
}
