//! Hot-path matrix kernels: `W · x` for GGUF weight matrices held as raw ggml bytes.
//!
//! Every output element is one dot product computed by one code path with one fixed reduction
//! order, whatever the number of activation rows `m`, the thread count or the element's
//! position in a tile. A token fed alone therefore gets bit-identical logits to the same token
//! inside a multi-token pass, which speculative verification relies on.
//!
//! Work is split over output rows in chunks (never over `m`); inside a chunk, tiles of up to
//! 4 weight rows x 4 activation rows are computed while the chunk's weights stay in cache.
//! Q4_1, Q8_0, F32, F16 and BF16 have AVX-512 kernels (VNNI for the integer ones) chosen at
//! run time, with portable scalar fallbacks; the other types go through candle's `vec_dot`.

mod activation_quant;
mod float;
mod generic;
mod q4_1;
mod q8_0;
#[cfg(test)]
mod tests;

use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
};
use candle_core::quantized::GgmlDType;
use rayon::prelude::*;
use std::cell::RefCell;

use activation_quant::QuantizedActivations;

/// Errors of the matrix kernels; messages name the operation, the type and the shapes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KernelError {
    #[error("{op}: weight type {dtype:?} is not supported by the CPU kernels")]
    Unsupported { op: &'static str, dtype: GgmlDType },
    #[error("{op}: {dtype:?} matrix with {cols} columns: {cols} is not a multiple of the block size {block}")]
    BlockDivisibility {
        op: &'static str,
        dtype: GgmlDType,
        cols: usize,
        block: usize,
    },
    #[error("{op}: {dtype:?} matrix {rows}x{cols} needs {expected} bytes, got {got}")]
    ByteLength {
        op: &'static str,
        dtype: GgmlDType,
        rows: usize,
        cols: usize,
        expected: usize,
        got: usize,
    },
    #[error("{op}: {dtype:?} matrix bytes must be aligned to {align} bytes")]
    Misaligned {
        op: &'static str,
        dtype: GgmlDType,
        align: usize,
    },
    #[error("{op}: {dtype:?} matrix {rows}x{cols} with m={m}: {what} has length {got}, expected {expected}")]
    Shape {
        op: &'static str,
        dtype: GgmlDType,
        rows: usize,
        cols: usize,
        m: usize,
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{op}: row {row} out of range for {dtype:?} matrix {rows}x{cols}")]
    RowOutOfRange {
        op: &'static str,
        dtype: GgmlDType,
        row: usize,
        rows: usize,
        cols: usize,
    },
}

/// A weight matrix of `rows` output features, each `cols` inputs long, in one GGUF tensor
/// type, borrowed as raw bytes (row-major: row r occupies bytes
/// `[r * row_bytes, (r + 1) * row_bytes)`). GGUF data is aligned to 32 bytes; `new` only
/// requires the alignment of the type's block struct (2, or 4 for F32).
#[derive(Debug, Clone, Copy)]
pub struct MatrixRef<'a> {
    pub dtype: GgmlDType,
    pub rows: usize,
    pub cols: usize,
    pub bytes: &'a [u8],
}

impl<'a> MatrixRef<'a> {
    /// Validates the type, the block divisibility of `cols`, the byte length and alignment.
    pub fn new(
        dtype: GgmlDType,
        rows: usize,
        cols: usize,
        bytes: &'a [u8],
    ) -> Result<Self, KernelError> {
        const OP: &str = "MatrixRef::new";
        if !supported(dtype) {
            return Err(KernelError::Unsupported { op: OP, dtype });
        }
        let block = dtype.block_size();
        if !cols.is_multiple_of(block) {
            return Err(KernelError::BlockDivisibility {
                op: OP,
                dtype,
                cols,
                block,
            });
        }
        let expected = (cols / block)
            .checked_mul(dtype.type_size())
            .and_then(|row| row.checked_mul(rows));
        if expected != Some(bytes.len()) {
            return Err(KernelError::ByteLength {
                op: OP,
                dtype,
                rows,
                cols,
                expected: expected.unwrap_or(usize::MAX),
                got: bytes.len(),
            });
        }
        let align = if dtype == GgmlDType::F32 { 4 } else { 2 };
        if bytes.as_ptr().align_offset(align) != 0 {
            return Err(KernelError::Misaligned {
                op: OP,
                dtype,
                align,
            });
        }
        Ok(Self {
            dtype,
            rows,
            cols,
            bytes,
        })
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.cols / self.dtype.block_size() * self.dtype.type_size()
    }

    /// The bytes of row `r` (`r < rows`).
    #[inline(always)]
    pub(crate) fn row(&self, r: usize) -> &'a [u8] {
        let n = self.row_bytes();
        &self.bytes[r * n..(r + 1) * n]
    }

    /// Re-checks the invariants of `new`, since the fields are public.
    fn check(&self, op: &'static str) -> Result<(), KernelError> {
        Self::new(self.dtype, self.rows, self.cols, self.bytes)
            .map(|_| ())
            .map_err(|e| match e {
                KernelError::Unsupported { dtype, .. } => KernelError::Unsupported { op, dtype },
                other => other,
            })
    }
}

/// Whether `matmul` and `dequantize_row` handle `dtype`.
pub fn supported(dtype: GgmlDType) -> bool {
    use GgmlDType::*;
    matches!(
        dtype,
        F32 | F16 | BF16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q2K | Q3K | Q4K | Q5K | Q6K
    )
}

/// `out[i * rows + r] = sum_k x[i * cols + k] * W[r][k]` for `i` in `0..m`.
///
/// Runs on `pool` split over output rows (inline when the pool has one thread). Each output
/// element is bit-identical whatever `m` and the pool size.
pub fn matmul(
    pool: &rayon::ThreadPool,
    w: &MatrixRef,
    x: &[f32],
    m: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    matmul_with(pool, w, x, m, out, simd_available(w.dtype))
}

/// `matmul` with the choice of SIMD or scalar kernels made by the caller (tests compare them).
pub(crate) fn matmul_with(
    pool: &rayon::ThreadPool,
    w: &MatrixRef,
    x: &[f32],
    m: usize,
    out: &mut [f32],
    simd: bool,
) -> Result<(), KernelError> {
    const OP: &str = "matmul";
    w.check(OP)?;
    let shape_error = |what, expected, got| KernelError::Shape {
        op: OP,
        dtype: w.dtype,
        rows: w.rows,
        cols: w.cols,
        m,
        what,
        expected,
        got,
    };
    let x_len = m.saturating_mul(w.cols);
    if x.len() != x_len {
        return Err(shape_error("x", x_len, x.len()));
    }
    let out_len = m.saturating_mul(w.rows);
    if out.len() != out_len {
        return Err(shape_error("out", out_len, out.len()));
    }
    if m == 0 || w.rows == 0 {
        return Ok(());
    }
    let simd = simd && simd_available(w.dtype);
    match w.dtype {
        GgmlDType::Q4_1 | GgmlDType::Q8_0 => with_activations(x, m, w.cols, |act| {
            if w.dtype == GgmlDType::Q4_1 {
                drive(pool, &q4_1::Kernel { w, act, simd }, w, m, out)
            } else {
                drive(pool, &q8_0::Kernel { w, act, simd }, w, m, out)
            }
        }),
        GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => {
            drive(pool, &float::Kernel { w, x, simd }, w, m, out)
        }
        GgmlDType::Q4_0 => generic::matmul::<BlockQ4_0>(pool, w, x, m, out),
        GgmlDType::Q5_0 => generic::matmul::<BlockQ5_0>(pool, w, x, m, out),
        GgmlDType::Q5_1 => generic::matmul::<BlockQ5_1>(pool, w, x, m, out),
        GgmlDType::Q2K => generic::matmul::<BlockQ2K>(pool, w, x, m, out),
        GgmlDType::Q3K => generic::matmul::<BlockQ3K>(pool, w, x, m, out),
        GgmlDType::Q4K => generic::matmul::<BlockQ4K>(pool, w, x, m, out),
        GgmlDType::Q5K => generic::matmul::<BlockQ5K>(pool, w, x, m, out),
        GgmlDType::Q6K => generic::matmul::<BlockQ6K>(pool, w, x, m, out),
        dtype => return Err(KernelError::Unsupported { op: OP, dtype }),
    }
    Ok(())
}

/// Dequantizes row `row` of `w` into `out` (`cols` values), e.g. for an embedding lookup.
pub fn dequantize_row(w: &MatrixRef, row: usize, out: &mut [f32]) -> Result<(), KernelError> {
    const OP: &str = "dequantize_row";
    w.check(OP)?;
    if row >= w.rows {
        return Err(KernelError::RowOutOfRange {
            op: OP,
            dtype: w.dtype,
            row,
            rows: w.rows,
            cols: w.cols,
        });
    }
    if out.len() != w.cols {
        return Err(KernelError::Shape {
            op: OP,
            dtype: w.dtype,
            rows: w.rows,
            cols: w.cols,
            m: 1,
            what: "out",
            expected: w.cols,
            got: out.len(),
        });
    }
    generic::dequantize_row(w.dtype, w.row(row), out);
    Ok(())
}

/// Whether this CPU has the SIMD kernel for `dtype` (checked at run time, cached by std).
fn simd_available(dtype: GgmlDType) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let base = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("fma");
        match dtype {
            GgmlDType::Q4_1 | GgmlDType::Q8_0 => {
                base && is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("f16c")
            }
            GgmlDType::F32 | GgmlDType::BF16 => base,
            GgmlDType::F16 => base && is_x86_feature_detected!("f16c"),
            _ => false,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = dtype;
        false
    }
}

thread_local! {
    /// Reused quantized-activation buffers, so steady-state calls do not allocate.
    static ACTIVATIONS: RefCell<QuantizedActivations> = RefCell::new(QuantizedActivations::default());
}

/// Quantizes `x` into this thread's reusable buffer and runs `f` on it.
fn with_activations<F: FnOnce(&QuantizedActivations)>(x: &[f32], m: usize, cols: usize, f: F) {
    // Taking the buffer out (instead of holding a borrow) keeps a nested call safe.
    let mut act = ACTIVATIONS.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
    act.quantize(x, m, cols);
    f(&act);
    ACTIVATIONS.with(|cell| *cell.borrow_mut() = act);
}

/// Most weight rows and activation rows in one register tile.
const TILE: usize = 4;

/// A dot-product kernel for one weight type, with its prepared activations.
pub(crate) trait TileKernel: Sync {
    /// `out[j][n] = dot(weight row rows[j], activation row acts[n])`. Each element must be
    /// computed with the same operations whatever `R`, `N` and its place in the tile.
    fn tile<const R: usize, const N: usize>(
        &self,
        rows: [usize; R],
        acts: [usize; N],
    ) -> [[f32; N]; R];
}

/// The output pointer shared by the tasks, which write disjoint rows.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint elements (their own output rows) and `drive` joins them all
// before the borrow of `out` ends.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

/// Output rows per task: about 8 tasks per thread, a multiple of the tile, 16 to 64 rows so
/// that a chunk of weights stays in cache while all activation rows pass over it.
fn rows_per_task(rows: usize, threads: usize) -> usize {
    let target = rows.div_ceil(threads.max(1) * 8);
    target.div_ceil(TILE).clamp(4, 16) * TILE
}

/// Runs `kernel` over all output rows, in parallel over row chunks.
fn drive<K: TileKernel>(
    pool: &rayon::ThreadPool,
    kernel: &K,
    w: &MatrixRef,
    m: usize,
    out: &mut [f32],
) {
    let rows = w.rows;
    let threads = pool.current_num_threads();
    let chunk = rows_per_task(rows, threads);
    let tasks = rows.div_ceil(chunk);
    let out = OutPtr(out.as_mut_ptr());
    let task = move |t: usize| {
        let start = t * chunk;
        let end = (start + chunk).min(rows);
        compute_rows(kernel, start, end, rows, m, out);
    };
    if threads <= 1 || tasks <= 1 {
        (0..tasks).for_each(task);
    } else {
        pool.install(|| (0..tasks).into_par_iter().for_each(task));
    }
}

/// Computes output rows `start..end` for all `m` activation rows: activation groups outer,
/// weight tiles inner, so the chunk's weights are reused from cache by every group.
fn compute_rows<K: TileKernel>(
    kernel: &K,
    start: usize,
    end: usize,
    rows: usize,
    m: usize,
    out: OutPtr,
) {
    let mut i = 0;
    while i < m {
        let n = (m - i).min(TILE);
        let mut r = start;
        while r < end {
            let rc = (end - r).min(TILE);
            macro_rules! tile {
                ($R:literal, $N:literal) => {{
                    let result = kernel.tile::<$R, $N>(
                        std::array::from_fn(|j| r + j),
                        std::array::from_fn(|j| i + j),
                    );
                    for (j, row) in result.iter().enumerate() {
                        for (a, &v) in row.iter().enumerate() {
                            // SAFETY: i + a < m and r + j < rows, so the index is inside
                            // `out` (length m * rows, checked by matmul); this task alone
                            // owns output row r + j.
                            unsafe { *out.0.add((i + a) * rows + r + j) = v };
                        }
                    }
                }};
            }
            match (rc, n) {
                (4, 4) => tile!(4, 4),
                (4, 3) => tile!(4, 3),
                (4, 2) => tile!(4, 2),
                (4, 1) => tile!(4, 1),
                (3, 4) => tile!(3, 4),
                (3, 3) => tile!(3, 3),
                (3, 2) => tile!(3, 2),
                (3, 1) => tile!(3, 1),
                (2, 4) => tile!(2, 4),
                (2, 3) => tile!(2, 3),
                (2, 2) => tile!(2, 2),
                (2, 1) => tile!(2, 1),
                (1, 4) => tile!(1, 4),
                (1, 3) => tile!(1, 3),
                (1, 2) => tile!(1, 2),
                _ => tile!(1, 1),
            }
            r += rc;
        }
        i += n;
    }
}

/// Horizontal sum of 16 lanes in a fixed order (std's `_mm512_reduce_add_ps` does not
/// promise one).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn hsum512(v: std::arch::x86_64::__m512) -> f32 {
    use std::arch::x86_64::*;
    let lo = _mm512_castps512_ps256(v);
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    let s8 = _mm256_add_ps(lo, hi);
    let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8));
    let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    let s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
    _mm_cvtss_f32(s1)
}

/// `[v0; 8] ++ [v2; 8]`: the scales of a pair of blocks, each over its block's 8 i32 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn spread_pair(v: std::arch::x86_64::__m128) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let index = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm512_permutexvar_ps(index, _mm512_castps128_ps512(v))
}
