//! CPU kernels (f32) for the frozen networks and the loss: convolutions and their adjoints,
//! norms, activations, softmax and spectrograms, forward and input gradient, on all cores.
//!
//! candle 0.11's CPU convolutions materialise the whole im2col matrix (gathered element by
//! element), its 1-D convolution runs on one core, and its autograd computes weight
//! gradients nobody needs. Here every convolution is one GEMM shape,
//! `y[o, n] (+)= Σ_k w[o, k] · col[k, n]`, run over tiles of output positions: each tile's
//! slice of the im2col matrix is gathered with row copies into a per-thread scratch buffer
//! (in the cache, never the whole matrix) and multiplied by the weights with the `gemm`
//! crate (AVX2/AVX-512 microkernels), the tiles spread over the threads. Weights are laid
//! out once, at load, for the forward and for the adjoint (the flipped, transposed kernel).
//! Where the arithmetic allows fewer multiplies, the same GEMMs run in a transform domain:
//! Winograd F(2×2, 3×3) for large 3×3 layers ([`winograd`]), overlap-save DFTs for the
//! vocoder's long dilated kernels ([`fftconv`]).
//!
//! The kernels work on slices; [`tensor`] moves candle tensors in and out, and [`op`] makes
//! a kernel a candle autograd node whose backward is its input gradient (the networks in
//! [`crate::model`] and the spectrograms of [`crate::dsp`] use them so). Other devices and
//! dtypes take candle's own ops, and [`crate::model::ops`] where a gradient is needed.

pub mod activation;
pub mod attention;
pub mod conv1d;
pub mod conv2d;
pub mod elementwise;
mod fftconv;
pub mod geglu;
pub mod math;
pub mod norm;
pub mod op;
pub mod softmax;
pub mod spectrum;
pub mod tensor;
#[cfg(test)]
pub(crate) mod testing;
mod tiles;
pub mod upsample;
mod winograd;

pub use activation::{Activation1d, SignMask};

/// Whether the kernels here can run on `device` in `dtype`.
pub fn applies(device: &candle_core::Device, dtype: candle_core::DType) -> bool {
    device.is_cpu() && dtype == candle_core::DType::F32
}
