//! The pass's weight matmuls: one matrix times the pass's rows, or every part of a stacked
//! matrix (q, k and v; gate and up) into its own output, naming the matrix in errors.

use super::rowwise::zip_rows;
use super::sized;
use crate::error::{ModelError, Result};
use crate::kernels::{self, Input};
use crate::weights::{Matrix, Stacked};

/// A kernel error, prefixed with what was being computed.
pub(super) fn kernel_error(what: &str, error: kernels::KernelError) -> ModelError {
    ModelError::Kernel(format!("{what}: {error}"))
}

/// `out = matrix · input`, naming the matrix in errors.
pub(super) fn matmul(
    pool: &rayon::ThreadPool,
    matrix: &Matrix,
    input: &mut Input,
    out: &mut [f32],
    what: &str,
) -> Result<()> {
    let weight = matrix.weight().map_err(|e| kernel_error(what, e))?;
    kernels::matmul(pool, weight, input, out).map_err(|e| kernel_error(what, e))
}

/// Every part of `stacked` times `input` into its output in `outs` (rows of each part's size):
/// a matrix holding one part writes it directly, a stacked one through `staging`.
pub(super) fn matmul_stacked(
    pool: &rayon::ThreadPool,
    stacked: &Stacked,
    input: &mut Input,
    outs: &mut [&mut [f32]],
    staging: &mut Vec<f32>,
    what: &str,
) -> Result<()> {
    let m = input.rows();
    for (index, matrix) in stacked.matrices.iter().enumerate() {
        let mine = || {
            stacked
                .parts
                .iter()
                .enumerate()
                .filter(move |(_, p)| p.0 == index)
        };
        let only = mine().count() == 1;
        if let (true, Some((part, _))) = (only, mine().next()) {
            matmul(pool, matrix, input, outs[part], what)?;
            continue;
        }
        let rows = matrix.rows();
        let all = sized(staging, m * rows);
        matmul(pool, matrix, input, all, what)?;
        for (part, &(_, first, part_rows)) in mine() {
            zip_rows(pool, outs[part], part_rows, all, rows, |out, row| {
                out.copy_from_slice(&row[first..first + part_rows])
            });
        }
    }
    Ok(())
}
