//! Tests of the matrix kernels: accuracy against an f64 reference, bit-exact batch, thread and
//! path invariance, sums at the edges of the integer ranges, and errors.

mod accuracy;
mod errors;
mod extremes;
mod invariance;

use super::*;
use crate::quantize::quantize as encode;
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

/// 64-byte aligned storage for raw weight bytes.
struct Aligned {
    words: Vec<[u64; 8]>,
    len: usize,
}

impl Aligned {
    fn new(bytes: &[u8]) -> Self {
        let mut words = vec![[0u64; 8]; bytes.len().div_ceil(64)];
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

/// Quantizes row-major `values` (rows of `cols`) to `dtype` with candle's `from_float`.
fn quantize(dtype: GgmlDType, values: &[f32], cols: usize) -> Aligned {
    Aligned::new(&encode(dtype, values, cols).expect("quantize"))
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

/// The paths this CPU has, saying which it lacks (those are tested on a CPU that has them).
fn available_paths() -> Vec<CpuPath> {
    CpuPath::ALL
        .into_iter()
        .filter(|&path| {
            let available = path.available();
            static SAID: std::sync::Once = std::sync::Once::new();
            if !available {
                SAID.call_once(|| {
                    eprintln!(
                        "note: this CPU lacks {} ({}); its kernels are not tested here",
                        path,
                        path.features().join(", ")
                    )
                });
            }
            available
        })
        .collect()
}

/// `w` as each available path's kernels take it; raw for the types without a packed kernel.
fn prepared(w: &MatrixRef) -> Vec<(String, Option<PackedMatrix>)> {
    if !PackedMatrix::packs(w.dtype()) {
        return vec![("raw".into(), None)];
    }
    available_paths()
        .into_iter()
        .map(|path| {
            let packed = PackedMatrix::pack(w, path).expect("pack");
            (path.name().to_string(), Some(packed))
        })
        .collect()
}

fn weight<'a>(raw: &MatrixRef<'a>, packed: &'a Option<PackedMatrix>) -> Weight<'a> {
    match packed {
        Some(p) => Weight::Packed(p),
        None => Weight::Raw(*raw),
    }
}
