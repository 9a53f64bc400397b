//! F32, F16 and BF16 weights against f32 activations. A panel is three vectors of rows; per
//! output element the products are summed in order by FMA, 32 columns at a time, and each
//! 32-column partial sum is added to the total, the same way on every path and batch. Tall
//! batches of 16-bit weights run on panels widened to f32 (see `run_panels`).
//!
//! Unlike the quantized kernels, these issue no software prefetch: the hardware prefetchers
//! keep up with their plain column stream alone, and the prefetch instructions only cost (1.7B
//! F16 decode, Zen 3, in-process alternation: 7.9 against 7.4 tok/s on 2 threads, 5.1 against
//! 4.6 on 1; Q8_0 and Q4_K_M there lost 8-16% without theirs).

use std::cell::RefCell;
use std::ops::Range;

use super::super::driver::{Kernel, Output};
use super::super::packed::PackedMatrix;
use super::super::simd::{run_tiles, Simd};

/// Weight encodings, as a const generic so each gets its own loop.
pub(crate) const F32: u8 = 0;
pub(crate) const F16: u8 = 1;
pub(crate) const BF16: u8 = 2;

/// Columns per partial sum.
const SPAN: usize = 32;

/// Activation rows above which 16-bit panels are widened to f32 before their tiles run: at 64
/// the widening about pays for itself, at 128 and more it gains 8-15%, and at 5-16 rows it costs
/// up to half the speed (1.7B shapes, Zen 4, kernel_bench on 2 threads).
const WIDEN_ABOVE: usize = 64;

/// Vectors of rows per panel: 3 sets of `N` accumulators, 3 weight loads and one broadcast per
/// activation row and column fill the 16 AVX2 registers.
pub(crate) const VECTORS: usize = 3;

pub(crate) struct Float<'a, const KIND: u8> {
    pub(crate) w: &'a PackedMatrix,
    /// (m, cols) activations.
    pub(crate) x: &'a [f32],
}

/// Bytes of one weight encoded as `kind`.
const fn weight_bytes(kind: u8) -> usize {
    if kind == F32 {
        4
    } else {
        2
    }
}

/// The output row of panel `panel`'s first weight row.
fn first_row<S: Simd>(panel: usize) -> usize {
    panel * VECTORS * S::LANES
}

/// `LANES` weights of one column at `p`.
///
/// # Safety
/// As `Simd`'s loads.
#[inline(always)]
unsafe fn load<S: Simd, const KIND: u8>(p: *const u8) -> S::F {
    // SAFETY: forwarded from the caller.
    unsafe {
        match KIND {
            F32 => S::fload_f32(p.cast()),
            F16 => S::fload_f16(p.cast()),
            _ => S::fload_bf16(p.cast()),
        }
    }
}

impl<const KIND: u8> Float<'_, KIND> {
    /// The panel whose column 0 is at `base`, columns `column_bytes` apart and weights encoded
    /// as `AS`, against activation rows `act..act + N`; its first row is output row `first`.
    ///
    /// # Safety
    /// As `Kernel::tile`; the panel must hold `cols` columns.
    #[inline(always)]
    unsafe fn panel_tile<S: Simd, const N: usize, const AS: u8>(
        &self,
        base: *const u8,
        column_bytes: usize,
        first: usize,
        act: usize,
        out: &Output,
    ) {
        let cols = self.w.cols();
        let size = weight_bytes(AS);
        let x: [*const f32; N] = std::array::from_fn(|n| self.x[(act + n) * cols..].as_ptr());
        // SAFETY: features from the caller; column k of the panel and of every activation row
        // exist for k < cols.
        unsafe {
            let mut total = [[S::fzero(); N]; VECTORS];
            for start in (0..cols).step_by(SPAN) {
                let mut partial = [[S::fzero(); N]; VECTORS];
                for k in start..(start + SPAN).min(cols) {
                    let p = base.add(k * column_bytes);
                    let w: [S::F; VECTORS] =
                        std::array::from_fn(|h| load::<S, AS>(p.add(h * S::LANES * size)));
                    for n in 0..N {
                        let xv = S::fsplat(x[n].add(k).read());
                        for h in 0..VECTORS {
                            partial[h][n] = S::ffma(w[h], xv, partial[h][n]);
                        }
                    }
                }
                for h in 0..VECTORS {
                    for n in 0..N {
                        total[h][n] = S::fadd(total[h][n], partial[h][n]);
                    }
                }
            }
            for (h, half) in total.into_iter().enumerate() {
                for (n, v) in half.into_iter().enumerate() {
                    out.store::<S>(act + n, first + h * S::LANES, v);
                }
            }
        }
    }

    /// Panel `panel` converted to f32 into `buf`, in the same interleaved order.
    ///
    /// # Safety
    /// As `Kernel::tile`.
    #[inline(always)]
    unsafe fn widen<S: Simd>(&self, panel: usize, buf: &mut Vec<f32>) {
        let column = VECTORS * S::LANES;
        let len = self.w.cols() * column;
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        let (base, column_bytes) = (self.w.panel(panel), self.w.layout.block_bytes);
        // SAFETY: features from the caller; the panel holds `cols` columns of `column` weights
        // and `buf` as many f32 values.
        unsafe {
            for k in 0..self.w.cols() {
                let p = base.add(k * column_bytes);
                for h in 0..VECTORS {
                    let v = load::<S, KIND>(p.add(h * S::LANES * weight_bytes(KIND)));
                    S::fstore(buf.as_mut_ptr().add(k * column + h * S::LANES), v);
                }
            }
        }
    }
}

thread_local! {
    /// The panel a thread's task works on, widened to f32 (see `run_panels`).
    static WIDENED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A 16-bit kernel's panel after `Float::widen`: tiles read it as F32, and the panel index they
/// get only places their output rows.
struct Widened<'a, 'b, const KIND: u8> {
    float: &'a Float<'b, KIND>,
    panel: &'a [f32],
}

impl<const KIND: u8> Kernel for Widened<'_, '_, KIND> {
    #[inline(always)]
    unsafe fn tile<S: Simd, const N: usize>(&self, panel: usize, act: usize, out: &Output) {
        let column_bytes = VECTORS * S::LANES * weight_bytes(F32);
        // SAFETY: forwarded from the caller; the widened panel holds `cols` columns.
        unsafe {
            self.float.panel_tile::<S, N, F32>(
                self.panel.as_ptr().cast(),
                column_bytes,
                first_row::<S>(panel),
                act,
                out,
            )
        }
    }
}

impl<const KIND: u8> Kernel for Float<'_, KIND> {
    #[inline(always)]
    unsafe fn tile<S: Simd, const N: usize>(&self, panel: usize, act: usize, out: &Output) {
        let (base, column_bytes) = (self.w.panel(panel), self.w.layout.block_bytes);
        let first = first_row::<S>(panel);
        // SAFETY: forwarded from the caller.
        unsafe { self.panel_tile::<S, N, KIND>(base, column_bytes, first, act, out) }
    }

    /// Beyond `WIDEN_ABOVE` activation rows, a 16-bit panel is converted to f32 once and its
    /// tiles run on that: the conversions then cost once per panel, not once per tile. 1.7B F16
    /// kernels at 256 rows, one Zen 4 core: 96 GFLOP/s direct against 103-108 widened with
    /// AVX-512, 86-88 against 101-105 with AVX2; 512-token prefill on 2 threads about 10%
    /// faster. The conversion is exact, so every output is bit-identical to `tile`'s. Each
    /// thread keeps one widened panel (`cols` x 48 f32 with AVX-512) for the process's life.
    #[inline(always)]
    unsafe fn run_panels<S: Simd>(&self, panels: Range<usize>, m: usize, out: &Output) {
        if KIND == F32 || m <= WIDEN_ABOVE {
            // SAFETY: forwarded from the caller.
            return unsafe { run_tiles::<S, Self>(self, panels, m, out) };
        }
        WIDENED.with_borrow_mut(|buf| {
            for panel in panels {
                // SAFETY: forwarded from the caller.
                unsafe {
                    self.widen::<S>(panel, buf);
                    let widened = Widened {
                        float: self,
                        panel: buf,
                    };
                    run_tiles::<S, Widened<KIND>>(&widened, panel..panel + 1, m, out);
                }
            }
        });
    }
}
