//! Weight types without a packed kernel (Q2_K, Q3_K) through candle's `GgmlType::vec_dot`, plus
//! row dequantization for every supported type.
//!
//! Candle's `vec_dot` picks its implementation at compile time, so each output element is one
//! call with one fixed order, whatever the batch or thread split.

use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8_0, GgmlType,
};
use candle_core::quantized::GgmlDType;
use half::{bf16, f16};
use rayon::prelude::*;

use super::MatrixRef;

/// Views one row of raw bytes as candle blocks.
fn blocks<T: GgmlType>(row: &[u8]) -> &[T] {
    let size = std::mem::size_of::<T>();
    assert!(
        row.len().is_multiple_of(size) && row.as_ptr().align_offset(std::mem::align_of::<T>()) == 0,
        "row of {} bytes is not a whole, aligned number of {}-byte blocks",
        row.len(),
        size
    );
    // SAFETY: the block structs are `#[repr(C)]` plain data (f16, integers and byte arrays)
    // valid for any bit pattern; length and alignment were just checked, and the lifetime
    // is that of `row`.
    unsafe { std::slice::from_raw_parts(row.as_ptr().cast::<T>(), row.len() / size) }
}

/// The output pointer shared by the tasks, which write disjoint weight rows.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint elements and `matmul` joins them before `out`'s borrow ends.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so that closures capture the whole wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Output rows per task.
const ROWS_PER_TASK: usize = 32;

/// `matmul` for a candle block type; shapes were checked by the caller.
pub(crate) fn matmul<T: GgmlType>(
    pool: &rayon::ThreadPool,
    w: &MatrixRef,
    x: &[f32],
    m: usize,
    out: &mut [f32],
) {
    let (rows, cols) = (w.rows(), w.cols());
    let act_blocks = cols / T::VecDotType::BLCK_SIZE;
    let mut act = vec![T::VecDotType::zeros(); m * act_blocks];
    for (xr, ar) in x
        .chunks_exact(cols)
        .zip(act.chunks_exact_mut(act_blocks.max(1)))
    {
        T::VecDotType::from_float(xr, ar);
    }
    let out = OutPtr(out.as_mut_ptr());
    let task = |t: usize| {
        for r in t * ROWS_PER_TASK..((t + 1) * ROWS_PER_TASK).min(rows) {
            let weights = blocks::<T>(w.row(r));
            for i in 0..m {
                let a = &act[i * act_blocks..(i + 1) * act_blocks];
                let value = T::vec_dot(cols, weights, a);
                // SAFETY: i < m and r < rows index inside `out` (m * rows, checked by the
                // caller); this task alone owns row r.
                unsafe { *out.get().add(i * rows + r) = value };
            }
        }
    };
    let tasks = rows.div_ceil(ROWS_PER_TASK);
    let threads = pool.current_num_threads();
    if threads <= 1 {
        (0..tasks).for_each(task);
    } else {
        let piece = super::driver::balanced_piece(tasks, threads);
        pool.install(|| {
            (0..tasks)
                .into_par_iter()
                .with_max_len(piece)
                .for_each(task)
        });
    }
}

/// `matmul` for the raw types, dispatched on the type.
pub(crate) fn matmul_raw(
    pool: &rayon::ThreadPool,
    w: &MatrixRef,
    x: &[f32],
    m: usize,
    out: &mut [f32],
) {
    match w.dtype() {
        GgmlDType::Q2K => matmul::<BlockQ2K>(pool, w, x, m, out),
        GgmlDType::Q3K => matmul::<BlockQ3K>(pool, w, x, m, out),
        GgmlDType::Q4_0 => matmul::<BlockQ4_0>(pool, w, x, m, out),
        GgmlDType::Q4_1 => matmul::<BlockQ4_1>(pool, w, x, m, out),
        GgmlDType::Q5_0 => matmul::<BlockQ5_0>(pool, w, x, m, out),
        GgmlDType::Q5_1 => matmul::<BlockQ5_1>(pool, w, x, m, out),
        GgmlDType::Q8_0 => matmul::<BlockQ8_0>(pool, w, x, m, out),
        GgmlDType::Q4K => matmul::<BlockQ4K>(pool, w, x, m, out),
        GgmlDType::Q5K => matmul::<BlockQ5K>(pool, w, x, m, out),
        GgmlDType::Q6K => matmul::<BlockQ6K>(pool, w, x, m, out),
        // Float weights are always packed; `MatrixRef::new` rejects the rest.
        _ => out.fill(f32::NAN),
    }
}

/// Dequantizes one raw row of `dtype` into `out` (`out.len()` values).
pub(crate) fn dequantize_row(dtype: GgmlDType, row: &[u8], out: &mut [f32]) {
    match dtype {
        GgmlDType::F32 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        GgmlDType::F16 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
            }
        }
        GgmlDType::BF16 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
            }
        }
        GgmlDType::Q4_0 => BlockQ4_0::to_float(blocks(row), out),
        GgmlDType::Q4_1 => BlockQ4_1::to_float(blocks(row), out),
        GgmlDType::Q5_0 => BlockQ5_0::to_float(blocks(row), out),
        GgmlDType::Q5_1 => BlockQ5_1::to_float(blocks(row), out),
        GgmlDType::Q8_0 => BlockQ8_0::to_float(blocks(row), out),
        GgmlDType::Q2K => BlockQ2K::to_float(blocks(row), out),
        GgmlDType::Q3K => BlockQ3K::to_float(blocks(row), out),
        GgmlDType::Q4K => BlockQ4K::to_float(blocks(row), out),
        GgmlDType::Q5K => BlockQ5K::to_float(blocks(row), out),
        GgmlDType::Q6K => BlockQ6K::to_float(blocks(row), out),
        // `MatrixRef::new` rejects the rest.
        GgmlDType::Q8_1 | GgmlDType::Q8K => out.fill(f32::NAN),
    }
}
