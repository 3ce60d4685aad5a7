//! The vocoder's leaky ReLU: applied as a convolution gathers its input, and remembered
//! for the backward as one bit per element (its derivative only needs the input's sign).

use super::elementwise::CHUNK;
use rayon::prelude::*;

/// What a convolution applies to its input as it gathers it (fused into the copy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation1d {
    Identity,
    /// PyTorch's `leaky_relu`: `x > 0 ? x : slope·x`.
    LeakyRelu(f32),
}

impl Activation1d {
    #[inline]
    pub(super) fn apply(self, v: &mut [f32]) {
        if let Self::LeakyRelu(slope) = self {
            // Branch-free, so that it vectorises.
            for x in v {
                let scaled = *x * slope;
                *x = if *x > 0.0 { *x } else { scaled };
            }
        }
    }
}

/// Which elements of a tensor were positive: the derivative of `leaky_relu` at it.
#[derive(Debug, Clone, Default)]
pub struct SignMask {
    bits: Vec<u64>,
    len: usize,
}

impl SignMask {
    pub fn of(x: &[f32]) -> Self {
        let mut bits = vec![0u64; x.len().div_ceil(64)];
        bits.par_chunks_mut(CHUNK / 64).zip(x.par_chunks(CHUNK)).for_each(|(bits, x)| {
            for (word, x) in bits.iter_mut().zip(x.chunks(64)) {
                *word = x.iter().enumerate().fold(0, |w, (i, v)| w | (u64::from(*v > 0.0) << i));
            }
        });
        Self { bits, len: x.len() }
    }

    /// `g ← g · leaky_relu'(x)` for the `x` this mask was taken of: PyTorch's
    /// `g · (x > 0 ? 1 : slope)`.
    pub fn leaky_relu_grad(&self, g: &mut [f32], slope: f32) {
        assert_eq!(g.len(), self.len, "gradient and mask differ in size");
        g.par_chunks_mut(CHUNK).zip(self.bits.par_chunks(CHUNK / 64)).for_each(|(g, bits)| {
            for (g, word) in g.chunks_mut(64).zip(bits) {
                for (i, v) in g.iter_mut().enumerate() {
                    let scale = if word >> i & 1 == 1 { 1.0 } else { slope };
                    *v *= scale;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_gives_the_leaky_relu_derivative() {
        let x: Vec<f32> = (0..200_001).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
        let mask = SignMask::of(&x);
        let mut g = vec![2.0f32; x.len()];
        mask.leaky_relu_grad(&mut g, 0.1);
        for (x, g) in x.iter().zip(&g) {
            assert_eq!(*g, if *x > 0.0 { 2.0 } else { 2.0 * 0.1 });
        }
        let mut v = x.clone();
        Activation1d::LeakyRelu(0.1).apply(&mut v);
        for (x, v) in x.iter().zip(&v) {
            assert_eq!(*v, if *x > 0.0 { *x } else { 0.1 * x });
        }
    }
}
