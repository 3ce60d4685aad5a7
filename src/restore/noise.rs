//! Seeded Gaussian noise, drawn on the CPU and copied to the device, so that the same seed
//! gives the same draws whatever the device (GPU generators differ from CPU ones).

use candle_core::{Device, Result, Shape, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

pub struct NoiseSource {
    rng: ChaCha8Rng,
}

impl NoiseSource {
    /// Stream `stream` of `seed`: independent draws for each attempt of a window.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Self { rng }
    }

    /// A tensor of independent N(0, 1) draws (f32).
    pub fn draw(&mut self, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        Tensor::from_vec(self.values(shape.elem_count()), shape, device)
    }

    /// The next `n` draws: consecutive calls continue one sequence.
    pub fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| StandardNormal.sample(&mut self.rng)).collect()
    }
}
