//! This machine's ceilings for the kernels' figures: the f32 FMA peak of each core (twelve
//! independent AVX2 FMA chains, all cores at once) and the DRAM read bandwidth (a sum over a
//! buffer far larger than the caches) on 1 to `THREADS` threads. A kernel's GFLOP/s or GB/s from
//! `kernel_bench` or `pass_bench` reads as a fraction of these.
//!
//! Run with `cargo run --release -p pipespec-model --example ceilings -- [MIB] [THREADS]`
//! (defaults: a 1024 MiB buffer, 2 threads).

use std::time::Instant;

/// FMAs per chain per call of `fma_chains`.
const FMA_STEPS: u64 = 50_000_000;

/// Twelve independent chains of `FMA_STEPS` 8-lane FMAs; returns a value that depends on all
/// of them, so that none is optimised away.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_chains(seed: f32) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_ps(seed); 12];
    let (b, c) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    for _ in 0..FMA_STEPS {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, b, c);
        }
    }
    let mut lanes = [0f32; 8];
    let sum = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, &a| _mm256_add_ps(s, a));
    // SAFETY: `lanes` holds 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes.iter().sum()
}

/// GFLOP/s of each of `threads` threads running `fma_chains` at once, or `None` without
/// AVX2 and FMA.
fn fma_peak(threads: usize) -> Option<Vec<f64>> {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        return Some(std::thread::scope(|scope| {
            let runs: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || {
                        let start = Instant::now();
                        // SAFETY: the features were detected above.
                        let sink = unsafe { fma_chains(t as f32) };
                        let seconds = start.elapsed().as_secs_f64();
                        std::hint::black_box(sink);
                        (FMA_STEPS * 12 * 8 * 2) as f64 / seconds / 1e9
                    })
                })
                .collect();
            runs.into_iter()
                .map(|run| run.join().unwrap_or(f64::NAN))
                .collect()
        }));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = threads;
    None
}

/// The sum of `values`, four 8-lane accumulators wide (the compiler vectorises it).
fn sum(values: &[f32]) -> f32 {
    let mut acc = [[0f32; 8]; 4];
    let (chunks, rest) = values.as_chunks::<32>();
    for chunk in chunks {
        for (a, part) in acc.iter_mut().zip(chunk.chunks_exact(8)) {
            for (lane, &v) in a.iter_mut().zip(part) {
                *lane += v;
            }
        }
    }
    acc.iter().flatten().sum::<f32>() + rest.iter().sum::<f32>()
}

/// GB/s of reading `values` once, split into `threads` contiguous parts read at once; the
/// best of 5 passes.
fn read_bandwidth(values: &[f32], threads: usize) -> f64 {
    let part = values.len().div_ceil(threads);
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        let total: f32 = std::thread::scope(|scope| {
            let sums: Vec<_> = values
                .chunks(part)
                .map(|chunk| scope.spawn(move || sum(chunk)))
                .collect();
            sums.into_iter().map(|s| s.join().unwrap_or(0.0)).sum()
        });
        std::hint::black_box(total);
        best = best.min(start.elapsed().as_secs_f64());
    }
    std::mem::size_of_val(values) as f64 / best / 1e9
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mib: usize = args.first().map_or(Ok(1024), |a| a.parse())?;
    let threads: usize = args.get(1).map_or(Ok(2), |a| a.parse())?;
    for t in 1..=threads.max(1) {
        match fma_peak(t) {
            Some(per_thread) => {
                let shown: Vec<String> = per_thread.iter().map(|g| format!("{g:.1}")).collect();
                println!(
                    "FMA peak, {t} thread(s) at once: {} GFLOP/s per core",
                    shown.join(", ")
                );
            }
            None => println!("FMA peak: needs x86-64 with AVX2 and FMA"),
        }
    }
    // Distinct nonzero values, written once so every page is really in memory.
    let values: Vec<f32> = (0..mib * 1024 * 256).map(|i| (i % 7) as f32).collect();
    for t in 1..=threads.max(1) {
        println!(
            "read bandwidth, {mib} MiB on {t} thread(s): {:.1} GB/s",
            read_bandwidth(&values, t)
        );
    }
    Ok(())
}
