//! Nearest-neighbour ×2 upsampling of images, and its input gradient (the sum of each 2×2
//! block).

use super::op::Kernel;
use rayon::prelude::*;

#[derive(Debug, Clone, Copy)]
pub struct Upsample2x;

impl Kernel for Upsample2x {
    fn name(&self) -> &'static str {
        "upsample-nearest-2x"
    }

    fn out_dims(&self, item: &[usize]) -> candle_core::Result<Vec<usize>> {
        match *item {
            [c, h, w] => Ok(vec![c, 2 * h, 2 * w]),
            _ => candle_core::bail!("upsampling: expected (channels, h, w) items, got {item:?}"),
        }
    }

    fn forward(&self, x: &[f32], item: &[usize], y: &mut [f32]) {
        let w = item[2];
        // Each input row becomes two output rows of twice its width.
        x.par_chunks(w).zip(y.par_chunks_mut(4 * w)).for_each(|(row, out)| {
            let (top, bottom) = out.split_at_mut(2 * w);
            for (pair, v) in top.chunks_exact_mut(2).zip(row) {
                pair[0] = *v;
                pair[1] = *v;
            }
            bottom.copy_from_slice(top);
        });
    }

    fn input_grad(&self, _x: &[f32], item: &[usize], g: &[f32], gx: &mut [f32]) {
        let w = item[2];
        gx.par_chunks_mut(w).zip(g.par_chunks(4 * w)).for_each(|(row, g)| {
            let (top, bottom) = g.split_at(2 * w);
            for (i, v) in row.iter_mut().enumerate() {
                *v = top[2 * i] + top[2 * i + 1] + bottom[2 * i] + bottom[2 * i + 1];
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::op;
    use candle_core::{Device, Tensor, Var};
    use std::sync::Arc;

    #[test]
    // A reference written as the formula reads, index by index.
    #[allow(clippy::needless_range_loop)]
    fn matches_candle_values_and_input_gradients() {
        let x = Var::from_tensor(&Tensor::from_vec((0..2 * 3 * 5 * 7).map(|i| i as f32 * 0.37 - 9.0).collect::<Vec<_>>(), (2, 3, 5, 7), &Device::Cpu).unwrap())
            .unwrap();
        let ours = op::apply(&Arc::new(Upsample2x), x.as_tensor()).unwrap();
        let want = x.upsample_nearest2d(10, 14).unwrap();
        assert_eq!(ours.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        let g = Tensor::from_vec((0..2 * 3 * 10 * 14).map(|i| ((i * 31) % 17) as f32 - 8.0).collect::<Vec<_>>(), (2, 3, 10, 14), &Device::Cpu).unwrap();
        let grads = (ours * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let gx = grads.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let g4: Vec<Vec<Vec<Vec<f32>>>> = (0..2).map(|b| g.get(b).unwrap().to_vec3::<f32>().unwrap()).collect();
        let mut k = 0;
        for b in 0..2 {
            for c in 0..3 {
                for r in 0..5 {
                    for q in 0..7 {
                        let want = g4[b][c][2 * r][2 * q] + g4[b][c][2 * r][2 * q + 1] + g4[b][c][2 * r + 1][2 * q] + g4[b][c][2 * r + 1][2 * q + 1];
                        assert_eq!(gx[k], want, "({b}, {c}, {r}, {q})");
                        k += 1;
                    }
                }
            }
        }
    }
}
