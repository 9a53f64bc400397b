//! Q4_K and Q5_K weights (super-blocks of 256: f16 `d` and `dmin`, 8 sub-blocks of 32 with 6-bit
//! scales `sc` and minimums `mn`) against activations quantized in blocks of 256.
//!
//! Per super-block and lane, with exact integer sums over each sub-block `s`:
//! `acc = fma(sum_s mn_s * sum a, -(dmin * da), fma(sum_s sc_s * sum q * a, d * da, acc))`.

use super::super::activations::Quantized;
use super::super::driver::{prefetch, Kernel, Output};
use super::super::packed::PackedMatrix;
use super::super::simd::{plane_pair, Simd};

/// `HIGH` for Q5_K.
pub(crate) struct K4<'a, const HIGH: bool> {
    pub(crate) w: &'a PackedMatrix,
    pub(crate) act: &'a Quantized,
}

impl<const HIGH: bool> Kernel for K4<'_, HIGH> {
    #[inline(always)]
    unsafe fn tile<S: Simd, const N: usize>(&self, panel: usize, act: usize, out: &Output) {
        let g = S::LANES;
        let layout = self.w.layout;
        let base = self.w.panel(panel);
        let rows: [*const i8; N] = std::array::from_fn(|n| self.act.row_qs(act + n));
        // SAFETY: as in the other kernels: features from the caller, offsets inside the panel
        // and the activation rows.
        unsafe {
            let mut acc = [S::fzero(); N];
            for sb in 0..self.w.cols() / 256 {
                let p = base.add(sb * layout.block_bytes);
                prefetch(p, layout.block_bytes);
                let mut sums = [S::isplat(0); N];
                for u in 0..4 {
                    let (first, second) = S::scale_pair(p.add(layout.scales + u * 2 * g).cast());
                    for (t, scale) in [first, second].into_iter().enumerate() {
                        let sub = 2 * u + t;
                        let mut dots = [S::dzero(); N];
                        for q in 0..4 {
                            let c = 4 * sub + q;
                            let raw = S::load(p.add(layout.chunk(c)));
                            let (mut lo, mut hi) = (S::low_nibbles(raw), S::high_nibbles(raw));
                            if HIGH {
                                let plane = S::load(p.add(layout.plane(sub)));
                                let (lo_high, hi_high) = plane_pair::<S>(plane, q);
                                lo = S::or(lo, lo_high);
                                hi = S::or(hi, hi_high);
                            }
                            for n in 0..N {
                                let a = rows[n].add(256 * sb + 8 * c);
                                let d = S::dot(dots[n], lo, S::splat4(a));
                                dots[n] = S::dot(d, hi, S::splat4(a.add(4)));
                            }
                            // 5-bit quants: finish every 4 products per i16 pair.
                            if q % 2 == 1 && (HIGH || q == 3) {
                                for n in 0..N {
                                    sums[n] = S::iadd(sums[n], S::finish_scaled(dots[n], scale));
                                    dots[n] = S::dzero();
                                }
                            }
                        }
                    }
                }
                let d = S::fload_f16(p.cast());
                let dmin = S::fload_f16(p.add(layout.m).cast());
                for n in 0..N {
                    let i = act + n;
                    let pairs = &self.act.sums(i, sb)[8..12];
                    let mut mins = S::isplat(0);
                    for (u, &pair) in pairs.iter().enumerate() {
                        let at = p.add(layout.mins + u * 2 * g).cast();
                        mins = S::iadd(mins, S::madd_pairs(at, pair));
                    }
                    let da = self.act.scale(i, sb);
                    acc[n] = S::ffma(S::ffrom_i32(sums[n]), S::fmul(d, S::fsplat(da)), acc[n]);
                    acc[n] = S::ffma(S::ffrom_i32(mins), S::fmul(dmin, S::fsplat(-da)), acc[n]);
                }
            }
            for (n, v) in acc.into_iter().enumerate() {
                out.store::<S>(act + n, panel * g, v);
            }
        }
    }
}
