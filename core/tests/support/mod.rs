//! Test support shared by the integration tests: an allocation counter that proves a store does
//! not allocate after construction.
//!
//! A test binary opts in with
//! ```ignore
//! mod support;
//! #[global_allocator]
//! static ALLOC: support::CountingAllocator = support::CountingAllocator;
//! ```
//! and wraps the phase under test in [`count_allocations`]. Counting is per thread, so tests
//! running in parallel in the same binary do not disturb each other.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

/// A global allocator that forwards to the system allocator and counts, on the current thread,
/// the allocations (and reallocations) made while counting is on.
pub struct CountingAllocator;

fn record(bytes: usize) {
    // `try_with`: during thread teardown the thread-locals may be gone; then we just don't count.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            let _ = BYTES.try_with(|b| b.set(b.get() + bytes as u64));
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is upheld by `System`; the counting touches only const-initialised
// thread-locals, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: same layout the caller gave us, forwarded to `System`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: `ptr` was allocated by `System` with `layout` (all our allocations are).
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// What [`count_allocations`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocationCount {
    /// Number of `alloc`/`alloc_zeroed`/`realloc` calls.
    pub allocations: u64,
    /// Bytes requested by them.
    pub bytes: u64,
}

/// Runs `f` and returns what it allocated on this thread, with its result.
pub fn count_allocations<R>(f: impl FnOnce() -> R) -> (AllocationCount, R) {
    ALLOCATIONS.with(|n| n.set(0));
    BYTES.with(|b| b.set(0));
    COUNTING.with(|on| on.set(true));
    let result = f();
    COUNTING.with(|on| on.set(false));
    let count = AllocationCount {
        allocations: ALLOCATIONS.with(|n| n.get()),
        bytes: BYTES.with(|b| b.get()),
    };
    (count, result)
}
