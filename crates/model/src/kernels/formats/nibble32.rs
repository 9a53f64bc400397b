//! Q4_0, Q4_1, Q5_0 and Q5_1 weights (blocks of 32, one f16 scale, Q4_1/Q5_1 also an f16
//! minimum) against activations quantized in blocks of 32.
//!
//! Per block and lane: `sumi = sum q * a` (exact), then `acc = fma(sumi - offset * sum a,
//! d * da, acc)` with offset 8 (Q4_0) or 16 (Q5_0), or for the minimum formats
//! `acc = fma(m, da * sum a, fma(sumi, d * da, acc))`.

use super::super::activations::Quantized;
use super::super::driver::{prefetch, Kernel, Output};
use super::super::packed::PackedMatrix;
use super::super::simd::{plane_pair, Simd};

/// A 32-value block kernel: `HIGH` for the 5-bit formats, `MIN` for those with a minimum.
pub(crate) struct Nibble32<'a, const HIGH: bool, const MIN: bool> {
    pub(crate) w: &'a PackedMatrix,
    pub(crate) act: &'a Quantized,
}

impl<const HIGH: bool, const MIN: bool> Kernel for Nibble32<'_, HIGH, MIN> {
    #[inline(always)]
    unsafe fn tile<S: Simd, const N: usize>(&self, panel: usize, act: usize, out: &Output) {
        let g = S::LANES;
        let layout = self.w.layout;
        let offset = if HIGH { 16 } else { 8 };
        let base = self.w.panel(panel);
        let rows: [*const i8; N] = std::array::from_fn(|n| self.act.row_qs(act + n));
        // SAFETY: the caller guarantees the CPU features; every offset stays inside the panel's
        // blocks and the activation rows' `cols` values (the matmul checked the shapes).
        unsafe {
            let mut acc = [S::fzero(); N];
            for b in 0..self.w.cols() / 32 {
                let p = base.add(b * layout.block_bytes);
                prefetch(p, layout.block_bytes);
                let mut dots = [S::dzero(); N];
                let mut sums = [S::isplat(0); N];
                for c in 0..4 {
                    let raw = S::load(p.add(layout.chunk(c)));
                    let (mut lo, mut hi) = (S::low_nibbles(raw), S::high_nibbles(raw));
                    if HIGH {
                        let (lo_high, hi_high) =
                            plane_pair::<S>(S::load(p.add(layout.plane(0))), c);
                        lo = S::or(lo, lo_high);
                        hi = S::or(hi, hi_high);
                    }
                    for n in 0..N {
                        let a = rows[n].add(32 * b + 8 * c);
                        dots[n] =
                            S::dot(S::dot(dots[n], lo, S::splat4(a)), hi, S::splat4(a.add(4)));
                    }
                    // 5-bit quants: finish every 4 products per i16 pair.
                    if c % 2 == 1 && (HIGH || c == 3) {
                        for n in 0..N {
                            sums[n] = S::iadd(sums[n], S::finish(dots[n]));
                            dots[n] = S::dzero();
                        }
                    }
                }
                let d = S::fload_f16(p.cast());
                for n in 0..N {
                    let i = act + n;
                    let da = S::fsplat(self.act.scale(i, b));
                    if MIN {
                        let m = S::fload_f16(p.add(layout.m).cast());
                        acc[n] = S::ffma(S::ffrom_i32(sums[n]), S::fmul(d, da), acc[n]);
                        acc[n] = S::ffma(m, S::fsplat(self.act.scaled_sum(i, b)), acc[n]);
                    } else {
                        let shift = S::isplat(offset * self.act.sums(i, b)[0]);
                        let sumi = S::isub(sums[n], shift);
                        acc[n] = S::ffma(S::ffrom_i32(sumi), S::fmul(d, da), acc[n]);
                    }
                }
            }
            for (n, v) in acc.into_iter().enumerate() {
                out.store::<S>(act + n, panel * g, v);
            }
        }
    }
}
