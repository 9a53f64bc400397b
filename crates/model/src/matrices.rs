//! Weight matrices as the forward pass holds them: repacked for the kernels, or raw GGUF bytes
//! borrowed from the shared memory map; stacks of matrices that read one input.

use std::sync::Arc;

use candle_core::quantized::GgmlDType;

use crate::error::{ModelError, Result};
use crate::gguf::{GgufFile, TensorInfo};
use crate::kernels::PackedMatrix;
use crate::kernels::{self, CpuPath, MatrixRef, Weight};

/// 64-byte aligned storage for tensors that cannot be used in place.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct AlignedChunk([u8; 64]);

enum Storage {
    Mapped { file: Arc<GgufFile>, offset: usize },
    Owned(Vec<AlignedChunk>),
}

/// A matrix kept as raw GGUF bytes: borrowed from the shared memory map (or owned when a file's
/// alignment forces a copy). The token embedding stays raw for row lookups.
pub struct RawMatrix {
    pub dtype: GgmlDType,
    pub rows: usize,
    pub cols: usize,
    byte_len: usize,
    storage: Storage,
}

impl RawMatrix {
    /// Wraps a 1-D or 2-D tensor of `file`, zero-copy when its data is 32-byte aligned.
    pub fn from_gguf(file: &Arc<GgufFile>, info: &TensorInfo) -> Result<RawMatrix> {
        let (cols, rows) = match info.dims.as_slice() {
            [cols, rows] => (*cols, *rows),
            [cols] => (*cols, 1),
            _ => {
                return Err(ModelError::TensorShape {
                    path: file.path().to_path_buf(),
                    name: info.name.clone(),
                    found: info.dims.clone(),
                    expected: vec![0, 0],
                })
            }
        };
        if !kernels::supported(info.dtype) {
            return Err(ModelError::UnsupportedTensorType {
                path: file.path().to_path_buf(),
                name: info.name.clone(),
                dtype: format!("{:?}", info.dtype),
            });
        }
        let storage = if info.offset.is_multiple_of(32) {
            Storage::Mapped {
                file: file.clone(),
                offset: info.offset,
            }
        } else {
            Storage::Owned(aligned_copy(file.tensor_bytes(info)))
        };
        let matrix = RawMatrix {
            dtype: info.dtype,
            rows,
            cols,
            byte_len: info.byte_len,
            storage,
        };
        matrix
            .view()
            .map_err(|e| ModelError::Kernel(format!("tensor `{}`: {e}", info.name)))?;
        Ok(matrix)
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Mapped { file, offset } => {
                &file.mapped_bytes()[*offset..*offset + self.byte_len]
            }
            Storage::Owned(chunks) => {
                // SAFETY: AlignedChunk is plain bytes; the vector holds at least byte_len of them.
                let all = unsafe {
                    std::slice::from_raw_parts(chunks.as_ptr().cast::<u8>(), chunks.len() * 64)
                };
                &all[..self.byte_len]
            }
        }
    }

    pub fn view(&self) -> std::result::Result<MatrixRef<'_>, kernels::KernelError> {
        MatrixRef::new(self.dtype, self.rows, self.cols, self.bytes())
    }

    /// Bytes this process owns for the matrix (0 when it is mapped).
    pub fn owned_bytes(&self) -> usize {
        match self.storage {
            Storage::Mapped { .. } => 0,
            Storage::Owned(_) => self.byte_len,
        }
    }
}

/// A weight matrix as the forward pass multiplies it: repacked for the CPU path, or raw for
/// the types without a packed kernel.
pub enum Matrix {
    Packed(PackedMatrix),
    Raw(RawMatrix),
}

impl Matrix {
    /// The kernels' view of the matrix.
    pub fn weight(&self) -> std::result::Result<Weight<'_>, kernels::KernelError> {
        Ok(match self {
            Matrix::Packed(packed) => Weight::Packed(packed),
            Matrix::Raw(raw) => Weight::Raw(raw.view()?),
        })
    }

    pub fn dtype(&self) -> GgmlDType {
        match self {
            Matrix::Packed(packed) => packed.dtype(),
            Matrix::Raw(raw) => raw.dtype,
        }
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        match self {
            Matrix::Packed(packed) => packed.rows(),
            Matrix::Raw(raw) => raw.rows,
        }
    }

    /// Bytes this process owns for the matrix.
    pub fn owned_bytes(&self) -> usize {
        match self {
            Matrix::Packed(packed) => packed.byte_len(),
            Matrix::Raw(raw) => raw.owned_bytes(),
        }
    }
}

/// How a model's matrices are prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoadOptions {
    /// The kernels' CPU path.
    pub cpu: CpuPath,
    /// Repack quantized matrices (float ones always are); `false` keeps their GGUF bytes and
    /// runs candle's dot products, the reference the packed kernels are compared with.
    pub pack: bool,
}

impl LoadOptions {
    /// The process's CPU path (`PIPESPEC_CPU`, else the best), with packed weights.
    pub fn selected() -> Result<LoadOptions> {
        let cpu = CpuPath::selected().map_err(|e| ModelError::Kernel(e.to_string()))?;
        Ok(LoadOptions { cpu, pack: true })
    }
}

fn aligned_copy(bytes: &[u8]) -> Vec<AlignedChunk> {
    let mut chunks = vec![AlignedChunk([0; 64]); bytes.len().div_ceil(64)];
    for (chunk, source) in chunks.iter_mut().zip(bytes.chunks(64)) {
        chunk.0[..source.len()].copy_from_slice(source);
    }
    chunks
}

/// Matrices that multiply one input (q, k and v; gate and up), as few as their types allow:
/// those of one type are stacked into one packed matrix, so one pass computes them all.
pub struct Stacked {
    pub matrices: Vec<Matrix>,
    /// Per part, in order: the matrix holding it, its first row there, its rows.
    pub parts: Vec<(usize, usize, usize)>,
}

impl Stacked {
    /// Bytes this process owns for the matrices.
    pub fn owned_bytes(&self) -> usize {
        self.matrices.iter().map(Matrix::owned_bytes).sum()
    }
}
