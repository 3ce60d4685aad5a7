//! Moving f32 CPU tensors in and out of the kernels.

use candle_core::{CpuStorage, Device, Layout, Result, Shape, Storage, Tensor};
use std::borrow::Cow;

/// The elements of a CPU f32 storage seen through `layout`, in row-major order: borrowed
/// when the layout is contiguous, gathered otherwise.
pub fn elements<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<Cow<'a, [f32]>> {
    let data = storage.as_slice::<f32>()?;
    Ok(match layout.contiguous_offsets() {
        Some((start, end)) => Cow::Borrowed(&data[start..end]),
        None => Cow::Owned(gather_strided(data, layout)),
    })
}

/// The elements of a strided layout, row-major.
fn gather_strided(data: &[f32], layout: &Layout) -> Vec<f32> {
    let (dims, strides) = (layout.dims(), layout.stride());
    let mut out = Vec::with_capacity(layout.shape().elem_count());
    let mut index = vec![0usize; dims.len()];
    let mut offset = layout.start_offset();
    for _ in 0..layout.shape().elem_count() {
        out.push(data[offset]);
        // Advance the multi-index like an odometer, the last axis fastest.
        for axis in (0..dims.len()).rev() {
            index[axis] += 1;
            offset += strides[axis];
            if index[axis] < dims[axis] {
                break;
            }
            offset -= strides[axis] * dims[axis];
            index[axis] = 0;
        }
    }
    out
}

/// Runs `f` on the elements of a CPU f32 tensor in row-major order.
pub fn with_elements<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => Ok(f(&elements(cpu, layout)?)),
        _ => candle_core::bail!("kernels: expected a CPU tensor, got one on {:?}", t.device()),
    }
}

/// A CPU tensor of `shape` owning `values`.
pub fn from_vec(values: Vec<f32>, shape: impl Into<Shape>) -> Result<Tensor> {
    Tensor::from_vec(values, shape, &Device::Cpu)
}

/// The f32 values of a CPU tensor, copied (weights, at load).
pub fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    with_elements(&t.to_dtype(candle_core::DType::F32)?, <[f32]>::to_vec)
}
