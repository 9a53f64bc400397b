//! Causal attention of the new positions over the KV cache, spread over the thread pool.

use rayon::prelude::*;

use crate::cache::KvCache;
use crate::config::Config;
use crate::ops;

/// Causal attention of `rows` new positions over the cache. Each (row, kv head) is one task that
/// serves every query head of its group, so each cached key and value is read once per group.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention(
    pool: &rayon::ThreadPool,
    cache: &KvCache,
    c: &Config,
    layer: usize,
    start_pos: usize,
    rows: usize,
    q: &[f32],
    out: &mut [f32],
) {
    let group_width = c.head_count / c.kv_head_count * c.head_dim;
    let task = |(index, out): (usize, &mut [f32])| {
        let (row, kv_head) = (index / c.kv_head_count, index % c.kv_head_count);
        let count = start_pos + row + 1;
        let queries = &q[index * group_width..(index + 1) * group_width];
        SCORES.with(|scores| {
            ops::attend_group(
                queries,
                cache.head_keys(layer, kv_head, count),
                cache.head_values(layer, kv_head, count),
                count,
                &mut scores.borrow_mut(),
                out,
            )
        });
    };
    let out = &mut out[..rows * c.q_dim()];
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
    /// Attention scores of the task running on this thread: (group, positions).
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}
