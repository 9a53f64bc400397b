//! The tile driver every packed kernel shares: output panels split into tasks over a thread
//! pool, each task computing its panels for every activation row on the chosen back end.

use rayon::prelude::*;

use super::cpu::CpuPath;
use super::packed::PackedMatrix;
#[cfg(target_arch = "x86_64")]
use super::simd::{avx2::Avx2, avx512::Avx512, avxvnni::AvxVnni};
use super::simd::{scalar::Scalar, Simd};

/// A kernel over a packed weight matrix and its prepared activations.
pub(crate) trait Kernel: Sync {
    /// Computes weight panel `panel` against activation rows `act..act + N` and stores the
    /// results through `out`. Each output element must see the same operations whatever `N`.
    ///
    /// # Safety
    /// The CPU must have `S`'s features; `panel` and the activation rows must exist.
    unsafe fn tile<S: Simd, const N: usize>(&self, panel: usize, act: usize, out: &Output);

    /// Computes `panels` for all `m` activation rows: every tile of `run_tiles` unless the kernel
    /// has a better order for its format.
    ///
    /// # Safety
    /// As `Simd::run`.
    #[inline(always)]
    unsafe fn run_panels<S: Simd>(&self, panels: std::ops::Range<usize>, m: usize, out: &Output)
    where
        Self: Sized,
    {
        // SAFETY: forwarded from the caller.
        unsafe { super::simd::run_tiles::<S, Self>(self, panels, m, out) }
    }
}

/// The output matrix, (m, rows) row-major; tasks write disjoint weight rows of it.
pub(crate) struct Output {
    ptr: *mut f32,
    rows: usize,
}

// SAFETY: tasks write disjoint elements (the rows of their own panels) and `drive` joins them
// all before the borrow of the output slice ends.
unsafe impl Sync for Output {}

impl Output {
    /// Stores lane values for activation row `act`, weight rows `first..` (those below `rows`).
    ///
    /// # Safety
    /// `act` must be below the output's `m`; the CPU must have `S`'s features.
    #[inline(always)]
    pub(crate) unsafe fn store<S: Simd>(&self, act: usize, first: usize, v: S::F) {
        if first >= self.rows {
            return;
        }
        // SAFETY: row `act` of the output holds `rows` values and `first < rows`.
        unsafe {
            let at = self.ptr.add(act * self.rows + first);
            if first + S::LANES <= self.rows {
                S::fstore(at, v);
            } else {
                let mut lanes = [0f32; 16];
                S::fstore(lanes.as_mut_ptr(), v);
                std::ptr::copy_nonoverlapping(lanes.as_ptr(), at, self.rows - first);
            }
        }
    }
}

/// How far ahead of the block being computed the weights are prefetched: about what DRAM
/// delivers to one core during a memory latency, so streaming a matrix never waits on a miss.
const PREFETCH_AHEAD: usize = 2048;

/// Whether the kernels prefetch at all: only on CPUs without AVX-512. Streaming a 1.7B-shaped
/// Q4_K/Q6_K head from DRAM on one core, a Zen 3 EPYC (AVX2) ran 15-60% faster with these
/// prefetches, while a Zen 4 EPYC (AVX-512), whose hardware prefetchers keep up alone, ran
/// 1.5-2x slower with them on either path (Q4_K 49152x2048, m=1: 2.1-2.4 ms against 4.1-5.9
/// ms); AVX-512 stands for the newer core here. Decided once per process.
fn prefetching() -> bool {
    static PREFETCHING: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PREFETCHING.get_or_init(|| !CpuPath::Avx512.available())
}

/// Asks for the `bytes` weight bytes `PREFETCH_AHEAD` past `block` (one block's worth ahead of
/// the kernel), so they arrive from memory while this block is computed, where that helps
/// (`prefetching`). A hint only: it changes no result and never faults.
#[inline(always)]
pub(crate) fn prefetch(block: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    if prefetching() {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let ahead = block.wrapping_add(PREFETCH_AHEAD);
        for line in (0..bytes).step_by(64) {
            // SAFETY: prefetching is a hint that never faults, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line).cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (block, bytes);
}

/// The least weight bytes a task of a few activation rows streams when the driver splits a
/// large matrix finer (1.7B files' decode on 2 threads: 16 tasks a thread instead of 8 gave
/// +3-12% in-process on F16, Q8_0 and Q4_K_M; 135M's small matrices keep 8, where 16 was 2%
/// slower).
const MIN_STREAM_BYTES: usize = 64 * 1024;

/// The most tasks one stolen job of a parallel loop over `tasks` small tasks should hold on
/// `threads` threads: a sixteenth of a thread's share, so that when one (virtual) core is
/// slowed the other waits little at the loop's end, with few hand-offs.
pub(crate) fn balanced_piece(tasks: usize, threads: usize) -> usize {
    tasks.div_ceil(threads.max(1) * 16).max(1)
}

/// Weight bytes a task should span: small enough to stay in a core's L2 cache while every
/// activation tile passes over them.
const TASK_BYTES: usize = 192 * 1024;

/// Runs `kernel` over the panels of `w` for `m` activation rows, into `out` (`m * rows`
/// values), on `pool` split over panels.
///
/// # Safety
/// The CPU must have the features of `w`'s path; the kernel must read `w`'s panels.
pub(crate) unsafe fn drive<K: Kernel>(
    pool: &rayon::ThreadPool,
    w: &PackedMatrix,
    kernel: &K,
    m: usize,
    out: &mut [f32],
) {
    let (path, panels, panel_bytes, rows) = (w.path, w.panels(), w.panel_bytes, w.rows());
    debug_assert_eq!(out.len(), m * rows);
    let out = Output {
        ptr: out.as_mut_ptr(),
        rows,
    };
    let threads = pool.current_num_threads();
    // About 8 tasks per thread for balance (16 for a large matrix at a few rows, where each
    // still streams `MIN_STREAM_BYTES` or more); fewer, larger ones when a task would not fill
    // the cache anyway; never more panels than fit the cache budget when activations are reused.
    let large = panels * panel_bytes >= threads * 16 * MIN_STREAM_BYTES;
    let per_thread = if m <= 4 && large { 16 } else { 8 };
    let by_balance = panels.div_ceil(threads * per_thread).max(1);
    let by_cache = (TASK_BYTES / panel_bytes.max(1)).max(1);
    let per_task = if m > 4 {
        by_balance.min(by_cache)
    } else {
        by_balance
    };
    let tasks = panels.div_ceil(per_task);
    let task = |t: usize| {
        let range = t * per_task..((t + 1) * per_task).min(panels);
        // SAFETY: forwarded from the caller; tasks cover disjoint panels.
        unsafe { run(path, kernel, range, m, &out) }
    };
    if threads <= 1 || tasks <= 1 {
        (0..tasks).for_each(task);
    } else {
        // One task per stolen job: rayon's default leaves pieces of several tasks, and when a
        // (virtual) core is slowed, the other then waits for the rest of a piece at the end of
        // every loop (measured: 0.4-1.2 s of 12 idle in a 1.7B F16 prefill on 2 threads).
        pool.install(|| (0..tasks).into_par_iter().with_max_len(1).for_each(task));
    }
}

/// One task on the back end of `path`.
///
/// # Safety
/// As `drive`.
unsafe fn run<K: Kernel>(
    path: CpuPath,
    kernel: &K,
    panels: std::ops::Range<usize>,
    m: usize,
    out: &Output,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match path {
            CpuPath::Scalar => Scalar::run(kernel, panels, m, out),
            #[cfg(target_arch = "x86_64")]
            CpuPath::Avx2 => Avx2::run(kernel, panels, m, out),
            #[cfg(target_arch = "x86_64")]
            CpuPath::AvxVnni => AvxVnni::run(kernel, panels, m, out),
            #[cfg(target_arch = "x86_64")]
            CpuPath::Avx512 => Avx512::run(kernel, panels, m, out),
            #[cfg(not(target_arch = "x86_64"))]
            _ => Scalar::run(kernel, panels, m, out),
        }
    }
}
