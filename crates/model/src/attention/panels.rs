//! The arithmetic of attention over the cache's panels: scores of many query vectors against
//! key panels, the largest score, and weighted sums of value rows. Each score and each output
//! element is one chain of FMAs in a fixed order, however many vectors go together.

use super::WIDE;
use crate::cache::KEY_PANEL;

/// The largest of `row` (as a fold of `f32::max` in order gives it).
pub(super) fn max_of(row: &[f32]) -> f32 {
    crate::ops::max_by_lanes(row, |v| v, f32::NEG_INFINITY)
}

/// Appends 1 / the sum of each of vectors `first..first + G`'s weights (rows of `width` in
/// `scores`, the first `count(vector)` of each) to `inverses`: each sum in position order, the
/// `G` chains side by side over the positions they share. Returns `G`.
#[inline(always)]
pub(super) fn sum_weights<const G: usize>(
    scores: &[f32],
    width: usize,
    first: usize,
    count: impl Fn(usize) -> usize,
    inverses: &mut Vec<f32>,
) -> usize {
    let counts: [usize; G] = std::array::from_fn(|g| count(first + g));
    let rows: [&[f32]; G] = std::array::from_fn(|g| {
        let row = (first + g) * width;
        &scores[row..row + counts[g]]
    });
    let shared = counts.iter().copied().min().unwrap_or(0);
    let mut sums = [0f32; G];
    for j in 0..shared {
        for (sum, row) in sums.iter_mut().zip(&rows) {
            *sum += row[j];
        }
    }
    for (sum, row) in sums.iter_mut().zip(&rows) {
        for &w in &row[shared..] {
            *sum += w;
        }
        inverses.push(1.0 / *sum);
    }
    G
}

/// Weighted sums of the values for heads `first..first + G` (their weights are rows of `width`
/// in `scores`) into their rows of `out`, every dimension: `W` dimensions at a time, or fewer
/// at the end. Returns `G`.
#[inline(always)]
pub(super) fn weigh_heads<const G: usize, const W: usize>(
    scores: &[f32],
    width: usize,
    values: &[f32],
    count: usize,
    d: usize,
    first: usize,
    out: &mut [f32],
) -> usize {
    let weights: [&[f32]; G] =
        std::array::from_fn(|h| &scores[(first + h) * width..(first + h) * width + count]);
    let mut start = 0;
    while start < d {
        start += match d - start {
            left if left >= W => weigh_values::<G, W>(&weights, values, d, start, first, out),
            8.. => weigh_values::<G, 8>(&weights, values, d, start, first, out),
            _ => weigh_values::<G, 1>(&weights, values, d, start, first, out),
        };
    }
    G
}

/// `out[h][start + i] = sum_j weights[h][j] * values[j][start + i]` for `i < W` and the `G`
/// heads from `first`: FMAs in position order, the sums kept in registers. Returns `W`.
#[inline(always)]
fn weigh_values<const G: usize, const W: usize>(
    weights: &[&[f32]; G],
    values: &[f32],
    d: usize,
    start: usize,
    first: usize,
    out: &mut [f32],
) -> usize {
    let mut acc = [[0f32; W]; G];
    for (j, value) in values.chunks_exact(d).take(weights[0].len()).enumerate() {
        let value = &value[start..start + W];
        for (acc, weights) in acc.iter_mut().zip(weights) {
            let w = weights[j];
            for (a, &v) in acc.iter_mut().zip(value) {
                *a = w.mul_add(v, *a);
            }
        }
    }
    for (h, acc) in acc.iter().enumerate() {
        let at = (first + h) * d + start;
        out[at..at + W].copy_from_slice(acc);
    }
    W
}

/// Scores of `G` query heads (rows of `queries`, `d` values each) against every key panel,
/// scaled, into rows of `width` of `scores`: per position, the FMAs over the dimensions in order.
/// Several panels go at once so that about 8 FMA chains are in flight (the FMA latency times
/// the FMA pipes), whatever `G`.
#[inline(always)]
pub(super) fn score_panels<const G: usize>(
    queries: &[f32],
    key_panels: &[f32],
    d: usize,
    width: usize,
    scale: f32,
    scores: &mut [f32],
) {
    let panels = key_panels.len() / (d * KEY_PANEL).max(1);
    let mut p = 0;
    while p < panels {
        let left = panels - p;
        p += if G == 1 && left >= 8 {
            score_step::<G, 8>(queries, key_panels, p, d, width, scale, scores)
        } else if G <= 2 && left >= 4 * WIDE {
            score_step::<G, { 4 * WIDE }>(queries, key_panels, p, d, width, scale, scores)
        } else if left >= 2 * WIDE {
            score_step::<G, { 2 * WIDE }>(queries, key_panels, p, d, width, scale, scores)
        } else if left >= 2 {
            score_step::<G, 2>(queries, key_panels, p, d, width, scale, scores)
        } else {
            score_step::<G, 1>(queries, key_panels, p, d, width, scale, scores)
        };
    }
}

/// Scores of key panels `first..first + P` for `G` heads (as `score_panels`); returns `P`.
#[inline(always)]
fn score_step<const G: usize, const P: usize>(
    queries: &[f32],
    key_panels: &[f32],
    first: usize,
    d: usize,
    width: usize,
    scale: f32,
    scores: &mut [f32],
) -> usize {
    let panel_len = d * KEY_PANEL;
    let keys = &key_panels[first * panel_len..(first + P) * panel_len];
    let acc = panel_products::<G, P>(&queries[..G * d], keys, d);
    for (t, acc) in acc.iter().enumerate() {
        for (h, lanes) in acc.iter().enumerate() {
            let at = h * width + (first + t) * KEY_PANEL;
            for (s, &a) in scores[at..at + KEY_PANEL].iter_mut().zip(lanes) {
                *s = a * scale;
            }
        }
    }
    P
}

/// The unscaled scores of `G` query vectors (`queries`, `d` values each) against the `P` key
/// panels in `keys`: per position, one FMA per dimension, in order.
#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
)))]
#[inline(always)]
fn panel_products<const G: usize, const P: usize>(
    queries: &[f32],
    keys: &[f32],
    d: usize,
) -> [[[f32; KEY_PANEL]; G]; P] {
    let mut acc = [[[0f32; KEY_PANEL]; G]; P];
    for i in 0..d {
        for (t, acc) in acc.iter_mut().enumerate() {
            let keys = &keys[(t * d + i) * KEY_PANEL..][..KEY_PANEL];
            for (h, lanes) in acc.iter_mut().enumerate() {
                let q = queries[h * d + i];
                for (a, &k) in lanes.iter_mut().zip(keys) {
                    *a = q.mul_add(k, *a);
                }
            }
        }
    }
    acc
}

/// `panel_products` in AVX2 and FMA instructions, for builds that have them (the crate is built
/// for the host CPU): the same FMAs in the same order, so the same values, without the bounds
/// checks and address arithmetic the portable loop compiles to.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
#[inline(always)]
fn panel_products<const G: usize, const P: usize>(
    queries: &[f32],
    keys: &[f32],
    d: usize,
) -> [[[f32; KEY_PANEL]; G]; P] {
    use std::arch::x86_64::*;
    let panel_len = d * KEY_PANEL;
    let (keys, queries) = (&keys[..P * panel_len], &queries[..G * d]);
    let mut out = [[[0f32; KEY_PANEL]; G]; P];
    // SAFETY: the build enables AVX2 and FMA (the cfg above). Every read stays within `keys`
    // (panel t's dimension i: t * panel_len + i * 8, 8 values, for t < P and i < d) or
    // `queries` (h * d + i < G * d), and every store fills one 8-value array of `out`.
    unsafe {
        let (k, q) = (keys.as_ptr(), queries.as_ptr());
        let mut acc = [[_mm256_setzero_ps(); G]; P];
        for i in 0..d {
            for (t, acc) in acc.iter_mut().enumerate() {
                let key = _mm256_loadu_ps(k.add(t * panel_len + i * KEY_PANEL));
                for (h, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(_mm256_set1_ps(*q.add(h * d + i)), key, *a);
                }
            }
        }
        for (out, acc) in out.iter_mut().zip(&acc) {
            for (lanes, &a) in out.iter_mut().zip(acc) {
                _mm256_storeu_ps(lanes.as_mut_ptr(), a);
            }
        }
    }
    out
}
