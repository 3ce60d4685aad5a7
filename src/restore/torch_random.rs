//! torch's CPU generator and its `randn` for f32 tensors, so that the paper's random-walk
//! rooms ([`super::random_walk`]) are the ones `torch.randn(5000, generator=g)` draws
//! after `g.manual_seed(seed)`. Our own noise ([`super::noise::NoiseSource`]) is another
//! generator; this one exists only to reproduce the paper's operator.
//!
//! torch's generator is a 32-bit Mersenne Twister seeded as `std::mt19937`. For a tensor
//! of 16 or more f32 values, `randn` fills it with uniforms (24-bit, in [0, 1)) and turns
//! each block of 16 into normals by Box-Muller, the first 8 as `u1` and the last 8 as `u2`;
//! a tail shorter than 16 redraws the last 16 values and transforms them again.

/// The 32-bit Mersenne Twister (`std::mt19937`).
#[derive(Debug, Clone)]
pub struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl Mt19937 {
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            state[i] = 1_812_433_253u32.wrapping_mul(state[i - 1] ^ (state[i - 1] >> 30)).wrapping_add(i as u32);
        }
        Self { state, index: 624 }
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            for i in 0..624 {
                let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
                self.state[i] = self.state[(i + 397) % 624] ^ (y >> 1) ^ if y & 1 == 1 { 0x9908_b0df } else { 0 };
            }
            self.index = 0;
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }
}

/// `torch.Generator().manual_seed(seed)` drawing `torch.randn(n)` in f32, call after call.
#[derive(Debug, Clone)]
pub struct TorchNormal {
    engine: Mt19937,
}

impl TorchNormal {
    pub fn new(seed: u64) -> Self {
        // torch seeds the twister with the seed's low 32 bits.
        Self { engine: Mt19937::new(seed as u32) }
    }

    fn uniform(&mut self) -> f32 {
        (self.engine.next_u32() & 0x00ff_ffff) as f32 / (1u32 << 24) as f32
    }

    /// The next `torch.randn(n)`, for `n` of at least 16.
    pub fn randn(&mut self, n: usize) -> Vec<f32> {
        assert!(n >= 16, "torch draws fewer than 16 normals another way");
        let mut data: Vec<f32> = (0..n).map(|_| self.uniform()).collect();
        for block in data.chunks_exact_mut(16) {
            box_muller_16(block);
        }
        if !n.is_multiple_of(16) {
            let tail = &mut data[n - 16..];
            tail.iter_mut().for_each(|v| *v = self.uniform());
            box_muller_16(tail);
        }
        data
    }
}

/// Sixteen uniforms into sixteen normals: `u1 = 1 − block[j]`, `u2 = block[j + 8]`.
fn box_muller_16(block: &mut [f32]) {
    for j in 0..8 {
        let (u1, u2) = (1.0 - block[j], block[j + 8]);
        let radius = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * f64::from(u2);
        block[j] = (f64::from(radius) * theta.cos()) as f32;
        block[j + 8] = (f64::from(radius) * theta.sin()) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_twister_is_std_mt19937() {
        // The C++ standard's check: the 10000th output of a default-seeded (5489) mt19937.
        let mut mt = Mt19937::new(5489);
        let last = (0..10_000).map(|_| mt.next_u32()).last().unwrap();
        assert_eq!(last, 4_123_659_995);
    }

    /// Values torch 2.11 prints for `torch.randn(20, generator=torch.Generator().manual_seed(5))`
    /// (20: one block and a redrawn tail; longer draws are checked against the fixtures).
    #[test]
    fn randn_draws_what_torch_draws() {
        let x = TorchNormal::new(5).randn(20);
        for (got, want) in [(x[0], 1.842_329_9), (x[1], 0.518_887_2), (x[2], -1.711_921_3), (x[18], -1.172_414_3), (x[19], -1.506_940_4)] {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
    }
}
