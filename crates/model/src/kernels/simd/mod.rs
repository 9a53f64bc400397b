//! The instruction sets the packed kernels run on: one trait of primitive vector operations,
//! implemented with plain arrays (scalar), AVX2, AVX-VNNI and AVX-512, so that each kernel is
//! written once.
//!
//! A vector holds one value per output row ("lane"): the packed layouts interleave `LANES` weight
//! rows, so one instruction advances `LANES` dot products and no horizontal sum is ever needed.
//! Every primitive has one exact meaning that all back ends share (integer sums are exact; f32
//! operations round once, FMA included), which makes a kernel's output bit-identical on every
//! back end, whatever the batch or thread split.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avxvnni;
pub(crate) mod scalar;

use super::driver::{Kernel, Output};

/// Primitive operations over vectors of `LANES` lanes.
///
/// # Safety
/// Every method may only be called on a CPU with the back end's features (see
/// `CpuPath::available`); the pointer arguments must be valid for the bytes named.
pub(crate) trait Simd: Copy + 'static {
    /// Output rows per vector.
    const LANES: usize;
    /// `LANES` f32 values.
    type F: Copy;
    /// `LANES` i32 values, seen as `4 * LANES` bytes by the byte operations (lane `r` owns
    /// bytes `4r..4r + 4`).
    type I: Copy;
    /// A running sum of u8 x i8 products per lane.
    type D: Copy;
    /// A multiplier per lane that finishes a dot-product sum.
    type S: Copy;

    // f32 lanes.
    unsafe fn fzero() -> Self::F;
    unsafe fn fsplat(v: f32) -> Self::F;
    /// `LANES` f32 values.
    unsafe fn fload_f32(p: *const f32) -> Self::F;
    /// `LANES` f16 values (bits), converted exactly.
    unsafe fn fload_f16(p: *const u16) -> Self::F;
    /// `LANES` bf16 values (bits), converted exactly.
    unsafe fn fload_bf16(p: *const u16) -> Self::F;
    unsafe fn fadd(a: Self::F, b: Self::F) -> Self::F;
    unsafe fn fmul(a: Self::F, b: Self::F) -> Self::F;
    /// `a * b + c`, rounded once.
    unsafe fn ffma(a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// i32 to f32, rounding to nearest even.
    unsafe fn ffrom_i32(v: Self::I) -> Self::F;
    /// Stores `LANES` values.
    unsafe fn fstore(p: *mut f32, v: Self::F);

    // i32 lanes.
    unsafe fn isplat(v: i32) -> Self::I;
    unsafe fn iadd(a: Self::I, b: Self::I) -> Self::I;
    unsafe fn isub(a: Self::I, b: Self::I) -> Self::I;
    /// Each lane shifted left by `BITS`.
    unsafe fn ishl<const BITS: i32>(v: Self::I) -> Self::I;

    // Bytes.
    /// `4 * LANES` bytes.
    unsafe fn load(p: *const u8) -> Self::I;
    /// The 4 bytes at `p` in every lane.
    unsafe fn splat4(p: *const i8) -> Self::I;
    unsafe fn or(a: Self::I, b: Self::I) -> Self::I;
    /// The low nibble of every byte.
    unsafe fn low_nibbles(v: Self::I) -> Self::I;
    /// The high nibble of every byte, moved down.
    unsafe fn high_nibbles(v: Self::I) -> Self::I;
    /// Bit `BIT` of every byte, moved to bit 4.
    unsafe fn bit_plane<const BIT: i32>(v: Self::I) -> Self::I;
    /// Bits `2 PAIR` and `2 PAIR + 1` of every byte, moved to bits 4 and 5.
    unsafe fn two_bits<const PAIR: i32>(v: Self::I) -> Self::I;

    // Dot products.
    unsafe fn dzero() -> Self::D;
    /// Adds the products of unsigned weight bytes `w` and signed activation bytes `a` (in
    /// -127..=127) to each lane's sum. The AVX2 back end keeps sums of byte pairs in i16 (the
    /// VNNI ones sum into i32), so
    /// kernels finish a sum after at most 8 calls for 4-bit weights, 4 for 5-bit, 2 for 6-bit.
    unsafe fn dot(d: Self::D, w: Self::I, a: Self::I) -> Self::D;
    /// As `dot` for signed weight bytes; finished after every call.
    unsafe fn dot_signed(d: Self::D, w: Self::I, a: Self::I) -> Self::D;
    /// Each lane's sum of products.
    unsafe fn finish(d: Self::D) -> Self::I;
    /// Each lane's sum of products times its multiplier.
    unsafe fn finish_scaled(d: Self::D, s: Self::S) -> Self::I;
    /// `LANES` pairs of i8 multipliers at `p` (lane `r`: bytes `2r`, `2r + 1`), as the first
    /// and the second of each pair.
    unsafe fn scale_pair(p: *const i8) -> (Self::S, Self::S);
    /// Lane `r`: `p[2r] * lo + p[2r + 1] * hi` for the i16 halves of `pair`.
    unsafe fn madd_pairs(p: *const i8, pair: i32) -> Self::I;

    /// Runs tasks of a kernel with this back end's CPU features enabled: for every range of
    /// panels, the kernel's `run_panels` (by default every tile of up to 4 activation rows).
    unsafe fn run<K: Kernel>(kernel: &K, panels: std::ops::Range<usize>, m: usize, out: &Output);
}

/// Bit 4 of the two registers of chunk `q` (0..4) of a bit plane: bits `2q` and `2q + 1`.
///
/// # Safety
/// As `Simd`'s operations.
#[inline(always)]
pub(crate) unsafe fn plane_pair<S: Simd>(plane: S::I, q: usize) -> (S::I, S::I) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match q {
            0 => (S::bit_plane::<0>(plane), S::bit_plane::<1>(plane)),
            1 => (S::bit_plane::<2>(plane), S::bit_plane::<3>(plane)),
            2 => (S::bit_plane::<4>(plane), S::bit_plane::<5>(plane)),
            _ => (S::bit_plane::<6>(plane), S::bit_plane::<7>(plane)),
        }
    }
}

/// The tile loop every kernel's `run_panels` inlines: activation tiles outer, so the task's
/// weights are read from cache by every tile after the first.
///
/// # Safety
/// As `Simd::run`.
#[inline(always)]
pub(crate) unsafe fn run_tiles<S: Simd, K: Kernel>(
    kernel: &K,
    panels: std::ops::Range<usize>,
    m: usize,
    out: &Output,
) {
    let mut act = 0;
    while act < m {
        let n = (m - act).min(4);
        for panel in panels.clone() {
            // SAFETY: forwarded from the caller.
            unsafe {
                match n {
                    4 => kernel.tile::<S, 4>(panel, act, out),
                    3 => kernel.tile::<S, 3>(panel, act, out),
                    2 => kernel.tile::<S, 2>(panel, act, out),
                    _ => kernel.tile::<S, 1>(panel, act, out),
                }
            }
        }
        act += n;
    }
}
