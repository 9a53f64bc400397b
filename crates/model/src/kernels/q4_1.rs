//! Q4_1 weights (20-byte blocks: f16 scale, f16 minimum, 32 x 4-bit) against 8-bit quantized
//! activations: an AVX-512 VNNI kernel and a scalar fallback.
//!
//! Per block, `sum_k (wd * q_k + wm) * ad * a_k = wd * ad * sum_k q_k a_k + wm * s`, with
//! `s = ad * sum_k a_k` precomputed per activation block.

use super::activation_quant::{QuantizedActivations, BLOCK};
use super::{MatrixRef, TileKernel};
use half::f16;

/// Bytes per Q4_1 block.
const BLOCK_BYTES: usize = 20;

/// Q4_1 weights with the quantized activations they are multiplied by.
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
            // SAFETY: `simd` is only set when the CPU has AVX-512 F/BW/VNNI, FMA and F16C;
            // each weight row holds `blocks` Q4_1 blocks, each activation row `blocks * 32`
            // values and `blocks` scale/sum pairs, which is all the kernel reads.
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

/// Portable dot product of one Q4_1 row with one quantized activation row.
fn dot_scalar(w: &[u8], qs: &[i8], ds: &[f32]) -> f32 {
    let mut sum = 0f32;
    let blocks = w.chunks_exact(BLOCK_BYTES).zip(qs.chunks_exact(BLOCK));
    for ((block, aq), ads) in blocks.zip(ds.chunks_exact(2)) {
        let wd = f16::from_bits(u16::from_le_bytes([block[0], block[1]])).to_f32();
        let wm = f16::from_bits(u16::from_le_bytes([block[2], block[3]])).to_f32();
        let mut isum = 0i32;
        for (j, &q) in block[4..].iter().enumerate() {
            isum += (q & 0x0f) as i32 * aq[j] as i32 + (q >> 4) as i32 * aq[j + 16] as i32;
        }
        sum += isum as f32 * (wd * ads[0]) + wm * ads[1];
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::super::{hsum512, spread_pair};
    use super::BLOCK_BYTES;
    use std::arch::x86_64::*;

    /// Dot products of `R` Q4_1 weight rows with `N` quantized activation rows, two blocks
    /// (64 values) per step. Each element's sequence of operations is independent of `R`
    /// and `N`.
    ///
    /// # Safety
    /// Weight rows must hold `blocks` blocks, activation rows `blocks * 32` values and
    /// `2 * blocks` scales and sums; the CPU must have AVX-512 F/BW/VNNI, FMA and F16C.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,f16c")]
    pub(super) unsafe fn tile<const R: usize, const N: usize>(
        w: [*const u8; R],
        qs: [*const i8; N],
        ds: [*const f32; N],
        blocks: usize,
    ) -> [[f32; N]; R] {
        let zero = _mm512_setzero_si512();
        let low_nibbles = _mm512_set1_epi8(0x0f);
        // 128-bit lanes hold [block b, block b, block b + 1, block b + 1] packed nibbles;
        // shifting lanes 1 and 3 by 4 gives the values in element order 0..32, 0..32.
        const HIGH: i64 = 0x0004_0004_0004_0004;
        let shift = _mm512_set_epi64(HIGH, HIGH, 0, 0, HIGH, HIGH, 0, 0);
        let mut acc = [[_mm512_setzero_ps(); N]; R];
        // Lanes 1 and 3 accumulate the minimum terms wm * s of even and odd blocks.
        let mut min_acc = [[_mm_setzero_ps(); N]; R];
        let mut quants = [zero; R];
        // [wd0, wm0, wd1, wm1] per weight row.
        let mut dm = [_mm_setzero_ps(); R];
        let mut b = 0;
        while b < blocks {
            let two = blocks - b >= 2;
            for j in 0..R {
                // SAFETY: block b (and b + 1 when `two`) lie inside the row.
                unsafe {
                    let p = w[j].add(b * BLOCK_BYTES);
                    let lo = _mm256_broadcastsi128_si256(_mm_loadu_si128(p.add(4).cast()));
                    let dm0 = p.cast::<i32>().read_unaligned();
                    let (hi, dm1) = if two {
                        let q = p.add(BLOCK_BYTES);
                        let hi = _mm256_broadcastsi128_si256(_mm_loadu_si128(q.add(4).cast()));
                        (hi, q.cast::<i32>().read_unaligned())
                    } else {
                        (_mm256_setzero_si256(), 0)
                    };
                    let v = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
                    quants[j] = _mm512_and_si512(_mm512_srlv_epi16(v, shift), low_nibbles);
                    dm[j] = _mm_cvtph_ps(_mm_set_epi32(0, 0, dm1, dm0));
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
                    let isum = _mm512_dpbusd_epi32(zero, quants[j], a);
                    // [wd0 * ad0, wm0 * s0, wd1 * ad1, wm1 * s1]
                    let products = _mm_mul_ps(dm[j], ads);
                    let scale = spread_pair(products);
                    acc[j][n] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, acc[j][n]);
                    min_acc[j][n] = _mm_add_ps(min_acc[j][n], products);
                }
            }
            b += 2;
        }
        let mut out = [[0f32; N]; R];
        for j in 0..R {
            for n in 0..N {
                let m = min_acc[j][n];
                let mins = _mm_add_ss(_mm_movehdup_ps(m), _mm_movehl_ps(m, _mm_movehdup_ps(m)));
                out[j][n] = hsum512(acc[j][n]) + _mm_cvtss_f32(mins);
            }
        }
        out
    }
}
