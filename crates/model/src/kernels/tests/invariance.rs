//! Bit-exact invariance: a row's outputs alone equal its outputs inside any batch, on 1 or 2
//! threads, and every path equals the scalar one.

use super::*;

#[test]
fn batch_and_thread_invariant_bit_exact() {
    let pools = [pool(1), pool(2)];
    let rows = 37;
    // Up to 100 rows: 16-bit kernels widen their panels to f32 above 64.
    let max_m = 100;
    for dtype in TYPES {
        for cols in test_cols(dtype) {
            let storage = quantize(dtype, &random(rows * cols, 3), cols);
            let raw = MatrixRef::new(dtype, rows, cols, storage.bytes()).expect("matrix");
            let x = random(max_m * cols, 4);
            for (name, packed) in prepared(&raw) {
                let w = weight(&raw, &packed);
                // Reference: each activation row alone, one thread.
                let mut single = vec![0f32; max_m * rows];
                for i in 0..max_m {
                    let xr = &x[i * cols..(i + 1) * cols];
                    let o = &mut single[i * rows..(i + 1) * rows];
                    matmul_f32(&pools[0], w, xr, 1, o).expect("matmul m=1");
                }
                for m in [1, 2, 3, 4, 5, 7, 16, 33, 65, 100] {
                    for p in &pools {
                        let mut out = vec![0f32; m * rows];
                        matmul_f32(p, w, &x[..m * cols], m, &mut out).expect("matmul");
                        for (k, (a, b)) in out.iter().zip(&single).enumerate() {
                            assert_eq!(
                                a.to_bits(),
                                b.to_bits(),
                                "{dtype:?} {name} cols {cols} m {m} threads {}: element {k}: {a} vs {b}",
                                p.current_num_threads()
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn every_path_equals_the_scalar_path_bit_exact() {
    let pool = pool(2);
    let rows = 45;
    let paths = available_paths();
    assert!(paths.contains(&CpuPath::best()), "the best path is tested");
    // 70 rows: 16-bit kernels widen their panels to f32 above 64.
    for (dtype, m) in TYPES
        .into_iter()
        .filter(|&d| PackedMatrix::packs(d))
        .flat_map(|d| [(d, 6), (d, 70)])
    {
        for cols in test_cols(dtype) {
            let storage = quantize(dtype, &random(rows * cols, 5), cols);
            let raw = MatrixRef::new(dtype, rows, cols, storage.bytes()).expect("matrix");
            let x = random(m * cols, 6);
            let run = |path| {
                let packed = PackedMatrix::pack(&raw, path).expect("pack");
                let mut out = vec![0f32; m * rows];
                matmul_f32(&pool, Weight::Packed(&packed), &x, m, &mut out).expect("matmul");
                out
            };
            let scalar = run(CpuPath::Scalar);
            for &path in paths.iter().filter(|&&p| p != CpuPath::Scalar) {
                let fast = run(path);
                for (k, (a, b)) in fast.iter().zip(&scalar).enumerate() {
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "{dtype:?} cols {cols} m {m} {path} element {k}: {a} vs scalar {b}"
                    );
                }
                eprintln!(
                    "{dtype:?} cols {cols} m {m}: {path} equals scalar on {} values",
                    fast.len()
                );
            }
        }
    }
}

#[test]
fn activation_quantization_is_per_row() {
    let pool = pool(2);
    for blocking in [activations::Blocking::By32, activations::Blocking::By256] {
        let cols = 512;
        let x = random(9 * cols, 7);
        let mut all = activations::Quantized::default();
        all.quantize(&pool, blocking, &x, 9, cols);
        let mut one = activations::Quantized::default();
        one.quantize(&pool, blocking, &x[4 * cols..5 * cols], 1, cols);
        let blocks = cols / blocking.size();
        assert_eq!(&all.qs[4 * cols..5 * cols], &one.qs[..]);
        for b in 0..blocks {
            assert_eq!(all.scale(4, b).to_bits(), one.scale(0, b).to_bits());
            assert_eq!(all.sums(4, b), one.sums(0, b));
        }
    }
}
