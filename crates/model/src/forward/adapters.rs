//! The LoRA step of a pass: each segment's adapters added to its own rows of a matrix's output.

use super::Segment;
use crate::lora::LoraTarget;

/// Which rows of a pass a buffer holds: every row, or just the head rows.
#[derive(Clone, Copy)]
pub(super) enum Rows {
    All,
    Head,
}

/// Adds each segment's adapters on `target` of `layer` (the head for `None`) to its rows of
/// `out` (rows of the matrix's outputs) from the same rows of `input` (rows of its inputs).
pub(super) fn add_lora(
    pool: &rayon::ThreadPool,
    segments: &[Segment],
    rows: Rows,
    (layer, target): (Option<usize>, LoraTarget),
    input: &[f32],
    out: &mut [f32],
) {
    let rows_of = |segment: &Segment| match rows {
        Rows::All => segment.rows,
        Rows::Head => segment.head_rows,
    };
    let total: usize = segments.iter().map(rows_of).sum();
    if total == 0 {
        return;
    }
    let (n_in, n_out) = (input.len() / total, out.len() / total);
    let mut first = 0;
    for segment in segments {
        let rows = rows_of(segment);
        if let Some(lora) = segment.lora {
            let x = &input[first * n_in..(first + rows) * n_in];
            let y = &mut out[first * n_out..(first + rows) * n_out];
            lora.add(pool, layer, target, x, y);
        }
        first += rows;
    }
}
