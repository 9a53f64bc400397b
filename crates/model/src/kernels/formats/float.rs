//! F32, F16 and BF16 weights against f32 activations. A panel is two vectors of rows; per
//! output element the products are summed in order by FMA, 32 columns at a time, and each
//! 32-column partial sum is added to the total, the same way on every path and batch.

use super::super::driver::{prefetch, Kernel, Output};
use super::super::packed::PackedMatrix;
use super::super::simd::Simd;

/// Weight encodings, as a const generic so each gets its own loop.
pub(crate) const F32: u8 = 0;
pub(crate) const F16: u8 = 1;
pub(crate) const BF16: u8 = 2;

/// Columns per partial sum.
const SPAN: usize = 32;

pub(crate) struct Float<'a, const KIND: u8> {
    pub(crate) w: &'a PackedMatrix,
    /// (m, cols) activations.
    pub(crate) x: &'a [f32],
}

/// `LANES` weights of one column at `p`.
///
/// # Safety
/// As `Simd`'s loads.
#[inline(always)]
unsafe fn load<S: Simd, const KIND: u8>(p: *const u8) -> S::F {
    // SAFETY: forwarded from the caller.
    unsafe {
        match KIND {
            F32 => S::fload_f32(p.cast()),
            F16 => S::fload_f16(p.cast()),
            _ => S::fload_bf16(p.cast()),
        }
    }
}

impl<const KIND: u8> Kernel for Float<'_, KIND> {
    #[inline(always)]
    unsafe fn tile<S: Simd, const N: usize>(&self, panel: usize, act: usize, out: &Output) {
        let cols = self.w.cols();
        let size = if KIND == F32 { 4 } else { 2 };
        let column_bytes = self.w.layout.block_bytes;
        let base = self.w.panel(panel);
        let x: [*const f32; N] = std::array::from_fn(|n| self.x[(act + n) * cols..].as_ptr());
        // SAFETY: features from the caller; column k of the panel and of every activation row
        // exist for k < cols.
        unsafe {
            let mut total = [[S::fzero(); N]; 2];
            let mut start = 0;
            while start < cols {
                let end = (start + SPAN).min(cols);
                let mut partial = [[S::fzero(); N]; 2];
                prefetch(base.add(start * column_bytes), (end - start) * column_bytes);
                for k in start..end {
                    let p = base.add(k * column_bytes);
                    let w = [load::<S, KIND>(p), load::<S, KIND>(p.add(S::LANES * size))];
                    for n in 0..N {
                        let xv = S::fsplat(x[n].add(k).read());
                        for h in 0..2 {
                            partial[h][n] = S::ffma(w[h], xv, partial[h][n]);
                        }
                    }
                }
                for h in 0..2 {
                    for n in 0..N {
                        total[h][n] = S::fadd(total[h][n], partial[h][n]);
                    }
                }
                start = end;
            }
            for (h, half) in total.into_iter().enumerate() {
                for (n, v) in half.into_iter().enumerate() {
                    out.store::<S>(act + n, panel * 2 * S::LANES + h * S::LANES, v);
                }
            }
        }
    }
}
