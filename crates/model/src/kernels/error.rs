//! The kernels' error type: every message names the operation, the type and the shapes.

use candle_core::quantized::GgmlDType;

/// Errors of the matrix kernels; messages name the operation, the type and the shapes.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KernelError {
    #[error("{op}: weight type {dtype:?} is not supported by the CPU kernels")]
    Unsupported { op: &'static str, dtype: GgmlDType },
    #[error("{op}: {dtype:?} matrix with {cols} columns: {cols} is not a multiple of the block size {block}")]
    BlockDivisibility {
        op: &'static str,
        dtype: GgmlDType,
        cols: usize,
        block: usize,
    },
    #[error("{op}: {dtype:?} matrix {rows}x{cols} needs {expected} bytes, got {got}")]
    ByteLength {
        op: &'static str,
        dtype: GgmlDType,
        rows: usize,
        cols: usize,
        expected: usize,
        got: usize,
    },
    #[error("{op}: {dtype:?} matrix bytes must be aligned to {align} bytes")]
    Misaligned {
        op: &'static str,
        dtype: GgmlDType,
        align: usize,
    },
    #[error("{op}: {dtype:?} matrix {rows}x{cols} with m={m}: {what} has length {got}, expected {expected}")]
    Shape {
        op: &'static str,
        dtype: GgmlDType,
        rows: usize,
        cols: usize,
        m: usize,
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{op}: row {row} out of range for {dtype:?} matrix {rows}x{cols}")]
    RowOutOfRange {
        op: &'static str,
        dtype: GgmlDType,
        row: usize,
        rows: usize,
        cols: usize,
    },
    #[error("{op}: cannot stack a {other:?} matrix of {other_cols} columns under a {first:?} one of {cols}")]
    Stack {
        op: &'static str,
        first: GgmlDType,
        cols: usize,
        other: GgmlDType,
        other_cols: usize,
    },
    #[error("{op}: cannot allocate {bytes} bytes: {reason}")]
    Allocation {
        op: &'static str,
        bytes: usize,
        reason: String,
    },
    #[error("PIPESPEC_CPU={value:?} is not a CPU path (use avx512, avxvnni, avx2 or scalar)")]
    UnknownCpuPath { value: String },
    #[error("PIPESPEC_CPU={path}: this CPU lacks some of {features}")]
    CpuPathUnavailable {
        path: &'static str,
        features: String,
    },
}
