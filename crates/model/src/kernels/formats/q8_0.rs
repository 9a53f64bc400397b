//! Q8_0 weights (blocks of 32 signed bytes and an f16 scale) against activations quantized in
//! blocks of 32: per block and lane, `acc = fma(sum w * a, d * da, acc)`.

use super::super::activations::Quantized;
use super::super::driver::{prefetch, Kernel, Output};
use super::super::packed::PackedMatrix;
use super::super::simd::Simd;

pub(crate) struct Q8_0<'a> {
    pub(crate) w: &'a PackedMatrix,
    pub(crate) act: &'a Quantized,
}

impl Kernel for Q8_0<'_> {
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
            for b in 0..self.w.cols() / 32 {
                let p = base.add(b * layout.block_bytes);
                prefetch(p, layout.block_bytes);
                let mut sums = [S::isplat(0); N];
                for k in 0..8 {
                    let w = S::load(p.add(layout.chunk(k)));
                    for n in 0..N {
                        let a = S::splat4(rows[n].add(32 * b + 4 * k));
                        sums[n] = S::iadd(sums[n], S::finish(S::dot_signed(S::dzero(), w, a)));
                    }
                }
                let d = S::fload_f16(p.cast());
                for n in 0..N {
                    let da = S::fsplat(self.act.scale(act + n, b));
                    acc[n] = S::ffma(S::ffrom_i32(sums[n]), S::fmul(d, da), acc[n]);
                }
            }
            for (n, v) in acc.into_iter().enumerate() {
                out.store::<S>(act + n, panel * g, v);
            }
        }
    }
}
