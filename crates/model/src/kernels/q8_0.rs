//! Q8_0 weights (34-byte blocks: f16 scale, 32 x i8) against 8-bit quantized activations:
//! an AVX-512 VNNI kernel and a scalar fallback.

use super::activation_quant::{QuantizedActivations, BLOCK};
use super::{MatrixRef, TileKernel};
use half::f16;

/// Bytes per Q8_0 block.
const BLOCK_BYTES: usize = 34;

/// Q8_0 weights with the quantized activations they are multiplied by.
pub(crate) struct Kernel<'a> {
    pub(crate) w: &'a MatrixRef<'a>,
    pub(crate) act: &'a QuantizedActivations,
    pub(crate) simd: bool,
}

impl TileKernel for Kernel<'_> {
    #[inline]
    fn tile<const R: usize, const N: usize>(
        &self,
        rows: [usize; R],
        acts: [usize; N],
    ) -> [[f32; N]; R] {
        let blocks = self.w.cols / BLOCK;
        let w = rows.map(|r| self.w.row(r));
        #[cfg(target_arch = "x86_64")]
        if self.simd {
            let qs = acts.map(|i| self.act.row_qs(i).as_ptr());
            let ds = acts.map(|i| self.act.row_ds(i).as_ptr());
            let w = w.map(|row| row.as_ptr());
            // SAFETY: `simd` is only set when the CPU has AVX-512 F/BW/VNNI and F16C; each
            // weight row holds `blocks` Q8_0 blocks, each activation row `blocks * 32`
            // values and `blocks` scales, which is all the kernel reads.
            return unsafe { avx512::tile::<R, N>(w, qs, ds, blocks) };
        }
        let mut out = [[0f32; N]; R];
        for (o, wr) in out.iter_mut().zip(w) {
            for (v, &i) in o.iter_mut().zip(&acts) {
                *v = dot_scalar(wr, self.act.row_qs(i), self.act.row_ds(i));
            }
        }
        out
    }
}

/// Portable dot product of one Q8_0 row with one quantized activation row.
fn dot_scalar(w: &[u8], qs: &[i8], ds: &[f32]) -> f32 {
    let mut sum = 0f32;
    let blocks = w.chunks_exact(BLOCK_BYTES).zip(qs.chunks_exact(BLOCK));
    for ((block, aq), ads) in blocks.zip(ds.chunks_exact(2)) {
        let ad = ads[0];
        let wd = f16::from_bits(u16::from_le_bytes([block[0], block[1]])).to_f32();
        let isum: i32 = block[2..]
            .iter()
            .zip(aq)
            .map(|(&wq, &a)| wq as i8 as i32 * a as i32)
            .sum();
        sum += isum as f32 * (wd * ad);
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::super::{hsum512, spread_pair};
    use super::BLOCK_BYTES;
    use std::arch::x86_64::*;

    /// Dot products of `R` Q8_0 weight rows with `N` quantized activation rows. Each
    /// element's sequence of operations is independent of `R` and `N`.
    ///
    /// # Safety
    /// Weight rows must hold `blocks` blocks, activation rows `blocks * 32` values and
    /// `blocks` scales; the CPU must have AVX-512 F/BW/VNNI and F16C.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,f16c")]
    pub(super) unsafe fn tile<const R: usize, const N: usize>(
        w: [*const u8; R],
        qs: [*const i8; N],
        ds: [*const f32; N],
        blocks: usize,
    ) -> [[f32; N]; R] {
        let zero = _mm512_setzero_si512();
        let mut acc = [[_mm512_setzero_ps(); N]; R];
        let mut magnitude = [zero; R];
        let mut negative = [0u64; R];
        // [wd0, 0, wd1, 0] per weight row.
        let mut wd = [_mm_setzero_ps(); R];
        let mut b = 0;
        while b < blocks {
            let two = blocks - b >= 2;
            for j in 0..R {
                // SAFETY: block b (and b + 1 when `two`) lie inside the row.
                unsafe {
                    let p = w[j].add(b * BLOCK_BYTES);
                    let lo = _mm256_loadu_si256(p.add(2).cast());
                    let d0 = p.cast::<u16>().read_unaligned() as i32;
                    let (hi, d1) = if two {
                        let q = p.add(BLOCK_BYTES);
                        let hi = _mm256_loadu_si256(q.add(2).cast());
                        (hi, q.cast::<u16>().read_unaligned() as i32)
                    } else {
                        (_mm256_setzero_si256(), 0)
                    };
                    let v = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
                    magnitude[j] = _mm512_abs_epi8(v);
                    negative[j] = _mm512_movepi8_mask(v);
                    wd[j] = _mm_cvtph_ps(_mm_set_epi32(0, 0, d1, d0));
                }
            }
            for n in 0..N {
                // SAFETY: activation block b (and b + 1 when `two`) and its scales exist.
                let (a, ads) = unsafe {
                    let q = qs[n].add(b * 32);
                    let d = ds[n].add(2 * b);
                    if two {
                        (_mm512_loadu_si512(q.cast()), _mm_loadu_ps(d))
                    } else {
                        let a = _mm512_zextsi256_si512(_mm256_loadu_si256(q.cast()));
                        (a, _mm_castsi128_ps(_mm_loadl_epi64(d.cast())))
                    }
                };
                for j in 0..R {
                    // Move the weights' signs onto the activations: VNNI multiplies u8 by i8.
                    // Activations lie in [-127, 127], so the negation cannot overflow.
                    let signed = _mm512_mask_sub_epi8(a, negative[j], zero, a);
                    let isum = _mm512_dpbusd_epi32(zero, magnitude[j], signed);
                    let scale = spread_pair(_mm_mul_ps(wd[j], ads));
                    acc[j][n] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, acc[j][n]);
                }
            }
            b += 2;
        }
        let mut out = [[0f32; N]; R];
        for (o, a) in out.iter_mut().zip(&acc) {
            for (v, s) in o.iter_mut().zip(a) {
                *v = hsum512(*s);
            }
        }
        out
    }
}
