//! The pass's row-wise steps (norms, SwiGLU, residual adds, RoPE, copies out of a stacked
//! product), spread over the pool when a pass has rows enough to pay for the hand-off.
//!
//! Every row is computed by the same code whichever thread runs it, so results do not depend
//! on the thread count or on how rows are split (batch invariance stays exact).

use crate::ops;
use rayon::prelude::*;

/// Below this many rows (decode, short verifications) a step runs on the calling thread: the
/// work is a few microseconds and waking a worker would cost more.
const PARALLEL_ROWS: usize = 16;

/// Runs `step(out_row, in_row)` over the rows of `out` (`out_width` values each) and `input`
/// (`in_width` values each), as many as both hold, on the pool when there are `PARALLEL_ROWS`
/// rows or more. Rows of no values have nothing to compute.
pub(super) fn zip_rows<F>(
    pool: &rayon::ThreadPool,
    out: &mut [f32],
    out_width: usize,
    input: &[f32],
    in_width: usize,
    step: F,
) where
    F: Fn(&mut [f32], &[f32]) + Sync,
{
    if out_width == 0 || in_width == 0 {
        return;
    }
    let rows = (out.len() / out_width).min(input.len() / in_width);
    let out = &mut out[..rows * out_width];
    let threads = pool.current_num_threads();
    if rows < PARALLEL_ROWS || threads <= 1 {
        for (o, i) in out
            .chunks_exact_mut(out_width)
            .zip(input.chunks_exact(in_width))
        {
            step(o, i);
        }
        return;
    }
    // About four pieces per thread: rows cost the same, so this balances with few hand-offs.
    let piece = rows.div_ceil(threads * 4);
    pool.install(|| {
        out.par_chunks_mut(piece * out_width)
            .zip(input.par_chunks(piece * in_width))
            .for_each(|(o, i)| {
                for (o, i) in o.chunks_exact_mut(out_width).zip(i.chunks_exact(in_width)) {
                    step(o, i);
                }
            });
    });
}

/// `out = rms_norm(x) * weight`, row by row (rows of `weight.len()` values).
pub(super) fn rms_norm_rows(
    pool: &rayon::ThreadPool,
    x: &[f32],
    weight: &[f32],
    eps: f32,
    out: &mut [f32],
) {
    let width = weight.len();
    zip_rows(pool, out, width, x, width, |out, x| {
        ops::rms_norm(x, weight, eps, out)
    });
}

/// `x += y`, row by row (rows of `width` values): a residual connection.
pub(super) fn add_rows(pool: &rayon::ThreadPool, x: &mut [f32], y: &[f32], width: usize) {
    zip_rows(pool, x, width, y, width, ops::add_in_place);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each row sees its own input row, on 1 and 2 threads, above and below the threshold.
    #[test]
    fn rows_pair_up_whatever_the_threads() {
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for rows in [1, 3, PARALLEL_ROWS - 1, PARALLEL_ROWS, 37, 256] {
                let input: Vec<f32> = (0..rows * 3).map(|v| v as f32).collect();
                let mut out = vec![0.0; rows * 2];
                zip_rows(&pool, &mut out, 2, &input, 3, |o, i| {
                    o[0] = i[0] + i[1];
                    o[1] = i[2];
                });
                for row in 0..rows {
                    let first = (row * 3) as f32;
                    assert_eq!(
                        out[row * 2],
                        2.0 * first + 1.0,
                        "row {row}, {threads} threads"
                    );
                    assert_eq!(
                        out[row * 2 + 1],
                        first + 2.0,
                        "row {row}, {threads} threads"
                    );
                }
            }
        }
    }
}
