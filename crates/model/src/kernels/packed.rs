//! Weight matrices repacked at load into the layout their kernels read: panels of interleaved
//! rows, one lane per row, the same bytes per row as the GGUF blocks (K-quants: 2-3% more, for
//! unpacked 6-bit scales).
//!
//! A panel is `lanes` rows (three vectors' worth for the float formats). Panel `p` holds, block
//! after block, the sections of that block for every row of the panel, each section lane-major:
//!
//! | section | per lane and block | formats |
//! |---|---|---|
//! | `d` | f16 scale | all quantized |
//! | `m` | f16 minimum (Q4_1, Q5_1) or K-quant `dmin` | Q4_1, Q5_1, Q4_K, Q5_K |
//! | `scales` | i8 sub-block scale pairs | Q4_K, Q5_K (8), Q6_K (16) |
//! | `mins` | i8 sub-block minimum pairs | Q4_K, Q5_K (8) |
//! | body | low 4 bits of every value (8 bits for Q8_0) in chunks, each bit plane before the chunks it covers: bit 4 of 8 registers per byte (Q5_0, Q5_1, Q5_K), bits 4-5 of 4 (Q6_K) | all quantized |
//!
//! Values are unsigned quants (Q8_0: signed), in "chunks" of 8 per lane: chunk `c` covers values
//! `8c..8c + 8` of a block, one 4-byte group per lane whose low nibbles are values `8c..8c + 4`
//! and high nibbles `8c + 4..8c + 8`. A kernel broadcasts the matching 4 activation bytes.
//! A register is one 4-byte group per lane (4 values of each row). Bit planes hold, in bit p of
//! each byte, the extra bits of register p of their group (Q5: bit 4 of 8 registers, 32 values;
//! Q6_K: bits 4-5 of 4 registers, 16 values), so one shift and mask extracts a register's bits.
//! Float formats store each column's values for the panel's rows consecutively.

use candle_core::quantized::GgmlDType;
use rayon::prelude::*;

use super::cpu::CpuPath;
use super::formats::{canonical, encode};
use super::{KernelError, MatrixRef};

/// The weight formats with packed kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
    F32,
    F16,
    BF16,
}

impl Format {
    pub(crate) fn of(dtype: GgmlDType) -> Option<Format> {
        Some(match dtype {
            GgmlDType::Q4_0 => Format::Q4_0,
            GgmlDType::Q4_1 => Format::Q4_1,
            GgmlDType::Q5_0 => Format::Q5_0,
            GgmlDType::Q5_1 => Format::Q5_1,
            GgmlDType::Q8_0 => Format::Q8_0,
            GgmlDType::Q4K => Format::Q4K,
            GgmlDType::Q5K => Format::Q5K,
            GgmlDType::Q6K => Format::Q6K,
            GgmlDType::F32 => Format::F32,
            GgmlDType::F16 => Format::F16,
            GgmlDType::BF16 => Format::BF16,
            _ => return None,
        })
    }

    /// Values per block (1 for the float formats).
    pub(crate) fn block(self) -> usize {
        match self {
            Format::Q4K | Format::Q5K | Format::Q6K => 256,
            Format::F32 | Format::F16 | Format::BF16 => 1,
            _ => 32,
        }
    }

    pub(crate) fn is_float(self) -> bool {
        self.block() == 1
    }

    /// Rows per panel on a path with `lanes` lanes.
    pub(crate) fn panel_rows(self, lanes: usize) -> usize {
        if self.is_float() {
            super::formats::float::VECTORS * lanes
        } else {
            lanes
        }
    }

    /// The sections of one block for `g` rows.
    pub(crate) fn layout(self, g: usize) -> Layout {
        use Format::*;
        // (an f16 minimum, scale bytes, minimum bytes, chunks per bit plane, body bytes) per row
        let (mins_f16, scales, mins, plane_every, body) = match self {
            Q4_0 => (false, 0, 0, 0, 16),
            Q4_1 => (true, 0, 0, 0, 16),
            Q5_0 => (false, 0, 0, 4, 16 + 4),
            Q5_1 => (true, 0, 0, 4, 16 + 4),
            Q8_0 => (false, 0, 0, 0, 32),
            Q4K => (true, 8, 8, 0, 128),
            Q5K => (true, 8, 8, 4, 128 + 32),
            Q6K => (false, 16, 0, 2, 128 + 64),
            F32 => return Layout::float(4 * g),
            F16 | BF16 => return Layout::float(2 * g),
        };
        let m = 2 * g;
        let scales_at = m + if mins_f16 { 2 * g } else { 0 };
        let mins_at = scales_at + scales * g;
        let body_at = mins_at + mins * g;
        Layout {
            m,
            scales: scales_at,
            mins: mins_at,
            body: body_at,
            register: 4 * g,
            plane_every,
            block_bytes: body_at + body * g,
        }
    }
}

/// Byte offsets of a block's sections (see the module's table), and its size. The body holds
/// the quants chunk by chunk; a format with bit planes puts each plane just before the chunks
/// it covers, so that a kernel reads the block in one forward stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) m: usize,
    pub(crate) scales: usize,
    pub(crate) mins: usize,
    body: usize,
    /// Bytes of one register (4 per lane) and so of one chunk or plane.
    register: usize,
    /// Chunks after each bit plane (0: no planes).
    plane_every: usize,
    pub(crate) block_bytes: usize,
}

impl Layout {
    fn float(block_bytes: usize) -> Layout {
        Layout {
            m: 0,
            scales: 0,
            mins: 0,
            body: 0,
            register: 0,
            plane_every: 0,
            block_bytes,
        }
    }

    /// Offset of chunk `c` (Q8_0: register `c`).
    #[inline(always)]
    pub(crate) fn chunk(&self, c: usize) -> usize {
        match self.plane_every {
            0 => self.body + c * self.register,
            every => self.plane(c / every) + (1 + c % every) * self.register,
        }
    }

    /// Offset of bit plane `j`.
    #[inline(always)]
    pub(crate) fn plane(&self, j: usize) -> usize {
        self.body + j * (1 + self.plane_every) * self.register
    }
}

/// A weight matrix repacked for one CPU path.
pub struct PackedMatrix {
    pub(crate) format: Format,
    dtype: GgmlDType,
    pub(crate) path: CpuPath,
    rows: usize,
    cols: usize,
    pub(crate) panel_rows: usize,
    pub(crate) panel_bytes: usize,
    pub(crate) layout: Layout,
    /// Anonymous, page-aligned memory (huge pages where the OS grants them: fewer page faults
    /// while packing, fewer TLB misses while streaming the weights).
    bytes: memmap2::Mmap,
    len: usize,
}

impl PackedMatrix {
    /// Whether `dtype` has a packed kernel.
    pub fn packs(dtype: GgmlDType) -> bool {
        Format::of(dtype).is_some()
    }

    /// Repacks `w` for `path` (which this CPU must have), on the current rayon pool.
    pub fn pack(w: &MatrixRef, path: CpuPath) -> Result<PackedMatrix, KernelError> {
        Self::pack_stacked(&[*w], path)
    }

    /// Repacks the rows of `parts`, one after the other, as one matrix (say q, k and v, so
    /// that one pass computes all three); they must share their type and column count.
    pub fn pack_stacked(parts: &[MatrixRef], path: CpuPath) -> Result<PackedMatrix, KernelError> {
        const OP: &str = "PackedMatrix::pack";
        let first = parts.first().ok_or(KernelError::Shape {
            op: OP,
            dtype: GgmlDType::F32,
            rows: 0,
            cols: 0,
            m: 0,
            what: "parts",
            expected: 1,
            got: 0,
        })?;
        let (dtype, cols) = (first.dtype(), first.cols());
        if let Some(other) = parts
            .iter()
            .find(|p| p.dtype() != dtype || p.cols() != cols)
        {
            return Err(KernelError::Stack {
                op: OP,
                first: dtype,
                cols,
                other: other.dtype(),
                other_cols: other.cols(),
            });
        }
        let rows: usize = parts.iter().map(|p| p.rows()).sum();
        let format = Format::of(dtype).ok_or(KernelError::Unsupported { op: OP, dtype })?;
        if !path.available() {
            return Err(KernelError::CpuPathUnavailable {
                path: path.name(),
                features: path.features().join(", "),
            });
        }
        let panel_rows = format.panel_rows(path.lanes());
        let layout = format.layout(panel_rows);
        let blocks = cols / format.block();
        let panel_bytes = layout.block_bytes * blocks;
        let panels = rows.div_ceil(panel_rows);
        let len = panels * panel_bytes;
        let mut storage = memmap2::MmapOptions::new()
            .len(len.max(1))
            .map_anon()
            .map_err(|e| KernelError::Allocation {
                op: OP,
                bytes: len,
                reason: e.to_string(),
            })?;
        #[cfg(target_os = "linux")]
        let _ = storage.advise(memmap2::Advice::HugePage);
        storage[..len]
            .par_chunks_mut(panel_bytes.max(1))
            .enumerate()
            .for_each(|(panel, out)| {
                let rows = (panel * panel_rows..(panel + 1) * panel_rows).map(|r| row(parts, r));
                pack_panel(format, dtype, panel_rows, layout, rows, out)
            });
        Ok(PackedMatrix {
            format,
            dtype,
            path,
            rows,
            cols,
            panel_rows,
            panel_bytes,
            layout,
            bytes: storage
                .make_read_only()
                .map_err(|e| KernelError::Allocation {
                    op: OP,
                    bytes: len,
                    reason: e.to_string(),
                })?,
            len,
        })
    }

    pub fn dtype(&self) -> GgmlDType {
        self.dtype
    }

    pub fn path(&self) -> CpuPath {
        self.path
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes held (the GGUF tensor's size, plus padding rows and unpacked K-quant scales).
    pub fn byte_len(&self) -> usize {
        self.len
    }

    pub(crate) fn panels(&self) -> usize {
        self.rows.div_ceil(self.panel_rows)
    }

    /// The first byte of panel `p`.
    #[inline(always)]
    pub(crate) fn panel(&self, p: usize) -> *const u8 {
        debug_assert!(p < self.panels());
        // SAFETY: panel p lies inside the `len` bytes of the map.
        unsafe { self.bytes.as_ptr().add(p * self.panel_bytes) }
    }
}

/// Row `r` of the stacked `parts`, if there is one.
fn row<'a>(parts: &[MatrixRef<'a>], mut r: usize) -> Option<&'a [u8]> {
    for part in parts {
        if r < part.rows() {
            return Some(part.row(r));
        }
        r -= part.rows();
    }
    None
}

/// Writes one panel from its `g` rows (None past the matrix: those lanes stay 0), block after
/// block.
fn pack_panel<'a>(
    format: Format,
    dtype: GgmlDType,
    g: usize,
    layout: Layout,
    rows: impl Iterator<Item = Option<&'a [u8]>>,
    out: &mut [u8],
) {
    let lanes = rows
        .enumerate()
        .filter_map(|(lane, row)| row.map(|row| (lane, row)));
    if format.is_float() {
        let size = layout.block_bytes / g;
        for (lane, row) in lanes {
            for (k, value) in row.chunks_exact(size).enumerate() {
                let at = k * layout.block_bytes + lane * size;
                out[at..at + size].copy_from_slice(value);
            }
        }
        return;
    }
    let source_bytes = dtype.type_size();
    let mut block = canonical::Canonical::default();
    for (lane, row) in lanes {
        for (b, source) in row.chunks_exact(source_bytes).enumerate() {
            canonical::decode(format, source, &mut block);
            let at = b * layout.block_bytes;
            encode::write(
                format,
                &layout,
                g,
                lane,
                &block,
                &mut out[at..at + layout.block_bytes],
            );
        }
    }
}
