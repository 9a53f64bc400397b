//! The AVX2 back end (with FMA and F16C): 8 rows per 256-bit vector; byte products through
//! `vpmaddubsw`, summed in i16 pairs until a kernel finishes them with `vpmaddwd`. The
//! operations other than the dot products are shared with the AVX-VNNI back end
//! (`avx2_common!`).

use std::arch::x86_64::*;

use super::Simd;
use crate::kernels::driver::{Kernel, Output};

/// The 256-bit operations every AVX2-class back end shares: f32 lanes, i32 lanes, bytes, and
/// `madd_pairs`.
macro_rules! avx2_common {
    () => {
        #[inline(always)]
        unsafe fn fzero() -> __m256 {
            _mm256_setzero_ps()
        }
        #[inline(always)]
        unsafe fn fsplat(v: f32) -> __m256 {
            _mm256_set1_ps(v)
        }
        #[inline(always)]
        unsafe fn fload_f32(p: *const f32) -> __m256 {
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn fload_f16(p: *const u16) -> __m256 {
            unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
        }
        #[inline(always)]
        unsafe fn fload_bf16(p: *const u16) -> __m256 {
            unsafe {
                let wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(wide))
            }
        }
        #[inline(always)]
        unsafe fn fadd(a: __m256, b: __m256) -> __m256 {
            _mm256_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn fmul(a: __m256, b: __m256) -> __m256 {
            _mm256_mul_ps(a, b)
        }
        #[inline(always)]
        unsafe fn ffma(a: __m256, b: __m256, c: __m256) -> __m256 {
            _mm256_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn ffrom_i32(v: __m256i) -> __m256 {
            _mm256_cvtepi32_ps(v)
        }
        #[inline(always)]
        unsafe fn fstore(p: *mut f32, v: __m256) {
            unsafe { _mm256_storeu_ps(p, v) }
        }

        #[inline(always)]
        unsafe fn isplat(v: i32) -> __m256i {
            _mm256_set1_epi32(v)
        }
        #[inline(always)]
        unsafe fn iadd(a: __m256i, b: __m256i) -> __m256i {
            _mm256_add_epi32(a, b)
        }
        #[inline(always)]
        unsafe fn isub(a: __m256i, b: __m256i) -> __m256i {
            _mm256_sub_epi32(a, b)
        }
        #[inline(always)]
        unsafe fn ishl<const BITS: i32>(v: __m256i) -> __m256i {
            _mm256_slli_epi32::<BITS>(v)
        }

        #[inline(always)]
        unsafe fn load(p: *const u8) -> __m256i {
            unsafe { _mm256_loadu_si256(p.cast()) }
        }
        #[inline(always)]
        unsafe fn splat4(p: *const i8) -> __m256i {
            unsafe { _mm256_set1_epi32(p.cast::<i32>().read_unaligned()) }
        }
        #[inline(always)]
        unsafe fn or(a: __m256i, b: __m256i) -> __m256i {
            _mm256_or_si256(a, b)
        }
        #[inline(always)]
        unsafe fn low_nibbles(v: __m256i) -> __m256i {
            _mm256_and_si256(v, _mm256_set1_epi8(0x0f))
        }
        #[inline(always)]
        unsafe fn high_nibbles(v: __m256i) -> __m256i {
            _mm256_and_si256(_mm256_srli_epi16::<4>(v), _mm256_set1_epi8(0x0f))
        }
        #[inline(always)]
        unsafe fn bit_plane<const BIT: i32>(v: __m256i) -> __m256i {
            // 16-bit shifts: bit 4 of each byte comes from bit BIT of the same byte.
            let moved = match BIT {
                0 => _mm256_slli_epi16::<4>(v),
                1 => _mm256_slli_epi16::<3>(v),
                2 => _mm256_slli_epi16::<2>(v),
                3 => _mm256_slli_epi16::<1>(v),
                4 => v,
                5 => _mm256_srli_epi16::<1>(v),
                6 => _mm256_srli_epi16::<2>(v),
                _ => _mm256_srli_epi16::<3>(v),
            };
            _mm256_and_si256(moved, _mm256_set1_epi8(0x10))
        }
        #[inline(always)]
        unsafe fn two_bits<const PAIR: i32>(v: __m256i) -> __m256i {
            let moved = match PAIR {
                0 => _mm256_slli_epi16::<4>(v),
                1 => _mm256_slli_epi16::<2>(v),
                2 => v,
                _ => _mm256_srli_epi16::<2>(v),
            };
            _mm256_and_si256(moved, _mm256_set1_epi8(0x30))
        }

        #[inline(always)]
        unsafe fn madd_pairs(p: *const i8, pair: i32) -> __m256i {
            unsafe {
                let pairs = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.cast()));
                _mm256_madd_epi16(pairs, _mm256_set1_epi32(pair))
            }
        }
    };
}
pub(crate) use avx2_common;

#[derive(Clone, Copy)]
pub(crate) struct Avx2;

// SAFETY (for every method): the caller guarantees AVX2, FMA and F16C and valid pointers, as
// the trait requires; the loads are unaligned.
impl Simd for Avx2 {
    const LANES: usize = 8;
    type F = __m256;
    type I = __m256i;
    type D = __m256i;
    type S = __m256i;

    avx2_common!();

    #[inline(always)]
    unsafe fn dzero() -> __m256i {
        _mm256_setzero_si256()
    }
    #[inline(always)]
    unsafe fn dot(d: __m256i, w: __m256i, a: __m256i) -> __m256i {
        _mm256_add_epi16(d, _mm256_maddubs_epi16(w, a))
    }
    #[inline(always)]
    unsafe fn dot_signed(d: __m256i, w: __m256i, a: __m256i) -> __m256i {
        // |w| times a with w's sign: |w| <= 128 and |a| <= 127 keep each pair inside i16.
        let magnitude = _mm256_sign_epi8(w, w);
        _mm256_add_epi16(d, _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(a, w)))
    }
    #[inline(always)]
    unsafe fn finish(d: __m256i) -> __m256i {
        _mm256_madd_epi16(d, _mm256_set1_epi16(1))
    }
    #[inline(always)]
    unsafe fn finish_scaled(d: __m256i, s: __m256i) -> __m256i {
        _mm256_madd_epi16(d, s)
    }
    #[inline(always)]
    unsafe fn scale_pair(p: *const i8) -> (__m256i, __m256i) {
        unsafe {
            let pairs = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.cast()));
            let first = _mm256_setr_epi8(
                0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13, 0, 1, 0, 1, 4, 5, 4, 5, 8, 9,
                8, 9, 12, 13, 12, 13,
            );
            let second = _mm256_setr_epi8(
                2, 3, 2, 3, 6, 7, 6, 7, 10, 11, 10, 11, 14, 15, 14, 15, 2, 3, 2, 3, 6, 7, 6, 7, 10,
                11, 10, 11, 14, 15, 14, 15,
            );
            (
                _mm256_shuffle_epi8(pairs, first),
                _mm256_shuffle_epi8(pairs, second),
            )
        }
    }
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn run<K: Kernel>(kernel: &K, panels: std::ops::Range<usize>, m: usize, out: &Output) {
        // SAFETY: this function runs with the features the methods need.
        unsafe { kernel.run_panels::<Self>(panels, m, out) }
    }
}
