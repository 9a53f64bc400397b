//! Causal attention of the new positions over the KV cache, spread over the thread pool.
//!
//! Scores come 8 positions at a time from the transposed key panels (one FMA per dimension),
//! then a softmax per head and the weighted sum of the values. Each score, weight and output
//! element is computed by one fixed sequence of operations, whatever the number of new rows,
//! the heads in a group or the thread split.

use rayon::prelude::*;

use crate::cache::{KvCache, KEY_PANEL};
use crate::config::Config;
use crate::forward::{RowPlace, Segment};
use crate::ops;

/// Query heads scored together against one key panel.
const HEADS_PER_PASS: usize = 4;

/// Causal attention of every row of a pass over its own sequence's cache. Each (row, kv head)
/// is one task that serves every query head of its group, so each cached key and value is read
/// once per group; the tasks of all sequences share one parallel loop.
pub(crate) fn attention(
    pool: &rayon::ThreadPool,
    segments: &[Segment],
    rows: &[RowPlace],
    c: &Config,
    layer: usize,
    q: &[f32],
    out: &mut [f32],
) {
    let group_width = c.head_count / c.kv_head_count * c.head_dim;
    let task = |(index, out): (usize, &mut [f32])| {
        let (row, kv_head) = (index / c.kv_head_count, index % c.kv_head_count);
        let place = rows[row];
        let cache: &KvCache = segments[place.segment].cache;
        let count = place.position + 1;
        let queries = &q[index * group_width..(index + 1) * group_width];
        SCORES.with(|scores| {
            attend_group(
                queries,
                cache.head_keys(layer, kv_head, count),
                cache.head_values(layer, kv_head, count),
                count,
                c.head_dim,
                &mut scores.borrow_mut(),
                out,
            )
        });
    };
    let out = &mut out[..rows.len() * c.q_dim()];
    if pool.current_num_threads() <= 1 {
        out.chunks_exact_mut(group_width).enumerate().for_each(task);
    } else {
        pool.install(|| {
            out.par_chunks_exact_mut(group_width)
                .enumerate()
                .for_each(task)
        });
    }
}

thread_local! {
    /// Attention scores of the task running on this thread: (group, padded positions).
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Causal attention of the query heads that share one kv head, over `count` cached positions:
/// softmax(q.K / sqrt(d)) V per head. `queries` and `out` are (heads, d); `key_panels` is
/// (ceil(count / 8), d, 8) and `values` (count, d).
fn attend_group(
    queries: &[f32],
    key_panels: &[f32],
    values: &[f32],
    count: usize,
    d: usize,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let heads = queries.len() / d;
    let scale = 1.0 / (d as f32).sqrt();
    let width = count.div_ceil(KEY_PANEL) * KEY_PANEL;
    scores.clear();
    scores.resize(heads * width, 0.0);
    // scores of 8 positions per step: lanes past `count` are computed and ignored
    for first in (0..heads).step_by(HEADS_PER_PASS) {
        let queries = &queries[first * d..];
        let scores = &mut scores[first * width..];
        match (heads - first).min(HEADS_PER_PASS) {
            1 => score_panels::<1>(queries, key_panels, d, width, scale, scores),
            2 => score_panels::<2>(queries, key_panels, d, width, scale, scores),
            3 => score_panels::<3>(queries, key_panels, d, width, scale, scores),
            _ => score_panels::<4>(queries, key_panels, d, width, scale, scores),
        }
    }
    // softmax per head, the normalisation deferred to the output
    let mut inverse_sums = [0f32; 16];
    let mut inverse_sums_heap = Vec::new();
    let inverse_sums: &mut [f32] = if heads <= 16 {
        &mut inverse_sums[..heads]
    } else {
        inverse_sums_heap.resize(heads, 0.0);
        &mut inverse_sums_heap
    };
    for (row, inverse) in scores.chunks_exact_mut(width).zip(inverse_sums.iter_mut()) {
        let row = &mut row[..count];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for s in row.iter_mut() {
            *s = ops::exp(*s - max);
        }
        // In position order, as every pass sums them.
        *inverse = 1.0 / row.iter().sum::<f32>();
    }
    // the weighted sum of the values, position by position, per head and span of dimensions
    for (h, (out, &inverse)) in out.chunks_exact_mut(d).zip(inverse_sums.iter()).enumerate() {
        let weights = &scores[h * width..h * width + count];
        let mut start = 0;
        while start < d {
            let span = &mut out[start..];
            match d - start {
                64.. => weigh_values::<64>(weights, values, d, start, span),
                32.. => weigh_values::<32>(weights, values, d, start, span),
                8.. => weigh_values::<8>(weights, values, d, start, span),
                _ => weigh_values::<1>(weights, values, d, start, span),
            }
            start += match d - start {
                64.. => 64,
                32.. => 32,
                8.. => 8,
                _ => 1,
            };
        }
        for o in out.iter_mut() {
            *o *= inverse;
        }
    }
}

/// `out[i] = sum_j weights[j] * values[j][start + i]` for `i < W`, FMAs in position order,
/// the `W` sums kept in registers.
#[inline(always)]
fn weigh_values<const W: usize>(
    weights: &[f32],
    values: &[f32],
    d: usize,
    start: usize,
    out: &mut [f32],
) {
    let mut acc = [0f32; W];
    for (&w, value) in weights.iter().zip(values.chunks_exact(d)) {
        for (a, &v) in acc.iter_mut().zip(&value[start..start + W]) {
            *a = w.mul_add(v, *a);
        }
    }
    out[..W].copy_from_slice(&acc);
}

/// Scores of `G` query heads (rows of `queries`, `d` values each) against every key panel,
/// scaled, into rows of `width` of `scores`: per position, the FMAs over the dimensions in order.
#[inline(always)]
fn score_panels<const G: usize>(
    queries: &[f32],
    key_panels: &[f32],
    d: usize,
    width: usize,
    scale: f32,
    scores: &mut [f32],
) {
    let panel_len = d * KEY_PANEL;
    let panels = key_panels.len() / panel_len;
    let mut p = 0;
    // Two panels per step: twice the independent FMA chains.
    while p < panels {
        let pair = (panels - p).min(2);
        let mut acc = [[[0f32; KEY_PANEL]; G]; 2];
        for i in 0..d {
            for (t, acc) in acc.iter_mut().enumerate().take(pair) {
                let keys = &key_panels[(p + t) * panel_len + i * KEY_PANEL..][..KEY_PANEL];
                for (h, lanes) in acc.iter_mut().enumerate() {
                    let q = queries[h * d + i];
                    for (a, &k) in lanes.iter_mut().zip(keys) {
                        *a = q.mul_add(k, *a);
                    }
                }
            }
        }
        for (t, acc) in acc.iter().enumerate().take(pair) {
            for (h, lanes) in acc.iter().enumerate() {
                let at = h * width + (p + t) * KEY_PANEL;
                for (s, &a) in scores[at..at + KEY_PANEL].iter_mut().zip(lanes) {
                    *s = a * scale;
                }
            }
        }
        p += pair;
    }
}
