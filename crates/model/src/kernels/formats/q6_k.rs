//! Q6_K weights (super-blocks of 256: an f16 `d`, 16 sub-blocks of 16 with i8 scales `sc`,
//! quants `q` in 0..64 standing for `q - 32`) against activations quantized in blocks of 256.
//!
//! Per super-block and lane, with exact integer sums over each sub-block `j`:
//! `acc = fma(sum_j sc_j * (sum q * a - 32 * sum a), d * da, acc)`.

use super::super::activations::Quantized;
use super::super::driver::{prefetch, Kernel, Output};
use super::super::packed::PackedMatrix;
use super::super::simd::Simd;

pub(crate) struct Q6K<'a> {
    pub(crate) w: &'a PackedMatrix,
    pub(crate) act: &'a Quantized,
}

impl Kernel for Q6K<'_> {
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
                for u in 0..8 {
                    let (first, second) = S::scale_pair(p.add(layout.scales + u * 2 * g).cast());
                    for (t, scale) in [first, second].into_iter().enumerate() {
                        let j = 2 * u + t;
                        let plane = S::load(p.add(layout.plane(j)));
                        // Chunk 2j holds plane registers 0 and 1, chunk 2j + 1 registers 2, 3.
                        let chunk = |c: usize| S::load(p.add(layout.chunk(c)));
                        let (raw0, raw1) = (chunk(2 * j), chunk(2 * j + 1));
                        let registers = [
                            S::or(S::low_nibbles(raw0), S::two_bits::<0>(plane)),
                            S::or(S::high_nibbles(raw0), S::two_bits::<1>(plane)),
                            S::or(S::low_nibbles(raw1), S::two_bits::<2>(plane)),
                            S::or(S::high_nibbles(raw1), S::two_bits::<3>(plane)),
                        ];
                        // 6-bit quants: finish every 2 products per i16 pair.
                        for half in 0..2 {
                            for n in 0..N {
                                let a = rows[n].add(256 * sb + 16 * j + 8 * half);
                                let d = S::dot(S::dzero(), registers[2 * half], S::splat4(a));
                                let d = S::dot(d, registers[2 * half + 1], S::splat4(a.add(4)));
                                sums[n] = S::iadd(sums[n], S::finish_scaled(d, scale));
                            }
                        }
                    }
                }
                let d = S::fload_f16(p.cast());
                for n in 0..N {
                    let i = act + n;
                    let pairs = &self.act.sums(i, sb)[..8];
                    let mut offsets = S::isplat(0);
                    for (u, &pair) in pairs.iter().enumerate() {
                        let at = p.add(layout.scales + u * 2 * g).cast();
                        offsets = S::iadd(offsets, S::madd_pairs(at, pair));
                    }
                    let sumi = S::isub(sums[n], S::ishl::<5>(offsets));
                    let da = S::fsplat(self.act.scale(i, sb));
                    acc[n] = S::ffma(S::ffrom_i32(sumi), S::fmul(d, da), acc[n]);
                }
            }
            for (n, v) in acc.into_iter().enumerate() {
                out.store::<S>(act + n, panel * g, v);
            }
        }
    }
}
