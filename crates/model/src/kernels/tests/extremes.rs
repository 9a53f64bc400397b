//! Blocks at the edges of every format's integer ranges (largest quants and scales, activations
//! of magnitude 127): the partial sums the AVX2 path keeps in i16 must not wrap or saturate, so
//! every path still equals the scalar one and the exact value.

use super::*;
use half::f16;

/// One GGUF block of `dtype` with every quant at its largest (`high`) or smallest value and the
/// sub-block scales at their largest magnitude, the scales `d` and `dmin` 1.
fn extreme_block(dtype: GgmlDType, high: bool) -> Vec<u8> {
    let one = f16::from_f32(1.0).to_le_bytes();
    let quants = if high { 0xff } else { 0x00 };
    let mut block = Vec::new();
    match dtype {
        GgmlDType::Q4_0 => {
            block.extend(one);
            block.extend([quants; 16]);
        }
        GgmlDType::Q4_1 => {
            block.extend(one);
            block.extend(one);
            block.extend([quants; 16]);
        }
        GgmlDType::Q5_0 => {
            block.extend(one);
            block.extend([quants; 4 + 16]);
        }
        GgmlDType::Q5_1 => {
            block.extend(one);
            block.extend(one);
            block.extend([quants; 4 + 16]);
        }
        GgmlDType::Q8_0 => {
            block.extend(one);
            block.extend([if high { 0x7f } else { 0x80 }; 32]);
        }
        GgmlDType::Q4K | GgmlDType::Q5K => {
            block.extend(one);
            block.extend(one);
            // All ones: every 6-bit scale and minimum is 63.
            block.extend([0xff; 12]);
            let qh = if dtype == GgmlDType::Q5K { 32 } else { 0 };
            block.extend(vec![quants; qh + 128]);
        }
        GgmlDType::Q6K => {
            block.extend(vec![quants; 128 + 64]);
            block.extend([if high { 0x7f } else { 0x80 }; 16]);
            block.extend(one);
        }
        other => panic!("no extreme block for {other:?}"),
    }
    assert_eq!(block.len(), dtype.type_size());
    block
}

#[test]
fn sums_at_the_range_limits_are_exact_on_every_path() {
    let pool = pool(2);
    let (rows, cols) = (19, 512);
    for dtype in TYPES
        .into_iter()
        .filter(|&d| !is_float(d) && PackedMatrix::packs(d))
    {
        let blocks = cols / dtype.block_size();
        let bytes: Vec<u8> = (0..rows)
            .flat_map(|r| (0..blocks).flat_map(move |_| extreme_block(dtype, r % 2 == 0)))
            .collect();
        let storage = Aligned::new(&bytes);
        let raw = MatrixRef::new(dtype, rows, cols, storage.bytes()).expect("matrix");
        // Rows of +1 and of -1: every activation quantizes to +127 or -127.
        let x: Vec<f32> = (0..2 * cols)
            .map(|i| if i < cols { 1.0 } else { -1.0 })
            .collect();
        let mut scalar = vec![0f32; 2 * rows];
        let reference = PackedMatrix::pack(&raw, CpuPath::Scalar).expect("pack");
        matmul_f32(&pool, Weight::Packed(&reference), &x, 2, &mut scalar).expect("matmul");
        for r in 0..rows {
            let mut row = vec![0f32; cols];
            dequantize_row(&raw, r, &mut row).expect("dequantize");
            for i in 0..2 {
                let exact: f64 = row
                    .iter()
                    .zip(&x[i * cols..])
                    .map(|(&w, &a)| w as f64 * a as f64)
                    .sum();
                let got = scalar[i * rows + r] as f64;
                assert!(
                    (got - exact).abs() <= 1e-5 * exact.abs().max(1.0),
                    "{dtype:?} row {r} act {i}: {got} vs exact {exact}"
                );
            }
        }
        for path in available_paths() {
            let packed = PackedMatrix::pack(&raw, path).expect("pack");
            let mut out = vec![0f32; 2 * rows];
            matmul_f32(&pool, Weight::Packed(&packed), &x, 2, &mut out).expect("matmul");
            for (k, (a, b)) in out.iter().zip(&scalar).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "{dtype:?} {path} element {k}: {a} vs {b}"
                );
            }
        }
    }
}
