//! A checked, single-threaded matrix product over strided views of slices (the `gemm` crate,
//! candle's own), for the small per-head products inside the attention op, which parallelizes
//! over heads itself.

use gemm::Parallelism;

use super::Element;

/// A matrix inside a slice: element `(r, c)` at `offset + r·row_stride + c·col_stride`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    pub rows: usize,
    pub cols: usize,
    pub offset: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl View {
    /// A contiguous row-major `rows × cols` matrix at `offset`.
    pub fn dense(rows: usize, cols: usize, offset: usize) -> View {
        View {
            rows,
            cols,
            offset,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The same elements read as the transpose.
    pub fn t(self) -> View {
        View {
            rows: self.cols,
            cols: self.rows,
            offset: self.offset,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Whether every element lies inside a slice of `len`.
    fn fits(&self, len: usize) -> bool {
        self.rows == 0
            || self.cols == 0
            || self.offset + (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < len
    }
}

/// `dst = lhs·rhs` (or `dst += lhs·rhs` when `accumulate`), every view checked against its
/// slice. Panics on a shape or bounds mismatch: the callers' shapes are fixed by construction.
pub(crate) fn product<T: Element>(
    dst: &mut [T],
    d: View,
    lhs: &[T],
    l: View,
    rhs: &[T],
    r: View,
    accumulate: bool,
) {
    assert!(
        d.rows == l.rows && d.cols == r.cols && l.cols == r.rows,
        "product: {}×{} = {}×{} · {}×{}",
        d.rows,
        d.cols,
        l.rows,
        l.cols,
        r.rows,
        r.cols
    );
    assert!(
        d.fits(dst.len()) && l.fits(lhs.len()) && r.fits(rhs.len()),
        "product: a view runs past its slice"
    );
    if d.rows == 0 || d.cols == 0 {
        return;
    }
    let stride = |s: usize| s as isize;
    // SAFETY: the views were checked to lie inside their slices, `dst` is borrowed mutably and
    // so overlaps neither input.
    unsafe {
        gemm::gemm(
            d.rows,
            d.cols,
            l.cols,
            dst.as_mut_ptr().add(d.offset),
            stride(d.col_stride),
            stride(d.row_stride),
            accumulate,
            lhs.as_ptr().add(l.offset),
            stride(l.col_stride),
            stride(l.row_stride),
            rhs.as_ptr().add(r.offset),
            stride(r.col_stride),
            stride(r.row_stride),
            T::one(),
            T::one(),
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}
