//! The machinery every convolution shares: the GEMM over one tile, the loop that spreads
//! tiles over the threads with a scratch buffer each, and the row gather that builds a
//! tile of the im2col matrix.

use gemm::Parallelism;
use rayon::prelude::*;
use std::cell::RefCell;
use std::ops::Range;

/// Where a convolution writes: `c_out` rows `channel_stride` apart, output position `n` of
/// a row at `n · step`. Tiles write disjoint positions, so threads share it.
#[derive(Clone, Copy)]
pub(super) struct Out {
    ptr: *mut f32,
    rows: usize,
    channel_stride: usize,
    step: usize,
    /// Output positions per row.
    pub len: usize,
}

// SAFETY: `Out` is only written through `gemm_tile`, whose callers give every thread a
// disjoint range of output positions (see `for_tiles`).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// Rows of `len` contiguous positions, one after the other (the usual (C, L) layout).
    pub fn rows(y: &mut [f32], c_out: usize, len: usize) -> Self {
        assert_eq!(y.len(), c_out * len, "output buffer does not hold {c_out} × {len}");
        Self { ptr: y.as_mut_ptr(), rows: c_out, channel_stride: len, step: 1, len }
    }

    /// A matrix stored column-major: element (row, position) at `position · rows + row`.
    pub fn columns(y: &mut [f32], rows: usize, len: usize) -> Self {
        assert_eq!(y.len(), rows * len, "output buffer does not hold {rows} × {len}");
        Self { ptr: y.as_mut_ptr(), rows, channel_stride: 1, step: rows, len }
    }

    /// Every `step`-th position of rows `channel_stride` long, starting at `first`: one
    /// phase of a transposed convolution's output.
    pub fn strided(y: &mut [f32], c_out: usize, channel_stride: usize, first: usize, step: usize, len: usize) -> Self {
        assert!(step > 0 && (len == 0 || first + (len - 1) * step < channel_stride), "phase leaves the row");
        assert_eq!(y.len(), c_out * channel_stride, "output buffer does not hold {c_out} × {channel_stride}");
        // SAFETY: `first < channel_stride` when len > 0, so the offset stays inside `y`.
        let ptr = if len == 0 { y.as_mut_ptr() } else { unsafe { y.as_mut_ptr().add(first) } };
        Self { ptr, rows: c_out, channel_stride, step, len }
    }
}

/// A matrix of weights, `rows` (one per output channel) × `cols`: `data` holds it
/// row-major, or its transpose row-major when `transposed`.
#[derive(Clone, Copy)]
pub(super) struct Weights<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub transposed: bool,
}

impl<'a> Weights<'a> {
    /// A row-major `rows × cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, transposed: false }
    }

    /// The transpose of the row-major `cols × rows` matrix in `data`.
    pub fn transpose_of(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, transposed: true }
    }
}

/// What a GEMM does with what its output held.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Update {
    Set,
    Add,
    Subtract,
}

impl Update {
    pub fn adding(accumulate: bool) -> Self {
        if accumulate {
            Self::Add
        } else {
            Self::Set
        }
    }
}

impl Out {
    /// `out[o, first + i·stride] (+)= values[i]`. Each position is written from one thread
    /// only.
    pub fn put_strided(&self, o: usize, first: usize, stride: usize, values: &[f32], accumulate: bool) {
        let Some(last) = values.len().checked_sub(1) else { return };
        assert!(o < self.rows && first + last * stride < self.len, "output ({o}, {first}..+{last}·{stride}) outside {} × {}", self.rows, self.len);
        for (i, v) in values.iter().enumerate() {
            // SAFETY: in bounds by the assert and `Out`'s construction; callers write each
            // position from one thread only.
            unsafe {
                let p = self.ptr.add(o * self.channel_stride + (first + i * stride) * self.step);
                *p = if accumulate { *p + v } else { *v };
            }
        }
    }

    /// Positions `start..start + len` of row `o`, for rows laid out contiguously (`step` 1).
    /// Each thread must take positions no other thread takes while it holds them.
    #[allow(clippy::mut_from_ref)] // disjoint per thread, as every write through `Out`
    pub fn row(&self, o: usize, start: usize, len: usize) -> &mut [f32] {
        assert!(self.step == 1 && o < self.rows && start + len <= self.len, "output row ({o}, {start}..+{len}) outside {} × {}", self.rows, self.len);
        // SAFETY: in bounds by the assert and `Out`'s construction; the caller's tiles
        // never share an output position.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(o * self.channel_stride + start), len) }
    }
}

/// `out[o, range] = / += / −= w (c_out × kk) · col (kk × range.len(), row-major)`.
pub(super) fn gemm_tile(out: Out, range: Range<usize>, w: Weights, col: &[f32], update: Update, par: Parallelism) {
    let (n, c_out, kk) = (range.len(), w.rows, w.cols);
    assert!(range.end <= out.len && c_out == out.rows && w.data.len() == c_out * kk && col.len() >= kk * n);
    if n == 0 || c_out == 0 {
        return;
    }
    if kk == 0 {
        if update == Update::Set {
            for o in 0..c_out {
                for i in range.clone() {
                    // SAFETY: o < c_out and i < out.len address the output (see `Out`).
                    unsafe { *out.ptr.add(o * out.channel_stride + i * out.step) = 0.0 };
                }
            }
        }
        return;
    }
    // In gemm's column-major terms: dst = colᵀ (n × kk) · wᵀ (kk × c_out), an (n × c_out)
    // matrix with the output positions along its columns.
    let (w_cs, w_rs) = if w.transposed { (1, c_out) } else { (kk, 1) };
    let accumulate = update != Update::Set;
    let scale = if update == Update::Subtract { -1.0 } else { 1.0 };
    // SAFETY: the bounds are checked above; `Out` guarantees rows `channel_stride` apart
    // with `len` positions `step` apart inside the caller's buffer.
    unsafe {
        gemm::gemm(
            n,
            c_out,
            kk,
            out.ptr.add(range.start * out.step),
            out.channel_stride as isize,
            out.step as isize,
            accumulate,
            col.as_ptr(),
            n as isize,
            1,
            w.data.as_ptr(),
            w_cs as isize,
            w_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            scale,
            false,
            false,
            false,
            par,
        );
    }
}

thread_local! {
    /// Each thread's im2col tile, kept between calls (it grows to the largest tile seen).
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `work(range, scratch, parallelism)` over tiles of `0..len` of at most `tile`
/// positions: the tiles in parallel (each GEMM on one thread) when there are enough of them
/// for every thread, else one after the other with the GEMM itself threaded.
pub(super) fn for_tiles(len: usize, tile: usize, work: impl Fn(Range<usize>, &mut Vec<f32>, Parallelism) + Sync) {
    let tile = tile.max(1);
    let count = len.div_ceil(tile);
    let range = |i: usize| i * tile..((i + 1) * tile).min(len);
    let threads = candle_core::utils::get_num_threads();
    let with_scratch = |f: &mut dyn FnMut(&mut Vec<f32>)| {
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut s) => f(&mut s),
            // Re-entered on this thread (a nested parallel call): a buffer of its own.
            Err(_) => f(&mut Vec::new()),
        })
    };
    if threads > 1 && count >= 2 * threads {
        (0..count).into_par_iter().for_each(|i| with_scratch(&mut |s| work(range(i), s, Parallelism::None)));
    } else {
        let par = if threads > 1 { Parallelism::Rayon(threads) } else { Parallelism::None };
        with_scratch(&mut |s| (0..count).for_each(|i| work(range(i), s, par)));
    }
}

/// Output positions per tile for an im2col matrix of `kk` rows: 256 for short rows (the
/// GEMM's fixed cost per call matters there), 128 from 1024 rows on (2 MB of scratch and
/// up). Measured with `dgg-restore bench kernels` on the networks' shapes; 64 to 512
/// are within the machine's noise of each other for the large ones.
pub(super) fn tile_len(kk: usize) -> usize {
    if kk < 1024 {
        256
    } else {
        128
    }
}

/// `dst[j] = x[i0 + j·step]`, zero where that index leaves `0..x.len()`.
#[inline]
pub(super) fn gather(dst: &mut [f32], x: &[f32], i0: isize, step: usize) {
    let (n, len) = (dst.len() as isize, x.len() as isize);
    let s = step as isize;
    // First j with i0 + j·s ≥ 0, and first j with i0 + j·s ≥ len.
    let lo = if i0 >= 0 { 0 } else { ((-i0) + s - 1) / s }.min(n);
    let hi = if i0 >= len { 0 } else { ((len - i0) + s - 1) / s }.clamp(lo, n);
    let (lo, hi) = (lo as usize, hi as usize);
    dst[..lo].fill(0.0);
    dst[hi..].fill(0.0);
    if hi > lo {
        let start = (i0 + lo as isize * s) as usize;
        if step == 1 {
            dst[lo..hi].copy_from_slice(&x[start..start + (hi - lo)]);
        } else {
            for (d, v) in dst[lo..hi].iter_mut().zip(x[start..].iter().step_by(step)) {
                *d = *v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_zero_pads_both_sides_at_any_step() {
        let x: Vec<f32> = (1..=7).map(|v| v as f32).collect();
        for step in 1..4usize {
            for i0 in -9isize..12 {
                for n in 0..8usize {
                    let mut dst = vec![f32::NAN; n];
                    gather(&mut dst, &x, i0, step);
                    for (j, d) in dst.iter().enumerate() {
                        let i = i0 + (j * step) as isize;
                        let want = if (0..7).contains(&i) { x[i as usize] } else { 0.0 };
                        assert_eq!(*d, want, "i0 {i0} step {step} j {j}");
                    }
                }
            }
        }
    }
}
