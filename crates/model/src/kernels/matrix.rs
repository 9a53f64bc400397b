//! A weight matrix as raw GGUF bytes, validated once when it is made.

use candle_core::quantized::GgmlDType;

use super::KernelError;

/// A weight matrix of `rows` output features, each `cols` inputs long, in one GGUF tensor
/// type, borrowed as raw bytes (row-major: row r occupies bytes
/// `[r * row_bytes, (r + 1) * row_bytes)`). GGUF data is aligned to 32 bytes; `new` only
/// requires the alignment of the type's block struct (2, or 4 for F32).
#[derive(Debug, Clone, Copy)]
pub struct MatrixRef<'a> {
    dtype: GgmlDType,
    rows: usize,
    cols: usize,
    bytes: &'a [u8],
}

impl<'a> MatrixRef<'a> {
    /// Validates the type, the block divisibility of `cols`, the byte length and alignment.
    pub fn new(
        dtype: GgmlDType,
        rows: usize,
        cols: usize,
        bytes: &'a [u8],
    ) -> Result<Self, KernelError> {
        const OP: &str = "MatrixRef::new";
        if !super::supported(dtype) {
            return Err(KernelError::Unsupported { op: OP, dtype });
        }
        let block = dtype.block_size();
        if !cols.is_multiple_of(block) {
            return Err(KernelError::BlockDivisibility {
                op: OP,
                dtype,
                cols,
                block,
            });
        }
        let expected = (cols / block)
            .checked_mul(dtype.type_size())
            .and_then(|row| row.checked_mul(rows));
        if expected != Some(bytes.len()) {
            return Err(KernelError::ByteLength {
                op: OP,
                dtype,
                rows,
                cols,
                expected: expected.unwrap_or(usize::MAX),
                got: bytes.len(),
            });
        }
        let align = if dtype == GgmlDType::F32 { 4 } else { 2 };
        if bytes.as_ptr().align_offset(align) != 0 {
            return Err(KernelError::Misaligned {
                op: OP,
                dtype,
                align,
            });
        }
        Ok(Self {
            dtype,
            rows,
            cols,
            bytes,
        })
    }

    pub fn dtype(&self) -> GgmlDType {
        self.dtype
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Inputs per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// All the matrix's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.cols / self.dtype.block_size() * self.dtype.type_size()
    }

    /// The bytes of row `r` (`r < rows`).
    #[inline(always)]
    pub(crate) fn row(&self, r: usize) -> &'a [u8] {
        let n = self.row_bytes();
        &self.bytes[r * n..(r + 1) * n]
    }
}
