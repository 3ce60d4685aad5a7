//! Elementwise passes over large buffers, spread over the threads in cache-sized chunks.

use rayon::prelude::*;

/// Elements per parallel chunk.
pub(super) const CHUNK: usize = 1 << 16;

/// `f(x)` for every element of `x`.
pub fn map(x: &mut [f32], f: impl Fn(&mut f32) + Sync) {
    x.par_chunks_mut(CHUNK).for_each(|x| x.iter_mut().for_each(&f));
}

/// `f(x, y)` for every pair of elements of `x` and `y`, which have the same length.
pub fn zip_map(x: &mut [f32], y: &[f32], f: impl Fn(&mut f32, f32) + Sync) {
    assert_eq!(x.len(), y.len(), "elementwise operands differ in length");
    x.par_chunks_mut(CHUNK).zip(y.par_chunks(CHUNK)).for_each(|(x, y)| x.iter_mut().zip(y).for_each(|(x, y)| f(x, *y)));
}
