//! Per-row 8-bit quantization of activations for the 32-element block kernels (Q4_1, Q8_0).
//!
//! Each 32-element block of an activation row gets a scale `d = amax / 127`, signed 8-bit
//! values in `[-127, 127]` and the pre-scaled block sum `s = d * sum(q)` (used by the Q4_1
//! minimum term). Scales stay in f32 (ggml's Q8_1 rounds them to f16): more precise and no
//! conversions in the hot loop. A row is quantized by the same code whatever the batch size,
//! which keeps `matmul` batch invariant.

/// Elements per activation block.
pub(crate) const BLOCK: usize = 32;

/// Quantized activation rows: `qs` is `(m, cols)`, `ds` is `(m, cols / 32, 2)` holding each
/// block's `[d, s]`, so one 128-bit load gives `[d0, s0, d1, s1]` for a pair of blocks.
#[derive(Default)]
pub(crate) struct QuantizedActivations {
    /// (m, cols) quantized values.
    pub(crate) qs: Vec<i8>,
    /// (m, blocks, 2) per-block scale `d` and scaled sum `s = d * sum(qs)`.
    pub(crate) ds: Vec<f32>,
    /// Elements per row.
    pub(crate) cols: usize,
}

impl QuantizedActivations {
    /// Quantizes `m` rows of `cols` values from `x`; `cols` must be a multiple of 32 and
    /// `x.len() == m * cols` (checked by the caller). Reuses the buffers' capacity.
    pub(crate) fn quantize(&mut self, x: &[f32], m: usize, cols: usize) {
        let blocks = cols / BLOCK;
        self.cols = cols;
        self.qs.clear();
        self.qs.resize(m * cols, 0);
        self.ds.clear();
        self.ds.resize(m * blocks * 2, 0.0);
        let rows = x.chunks_exact(cols).take(m);
        let qs_rows = self.qs.chunks_exact_mut(cols);
        let ds_rows = self.ds.chunks_exact_mut(2 * blocks);
        for ((row, qs), ds) in rows.zip(qs_rows).zip(ds_rows) {
            quantize_row(row, qs, ds);
        }
    }

    /// Quantized values of activation row `i`.
    #[inline(always)]
    pub(crate) fn row_qs(&self, i: usize) -> &[i8] {
        &self.qs[i * self.cols..(i + 1) * self.cols]
    }

    /// Interleaved block scales and scaled sums `[d, s]` of activation row `i`.
    #[inline(always)]
    pub(crate) fn row_ds(&self, i: usize) -> &[f32] {
        let n = 2 * (self.cols / BLOCK);
        &self.ds[i * n..(i + 1) * n]
    }
}

/// Quantizes one row; written so that the compiler can vectorise it, with the same result on
/// every target (round half to even, no fused operations).
fn quantize_row(x: &[f32], qs: &mut [i8], ds: &mut [f32]) {
    for ((xb, qb), dsb) in x
        .chunks_exact(BLOCK)
        .zip(qs.chunks_exact_mut(BLOCK))
        .zip(ds.chunks_exact_mut(2))
    {
        let amax = xb.iter().fold(0f32, |a, &v| a.max(v.abs()));
        let scale = amax / 127.0;
        let inverse = if scale != 0.0 { 1.0 / scale } else { 0.0 };
        let mut sum = 0i32;
        for (q, &v) in qb.iter_mut().zip(xb) {
            // NaN becomes 0 and values stay in [-127, 127], which the kernels rely on.
            let r = (v * inverse).round_ties_even().clamp(-127.0, 127.0);
            *q = r as i8;
            sum += *q as i32;
        }
        dsb[0] = scale;
        dsb[1] = scale * sum as f32;
    }
}
