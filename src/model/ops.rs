//! Ops for frozen networks: exact gradients with respect to the *input* only.
//!
//! The guidance back-propagates through frozen networks (all weights are constants), and
//! candle 0.11's autograd falls short there: `conv_transpose1d` has no backward at all, and
//! `conv1d`'s backward always computes the weight gradient and routes the input gradient
//! through a slow direct-loop transposed convolution when padding or dilation are set.
//!
//! [`attach_input_grad`] is the building block: the forward value is computed with ordinary
//! candle ops on a detached input (so it runs on any device, with candle's fastest kernels),
//! and a hand-written adjoint is attached as the backward. [`FrozenConv1d`],
//! [`FrozenConvTranspose1d`] and [`leaky_relu`] are built on it.

use candle_core::backend::{BackendDevice, BackendStorage};
use candle_core::{CpuStorage, CudaStorage, CustomOp2, Layout, MetalStorage, Result, Shape, Tensor};
use std::sync::Arc;

/// The input gradient of an op: `(input, grad_of_output) -> grad_of_input`.
pub type InputGradFn = dyn Fn(&Tensor, &Tensor) -> Result<Tensor> + Send + Sync;

/// Binary custom op `(x, y) -> y` whose backward sends `bwd(x, grad)` to `x` and nothing to `y`.
struct AttachGrad {
    bwd: Arc<InputGradFn>,
}

fn copy_storage<S>(s: &S, l: &Layout) -> Result<(S, Shape)>
where
    S: BackendStorage,
    S::Device: BackendDevice<Storage = S>,
{
    let mut dst = s.device().zeros_impl(l.shape(), s.dtype())?;
    s.copy_strided_src(&mut dst, 0, l)?;
    Ok((dst, l.shape().clone()))
}

impl CustomOp2 for AttachGrad {
    fn name(&self) -> &'static str {
        "attach-input-grad"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        copy_storage(s2, l2)
    }

    fn cuda_fwd(&self, _: &CudaStorage, _: &Layout, s2: &CudaStorage, l2: &Layout) -> Result<(CudaStorage, Shape)> {
        copy_storage(s2, l2)
    }

    fn metal_fwd(&self, _: &MetalStorage, _: &Layout, s2: &MetalStorage, l2: &Layout) -> Result<(MetalStorage, Shape)> {
        copy_storage(s2, l2)
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some((self.bwd)(x, grad)?), None))
    }
}

/// Returns `y` (a value computed from `x` without autograd, e.g. from `x.detach()`) as a
/// tensor whose gradient flows to `x` through `bwd(x, grad_y)`. When `x` is not tracked by
/// autograd, `y` is returned as is (no copy).
pub fn attach_input_grad<F>(x: &Tensor, y: Tensor, bwd: F) -> Result<Tensor>
where
    F: Fn(&Tensor, &Tensor) -> Result<Tensor> + Send + Sync + 'static,
{
    if !x.track_op() {
        return Ok(y);
    }
    x.apply_op2_arc(&y.detach(), Arc::new(Box::new(AttachGrad { bwd: Arc::new(bwd) })))
}

/// `max(x, slope·x)` (PyTorch's `leaky_relu`) with a cheap input gradient.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    let y = leaky_relu_value(&x.detach(), slope)?;
    attach_input_grad(x, y, move |x, g| leaky_relu_input_grad(x, g, slope))
}

/// PyTorch's `leaky_relu`, without autograd.
pub fn leaky_relu_value(x: &Tensor, slope: f64) -> Result<Tensor> {
    let scaled = (x * slope)?;
    if slope <= 1.0 {
        x.maximum(&scaled)
    } else {
        x.minimum(&scaled)
    }
}

/// The gradient of `leaky_relu` at `x` applied to `g`: PyTorch's `g · (x > 0 ? 1 : slope)`.
pub fn leaky_relu_input_grad(x: &Tensor, g: &Tensor, slope: f64) -> Result<Tensor> {
    x.gt(0.0)?.where_cond(g, &(g * slope)?)
}

/// A stride-1 convolution kernel laid out for [`conv1d_unit_stride`].
#[derive(Clone, Debug)]
struct UnitStrideKernel {
    /// (out, k·in): tap-major, `[o, j·in + c] = w[o, c, j]`.
    flat: Tensor,
    k: usize,
}

impl UnitStrideKernel {
    /// From a PyTorch-layout kernel (out, in, k).
    fn new(w: &Tensor) -> Result<Self> {
        let (c_out, c_in, k) = w.dims3()?;
        let flat = w.permute((0, 2, 1))?.contiguous()?.reshape((c_out, k * c_in))?;
        Ok(Self { flat, k })
    }

    /// `conv1d(x, w, padding, stride 1, dilation)` as one matrix product: the k shifted
    /// views of the padded input are stacked along the channels (a row-wise copy) and
    /// multiplied by the tap-major kernel. About 1.2–1.8× faster than candle 0.11's
    /// `conv1d` on CPU (its im2col gathers element by element and transposes the result).
    fn conv(&self, x: &Tensor, padding: usize, dilation: usize) -> Result<Tensor> {
        let l = x.dim(2)?;
        let span = dilation * (self.k - 1);
        if l + 2 * padding <= span {
            candle_core::bail!("conv1d: input of {l} samples is shorter than the kernel span {span} + 1 - 2·{padding}")
        }
        let l_out = l + 2 * padding - span;
        let xp = if padding > 0 { x.pad_with_zeros(2, padding, padding)? } else { x.contiguous()? };
        let col = if self.k == 1 {
            xp
        } else {
            let views = (0..self.k).map(|j| xp.narrow(2, j * dilation, l_out)).collect::<Result<Vec<_>>>()?;
            Tensor::cat(&views, 1)?
        };
        self.flat.broadcast_matmul(&col)
    }
}

/// A constant per-channel bias shaped (1, channels, 1) to broadcast over (batch, channels, length).
fn channel_bias(bias: Option<Tensor>, channels: usize) -> Result<Option<Tensor>> {
    bias.map(|b| b.detach().reshape((1, channels, 1))).transpose()
}

/// A 1-D convolution (PyTorch `Conv1d`, one group) with constant weights: the backward
/// computes only the input gradient, as one `conv1d` with the flipped, transposed kernel.
#[derive(Clone, Debug)]
pub struct FrozenConv1d {
    /// (out, in, k)
    weight: Tensor,
    bias: Option<Tensor>,
    /// The forward kernel, when the stride is 1.
    unit: Option<UnitStrideKernel>,
    /// (in, out, k) flipped along k: the kernel of the adjoint, when the stride is 1 and
    /// `padding <= dilation·(k − 1)`.
    adjoint: Option<UnitStrideKernel>,
    padding: usize,
    stride: usize,
    dilation: usize,
}

impl FrozenConv1d {
    pub fn new(weight: Tensor, bias: Option<Tensor>, padding: usize, stride: usize, dilation: usize) -> Result<Self> {
        let (c_out, _, k) = weight.dims3()?;
        if stride == 0 || dilation == 0 || k == 0 {
            candle_core::bail!("conv1d: stride, dilation and kernel size must be non-zero")
        }
        let weight = weight.detach().contiguous()?;
        let bias = channel_bias(bias, c_out)?;
        let (unit, adjoint) = if stride == 1 {
            let unit = Some(UnitStrideKernel::new(&weight)?);
            let adjoint = if padding <= dilation * (k - 1) {
                Some(UnitStrideKernel::new(&weight.transpose(0, 1)?.contiguous()?.flip(&[2])?.contiguous()?)?)
            } else {
                None
            };
            (unit, adjoint)
        } else {
            (None, None)
        };
        Ok(Self { weight, bias, unit, adjoint, padding, stride, dilation })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// (batch, in, length) → (batch, out, length'), differentiable w.r.t. `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.value(&x.detach())?;
        let conv = self.clone();
        attach_input_grad(x, y, move |x, g| conv.input_grad(x.dim(2)?, g))
    }

    /// The forward without autograd.
    pub fn value(&self, x: &Tensor) -> Result<Tensor> {
        let (p, s, d) = (self.padding, self.stride, self.dilation);
        let y = match &self.unit {
            Some(unit) => unit.conv(x, p, d)?,
            None => x.conv1d(&self.weight, p, s, d, 1)?,
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }

    /// The adjoint of the (linear part of the) convolution applied to `g`, the gradient of
    /// the output, for an input of `l_in` samples.
    pub fn input_grad(&self, l_in: usize, g: &Tensor) -> Result<Tensor> {
        let (p, s, d) = (self.padding, self.stride, self.dilation);
        let span = d * (self.weight.dim(2)? - 1);
        if let Some(adjoint) = &self.adjoint {
            // y[t] = Σ_j x[t − p + j·d] w[j]  ⇒  gx[i] = Σ_j' g[i − (span − p) + j'·d] w[k−1−j'].
            return adjoint.conv(g, span - p, d);
        }
        let l_out = g.dim(2)?;
        let base = (l_out - 1) * s + span + 1;
        let output_padding = (l_in + 2 * p)
            .checked_sub(base)
            .filter(|op| *op < s.max(d))
            .ok_or_else(|| candle_core::Error::Msg(format!("conv1d adjoint: cannot recover input length {l_in}")))?;
        g.contiguous()?.conv_transpose1d(&self.weight, p, output_padding, s, d, 1)
    }
}

/// A 1-D transposed convolution (PyTorch `ConvTranspose1d`, one group) with constant
/// weights, differentiable with respect to its input: the adjoint of a transposed
/// convolution is the strided convolution with the same kernel and padding,
/// `gx = conv1d(g, w, padding, stride, dilation)` (the output padding only adds output
/// samples no input reaches, and `conv1d`'s length formula then gives back the input length
/// exactly because `output_padding < stride`).
#[derive(Clone, Debug)]
pub struct FrozenConvTranspose1d {
    /// (in, out, k)
    weight: Tensor,
    bias: Option<Tensor>,
    padding: usize,
    output_padding: usize,
    stride: usize,
    dilation: usize,
}

impl FrozenConvTranspose1d {
    pub fn new(weight: Tensor, bias: Option<Tensor>, padding: usize, output_padding: usize, stride: usize, dilation: usize) -> Result<Self> {
        let (_, c_out, _) = weight.dims3()?;
        if output_padding >= stride.max(dilation) {
            candle_core::bail!("conv_transpose1d: output_padding {output_padding} must be smaller than stride or dilation")
        }
        let weight = weight.detach().contiguous()?;
        let bias = channel_bias(bias, c_out)?;
        Ok(Self { weight, bias, padding, output_padding, stride, dilation })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Output length for an input of `l_in` samples (PyTorch's formula).
    pub fn output_len(&self, l_in: usize) -> usize {
        (l_in - 1) * self.stride + self.dilation * (self.weight.dims()[2] - 1) + self.output_padding + 1 - 2 * self.padding
    }

    /// (batch, in, length) → (batch, out, length').
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (p, op, s, d) = (self.padding, self.output_padding, self.stride, self.dilation);
        let xd = x.detach().contiguous()?;
        let l_out = self.output_len(xd.dim(2)?);
        let mut y = if d == 1 && op <= p {
            // candle's fast path (matmul + col2im) needs padding = 0: compute the full
            // output and crop `p` samples from the left (PyTorch's padding crops them).
            // That path is wrong for batch > 1 in candle 0.11 (checked in the tests below),
            // so it runs one batch item at a time (the tests compare with a naive loop at batch 2).
            let batch = xd.dim(0)?;
            let full = if batch == 1 {
                xd.conv_transpose1d(&self.weight, 0, 0, s, 1, 1)?
            } else {
                let items = (0..batch).map(|i| xd.narrow(0, i, 1)?.conv_transpose1d(&self.weight, 0, 0, s, 1, 1)).collect::<Result<Vec<_>>>()?;
                Tensor::cat(&items, 0)?
            };
            if p == 0 && op == 0 {
                full
            } else {
                full.narrow(2, p, l_out)?.contiguous()?
            }
        } else {
            xd.conv_transpose1d(&self.weight, p, op, s, d, 1)?
        };
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        let weight = self.weight.clone();
        attach_input_grad(x, y, move |_x, g| g.conv1d(&weight, p, s, d, 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::rand_f64 as rand;
    use candle_core::{DType, Device, Var};

    fn dot(a: &Tensor, b: &Tensor) -> f64 {
        (a * b).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
    }

    /// ⟨A x, g⟩ = ⟨x, Aᵀ g⟩ for the attached backward, in f64.
    fn adjoint_check(fwd: impl Fn(&Tensor) -> Tensor, x: Tensor, seed: u64) {
        let xv = Var::from_tensor(&x).unwrap();
        let y = fwd(xv.as_tensor());
        let g = rand(y.dims(), seed);
        let grads = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let gx = grads.get(xv.as_tensor()).unwrap();
        assert_eq!(gx.dims(), x.dims());
        let lhs = dot(&fwd(&x), &g);
        let rhs = dot(&x, gx);
        assert!((lhs - rhs).abs() <= 1e-10 * lhs.abs().max(1.0), "⟨Ax,g⟩ = {lhs} but ⟨x,Aᵀg⟩ = {rhs}");
    }

    /// PyTorch's definition: y[o, i·s − p + j·d] += x[c, i] w[c, o, j], then bias.
    // A reference written as the formula reads, index by index.
    #[allow(clippy::needless_range_loop)]
    fn naive_conv_transpose1d(x: &Tensor, w: &Tensor, b: &Tensor, p: usize, op: usize, s: usize, d: usize) -> Tensor {
        let (bs, ci, l) = x.dims3().unwrap();
        let (_, co, k) = w.dims3().unwrap();
        let l_out = (l - 1) * s + d * (k - 1) + op + 1 - 2 * p;
        let xv = x.to_vec3::<f64>().unwrap();
        let wv = w.to_vec3::<f64>().unwrap();
        let bv = b.to_vec1::<f64>().unwrap();
        let mut y = vec![0f64; bs * co * l_out];
        for n in 0..bs {
            for o in 0..co {
                for t in 0..l_out {
                    y[(n * co + o) * l_out + t] = bv[o];
                }
                for c in 0..ci {
                    for i in 0..l {
                        for j in 0..k {
                            let t = (i * s + j * d) as isize - p as isize;
                            if t >= 0 && (t as usize) < l_out {
                                y[(n * co + o) * l_out + t as usize] += xv[n][c][i] * wv[c][o][j];
                            }
                        }
                    }
                }
            }
        }
        Tensor::from_vec(y, (bs, co, l_out), &Device::Cpu).unwrap()
    }

    #[test]
    fn conv_transpose1d_backward_is_the_adjoint() {
        // (stride, kernel, padding, output_padding, dilation, length)
        for (i, &(s, k, p, op, d, l)) in
            [(5, 16, 5, 0, 1, 7), (4, 16, 6, 0, 1, 9), (2, 4, 1, 0, 1, 6), (3, 7, 2, 1, 1, 5), (2, 3, 0, 1, 2, 6), (3, 3, 1, 0, 1, 1)].iter().enumerate()
        {
            let w = rand(&[3, 2, k], 10 + i as u64);
            let b = rand(&[2], 20 + i as u64);
            let conv = FrozenConvTranspose1d::new(w.clone(), Some(b.clone()), p, op, s, d).unwrap();
            let x = rand(&[2, 3, l], 30 + i as u64);
            // The forward equals candle's reference transposed convolution plus the bias.
            let reference = x.conv_transpose1d(&w, p, op, s, d, 1).unwrap().broadcast_add(&b.reshape((1, 2, 1)).unwrap()).unwrap();
            let y = conv.forward(&x).unwrap();
            assert_eq!(y.dims(), reference.dims());
            assert_eq!(y.dims()[2], conv.output_len(l));
            let diff = (&y - &reference).unwrap().abs().unwrap().max_all().unwrap();
            let naive = naive_conv_transpose1d(&x, &w, &b, p, op, s, d);
            let diff_naive = (y - &naive).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
            let diff = diff.to_scalar::<f64>().unwrap();
            assert!(diff_naive < 1e-12 && diff < 1e-12, "case {i}: error {diff_naive:e} (vs candle's direct loop {diff:e})");
            // Linear part only (the bias does not change the gradient).
            let lin = FrozenConvTranspose1d::new(w, None, p, op, s, d).unwrap();
            adjoint_check(|x| lin.forward(x).unwrap(), x, 40 + i as u64);
        }
    }

    /// PyTorch's definition: y[o, t] = b[o] + Σ x[c, t·s − p + j·d] w[o, c, j].
    // A reference written as the formula reads, index by index.
    #[allow(clippy::needless_range_loop)]
    fn naive_conv1d(x: &Tensor, w: &Tensor, p: usize, s: usize, d: usize) -> Tensor {
        let (bs, ci, l) = x.dims3().unwrap();
        let (co, _, k) = w.dims3().unwrap();
        let l_out = (l + 2 * p - d * (k - 1) - 1) / s + 1;
        let xv = x.to_vec3::<f64>().unwrap();
        let wv = w.to_vec3::<f64>().unwrap();
        let mut y = vec![0f64; bs * co * l_out];
        for n in 0..bs {
            for o in 0..co {
                for t in 0..l_out {
                    let mut acc = 0.0;
                    for c in 0..ci {
                        for j in 0..k {
                            let i = (t * s + j * d) as isize - p as isize;
                            if i >= 0 && (i as usize) < l {
                                acc += xv[n][c][i as usize] * wv[o][c][j];
                            }
                        }
                    }
                    y[(n * co + o) * l_out + t] = acc;
                }
            }
        }
        Tensor::from_vec(y, (bs, co, l_out), &Device::Cpu).unwrap()
    }

    #[test]
    fn conv1d_backward_is_the_adjoint() {
        // (kernel, padding, stride, dilation, length)
        for (i, &(k, p, s, d, l)) in
            [(3, 1, 1, 1, 9), (7, 9, 1, 3, 20), (11, 25, 1, 5, 30), (4, 1, 1, 1, 8), (5, 0, 2, 1, 12), (4, 2, 3, 1, 13), (3, 5, 1, 1, 6)].iter().enumerate()
        {
            let w = rand(&[2, 3, k], 50 + i as u64);
            let conv = FrozenConv1d::new(w.clone(), None, p, s, d).unwrap();
            let x = rand(&[2, 3, l], 60 + i as u64);
            let err = (conv.forward(&x).unwrap() - naive_conv1d(&x, &w, p, s, d)).unwrap().abs().unwrap().max_all().unwrap();
            assert!(err.to_scalar::<f64>().unwrap() < 1e-12, "case {i}");
            adjoint_check(|x| conv.forward(x).unwrap(), rand(&[2, 3, l], 60 + i as u64), 70 + i as u64);
        }
    }

    #[test]
    fn leaky_relu_gradient() {
        let x = Var::from_tensor(&rand(&[4, 5], 1)).unwrap();
        let y = leaky_relu(x.as_tensor(), 0.1).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        let gx = grads.get(x.as_tensor()).unwrap().to_dtype(DType::F64).unwrap();
        let want = x.as_tensor().gt(0.0).unwrap().where_cond(&x.ones_like().unwrap(), &(x.ones_like().unwrap() * 0.1).unwrap()).unwrap();
        assert!((gx - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap() < 1e-15);
        let yv = y.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let xv = x.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for (a, b) in yv.iter().zip(&xv) {
            assert_eq!(*a, if *b > 0.0 { *b } else { 0.1 * b });
        }
    }
}
