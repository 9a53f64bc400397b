//! Micro benchmark of the matrix kernels: ms per call (best of 5 rounds), GB/s of weights and
//! GOPS, per type, shape, CPU path, thread count and activation row count.
//!
//! Run with `cargo run --release -p pipespec-model --example kernel_bench -- [TYPES] [PATHS] [M]`,
//! e.g. `-- q4_k,q6_k avx2 1,8,128` (defaults: every packed type, every available path, 1 and
//! 128 rows; shapes of SmolLM2-135M and -1.7B).

use candle_core::quantized::GgmlDType;
use pipespec_model::convert::parse_type;
use pipespec_model::kernels::{
    matmul, CpuPath, Input, InputBuffers, MatrixRef, PackedMatrix, Weight,
};
use pipespec_model::quantize::quantize;
use std::time::{Duration, Instant};

/// Deterministic values in [-1, 1) (xorshift), enough for timing.
fn values(n: usize, mut state: u64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Raw bytes of `v` in `dtype`, copied into 32-byte aligned storage.
fn weights(
    dtype: GgmlDType,
    v: &[f32],
    cols: usize,
) -> Result<Vec<[u8; 32]>, Box<dyn std::error::Error>> {
    let bytes = quantize(dtype, v, cols)?;
    let mut out = vec![[0u8; 32]; bytes.len().div_ceil(32)];
    out.as_flattened_mut()[..bytes.len()].copy_from_slice(&bytes);
    Ok(out)
}

/// The weight bytes `cold` runs cycle through: far past any last-level cache.
const COLD_BYTES: usize = 256 << 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let types: Vec<GgmlDType> = match args.first() {
        Some(list) => list.split(',').map(parse_type).collect::<Result<_, _>>()?,
        None => "q4_0,q4_1,q5_0,q8_0,q4_k,q5_k,q6_k,f16,f32"
            .split(',')
            .map(parse_type)
            .collect::<Result<_, _>>()?,
    };
    let paths: Vec<CpuPath> = match args.get(1) {
        Some(list) => list
            .split(',')
            .map(CpuPath::parse)
            .collect::<Result<_, _>>()?,
        None => CpuPath::ALL.into_iter().filter(|p| p.available()).collect(),
    };
    let ms: Vec<usize> = match args.get(2) {
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![1, 128],
    };
    let cold = args.get(3).is_some_and(|a| a == "cold");
    // SmolLM2-135M's q, down and head; SmolLM2-1.7B's q, gate, down and head (past the caches).
    let shapes: [(usize, usize); 7] = [
        (1536, 576),
        (576, 1536),
        (49152, 576),
        (2048, 2048),
        (8192, 2048),
        (2048, 8192),
        (49152, 2048),
    ];
    let pools = [1, 2].map(|t| rayon::ThreadPoolBuilder::new().num_threads(t).build());
    println!("type  path    rows x cols   threads    m   ms/call    GB/s(W)     GOPS");
    for &dtype in &types {
        for (rows, cols) in shapes {
            if !cols.is_multiple_of(dtype.block_size()) {
                continue;
            }
            let storage = weights(dtype, &values(rows * cols, 1), cols)?;
            let len = rows * cols / dtype.block_size() * dtype.type_size();
            let raw = MatrixRef::new(dtype, rows, cols, &storage.as_flattened()[..len])?;
            for &path in &paths {
                let copies = if cold { (COLD_BYTES / len).max(2) } else { 1 };
                let packed = (0..copies)
                    .map(|_| PackedMatrix::pack(&raw, path))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut next = 0;
                for pool in &pools {
                    let pool = pool.as_ref().map_err(|e| e.to_string())?;
                    for &m in &ms {
                        let x = values(m * cols, 2);
                        let mut out = vec![0f32; m * rows];
                        let mut buffers = InputBuffers::default();
                        let mut call = || {
                            let mut input = Input::new(&x, m, cols, &mut buffers);
                            next = (next + 1) % packed.len();
                            matmul(pool, Weight::Packed(&packed[next]), &mut input, &mut out)
                        };
                        call()?;
                        // The best of 5 rounds of 100 ms: other work only ever slows a round.
                        let mut seconds = f64::INFINITY;
                        for _ in 0..5 {
                            let start = Instant::now();
                            let mut calls = 0u32;
                            while start.elapsed() < Duration::from_millis(100) || calls < 2 {
                                call()?;
                                calls += 1;
                            }
                            seconds = seconds.min(start.elapsed().as_secs_f64() / calls as f64);
                        }
                        let gbs = len as f64 / seconds / 1e9;
                        let gops = 2.0 * (m * rows * cols) as f64 / seconds / 1e9;
                        println!(
                            "{:<5} {:<7} {rows:>5} x {cols:<5} {:>7} {m:>4} {:>9.3} {gbs:>10.1} {gops:>8.1}",
                            format!("{dtype:?}"),
                            path.name(),
                            pool.current_num_threads(),
                            seconds * 1e3,
                        );
                    }
                }
            }
        }
    }
    Ok(())
}
