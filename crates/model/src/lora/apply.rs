//! A LoRA module's contribution to a matmul's output, `out += scale·B·(A·x)` per row, in f32
//! with one fixed summation order (so every row's result is the same alone or in a batch, on
//! any thread count and any CPU path).

use rayon::prelude::*;

use super::LoraModule;

/// Lanes of the dot product's accumulators: the compiler keeps them in one vector register.
const LANES: usize = 8;

/// `Σ a[i]·b[i]` summed lane-wise over `LANES` accumulators, then the tail, then the lanes in a
/// fixed tree: the order never depends on anything but the length.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (a_body, a_tail) = a.split_at(a.len() / LANES * LANES);
    let (b_body, b_tail) = b.split_at(a_body.len().min(b.len()));
    for (x, y) in a_body.chunks_exact(LANES).zip(b_body.chunks_exact(LANES)) {
        for lane in 0..LANES {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in a_tail.iter().zip(b_tail) {
        tail += x * y;
    }
    let quads = [
        lanes[0] + lanes[4],
        lanes[1] + lanes[5],
        lanes[2] + lanes[6],
        lanes[3] + lanes[7],
    ];
    ((quads[0] + quads[2]) + (quads[1] + quads[3])) + tail
}

/// `B` by columns (`rank` runs of `n_out`), the layout the row update reads: each rank's column
/// is added to a whole output row at once, which vectorizes where `B`'s rows of `rank` values
/// would not.
pub(crate) fn columns_of_b(module: &LoraModule) -> Vec<f32> {
    let mut columns = vec![0.0; module.b.len()];
    for (o, row) in module.b.chunks_exact(module.rank).enumerate() {
        for (r, &value) in row.iter().enumerate() {
            columns[r * module.n_out + o] = value;
        }
    }
    columns
}

/// One row: `hidden = A·x`, then `out += (scale·hidden[r])·B[:, r]` for `r` in order.
fn add_row(
    module: &LoraModule,
    b_columns: &[f32],
    scale: f32,
    x: &[f32],
    out: &mut [f32],
    hidden: &mut [f32],
) {
    for (h, a_row) in hidden.iter_mut().zip(module.a.chunks_exact(module.n_in)) {
        *h = dot(a_row, x);
    }
    for (&h, column) in hidden.iter().zip(b_columns.chunks_exact(module.n_out)) {
        let factor = scale * h;
        for (o, &b) in out.iter_mut().zip(column) {
            *o += factor * b;
        }
    }
}

/// `out += scale·B·(A·input)` for every row of `input` (rows of `n_in`) into the same rows of
/// `out` (rows of `n_out`), `b_columns` from `columns_of_b`; rows split over `pool`'s threads
/// when there are several.
pub(crate) fn add_delta(
    pool: &rayon::ThreadPool,
    module: &LoraModule,
    b_columns: &[f32],
    scale: f32,
    input: &[f32],
    out: &mut [f32],
) {
    let rows = input.len() / module.n_in;
    debug_assert_eq!(out.len(), rows * module.n_out);
    if rows <= 1 || pool.current_num_threads() <= 1 {
        let mut hidden = vec![0.0; module.rank];
        for (x, o) in input
            .chunks_exact(module.n_in)
            .zip(out.chunks_exact_mut(module.n_out))
        {
            add_row(module, b_columns, scale, x, o, &mut hidden);
        }
        return;
    }
    pool.install(|| {
        input
            .par_chunks_exact(module.n_in)
            .zip(out.par_chunks_exact_mut(module.n_out))
            .for_each_init(
                || vec![0.0; module.rank],
                |hidden, (x, o)| add_row(module, b_columns, scale, x, o, hidden),
            );
    });
}
