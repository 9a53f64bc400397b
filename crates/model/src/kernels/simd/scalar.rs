//! The portable back end: 8 lanes as plain arrays, the reference the SIMD back ends must match
//! bit for bit (the same integer sums, the same f32 roundings, FMA through `f32::mul_add`).

use half::{bf16, f16};

use super::Simd;
use crate::kernels::driver::{Kernel, Output};

#[derive(Clone, Copy)]
pub(crate) struct Scalar;

const LANES: usize = 8;

type Lanes = [i32; LANES];

/// The 4 bytes of an i32 lane.
#[inline(always)]
fn bytes(v: i32) -> [u8; 4] {
    v.to_le_bytes()
}

#[inline(always)]
fn map(v: Lanes, f: impl Fn(i32) -> i32) -> Lanes {
    v.map(f)
}

#[inline(always)]
fn zip(a: Lanes, b: Lanes, f: impl Fn(i32, i32) -> i32) -> Lanes {
    std::array::from_fn(|l| f(a[l], b[l]))
}

/// Reads `LANES` little-endian u16 values.
///
/// # Safety
/// `p` must be valid for `2 * LANES` bytes.
#[inline(always)]
unsafe fn halves(p: *const u16) -> [u16; LANES] {
    // SAFETY: forwarded from the caller; reads are unaligned.
    std::array::from_fn(|l| unsafe { p.add(l).read_unaligned() })
}

// SAFETY (for every method): only the pointer arguments carry a contract, as the trait states.
impl Simd for Scalar {
    const LANES: usize = LANES;
    type F = [f32; LANES];
    type I = Lanes;
    type D = Lanes;
    type S = Lanes;

    #[inline(always)]
    unsafe fn fzero() -> [f32; LANES] {
        [0.0; LANES]
    }
    #[inline(always)]
    unsafe fn fsplat(v: f32) -> [f32; LANES] {
        [v; LANES]
    }
    #[inline(always)]
    unsafe fn fload_f32(p: *const f32) -> [f32; LANES] {
        std::array::from_fn(|l| unsafe { p.add(l).read_unaligned() })
    }
    #[inline(always)]
    unsafe fn fload_f16(p: *const u16) -> [f32; LANES] {
        unsafe { halves(p) }.map(|h| f16::from_bits(h).to_f32())
    }
    #[inline(always)]
    unsafe fn fload_bf16(p: *const u16) -> [f32; LANES] {
        unsafe { halves(p) }.map(|h| bf16::from_bits(h).to_f32())
    }
    #[inline(always)]
    unsafe fn fadd(a: [f32; LANES], b: [f32; LANES]) -> [f32; LANES] {
        std::array::from_fn(|l| a[l] + b[l])
    }
    #[inline(always)]
    unsafe fn fmul(a: [f32; LANES], b: [f32; LANES]) -> [f32; LANES] {
        std::array::from_fn(|l| a[l] * b[l])
    }
    #[inline(always)]
    unsafe fn ffma(a: [f32; LANES], b: [f32; LANES], c: [f32; LANES]) -> [f32; LANES] {
        std::array::from_fn(|l| a[l].mul_add(b[l], c[l]))
    }
    #[inline(always)]
    unsafe fn ffrom_i32(v: Lanes) -> [f32; LANES] {
        v.map(|x| x as f32)
    }
    #[inline(always)]
    unsafe fn fstore(p: *mut f32, v: [f32; LANES]) {
        for (l, x) in v.into_iter().enumerate() {
            unsafe { p.add(l).write_unaligned(x) };
        }
    }

    #[inline(always)]
    unsafe fn isplat(v: i32) -> Lanes {
        [v; LANES]
    }
    #[inline(always)]
    unsafe fn iadd(a: Lanes, b: Lanes) -> Lanes {
        zip(a, b, i32::wrapping_add)
    }
    #[inline(always)]
    unsafe fn isub(a: Lanes, b: Lanes) -> Lanes {
        zip(a, b, i32::wrapping_sub)
    }
    #[inline(always)]
    unsafe fn ishl<const BITS: i32>(v: Lanes) -> Lanes {
        map(v, |x| x << BITS)
    }

    #[inline(always)]
    unsafe fn load(p: *const u8) -> Lanes {
        std::array::from_fn(|l| unsafe { p.cast::<i32>().add(l).read_unaligned() }.to_le())
    }
    #[inline(always)]
    unsafe fn splat4(p: *const i8) -> Lanes {
        [unsafe { p.cast::<i32>().read_unaligned() }.to_le(); LANES]
    }
    #[inline(always)]
    unsafe fn or(a: Lanes, b: Lanes) -> Lanes {
        zip(a, b, |x, y| x | y)
    }
    #[inline(always)]
    unsafe fn low_nibbles(v: Lanes) -> Lanes {
        map(v, |x| x & 0x0f0f_0f0f)
    }
    #[inline(always)]
    unsafe fn high_nibbles(v: Lanes) -> Lanes {
        map(v, |x| ((x as u32 >> 4) & 0x0f0f_0f0f) as i32)
    }
    #[inline(always)]
    unsafe fn bit_plane<const BIT: i32>(v: Lanes) -> Lanes {
        map(v, |x| ((((x as u32) >> BIT) & 0x0101_0101) << 4) as i32)
    }
    #[inline(always)]
    unsafe fn two_bits<const PAIR: i32>(v: Lanes) -> Lanes {
        map(v, |x| {
            ((((x as u32) >> (2 * PAIR)) & 0x0303_0303) << 4) as i32
        })
    }

    #[inline(always)]
    unsafe fn dzero() -> Lanes {
        [0; LANES]
    }
    #[inline(always)]
    unsafe fn dot(d: Lanes, w: Lanes, a: Lanes) -> Lanes {
        std::array::from_fn(|l| {
            let (w, a) = (bytes(w[l]), bytes(a[l]));
            d[l] + (0..4).map(|j| w[j] as i32 * a[j] as i8 as i32).sum::<i32>()
        })
    }
    #[inline(always)]
    unsafe fn dot_signed(d: Lanes, w: Lanes, a: Lanes) -> Lanes {
        std::array::from_fn(|l| {
            let (w, a) = (bytes(w[l]), bytes(a[l]));
            d[l] + (0..4)
                .map(|j| w[j] as i8 as i32 * a[j] as i8 as i32)
                .sum::<i32>()
        })
    }
    #[inline(always)]
    unsafe fn finish(d: Lanes) -> Lanes {
        d
    }
    #[inline(always)]
    unsafe fn finish_scaled(d: Lanes, s: Lanes) -> Lanes {
        zip(d, s, i32::wrapping_mul)
    }
    #[inline(always)]
    unsafe fn scale_pair(p: *const i8) -> (Lanes, Lanes) {
        let at = |i: usize| unsafe { p.add(i).read() } as i32;
        (
            std::array::from_fn(|l| at(2 * l)),
            std::array::from_fn(|l| at(2 * l + 1)),
        )
    }
    #[inline(always)]
    unsafe fn madd_pairs(p: *const i8, pair: i32) -> Lanes {
        let (lo, hi) = (pair as i16 as i32, (pair >> 16) as i16 as i32);
        let at = |i: usize| unsafe { p.add(i).read() } as i32;
        std::array::from_fn(|l| at(2 * l) * lo + at(2 * l + 1) * hi)
    }

    unsafe fn run<K: Kernel>(kernel: &K, panels: std::ops::Range<usize>, m: usize, out: &Output) {
        // SAFETY: this back end needs no CPU feature.
        unsafe { kernel.run_panels::<Self>(panels, m, out) }
    }
}
