//! Floating-point operations counted per op as the ops run, on the thread that runs them: a
//! training step reads and resets its thread's count (the cloud and the device of a split run
//! each count their own work, even inside one test process).

use std::cell::Cell;

thread_local! {
    static FLOPS: Cell<u64> = const { Cell::new(0) };
}

/// Adds `count` operations to this thread's tally.
pub fn add(count: u64) {
    FLOPS.with(|f| f.set(f.get() + count));
}

/// This thread's tally since the last `take`, reset to zero.
pub fn take() -> u64 {
    FLOPS.with(|f| f.replace(0))
}

/// A product of `[rows, inner]` by `[inner, cols]`: one multiply and one add per term.
pub fn product(rows: usize, inner: usize, cols: usize) -> u64 {
    2 * (rows * inner * cols) as u64
}
