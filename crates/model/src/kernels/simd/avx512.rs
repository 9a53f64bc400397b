//! The AVX-512 back end (F, BW, VL and VNNI, with FMA and F16C): 16 rows per 512-bit vector;
//! byte products summed straight into i32 lanes by `vpdpbusd`.

use std::arch::x86_64::*;

use super::Simd;
use crate::kernels::driver::{Kernel, Output};

#[derive(Clone, Copy)]
pub(crate) struct Avx512;

// SAFETY (for every method): the caller guarantees AVX-512 F/BW/VL/VNNI, FMA and F16C and valid
// pointers, as the trait requires; the loads are unaligned.
impl Simd for Avx512 {
    const LANES: usize = 16;
    type F = __m512;
    type I = __m512i;
    type D = __m512i;
    type S = __m512i;

    #[inline(always)]
    unsafe fn fzero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn fsplat(v: f32) -> __m512 {
        _mm512_set1_ps(v)
    }
    #[inline(always)]
    unsafe fn fload_f32(p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn fload_f16(p: *const u16) -> __m512 {
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
    }
    #[inline(always)]
    unsafe fn fload_bf16(p: *const u16) -> __m512 {
        unsafe {
            let wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast()));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(wide))
        }
    }
    #[inline(always)]
    unsafe fn fadd(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn fmul(a: __m512, b: __m512) -> __m512 {
        _mm512_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn ffma(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn ffrom_i32(v: __m512i) -> __m512 {
        _mm512_cvtepi32_ps(v)
    }
    #[inline(always)]
    unsafe fn fstore(p: *mut f32, v: __m512) {
        unsafe { _mm512_storeu_ps(p, v) }
    }

    #[inline(always)]
    unsafe fn isplat(v: i32) -> __m512i {
        _mm512_set1_epi32(v)
    }
    #[inline(always)]
    unsafe fn iadd(a: __m512i, b: __m512i) -> __m512i {
        _mm512_add_epi32(a, b)
    }
    #[inline(always)]
    unsafe fn isub(a: __m512i, b: __m512i) -> __m512i {
        _mm512_sub_epi32(a, b)
    }
    #[inline(always)]
    unsafe fn ishl<const BITS: i32>(v: __m512i) -> __m512i {
        _mm512_sllv_epi32(v, _mm512_set1_epi32(BITS))
    }

    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m512i {
        unsafe { _mm512_loadu_si512(p.cast()) }
    }
    #[inline(always)]
    unsafe fn splat4(p: *const i8) -> __m512i {
        unsafe { _mm512_set1_epi32(p.cast::<i32>().read_unaligned()) }
    }
    #[inline(always)]
    unsafe fn or(a: __m512i, b: __m512i) -> __m512i {
        _mm512_or_si512(a, b)
    }
    #[inline(always)]
    unsafe fn low_nibbles(v: __m512i) -> __m512i {
        _mm512_and_si512(v, _mm512_set1_epi8(0x0f))
    }
    #[inline(always)]
    unsafe fn high_nibbles(v: __m512i) -> __m512i {
        _mm512_and_si512(_mm512_srli_epi16::<4>(v), _mm512_set1_epi8(0x0f))
    }
    #[inline(always)]
    unsafe fn bit_plane<const BIT: i32>(v: __m512i) -> __m512i {
        // 16-bit shifts: bit 4 of each byte comes from bit BIT of the same byte.
        let moved = match BIT {
            0 => _mm512_slli_epi16::<4>(v),
            1 => _mm512_slli_epi16::<3>(v),
            2 => _mm512_slli_epi16::<2>(v),
            3 => _mm512_slli_epi16::<1>(v),
            4 => v,
            5 => _mm512_srli_epi16::<1>(v),
            6 => _mm512_srli_epi16::<2>(v),
            _ => _mm512_srli_epi16::<3>(v),
        };
        _mm512_and_si512(moved, _mm512_set1_epi8(0x10))
    }
    #[inline(always)]
    unsafe fn two_bits<const PAIR: i32>(v: __m512i) -> __m512i {
        let moved = match PAIR {
            0 => _mm512_slli_epi16::<4>(v),
            1 => _mm512_slli_epi16::<2>(v),
            2 => v,
            _ => _mm512_srli_epi16::<2>(v),
        };
        _mm512_and_si512(moved, _mm512_set1_epi8(0x30))
    }

    #[inline(always)]
    unsafe fn dzero() -> __m512i {
        _mm512_setzero_si512()
    }
    #[inline(always)]
    unsafe fn dot(d: __m512i, w: __m512i, a: __m512i) -> __m512i {
        _mm512_dpbusd_epi32(d, w, a)
    }
    #[inline(always)]
    unsafe fn dot_signed(d: __m512i, w: __m512i, a: __m512i) -> __m512i {
        // |w| (128 for -128, read unsigned) times a negated where w is negative.
        let negative = _mm512_movepi8_mask(w);
        let signed = _mm512_mask_sub_epi8(a, negative, _mm512_setzero_si512(), a);
        _mm512_dpbusd_epi32(d, _mm512_abs_epi8(w), signed)
    }
    #[inline(always)]
    unsafe fn finish(d: __m512i) -> __m512i {
        d
    }
    #[inline(always)]
    unsafe fn finish_scaled(d: __m512i, s: __m512i) -> __m512i {
        _mm512_mullo_epi32(d, s)
    }
    #[inline(always)]
    unsafe fn scale_pair(p: *const i8) -> (__m512i, __m512i) {
        unsafe {
            let pairs = _mm512_cvtepi8_epi16(_mm256_loadu_si256(p.cast()));
            let first = _mm512_srai_epi32::<16>(_mm512_slli_epi32::<16>(pairs));
            (first, _mm512_srai_epi32::<16>(pairs))
        }
    }
    #[inline(always)]
    unsafe fn madd_pairs(p: *const i8, pair: i32) -> __m512i {
        unsafe {
            let pairs = _mm512_cvtepi8_epi16(_mm256_loadu_si256(p.cast()));
            _mm512_madd_epi16(pairs, _mm512_set1_epi32(pair))
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    unsafe fn run<K: Kernel>(kernel: &K, panels: std::ops::Range<usize>, m: usize, out: &Output) {
        // SAFETY: this function runs with the features the methods need.
        unsafe { kernel.run_panels::<Self>(panels, m, out) }
    }
}
