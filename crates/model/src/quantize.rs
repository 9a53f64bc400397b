//! Encoding f32 rows into ggml tensor types (and back), through candle's block quantizers.

use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8_0, GgmlType,
};
use candle_core::quantized::GgmlDType;

use crate::error::{ModelError, Result};

fn encode_blocks<T: GgmlType>(values: &[f32]) -> Vec<u8> {
    let mut blocks = vec![T::zeros(); values.len() / T::BLCK_SIZE];
    T::from_float(values, &mut blocks);
    let size = std::mem::size_of_val(blocks.as_slice());
    // SAFETY: ggml blocks are #[repr(C)] plain data; viewing them as bytes is how they are stored.
    unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), size) }.to_vec()
}

/// Encodes `values` (whole rows of `row_len`) as `dtype`.
pub fn quantize(dtype: GgmlDType, values: &[f32], row_len: usize) -> Result<Vec<u8>> {
    let block = dtype.block_size();
    if row_len == 0 || !row_len.is_multiple_of(block) || !values.len().is_multiple_of(row_len) {
        return Err(ModelError::Kernel(format!(
            "cannot encode {} values in rows of {row_len} as {dtype:?} (block size {block})",
            values.len()
        )));
    }
    Ok(match dtype {
        GgmlDType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlDType::F16 => values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
        GgmlDType::BF16 => values
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect(),
        GgmlDType::Q4_0 => encode_blocks::<BlockQ4_0>(values),
        GgmlDType::Q4_1 => encode_blocks::<BlockQ4_1>(values),
        GgmlDType::Q5_0 => encode_blocks::<BlockQ5_0>(values),
        GgmlDType::Q5_1 => encode_blocks::<BlockQ5_1>(values),
        GgmlDType::Q8_0 => encode_blocks::<BlockQ8_0>(values),
        GgmlDType::Q2K => encode_blocks::<BlockQ2K>(values),
        GgmlDType::Q3K => encode_blocks::<BlockQ3K>(values),
        GgmlDType::Q4K => encode_blocks::<BlockQ4K>(values),
        GgmlDType::Q5K => encode_blocks::<BlockQ5K>(values),
        GgmlDType::Q6K => encode_blocks::<BlockQ6K>(values),
        other => {
            return Err(ModelError::Kernel(format!(
                "encoding to {other:?} is not supported"
            )));
        }
    })
}
