//! Causal attention of the new positions over the KV cache, spread over the thread pool.
//!
//! A task is one kv head and a block of up to four consecutive rows of one sequence: the rows'
//! query heads are scored together against each key panel (8 positions, one FMA per dimension)
//! and each value row is loaded once for all of them, then a softmax per query head and the
//! weighted sum of the values. Each score, weight and output element is computed by one fixed
//! sequence of operations, whatever the number of new rows, the rows in a block, the heads in a
//! group or the thread split.

mod panels;

use rayon::prelude::*;

use crate::cache::{KvCache, KEY_PANEL};
use crate::config::Config;
use crate::forward::{RowPlace, Segment};
use crate::kernels::balanced_piece;
use crate::ops;
use panels::{max_of, score_panels, sum_weights, weigh_heads};

/// 2 where the build has AVX-512, else 1: with its 32 vector registers, score tiles take twice
/// the key panels and weighted-value passes twice the dimensions (16 lanes), which keeps enough
/// chains of FMAs in flight.
pub(super) const WIDE: usize = if cfg!(target_feature = "avx512f") {
    2
} else {
    1
};

/// Query vectors scored together against one key panel.
const HEADS_PER_PASS: usize = 4;

/// Consecutive rows of one sequence that a task serves together.
const ROWS_PER_TASK: usize = 4;

/// One task: kv head `kv_head` for rows `first..first + rows` of the pass (consecutive
/// positions of one sequence), each with its output (the query heads of the group, `d` each).
struct Task<'o> {
    kv_head: usize,
    first: usize,
    rows: usize,
    outs: [Option<&'o mut [f32]>; ROWS_PER_TASK],
}

/// Causal attention of every row of a pass over its own sequence's cache. Each task serves
/// every query head of a kv head's group for a block of rows, so each cached key and value is
/// read once per block; the tasks of all sequences share one parallel loop, in kv head order
/// (consecutive tasks read the same head's keys and values, which then stay in a core's cache).
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
    let (starts, block_of) = blocks(rows);
    let mut tasks: Vec<Task> = (0..c.kv_head_count)
        .flat_map(|kv_head| {
            starts.iter().map(move |&first| Task {
                kv_head,
                first,
                rows: 0,
                outs: std::array::from_fn(|_| None),
            })
        })
        .collect();
    for (index, chunk) in out[..rows.len() * c.q_dim()]
        .chunks_exact_mut(group_width)
        .enumerate()
    {
        let (row, kv_head) = (index / c.kv_head_count, index % c.kv_head_count);
        let task = &mut tasks[kv_head * starts.len() + block_of[row]];
        task.outs[task.rows] = Some(chunk);
        task.rows += 1;
    }
    let task = |task: Task| {
        let place = rows[task.first];
        let cache: &KvCache = segments[place.segment].cache;
        let last_count = place.position + task.rows;
        SCRATCH.with(|scratch| {
            let s = &mut *scratch.borrow_mut();
            // the block's query vectors, row after row
            s.queries.clear();
            for row in task.first..task.first + task.rows {
                let index = row * c.kv_head_count + task.kv_head;
                s.queries
                    .extend_from_slice(&q[index * group_width..(index + 1) * group_width]);
            }
            attend_block(
                task.rows,
                place.position + 1,
                cache.head_keys(layer, task.kv_head, last_count),
                cache.head_values(layer, task.kv_head, last_count),
                c.head_dim,
                s,
                task.outs.into_iter().flatten(),
            )
        });
    };
    let threads = pool.current_num_threads();
    if threads <= 1 {
        tasks.into_iter().for_each(task);
    } else {
        let piece = balanced_piece(tasks.len(), threads);
        pool.install(|| tasks.into_par_iter().with_max_len(piece).for_each(task));
    }
}

/// The first row of each block of rows (a new one at each sequence change, position gap or
/// full block), and each row's block.
fn blocks(rows: &[RowPlace]) -> (Vec<usize>, Vec<usize>) {
    let mut starts: Vec<usize> = Vec::new();
    let mut block_of = Vec::with_capacity(rows.len());
    for (row, place) in rows.iter().enumerate() {
        let continues = starts.last().is_some_and(|&start| {
            let first = rows[start];
            row - start < ROWS_PER_TASK
                && first.segment == place.segment
                && first.position + (row - start) == place.position
        });
        if !continues {
            starts.push(row);
        }
        block_of.push(starts.len() - 1);
    }
    (starts, block_of)
}

/// Buffers of the task running on a thread.
#[derive(Default)]
struct Scratch {
    /// The block's query vectors, (rows x heads, d).
    queries: Vec<f32>,
    /// Their scores, (rows x heads, padded positions).
    scores: Vec<f32>,
    /// 1 / the sum of each vector's weights.
    inverse_sums: Vec<f32>,
    /// Their weighted sums of values, (rows x heads, d).
    sums: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Causal attention of `rows` consecutive rows over one kv head: row `r` (its group's query
/// heads of `d` values, after the previous rows' in `s.queries`) sees `first_count + r` cached
/// positions; softmax(q.K / sqrt(d)) V per head into the `r`th of `outs`. `key_panels` is (ceil(last count / 8), d, 8) and `values`
/// (last count, d).
fn attend_block<'o>(
    rows: usize,
    first_count: usize,
    key_panels: &[f32],
    values: &[f32],
    d: usize,
    s: &mut Scratch,
    outs: impl Iterator<Item = &'o mut [f32]>,
) {
    let vectors = s.queries.len() / d;
    let heads = vectors / rows;
    let last_count = first_count + rows - 1;
    let scale = 1.0 / (d as f32).sqrt();
    let width = last_count.div_ceil(KEY_PANEL) * KEY_PANEL;
    s.scores.clear();
    s.scores.resize(vectors * width, 0.0);
    // scores of 8 positions per step, up to the last row's count: lanes and positions past a
    // vector's own count are computed and ignored
    for first in (0..vectors).step_by(HEADS_PER_PASS) {
        let queries = &s.queries[first * d..];
        let scores = &mut s.scores[first * width..];
        match (vectors - first).min(HEADS_PER_PASS) {
            1 => score_panels::<1>(queries, key_panels, d, width, scale, scores),
            2 => score_panels::<2>(queries, key_panels, d, width, scale, scores),
            3 => score_panels::<3>(queries, key_panels, d, width, scale, scores),
            _ => score_panels::<4>(queries, key_panels, d, width, scale, scores),
        }
    }
    // softmax per vector over its own positions, the normalisation deferred to the output
    for (vector, row) in s.scores.chunks_exact_mut(width).enumerate() {
        let row = &mut row[..first_count + vector / heads];
        let max = max_of(row);
        for s in row.iter_mut() {
            *s = ops::exp(*s - max);
        }
    }
    // each vector's weights summed in position order, as every pass sums them; a few vectors
    // at once so that their chains of additions overlap
    s.inverse_sums.clear();
    let mut first = 0;
    while first < vectors {
        let (scores, inverses) = (&s.scores[..], &mut s.inverse_sums);
        let counts = |v: usize| first_count + v / heads;
        first += match vectors - first {
            1 => sum_weights::<1>(scores, width, first, counts, inverses),
            2 => sum_weights::<2>(scores, width, first, counts, inverses),
            3 => sum_weights::<3>(scores, width, first, counts, inverses),
            4..8 => sum_weights::<4>(scores, width, first, counts, inverses),
            _ => sum_weights::<8>(scores, width, first, counts, inverses),
        };
    }
    // the weighted sums over the positions every row sees, a few vectors and a span of
    // dimensions at once (each value row loaded once for them)
    s.sums.clear();
    s.sums.resize(vectors * d, 0.0);
    let mut first = 0;
    while first < vectors {
        let (scores, sums) = (&s.scores[..], &mut s.sums[..]);
        first += match vectors - first {
            1 => weigh_heads::<1, 64>(scores, width, values, first_count, d, first, sums),
            2 => {
                weigh_heads::<2, { 32 * WIDE }>(scores, width, values, first_count, d, first, sums)
            }
            3 => {
                weigh_heads::<3, { 16 * WIDE }>(scores, width, values, first_count, d, first, sums)
            }
            _ => {
                weigh_heads::<4, { 16 * WIDE }>(scores, width, values, first_count, d, first, sums)
            }
        };
    }
    // the later rows' own last positions, continuing the same chains in position order
    for (vector, sum) in s.sums.chunks_exact_mut(d).enumerate() {
        let count = first_count + vector / heads;
        for position in first_count..count {
            let weight = s.scores[vector * width + position];
            let value = &values[position * d..(position + 1) * d];
            for (a, &v) in sum.iter_mut().zip(value) {
                *a = weight.mul_add(v, *a);
            }
        }
    }
    // normalised into each row's output
    let row_width = heads * d;
    for (r, out) in outs.enumerate() {
        let sums = &s.sums[r * row_width..(r + 1) * row_width];
        let inverses = &s.inverse_sums[r * heads..(r + 1) * heads];
        for ((out, sum), &inverse) in out
            .chunks_exact_mut(d)
            .zip(sums.chunks_exact(d))
            .zip(inverses)
        {
            for (o, &v) in out.iter_mut().zip(sum) {
                *o = v * inverse;
            }
        }
    }
}
