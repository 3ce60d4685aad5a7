//! Multi-head scaled dot-product attention, forward only, reading the heads in place: q, k
//! and v stay (tokens, heads·head_dim) as the projections write them, and each head's two
//! products are GEMMs over strided views, so no head is split out, transposed or merged.

use super::softmax;
use gemm::Parallelism;
use rayon::prelude::*;

/// The shape of one attention call.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub batch: usize,
    /// Query tokens.
    pub queries: usize,
    /// Key (and value) tokens.
    pub keys: usize,
    pub heads: usize,
    pub head_dim: usize,
}

/// `out` shared by the tasks, each writing the columns of its own head.
struct Shared(*mut f32);
// SAFETY: every task writes a disjoint set of elements (its item's rows, its head's
// columns); see `attention`.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// The element `offset` elements in (the closures capture `Shared`, not its pointer).
    fn at(&self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// `out = softmax(scale · q kᵀ + bias) v` per batch item and head. `q` is
/// (batch, queries, heads·head_dim), `k` and `v` (batch, keys, heads·head_dim), `bias`
/// an additive (batch, keys) key bias, `out` like `q`.
pub fn attention(q: &[f32], k: &[f32], v: &[f32], bias: Option<&[f32]>, shape: Heads, scale: f32, out: &mut [f32]) {
    let Heads { batch, queries, keys, heads, head_dim } = shape;
    let inner = heads * head_dim;
    assert!(q.len() == batch * queries * inner && out.len() == q.len(), "attention: q is not {batch} × {queries} × {inner}");
    assert!(k.len() == batch * keys * inner && v.len() == k.len(), "attention: k, v are not {batch} × {keys} × {inner}");
    assert!(bias.is_none_or(|b| b.len() == batch * keys), "attention: the key bias is not {batch} × {keys}");
    if queries == 0 || keys == 0 || head_dim == 0 {
        out.fill(0.0);
        return;
    }
    let shared = Shared(out.as_mut_ptr());
    (0..batch * heads).into_par_iter().for_each_init(Vec::new, |scores: &mut Vec<f32>, task| {
        let (b, h) = (task / heads, task % heads);
        let q_at = b * queries * inner + h * head_dim;
        let kv_at = b * keys * inner + h * head_dim;
        scores.resize(queries * keys, 0.0);
        // gemm's terms: element (r, c) of a matrix at `ptr + r·rs + c·cs`.
        // SAFETY: every access below stays inside q, k, v (rows < queries or keys of item
        // b, columns < head_dim from this head's offset) and inside `scores`; the output
        // block (item b's rows, head h's columns) is written by this task alone.
        unsafe {
            // scores (queries × keys) = q_h (queries × d) · k_hᵀ (d × keys).
            gemm::gemm(
                queries,
                keys,
                head_dim,
                scores.as_mut_ptr(),
                1,
                keys as isize,
                false,
                q.as_ptr().add(q_at),
                1,
                inner as isize,
                k.as_ptr().add(kv_at),
                inner as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
        let bias = bias.map(|bias| &bias[b * keys..(b + 1) * keys]);
        for row in scores.chunks_mut(keys) {
            match bias {
                Some(bias) => row.iter_mut().zip(bias).for_each(|(s, a)| *s = *s * scale + a),
                None => row.iter_mut().for_each(|s| *s *= scale),
            }
            softmax::in_place(row);
        }
        unsafe {
            // out_h (queries × d) = probs (queries × keys) · v_h (keys × d).
            gemm::gemm(
                queries,
                head_dim,
                keys,
                shared.at(q_at),
                1,
                inner as isize,
                false,
                scores.as_ptr(),
                1,
                keys as isize,
                v.as_ptr().add(kv_at),
                1,
                inner as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_definition_with_and_without_a_key_bias() {
        let values = |n: usize, s: usize| (0..n).map(|i| ((i * 7919 + s * 104729) % 2003) as f32 / 1001.0 - 1.0).collect::<Vec<f32>>();
        for (batch, queries, keys, heads, head_dim) in [(2, 5, 7, 3, 4), (1, 64, 8, 8, 32), (1, 3, 1, 2, 5)] {
            let inner = heads * head_dim;
            let (q, k, v) = (values(batch * queries * inner, 1), values(batch * keys * inner, 2), values(batch * keys * inner, 3));
            let bias: Vec<f32> = (0..batch * keys).map(|i| if i % 3 == 1 { -10000.0 } else { 0.0 }).collect();
            for bias in [None, Some(&bias[..])] {
                let shape = Heads { batch, queries, keys, heads, head_dim };
                let scale = 1.0 / (head_dim as f32).sqrt();
                let mut out = vec![f32::NAN; q.len()];
                attention(&q, &k, &v, bias, shape, scale, &mut out);
                for b in 0..batch {
                    for h in 0..heads {
                        for i in 0..queries {
                            let s: Vec<f64> = (0..keys)
                                .map(|j| {
                                    let dot: f64 = (0..head_dim)
                                        .map(|t| q[(b * queries + i) * inner + h * head_dim + t] as f64 * k[(b * keys + j) * inner + h * head_dim + t] as f64)
                                        .sum();
                                    dot * scale as f64 + bias.map_or(0.0, |a| a[b * keys + j] as f64)
                                })
                                .collect();
                            let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                            let e: Vec<f64> = s.iter().map(|s| (s - max).exp()).collect();
                            let sum: f64 = e.iter().sum();
                            for t in 0..head_dim {
                                let want: f64 = (0..keys).map(|j| e[j] / sum * v[(b * keys + j) * inner + h * head_dim + t] as f64).sum();
                                let got = out[(b * queries + i) * inner + h * head_dim + t] as f64;
                                assert!((got - want).abs() < 1e-5, "({b}, {h}, {i}, {t}): {got} vs {want}");
                            }
                        }
                    }
                }
            }
        }
    }
}
