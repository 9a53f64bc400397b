//! Weight types without a kernel of our own (Q4_0, Q5_0, Q5_1 and the K-quants) through
//! candle's `GgmlType::vec_dot`, plus row dequantization for every supported type.
//!
//! Candle's `vec_dot` picks its implementation at compile time, so each output element is
//! still one call with one fixed order, whatever the tile or thread split.

use super::{drive, MatrixRef, TileKernel};
use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8_0, GgmlType,
};
use candle_core::quantized::GgmlDType;
use half::{bf16, f16};

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

/// Candle blocks with their quantized activations.
struct Kernel<'a, T: GgmlType> {
    w: &'a MatrixRef<'a>,
    /// (m, act_blocks) activations quantized to `T::VecDotType`.
    act: &'a [T::VecDotType],
    act_blocks: usize,
}

impl<T: GgmlType> TileKernel for Kernel<'_, T> {
    fn tile<const R: usize, const N: usize>(
        &self,
        rows: [usize; R],
        acts: [usize; N],
    ) -> [[f32; N]; R] {
        let mut out = [[0f32; N]; R];
        for (o, &r) in out.iter_mut().zip(&rows) {
            let w = blocks::<T>(self.w.row(r));
            for (v, &i) in o.iter_mut().zip(&acts) {
                let a = &self.act[i * self.act_blocks..(i + 1) * self.act_blocks];
                *v = T::vec_dot(self.w.cols, w, a);
            }
        }
        out
    }
}

/// `matmul` for a candle block type; shapes were checked by the caller.
pub(crate) fn matmul<T: GgmlType>(
    pool: &rayon::ThreadPool,
    w: &MatrixRef,
    x: &[f32],
    m: usize,
    out: &mut [f32],
) {
    let cols = w.cols;
    let act_blocks = cols / T::VecDotType::BLCK_SIZE;
    let mut act = vec![T::VecDotType::zeros(); m * act_blocks];
    for (xr, ar) in x
        .chunks_exact(cols)
        .zip(act.chunks_exact_mut(act_blocks.max(1)))
    {
        T::VecDotType::from_float(xr, ar);
    }
    let kernel = Kernel::<T> {
        w,
        act: &act,
        act_blocks,
    };
    drive(pool, &kernel, w, m, out);
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
