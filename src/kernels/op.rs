//! A kernel as a candle autograd node: the forward item by item over the batch, the
//! backward its input gradient (weights are frozen, so nothing else).

use super::tensor;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use std::sync::Arc;

/// A differentiable function of one batch item (the first dimension) on f32 slices.
pub trait Kernel: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// The output dims of one item of dims `item`, or an error that names the mismatch.
    fn out_dims(&self, item: &[usize]) -> Result<Vec<usize>>;

    /// `y = f(x)` for one item.
    fn forward(&self, x: &[f32], item: &[usize], y: &mut [f32]);

    /// `gx = (∂f/∂x)ᵀ g` at `x` for one item.
    fn input_grad(&self, x: &[f32], item: &[usize], g: &[f32], gx: &mut [f32]);
}

/// `kernel(x)` for a CPU f32 tensor (batch first, any layout), differentiable w.r.t. `x`.
pub fn apply<K: Kernel>(kernel: &Arc<K>, x: &Tensor) -> Result<Tensor> {
    x.apply_op1_arc(Arc::new(Box::new(Node(kernel.clone()))))
}

struct Node<K>(Arc<K>);

/// (batch, item dims, elements per item) of a shape.
fn split(shape: &Shape) -> Result<(usize, &[usize], usize)> {
    let dims = shape.dims();
    let Some((&batch, item)) = dims.split_first() else { candle_core::bail!("kernel: a batch dimension is needed, got a scalar") };
    Ok((batch, item, item.iter().product()))
}

impl<K: Kernel> CustomOp1 for Node<K> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (batch, item, n_in) = split(layout.shape())?;
        let out = self.0.out_dims(item)?;
        let n_out: usize = out.iter().product();
        let x = tensor::elements(storage, layout)?;
        let mut y = vec![0f32; batch * n_out];
        for (x, y) in x.chunks(n_in.max(1)).zip(y.chunks_mut(n_out.max(1))) {
            self.0.forward(x, item, y);
        }
        Ok((CpuStorage::F32(y), Shape::from([&[batch], out.as_slice()].concat())))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (batch, item, n_in) = split(arg.shape())?;
        let n_out = grad.elem_count() / batch.max(1);
        let gx = tensor::with_elements(arg, |x| {
            tensor::with_elements(grad, |g| {
                let mut gx = vec![0f32; x.len()];
                for ((x, g), gx) in x.chunks(n_in.max(1)).zip(g.chunks(n_out.max(1))).zip(gx.chunks_mut(n_in.max(1))) {
                    self.0.input_grad(x, item, g, gx);
                }
                gx
            })
        })??;
        Ok(Some(tensor::from_vec(gx, arg.shape())?))
    }
}
