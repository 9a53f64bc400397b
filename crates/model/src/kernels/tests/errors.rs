//! Bad shapes, bytes and CPU paths are errors that name the problem.

use super::*;

#[test]
fn shape_errors_are_errors() {
    let pool = pool(1);
    let storage = quantize(GgmlDType::Q8_0, &random(4 * 64, 9), 64);
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
    let raw = MatrixRef::new(dtype, 4, 64, bytes).expect("matrix");
    assert_eq!(raw.row_bytes(), 2 * dtype.type_size());
    let packed = PackedMatrix::pack(&raw, CpuPath::Scalar).expect("pack");
    let x = vec![0f32; 2 * 64];
    let mut out = vec![0f32; 2 * 4];
    for w in [Weight::Raw(raw), Weight::Packed(&packed)] {
        let error = matmul_f32(&pool, w, &x[..127], 2, &mut out).expect_err("short x");
        assert!(error.to_string().contains("matmul"), "{error}");
        assert!(matches!(error, KernelError::Shape { what: "x", .. }));
        assert!(matches!(
            matmul_f32(&pool, w, &x, 2, &mut out[..7]),
            Err(KernelError::Shape { what: "out", .. })
        ));
        assert!(matches!(
            matmul_f32(&pool, w, &x, usize::MAX, &mut out),
            Err(KernelError::Shape { .. })
        ));
        assert!(matmul_f32(&pool, w, &[], 0, &mut []).is_ok());
    }
    let mut row = vec![0f32; 64];
    assert!(matches!(
        dequantize_row(&raw, 4, &mut row),
        Err(KernelError::RowOutOfRange { .. })
    ));
    assert!(matches!(
        dequantize_row(&raw, 0, &mut row[..63]),
        Err(KernelError::Shape { .. })
    ));
    assert!(!supported(GgmlDType::Q8_1) && supported(GgmlDType::Q4_1));
    assert!(matches!(
        PackedMatrix::pack(
            &MatrixRef::new(
                GgmlDType::Q2K,
                1,
                256,
                &Aligned::new(&[0; 84]).bytes()[..84]
            )
            .expect("matrix"),
            CpuPath::Scalar
        ),
        Err(KernelError::Unsupported { .. })
    ));
}

#[test]
fn cpu_paths_parse_and_name_what_is_missing() {
    assert_eq!(CpuPath::parse("scalar"), Ok(CpuPath::Scalar));
    assert_eq!(
        CpuPath::parse(" AVX2 ").ok(),
        CpuPath::Avx2.available().then_some(CpuPath::Avx2)
    );
    let error = CpuPath::parse("sse9").expect_err("unknown path");
    assert!(
        error.to_string().contains("sse9") && error.to_string().contains("avx512"),
        "{error}"
    );
    for path in CpuPath::ALL.into_iter().filter(|p| !p.available()) {
        let error = CpuPath::parse(path.name()).expect_err("unavailable path");
        assert!(error.to_string().contains(path.features()[0]), "{error}");
        let storage = quantize(GgmlDType::Q8_0, &random(64, 1), 64);
        let raw = MatrixRef::new(GgmlDType::Q8_0, 1, 64, storage.bytes()).expect("matrix");
        assert!(matches!(
            PackedMatrix::pack(&raw, path),
            Err(KernelError::CpuPathUnavailable { .. })
        ));
    }
    assert!(CpuPath::best().available());
}
