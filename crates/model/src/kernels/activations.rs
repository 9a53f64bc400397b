//! The activation rows of a matmul, quantized once to the 8-bit forms the integer kernels read
//! and shared by every matrix that multiplies the same rows (q, k and v; gate and up).
//!
//! Each block of an activation row gets a scale `d = amax / 127` and signed 8-bit values in
//! `[-127, 127]` (round half to even): blocks of 32 for the 32-value weight formats, of 256 for
//! the K-quants, which also need the integer sums of every 16 and 32 values. A row is quantized
//! by the same code whatever the batch, which keeps every matmul batch invariant.

use rayon::prelude::*;

/// One blocked 8-bit form of `m` rows.
#[derive(Default)]
pub(crate) struct Quantized {
    /// (m, cols) quantized values.
    pub(crate) qs: Vec<i8>,
    /// (m, blocks) scales.
    pub(crate) d: Vec<f32>,
    /// (m, blocks, sums_per_block): see `Blocking`.
    pub(crate) sums: Vec<i32>,
    /// (m, blocks) `d * sum(qs)`, for the 32-value blocks.
    pub(crate) scaled_sums: Vec<f32>,
    cols: usize,
    blocks: usize,
    sums_per_block: usize,
}

/// Values per block of the two forms.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Blocking {
    /// Blocks of 32; `sums` holds each block's sum of values.
    By32,
    /// Blocks of 256; `sums` holds 8 pairs of 16-value sums, then 4 pairs of 32-value sums,
    /// each pair two i16 in one i32 (the first in the low half).
    By256,
}

impl Blocking {
    pub(crate) fn size(self) -> usize {
        match self {
            Blocking::By32 => 32,
            Blocking::By256 => 256,
        }
    }

    fn sums_per_block(self) -> usize {
        match self {
            Blocking::By32 => 1,
            Blocking::By256 => 12,
        }
    }
}

impl Quantized {
    /// Quantizes `m` rows of `cols` values (a multiple of the block size) on `pool`.
    pub(crate) fn quantize(
        &mut self,
        pool: &rayon::ThreadPool,
        blocking: Blocking,
        x: &[f32],
        m: usize,
        cols: usize,
    ) {
        let size = blocking.size();
        let blocks = cols / size;
        let per = blocking.sums_per_block();
        self.cols = cols;
        self.blocks = blocks;
        self.sums_per_block = per;
        resize(&mut self.qs, m * cols, 0);
        resize(&mut self.d, m * blocks, 0.0);
        resize(&mut self.sums, m * blocks * per, 0);
        resize(&mut self.scaled_sums, m * blocks, 0.0);
        let rows = x
            .chunks_exact(cols)
            .zip(self.qs.chunks_exact_mut(cols))
            .zip(self.d.chunks_exact_mut(blocks))
            .zip(self.sums.chunks_exact_mut(blocks * per))
            .zip(self.scaled_sums.chunks_exact_mut(blocks));
        let quantize = |((((x, qs), d), sums), scaled): RowParts| {
            quantize_row(blocking, x, qs, d, sums, scaled)
        };
        if m >= 8 && pool.current_num_threads() > 1 {
            let rows: Vec<RowParts> = rows.collect();
            pool.install(|| rows.into_par_iter().for_each(quantize));
        } else {
            rows.for_each(quantize);
        }
    }

    /// Quantized values of activation row `i`.
    #[inline(always)]
    pub(crate) fn row_qs(&self, i: usize) -> *const i8 {
        self.qs[i * self.cols..].as_ptr()
    }

    /// Scale of block `b` of row `i`.
    #[inline(always)]
    pub(crate) fn scale(&self, i: usize, b: usize) -> f32 {
        self.d[i * self.blocks + b]
    }

    /// `d * sum` of 32-value block `b` of row `i`.
    #[inline(always)]
    pub(crate) fn scaled_sum(&self, i: usize, b: usize) -> f32 {
        self.scaled_sums[i * self.blocks + b]
    }

    /// The sums of block `b` of row `i` (see `Blocking`).
    #[inline(always)]
    pub(crate) fn sums(&self, i: usize, b: usize) -> &[i32] {
        let at = (i * self.blocks + b) * self.sums_per_block;
        &self.sums[at..at + self.sums_per_block]
    }
}

type RowParts<'a> = (
    (((&'a [f32], &'a mut [i8]), &'a mut [f32]), &'a mut [i32]),
    &'a mut [f32],
);

fn resize<T: Copy>(buffer: &mut Vec<T>, len: usize, value: T) {
    buffer.clear();
    buffer.resize(len, value);
}

/// Quantizes one row; written so that the compiler can vectorise it, with the same result on
/// every target (round half to even, no fused operations).
fn quantize_row(
    blocking: Blocking,
    x: &[f32],
    qs: &mut [i8],
    d: &mut [f32],
    sums: &mut [i32],
    scaled: &mut [f32],
) {
    let size = blocking.size();
    let per = blocking.sums_per_block();
    for (b, (xb, qb)) in x
        .chunks_exact(size)
        .zip(qs.chunks_exact_mut(size))
        .enumerate()
    {
        let amax = abs_max(xb);
        let scale = amax / 127.0;
        let inverse = if scale != 0.0 { 1.0 / scale } else { 0.0 };
        for (q, &v) in qb.iter_mut().zip(xb) {
            // NaN becomes 0 and values stay in [-127, 127], which the kernels rely on. Through
            // i32, which vectorizes (the value is already in i8's range).
            *q = (v * inverse).round_ties_even().clamp(-127.0, 127.0) as i32 as i8;
        }
        d[b] = scale;
        let sum_of = |range: std::ops::Range<usize>| qb[range].iter().map(|&q| q as i32).sum();
        let block_sums = &mut sums[b * per..(b + 1) * per];
        match blocking {
            Blocking::By32 => {
                let sum: i32 = sum_of(0..32);
                block_sums[0] = sum;
                scaled[b] = scale * sum as f32;
            }
            Blocking::By256 => {
                let pair =
                    |first: i32, second: i32| (first as u16 as u32 | (second as u32) << 16) as i32;
                let s16: [i32; 16] = std::array::from_fn(|t| sum_of(16 * t..16 * t + 16));
                for u in 0..8 {
                    block_sums[u] = pair(s16[2 * u], s16[2 * u + 1]);
                }
                let s32: [i32; 8] = std::array::from_fn(|s| s16[2 * s] + s16[2 * s + 1]);
                for u in 0..4 {
                    block_sums[8 + u] = pair(s32[2 * u], s32[2 * u + 1]);
                }
                scaled[b] = 0.0;
            }
        }
    }
}

/// The largest magnitude in `block` (0 for none), ignoring NaN: the in-order fold's value.
fn abs_max(block: &[f32]) -> f32 {
    crate::ops::max_by_lanes(block, f32::abs, 0.0)
}

/// The activation rows one or more matmuls read: the f32 values and, computed on first use,
/// their quantized forms.
pub struct Input<'a> {
    x: &'a [f32],
    m: usize,
    cols: usize,
    buffers: &'a mut InputBuffers,
    ready: [bool; 2],
}

/// Storage for the quantized forms of an `Input`, reused from pass to pass.
#[derive(Default)]
pub struct InputBuffers {
    by32: Quantized,
    by256: Quantized,
}

impl<'a> Input<'a> {
    /// `m` rows of `cols` values; `x.len()` must be `m * cols` (checked by `matmul`).
    pub fn new(x: &'a [f32], m: usize, cols: usize, buffers: &'a mut InputBuffers) -> Self {
        Input {
            x,
            m,
            cols,
            buffers,
            ready: [false; 2],
        }
    }

    pub fn rows(&self) -> usize {
        self.m
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn values(&self) -> &[f32] {
        self.x
    }

    /// The quantized form, computed the first time it is asked for.
    pub(crate) fn quantized(&mut self, pool: &rayon::ThreadPool, blocking: Blocking) -> &Quantized {
        let (index, buffer) = match blocking {
            Blocking::By32 => (0, &mut self.buffers.by32),
            Blocking::By256 => (1, &mut self.buffers.by256),
        };
        if !self.ready[index] {
            buffer.quantize(pool, blocking, self.x, self.m, self.cols);
            self.ready[index] = true;
        }
        buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-order fold `abs_max` stands for.
    fn folded(block: &[f32]) -> f32 {
        block.iter().fold(0f32, |a, &v| a.max(v.abs()))
    }

    #[test]
    fn abs_max_is_the_in_order_fold_bit_for_bit() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            f32::from_bits((state >> 32) as u32)
        };
        let specials = [
            f32::NAN,
            -0.0,
            0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -1e-45,
        ];
        for len in [0, 1, 7, 8, 31, 32, 33, 256] {
            for round in 0..200 {
                let mut block: Vec<f32> = (0..len).map(|_| next()).collect();
                // Some blocks of ordinary values, some with NaN, zeros and infinities planted.
                if round % 2 == 0 {
                    for v in block.iter_mut() {
                        *v = (v.to_bits() % 2001) as f32 / 100.0 - 10.0;
                    }
                }
                if round % 3 == 0 && len > 0 {
                    let at = round % len;
                    block[at] = specials[round % specials.len()];
                }
                let (ours, theirs) = (abs_max(&block), folded(&block));
                assert_eq!(ours.to_bits(), theirs.to_bits(), "{block:?}");
            }
        }
    }
}
