//! Tests of the matrix kernels: accuracy against an f64 reference, bit-exact batch and
//! thread invariance, SIMD against scalar, and shape errors.

use super::*;
use candle_core::quantized::k_quants::{BlockQ4_1, BlockQ8_0, GgmlType};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Every type `matmul` supports.
const TYPES: [GgmlDType; 13] = [
    GgmlDType::F32,
    GgmlDType::F16,
    GgmlDType::BF16,
    GgmlDType::Q4_0,
    GgmlDType::Q4_1,
    GgmlDType::Q5_0,
    GgmlDType::Q5_1,
    GgmlDType::Q8_0,
    GgmlDType::Q2K,
    GgmlDType::Q3K,
    GgmlDType::Q4K,
    GgmlDType::Q5K,
    GgmlDType::Q6K,
];

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// 32-byte aligned storage for raw weight bytes.
struct Aligned {
    words: Vec<[u64; 4]>,
    len: usize,
}

impl Aligned {
    fn new(bytes: &[u8]) -> Self {
        let mut words = vec![[0u64; 4]; bytes.len().div_ceil(32)];
        // SAFETY: `words` has at least `bytes.len()` bytes of plain integer storage.
        let dst =
            unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), bytes.len()) };
        dst.copy_from_slice(bytes);
        Self {
            words,
            len: bytes.len(),
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

fn block_bytes<T: GgmlType>(values: &[f32]) -> Vec<u8> {
    let mut blocks = vec![T::zeros(); values.len() / T::BLCK_SIZE];
    T::from_float(values, &mut blocks);
    let size = std::mem::size_of_val(blocks.as_slice());
    // SAFETY: the blocks are `#[repr(C)]` plain data without padding, `size` bytes long.
    unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), size) }.to_vec()
}

/// Quantizes row-major `values` to `dtype` with candle's `from_float`.
fn quantize(dtype: GgmlDType, values: &[f32]) -> Aligned {
    use candle_core::quantized::k_quants::*;
    let bytes: Vec<u8> = match dtype {
        GgmlDType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlDType::F16 => values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        GgmlDType::BF16 => values
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
        GgmlDType::Q4_0 => block_bytes::<BlockQ4_0>(values),
        GgmlDType::Q4_1 => block_bytes::<BlockQ4_1>(values),
        GgmlDType::Q5_0 => block_bytes::<BlockQ5_0>(values),
        GgmlDType::Q5_1 => block_bytes::<BlockQ5_1>(values),
        GgmlDType::Q8_0 => block_bytes::<BlockQ8_0>(values),
        GgmlDType::Q2K => block_bytes::<BlockQ2K>(values),
        GgmlDType::Q3K => block_bytes::<BlockQ3K>(values),
        GgmlDType::Q4K => block_bytes::<BlockQ4K>(values),
        GgmlDType::Q5K => block_bytes::<BlockQ5K>(values),
        GgmlDType::Q6K => block_bytes::<BlockQ6K>(values),
        other => panic!("no quantizer for {other:?}"),
    };
    Aligned::new(&bytes)
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

/// Column counts to test for `dtype`: one even and one odd number of blocks (and a
/// non-multiple of 16 for floats).
fn test_cols(dtype: GgmlDType) -> [usize; 2] {
    match dtype.block_size() {
        1 => [512, 100],
        32 => [512, 96],
        _ => [512, 768],
    }
}

fn is_float(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
}

#[test]
fn matches_f64_reference_of_dequantized_weights() {
    let pool = pool(2);
    let (rows, m) = (13, 3);
    for dtype in TYPES {
        for cols in test_cols(dtype) {
            let storage = quantize(dtype, &random(rows * cols, 1));
            let w = MatrixRef::new(dtype, rows, cols, storage.bytes()).expect("matrix");
            let x = random(m * cols, 2);
            let mut out = vec![0f32; m * rows];
            matmul(&pool, &w, &x, m, &mut out).expect("matmul");
            let mut worst = 0f64;
            for r in 0..rows {
                let mut wr = vec![0f32; cols];
                dequantize_row(&w, r, &mut wr).expect("dequantize");
                for i in 0..m {
                    let xr = &x[i * cols..(i + 1) * cols];
                    let exact: f64 = wr.iter().zip(xr).map(|(&a, &b)| a as f64 * b as f64).sum();
                    let magnitude: f64 = wr.iter().zip(xr).map(|(a, b)| (a * b).abs() as f64).sum();
                    // Activation quantization: at most one step (amax / 127) per element,
                    // plus f16-rounded activation scales and sums in candle's formats.
                    let mut bound = 1e-5 * magnitude;
                    if !is_float(dtype) {
                        for (wb, xb) in wr.chunks(32).zip(xr.chunks(32)) {
                            let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
                            let wmax = wb.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
                            let xsum: f64 = xb.iter().map(|v| v.abs() as f64).sum();
                            let wsum: f64 = wb.iter().map(|v| v.abs() as f64).sum();
                            bound += wsum * amax / 127.0 + 4e-3 * wmax * xsum;
                        }
                    }
                    let got = out[i * rows + r] as f64;
                    let error = (got - exact).abs();
                    assert!(
                        error <= bound,
                        "{dtype:?} {rows}x{cols} row {r} act {i}: got {got}, exact {exact}, bound {bound}"
                    );
                    worst = worst.max(error / bound);
                }
            }
            eprintln!("{dtype:?} cols {cols}: worst error / bound = {worst:.3}");
        }
    }
}

#[test]
fn batch_and_thread_invariant_bit_exact() {
    let pools = [pool(1), pool(2)];
    let rows = 37;
    let max_m = 33;
    for dtype in TYPES {
        for cols in test_cols(dtype) {
            let storage = quantize(dtype, &random(rows * cols, 3));
            let w = MatrixRef::new(dtype, rows, cols, storage.bytes()).expect("matrix");
            let x = random(max_m * cols, 4);
            // Reference: each activation row alone, one thread.
            let mut single = vec![0f32; max_m * rows];
            for i in 0..max_m {
                let xr = &x[i * cols..(i + 1) * cols];
                let o = &mut single[i * rows..(i + 1) * rows];
                matmul(&pools[0], &w, xr, 1, o).expect("matmul m=1");
            }
            for m in [1, 2, 3, 7, 16, 33] {
                for p in &pools {
                    let mut out = vec![0f32; m * rows];
                    matmul(p, &w, &x[..m * cols], m, &mut out).expect("matmul");
                    for (k, (a, b)) in out.iter().zip(&single).enumerate() {
                        assert_eq!(
                            a.to_bits(),
                            b.to_bits(),
                            "{dtype:?} cols {cols} m {m} threads {}: element {k}: {a} vs {b}",
                            p.current_num_threads()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn simd_matches_scalar() {
    let pool = pool(2);
    let (rows, m) = (21, 5);
    for dtype in [
        GgmlDType::F32,
        GgmlDType::F16,
        GgmlDType::BF16,
        GgmlDType::Q4_1,
        GgmlDType::Q8_0,
    ] {
        eprintln!(
            "{dtype:?}: SIMD kernel available: {}",
            simd_available(dtype)
        );
        for cols in test_cols(dtype) {
            let storage = quantize(dtype, &random(rows * cols, 5));
            let w = MatrixRef::new(dtype, rows, cols, storage.bytes()).expect("matrix");
            let x = random(m * cols, 6);
            let mut fast = vec![0f32; m * rows];
            let mut slow = vec![0f32; m * rows];
            matmul_with(&pool, &w, &x, m, &mut fast, true).expect("simd");
            matmul_with(&pool, &w, &x, m, &mut slow, false).expect("scalar");
            for (k, (a, b)) in fast.iter().zip(&slow).enumerate() {
                // Both sum the same products, in different orders, with and without FMA.
                let bound = 2e-6 * cols as f32;
                assert!(
                    (a - b).abs() <= bound,
                    "{dtype:?} cols {cols} element {k}: simd {a} scalar {b}"
                );
            }
        }
    }
}

#[test]
fn activation_quantization_is_per_row() {
    let cols = 96;
    let x = random(3 * cols, 7);
    let mut all = activation_quant::QuantizedActivations::default();
    all.quantize(&x, 3, cols);
    let mut one = activation_quant::QuantizedActivations::default();
    one.quantize(&x[cols..2 * cols], 1, cols);
    assert_eq!(all.row_qs(1), one.row_qs(0));
    assert_eq!(all.row_ds(1), one.row_ds(0));
}

#[test]
fn dequantize_row_matches_candle() {
    let (rows, cols) = (3, 64);
    let values = random(rows * cols, 8);
    let storage = quantize(GgmlDType::Q4_1, &values);
    let w = MatrixRef::new(GgmlDType::Q4_1, rows, cols, storage.bytes()).expect("matrix");
    let mut blocks = vec![BlockQ4_1::zeros(); rows * cols / 32];
    BlockQ4_1::from_float(&values, &mut blocks);
    let mut expected = vec![0f32; rows * cols];
    BlockQ4_1::to_float(&blocks, &mut expected);
    let mut got = vec![0f32; cols];
    dequantize_row(&w, 2, &mut got).expect("dequantize");
    assert_eq!(got, expected[2 * cols..]);
}

#[test]
fn shape_errors_are_errors() {
    let pool = pool(1);
    let storage = quantize(GgmlDType::Q8_0, &random(4 * 64, 9));
    let bytes = storage.bytes();
    let dtype = GgmlDType::Q8_0;
    assert!(matches!(
        MatrixRef::new(dtype, 4, 64, &bytes[..bytes.len() - 1]),
        Err(KernelError::ByteLength { .. })
    ));
    assert!(matches!(
        MatrixRef::new(dtype, 5, 64, bytes),
        Err(KernelError::ByteLength { .. })
    ));
    assert!(matches!(
        MatrixRef::new(dtype, 4, 48, bytes),
        Err(KernelError::BlockDivisibility { .. })
    ));
    assert!(matches!(
        MatrixRef::new(GgmlDType::Q8K, 1, 256, bytes),
        Err(KernelError::Unsupported { .. })
    ));
    assert!(matches!(
        MatrixRef::new(dtype, 2, 32, &bytes[1..69]),
        Err(KernelError::Misaligned { .. })
    ));
    assert!(matches!(
        MatrixRef::new(dtype, usize::MAX, 64, bytes),
        Err(KernelError::ByteLength { .. })
    ));
    let w = MatrixRef::new(dtype, 4, 64, bytes).expect("matrix");
    assert_eq!(w.row_bytes(), 2 * std::mem::size_of::<BlockQ8_0>());
    let x = vec![0f32; 2 * 64];
    let mut out = vec![0f32; 2 * 4];
    let error = matmul(&pool, &w, &x[..127], 2, &mut out).expect_err("short x");
    assert!(error.to_string().contains("matmul"), "{error}");
    assert!(matches!(error, KernelError::Shape { what: "x", .. }));
    assert!(matches!(
        matmul(&pool, &w, &x, 2, &mut out[..7]),
        Err(KernelError::Shape { what: "out", .. })
    ));
    assert!(matches!(
        matmul(&pool, &w, &x, usize::MAX, &mut out),
        Err(KernelError::Shape { .. })
    ));
    let inconsistent = MatrixRef { rows: 9, ..w };
    assert!(matmul(&pool, &inconsistent, &x, 2, &mut out).is_err());
    let mut row = vec![0f32; 64];
    assert!(matches!(
        dequantize_row(&w, 4, &mut row),
        Err(KernelError::RowOutOfRange { .. })
    ));
    assert!(matches!(
        dequantize_row(&w, 0, &mut row[..63]),
        Err(KernelError::Shape { .. })
    ));
    assert!(matmul(&pool, &w, &[], 0, &mut []).is_ok());
    assert!(!supported(GgmlDType::Q8_1) && supported(GgmlDType::Q4_1));
}
