//! Micro benchmark of the matrix kernels: GB/s of weights and GOPS for m = 1 and m = 128.
//!
//! Run with `cargo run --release -p pipespec-model --example kernel_bench`.

use candle_core::quantized::k_quants::{BlockQ4_1, BlockQ8_0, GgmlType};
use candle_core::quantized::GgmlDType;
use pipespec_model::kernels::{matmul, MatrixRef};
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

fn block_bytes<T: GgmlType>(v: &[f32]) -> Vec<u8> {
    let mut blocks = vec![T::zeros(); v.len() / T::BLCK_SIZE];
    T::from_float(v, &mut blocks);
    let size = std::mem::size_of_val(blocks.as_slice());
    // SAFETY: the blocks are `#[repr(C)]` plain data without padding, `size` bytes long.
    unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), size) }.to_vec()
}

/// Raw bytes of `v` in `dtype`, copied into 32-byte aligned storage.
fn weights(dtype: GgmlDType, v: &[f32]) -> Vec<[u8; 32]> {
    let bytes: Vec<u8> = match dtype {
        GgmlDType::Q4_1 => block_bytes::<BlockQ4_1>(v),
        GgmlDType::Q8_0 => block_bytes::<BlockQ8_0>(v),
        GgmlDType::F16 => v
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect(),
        _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    };
    let mut out = vec![[0u8; 32]; bytes.len().div_ceil(32)];
    out.as_flattened_mut()[..bytes.len()].copy_from_slice(&bytes);
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shapes = [(1536, 576), (576, 1536), (49152, 576)];
    let types = [
        GgmlDType::Q4_1,
        GgmlDType::Q8_0,
        GgmlDType::F32,
        GgmlDType::F16,
    ];
    let pools = [1, 2].map(|t| rayon::ThreadPoolBuilder::new().num_threads(t).build());
    println!("type  rows x cols   threads    m   ms/call    GB/s(W)     GOPS");
    for dtype in types {
        for (rows, cols) in shapes {
            let storage = weights(dtype, &values(rows * cols, 1));
            let len = rows * cols / dtype.block_size() * dtype.type_size();
            let w = MatrixRef::new(dtype, rows, cols, &storage.as_flattened()[..len])?;
            for pool in &pools {
                let pool = pool.as_ref().map_err(|e| e.to_string())?;
                for m in [1, 128] {
                    let x = values(m * cols, 2);
                    let mut out = vec![0f32; m * rows];
                    matmul(pool, &w, &x, m, &mut out)?;
                    let start = Instant::now();
                    let mut calls = 0u32;
                    while start.elapsed() < Duration::from_millis(300) || calls < 3 {
                        matmul(pool, &w, &x, m, &mut out)?;
                        calls += 1;
                    }
                    let seconds = start.elapsed().as_secs_f64() / calls as f64;
                    let gbs = len as f64 / seconds / 1e9;
                    let gops = 2.0 * (m * rows * cols) as f64 / seconds / 1e9;
                    println!(
                        "{:<5} {rows:>5} x {cols:<5} {:>7} {m:>4} {:>9.3} {gbs:>10.1} {gops:>8.1}",
                        format!("{dtype:?}"),
                        pool.current_num_threads(),
                        seconds * 1e3,
                    );
                }
            }
        }
    }
    Ok(())
}
