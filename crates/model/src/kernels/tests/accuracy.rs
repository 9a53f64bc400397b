//! Every type and path against an f64 reference of the dequantized weights, with stated bounds.

use super::*;

/// Activation rows to test: single rows, tile remainders and a full prefill chunk.
const ROW_COUNTS: [usize; 7] = [1, 2, 3, 7, 16, 33, 256];

#[test]
fn matches_f64_reference_of_dequantized_weights() {
    let pools = [pool(1), pool(2)];
    let rows = 13;
    for dtype in TYPES {
        for cols in test_cols(dtype) {
            let storage = quantize(dtype, &random(rows * cols, 1), cols);
            let raw = MatrixRef::new(dtype, rows, cols, storage.bytes()).expect("matrix");
            let dequantized: Vec<Vec<f32>> = (0..rows)
                .map(|r| {
                    let mut row = vec![0f32; cols];
                    dequantize_row(&raw, r, &mut row).expect("dequantize");
                    row
                })
                .collect();
            let max_m = *ROW_COUNTS.last().unwrap();
            let x = random(max_m * cols, 2);
            // Blocks the activations are quantized in: one step (amax / 127) of error per
            // element at most, plus float rounding.
            let act_block = match dtype.block_size() {
                1 => 0,
                256 => 256,
                _ => 32,
            };
            for (name, packed) in prepared(&raw) {
                let w = weight(&raw, &packed);
                for m in ROW_COUNTS {
                    let p = &pools[m % 2];
                    let mut out = vec![0f32; m * rows];
                    matmul_f32(p, w, &x[..m * cols], m, &mut out).expect("matmul");
                    let mut worst = 0f64;
                    for (r, wr) in dequantized.iter().enumerate() {
                        for i in 0..m {
                            let xr = &x[i * cols..(i + 1) * cols];
                            let exact: f64 =
                                wr.iter().zip(xr).map(|(&a, &b)| a as f64 * b as f64).sum();
                            let magnitude: f64 =
                                wr.iter().zip(xr).map(|(a, b)| (a * b).abs() as f64).sum();
                            let mut bound = 2e-5 * magnitude + 1e-6;
                            if act_block > 0 {
                                for (wb, xb) in wr.chunks(act_block).zip(xr.chunks(act_block)) {
                                    let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
                                    let wsum: f64 = wb.iter().map(|v| v.abs() as f64).sum();
                                    bound += wsum * amax / 127.0;
                                }
                            }
                            let got = out[i * rows + r] as f64;
                            let error = (got - exact).abs();
                            assert!(
                                error <= bound,
                                "{dtype:?} {name} {rows}x{cols} m {m} row {r} act {i}: got {got}, exact {exact}, bound {bound}"
                            );
                            worst = worst.max(error / bound);
                        }
                    }
                    if m == 1 {
                        eprintln!("{dtype:?} {name} cols {cols}: worst error / bound = {worst:.3}");
                    }
                }
            }
        }
    }
}

/// Activations whose 8-bit quantization is exact (integers in -127..=127, each block reaching
/// 127), so the result must equal the f64 reference up to float rounding: a misplaced weight
/// or scale anywhere shows.
#[test]
fn exactly_quantizable_activations_give_the_exact_product() {
    let pool = pool(2);
    let (rows, m) = (21, 5);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for dtype in TYPES {
        for cols in test_cols(dtype) {
            let storage = quantize(dtype, &random(rows * cols, 12), cols);
            let raw = MatrixRef::new(dtype, rows, cols, storage.bytes()).expect("matrix");
            let x: Vec<f32> = (0..m * cols)
                .map(|i| match i % 32 {
                    0 => 127.0,
                    _ => rng.random_range(-127i32..=127) as f32,
                })
                .collect();
            for (name, packed) in prepared(&raw).into_iter().filter(|(_, p)| p.is_some()) {
                let mut out = vec![0f32; m * rows];
                matmul_f32(&pool, weight(&raw, &packed), &x, m, &mut out).expect("matmul");
                for r in 0..rows {
                    let mut row = vec![0f32; cols];
                    dequantize_row(&raw, r, &mut row).expect("dequantize");
                    for i in 0..m {
                        let xr = &x[i * cols..(i + 1) * cols];
                        let exact: f64 =
                            row.iter().zip(xr).map(|(&a, &b)| a as f64 * b as f64).sum();
                        let magnitude: f64 = row
                            .iter()
                            .zip(xr)
                            .map(|(&a, &b)| (a as f64 * b as f64).abs())
                            .sum();
                        let got = out[i * rows + r] as f64;
                        assert!(
                            (got - exact).abs() <= 1e-5 * magnitude,
                            "{dtype:?} {name} cols {cols} row {r} act {i}: got {got}, exact {exact}"
                        );
                    }
                }
            }
        }
    }
}
