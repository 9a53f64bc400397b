//! The AVX-VNNI back end (AVX2, FMA, F16C and the VEX-encoded VNNI of CPUs without AVX-512):
//! 8 rows per 256-bit vector, byte products summed straight into i32 lanes by `vpdpbusd`, as
//! the AVX-512 back end does; every other operation is the AVX2 back end's.

use std::arch::x86_64::*;

use super::avx2::avx2_common;
use super::Simd;
use crate::kernels::driver::{Kernel, Output};

#[derive(Clone, Copy)]
pub(crate) struct AvxVnni;

// SAFETY (for every method): the caller guarantees AVX2, FMA, F16C and AVX-VNNI and valid
// pointers, as the trait requires; the loads are unaligned.
impl Simd for AvxVnni {
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
        _mm256_dpbusd_avx_epi32(d, w, a)
    }
    #[inline(always)]
    unsafe fn dot_signed(d: __m256i, w: __m256i, a: __m256i) -> __m256i {
        // |w| (128 for -128, read unsigned) times a negated where w is negative (and zeroed
        // where w is 0, whose product is 0 anyway).
        _mm256_dpbusd_avx_epi32(d, _mm256_abs_epi8(w), _mm256_sign_epi8(a, w))
    }
    #[inline(always)]
    unsafe fn finish(d: __m256i) -> __m256i {
        d
    }
    #[inline(always)]
    unsafe fn finish_scaled(d: __m256i, s: __m256i) -> __m256i {
        _mm256_mullo_epi32(d, s)
    }
    #[inline(always)]
    unsafe fn scale_pair(p: *const i8) -> (__m256i, __m256i) {
        unsafe {
            let pairs = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.cast()));
            let first = _mm256_srai_epi32::<16>(_mm256_slli_epi32::<16>(pairs));
            (first, _mm256_srai_epi32::<16>(pairs))
        }
    }

    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    unsafe fn run<K: Kernel>(kernel: &K, panels: std::ops::Range<usize>, m: usize, out: &Output) {
        // SAFETY: this function runs with the features the methods need.
        unsafe { kernel.run_panels::<Self>(panels, m, out) }
    }
}
