//! F32, F16 and BF16 weights against f32 activations: an AVX-512 FMA kernel and a scalar
//! fallback, each with one accumulator chain per output element so that the result does not
//! depend on the tile shape (unlike gemm's blocked f32 matmul).

use super::{MatrixRef, TileKernel};
use candle_core::quantized::GgmlDType;
use half::{bf16, f16};

/// Float weights with the f32 activations they are multiplied by.
pub(crate) struct Kernel<'a> {
    pub(crate) w: &'a MatrixRef<'a>,
    /// (m, cols) activations.
    pub(crate) x: &'a [f32],
    pub(crate) simd: bool,
}

/// Weight encodings, as a const generic so each gets its own monomorphized loop.
const F32: u8 = 0;
const F16: u8 = 1;
const BF16: u8 = 2;

impl TileKernel for Kernel<'_> {
    #[inline]
    fn tile<const R: usize, const N: usize>(
        &self,
        rows: [usize; R],
        acts: [usize; N],
    ) -> [[f32; N]; R] {
        let cols = self.w.cols;
        let w = rows.map(|r| self.w.row(r));
        let x = acts.map(|i| &self.x[i * cols..(i + 1) * cols]);
        #[cfg(target_arch = "x86_64")]
        if self.simd {
            let w = w.map(|row| row.as_ptr());
            let x = x.map(|row| row.as_ptr());
            // SAFETY: `simd` is only set when the CPU has AVX-512 F/BW/VL, FMA and F16C;
            // each weight row holds `cols` elements of the type and each activation row
            // `cols` f32 values, which is all the kernel reads.
            return unsafe {
                match self.w.dtype {
                    GgmlDType::F16 => avx512::tile::<R, N, F16>(w, x, cols),
                    GgmlDType::BF16 => avx512::tile::<R, N, BF16>(w, x, cols),
                    _ => avx512::tile::<R, N, F32>(w, x, cols),
                }
            };
        }
        let mut out = [[0f32; N]; R];
        for (o, wr) in out.iter_mut().zip(w) {
            for (v, xr) in o.iter_mut().zip(x) {
                *v = match self.w.dtype {
                    GgmlDType::F16 => dot_scalar::<F16>(wr, xr),
                    GgmlDType::BF16 => dot_scalar::<BF16>(wr, xr),
                    _ => dot_scalar::<F32>(wr, xr),
                };
            }
        }
        out
    }
}

/// Weight element `k` of a raw row.
#[inline(always)]
fn weight<const KIND: u8>(row: &[u8], k: usize) -> f32 {
    match KIND {
        F32 => f32::from_le_bytes([row[4 * k], row[4 * k + 1], row[4 * k + 2], row[4 * k + 3]]),
        F16 => f16::from_bits(u16::from_le_bytes([row[2 * k], row[2 * k + 1]])).to_f32(),
        _ => bf16::from_bits(u16::from_le_bytes([row[2 * k], row[2 * k + 1]])).to_f32(),
    }
}

/// Portable dot product: 16 interleaved partial sums reduced pairwise, as the SIMD kernel's
/// lanes are (without its fused multiply-adds, so results differ in the last bits).
pub(crate) fn dot_scalar<const KIND: u8>(w: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    for (k, &xv) in x.iter().enumerate() {
        acc[k % 16] += weight::<KIND>(w, k) * xv;
    }
    let mut width = 8;
    while width > 0 {
        for l in 0..width {
            acc[l] += acc[l + width];
        }
        width /= 2;
    }
    acc[0]
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::super::hsum512;
    use super::{BF16, F16, F32};
    use std::arch::x86_64::*;

    /// 16 weights starting at element `k`, all lanes (`mask == 0xffff`) or the low ones.
    ///
    /// # Safety
    /// The masked-in elements must be readable; the CPU must have AVX-512 F/BW/VL and F16C.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    #[inline]
    unsafe fn load_weights<const KIND: u8>(row: *const u8, k: usize, mask: u16) -> __m512 {
        // SAFETY: the caller guarantees the masked elements are in bounds.
        unsafe {
            match KIND {
                F32 => _mm512_maskz_loadu_ps(mask, row.cast::<f32>().add(k)),
                F16 => _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, row.cast::<i16>().add(k))),
                _ => {
                    debug_assert_eq!(KIND, BF16);
                    let halves = _mm256_maskz_loadu_epi16(mask, row.cast::<i16>().add(k));
                    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(halves)))
                }
            }
        }
    }

    /// Dot products of `R` weight rows with `N` activation rows of `cols` elements.
    ///
    /// # Safety
    /// Each pointer must address `cols` elements; the CPU must have AVX-512 F/BW/VL, FMA
    /// and F16C.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
    pub(super) unsafe fn tile<const R: usize, const N: usize, const KIND: u8>(
        w: [*const u8; R],
        x: [*const f32; N],
        cols: usize,
    ) -> [[f32; N]; R] {
        let mut acc = [[_mm512_setzero_ps(); N]; R];
        let mut weights = [_mm512_setzero_ps(); R];
        let mut k = 0;
        while k < cols {
            let mask: u16 = if cols - k >= 16 {
                0xffff
            } else {
                (1u16 << (cols - k)) - 1
            };
            for (wv, &row) in weights.iter_mut().zip(&w) {
                // SAFETY: lanes past `cols` are masked off.
                *wv = unsafe { load_weights::<KIND>(row, k, mask) };
            }
            for (n, &xr) in x.iter().enumerate() {
                // SAFETY: lanes past `cols` are masked off.
                let xv = unsafe { _mm512_maskz_loadu_ps(mask, xr.add(k)) };
                for (a, wv) in acc.iter_mut().zip(&weights) {
                    a[n] = _mm512_fmadd_ps(*wv, xv, a[n]);
                }
            }
            k += 16;
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
