//! Hot-path matrix kernels: `W · x` for GGUF weight matrices.
//!
//! At load, each weight matrix is repacked (`PackedMatrix`) into panels of interleaved rows, one
//! vector lane per row, so that one instruction advances a dot product of every row in the
//! panel and no horizontal sum is needed. Each format's kernel is written once over the
//! `simd::Simd` primitives and runs on one of three back ends (`CpuPath`: AVX-512, AVX2,
//! scalar), chosen once per process. Activations are quantized once per input and shared by
//! every matrix that reads them.
//!
//! Every output element is computed by one fixed sequence of operations: exact integer sums per
//! block, then f32 FMAs in block order (float formats: FMAs in column order, 32 columns per
//! partial sum). That sequence does not depend on the number of activation rows, the thread
//! split, the tile or the back end, so a token's logits are bit-identical alone, inside any
//! multi-token pass and on every path, which speculative verification relies on.
//!
//! Types without a packed kernel (Q2_K, Q3_K) run through candle's `vec_dot` on the raw bytes.

mod activations;
mod cpu;
mod driver;
pub(crate) use driver::balanced_piece;
mod error;
mod formats;
mod generic;
mod matrix;
mod packed;
mod simd;
#[cfg(test)]
mod tests;

use candle_core::quantized::GgmlDType;

pub use activations::{Input, InputBuffers};
pub use cpu::{CpuPath, CPU_ENV};
pub use error::KernelError;
pub use matrix::MatrixRef;
pub use packed::PackedMatrix;

use activations::Blocking;
use formats::{float, k4::K4, nibble32::Nibble32, q6_k::Q6K, q8_0::Q8_0};
use packed::Format;

/// A weight matrix as `matmul` takes it.
#[derive(Clone, Copy)]
pub enum Weight<'a> {
    /// Repacked for a CPU path.
    Packed(&'a PackedMatrix),
    /// Raw GGUF blocks, for the types without a packed kernel.
    Raw(MatrixRef<'a>),
}

impl Weight<'_> {
    pub fn dtype(&self) -> GgmlDType {
        match self {
            Weight::Packed(w) => w.dtype(),
            Weight::Raw(w) => w.dtype(),
        }
    }

    pub fn rows(&self) -> usize {
        match self {
            Weight::Packed(w) => w.rows(),
            Weight::Raw(w) => w.rows(),
        }
    }

    pub fn cols(&self) -> usize {
        match self {
            Weight::Packed(w) => w.cols(),
            Weight::Raw(w) => w.cols(),
        }
    }
}

/// Whether `matmul` and `dequantize_row` handle `dtype`.
pub fn supported(dtype: GgmlDType) -> bool {
    use GgmlDType::*;
    matches!(
        dtype,
        F32 | F16 | BF16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q2K | Q3K | Q4K | Q5K | Q6K
    )
}

/// `out[i * rows + r] = sum_k x[i * cols + k] * W[r][k]` for every row `i` of `input`.
///
/// Runs on `pool` split over output rows (inline when the pool has one thread). Each output
/// element is bit-identical whatever the number of rows, the pool size and the path.
pub fn matmul(
    pool: &rayon::ThreadPool,
    w: Weight,
    input: &mut Input,
    out: &mut [f32],
) -> Result<(), KernelError> {
    const OP: &str = "matmul";
    let m = input.rows();
    let shape_error = |what, expected, got| KernelError::Shape {
        op: OP,
        dtype: w.dtype(),
        rows: w.rows(),
        cols: w.cols(),
        m,
        what,
        expected,
        got,
    };
    let x_len = m.saturating_mul(w.cols());
    if input.cols() != w.cols() || input.values().len() != x_len {
        return Err(shape_error("x", x_len, input.values().len()));
    }
    let out_len = m.saturating_mul(w.rows());
    if out.len() != out_len {
        return Err(shape_error("out", out_len, out.len()));
    }
    if m == 0 || w.rows() == 0 {
        return Ok(());
    }
    match w {
        Weight::Raw(raw) => generic::matmul_raw(pool, &raw, input.values(), m, out),
        Weight::Packed(packed) => matmul_packed(pool, packed, input, out),
    }
    Ok(())
}

/// `matmul` for one f32 input used once.
pub fn matmul_f32(
    pool: &rayon::ThreadPool,
    w: Weight,
    x: &[f32],
    m: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let mut buffers = InputBuffers::default();
    let mut input = Input::new(x, m, w.cols(), &mut buffers);
    matmul(pool, w, &mut input, out)
}

fn matmul_packed(pool: &rayon::ThreadPool, w: &PackedMatrix, input: &mut Input, out: &mut [f32]) {
    let m = input.rows();
    macro_rules! run {
        ($kernel:expr) => {
            // SAFETY: a PackedMatrix exists only for a path this CPU has, and its panels
            // match its format and shape, which `matmul` checked against the input.
            unsafe { driver::drive(pool, w, &$kernel, m, out) }
        };
    }
    let blocking = if w.format.block() == 256 {
        Blocking::By256
    } else {
        Blocking::By32
    };
    if w.format.is_float() {
        let x = input.values();
        match w.format {
            Format::F32 => run!(float::Float::<{ float::F32 }> { w, x }),
            Format::F16 => run!(float::Float::<{ float::F16 }> { w, x }),
            _ => run!(float::Float::<{ float::BF16 }> { w, x }),
        }
        return;
    }
    let act = input.quantized(pool, blocking);
    match w.format {
        Format::Q4_0 => run!(Nibble32::<false, false> { w, act }),
        Format::Q4_1 => run!(Nibble32::<false, true> { w, act }),
        Format::Q5_0 => run!(Nibble32::<true, false> { w, act }),
        Format::Q5_1 => run!(Nibble32::<true, true> { w, act }),
        Format::Q8_0 => run!(Q8_0 { w, act }),
        Format::Q4K => run!(K4::<false> { w, act }),
        Format::Q5K => run!(K4::<true> { w, act }),
        _ => run!(Q6K { w, act }),
    }
}

/// Dequantizes row `row` of `w` into `out` (`cols` values), e.g. for an embedding lookup.
pub fn dequantize_row(w: &MatrixRef, row: usize, out: &mut [f32]) -> Result<(), KernelError> {
    const OP: &str = "dequantize_row";
    if row >= w.rows() {
        return Err(KernelError::RowOutOfRange {
            op: OP,
            dtype: w.dtype(),
            row,
            rows: w.rows(),
            cols: w.cols(),
        });
    }
    if out.len() != w.cols() {
        return Err(KernelError::Shape {
            op: OP,
            dtype: w.dtype(),
            rows: w.rows(),
            cols: w.cols(),
            m: 1,
            what: "out",
            expected: w.cols(),
            got: out.len(),
        });
    }
    generic::dequantize_row(w.dtype(), w.row(row), out);
    Ok(())
}
