//! The reader side of a view: one record per reader thread (its entry counts and its query
//! counters), the thread's index into those records, the barrier that orders a reader's entry
//! against the writer's flip, and [`Reads`], what a query records as it runs.
//!
//! # Why per-thread records and an asymmetric barrier
//! Measured on the 2-core build machine (`/work/shared/notes/crates-and-costs.md` and the view's
//! decision record in ARCHITECTURE.md): an atomic read-modify-write costs ~20 ns even
//! uncontended, a `SeqCst` fence ~17 ns, a plain store to a line the thread owns ~1 ns. A lookup
//! in a core store costs 15–60 ns, so a reader cannot afford shared counters (contended
//! read-modify-writes) nor even one fence. Each reader thread therefore owns a record (no other
//! thread writes it: plain loads and stores suffice), and the store→load ordering a reader needs
//! when it enters (announce, then check which copy is published) is supplied by the writer: after
//! flipping the published copy it issues `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, which
//! runs a full barrier on every thread of the process (~110 ns, once per publish). Where the
//! kernel refuses `membarrier`, readers fall back to a `SeqCst` fence of their own.
//!
//! Threads beyond [`OWNED_RECORDS`] share one extra record, updated with read-modify-writes.

use std::cell::Cell;
use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, compiler_fence, fence,
};
use std::sync::{Mutex, OnceLock};

use watchpost_core::{ErrorKind, StoreError};

/// Reader threads with a record of their own in every view; later threads share one.
pub(crate) const OWNED_RECORDS: usize = 64;
/// Index of the shared record.
pub(crate) const SHARED_RECORD: usize = OWNED_RECORDS;
/// Store-specific read counters a record keeps (e.g. the process store's ambiguous lookups).
pub const EXTRA_COUNTERS: usize = 2;

/// One reader thread's state in one view. Aligned to 128 bytes so that two threads' records
/// never share a cache line (nor an adjacent-line prefetch pair).
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct ReaderRecord {
    /// Reads in progress on copy 0 and copy 1 (nested reads count twice).
    pub entered: [AtomicU32; 2],
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub successes: AtomicU64,
    pub errors: AtomicU64,
    pub last_access: AtomicU64,
    pub extra: [AtomicU64; EXTRA_COUNTERS],
}

/// Adds one to a counter only its owner thread writes (`shared`: any thread may).
#[inline]
pub(crate) fn add(counter: &AtomicU64, shared: bool) {
    if shared {
        counter.fetch_add(1, Ordering::Relaxed);
    } else {
        let v = counter.load(Ordering::Relaxed);
        counter.store(v.saturating_add(1), Ordering::Relaxed);
    }
}

// ----- thread indexes ---------------------------------------------------------------------

/// Indexes handed back by threads that ended.
static FREE_INDEXES: Mutex<Vec<usize>> = Mutex::new(Vec::new());
/// Next never-used index.
static NEXT_INDEX: AtomicUsize = AtomicUsize::new(0);

/// How many owned records may be in use: the writer only scans these (plus the shared one).
pub(crate) fn records_in_use() -> usize {
    NEXT_INDEX.load(Ordering::Acquire).min(OWNED_RECORDS)
}

/// A thread's claim on a record index, returned when the thread ends.
struct ThreadIndex(usize);

impl ThreadIndex {
    fn claim() -> ThreadIndex {
        let reused = FREE_INDEXES.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let index = reused.unwrap_or_else(|| {
            let next = NEXT_INDEX.fetch_add(1, Ordering::AcqRel);
            if next >= OWNED_RECORDS {
                // Keep the counter bounded; late threads share.
                NEXT_INDEX.store(OWNED_RECORDS, Ordering::Release);
            }
            next.min(SHARED_RECORD)
        });
        ThreadIndex(index)
    }
}

impl Drop for ThreadIndex {
    fn drop(&mut self) {
        // Reads from later thread-local destructors must not use the record once another
        // thread may own it: they go to the shared one.
        let _ = CACHED_INDEX.try_with(|c| c.set(SHARED_RECORD));
        // A thread ends outside any read (a read never spans a suspension point), so its
        // records are at rest: the next owner continues their counters.
        if self.0 < OWNED_RECORDS {
            FREE_INDEXES
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(self.0);
        }
    }
}

thread_local! {
    static THREAD_INDEX: ThreadIndex = ThreadIndex::claim();
    /// Cached copy of the index (a `Cell` read is cheaper than the destructor-tracked key).
    static CACHED_INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's record index ([`SHARED_RECORD`] for threads past the owned ones, and while the
/// thread is being torn down).
#[inline]
pub(crate) fn thread_index() -> usize {
    let cached = CACHED_INDEX.with(Cell::get);
    if cached != usize::MAX {
        return cached;
    }
    let index = THREAD_INDEX.try_with(|i| i.0).unwrap_or(SHARED_RECORD);
    let _ = CACHED_INDEX.try_with(|c| c.set(index));
    index
}

// ----- barriers ---------------------------------------------------------------------------

/// Whether the writer's `membarrier` orders readers (readers then need only a compiler fence).
pub(crate) fn asymmetric_barrier() -> bool {
    static MODE: OnceLock<bool> = OnceLock::new();
    *MODE.get_or_init(|| {
        use rustix::thread::{MembarrierCommand, membarrier, membarrier_query};
        let supported = membarrier_query().contains_command(MembarrierCommand::PrivateExpedited);
        let ok = supported
            && membarrier(MembarrierCommand::RegisterPrivateExpedited).is_ok()
            && membarrier(MembarrierCommand::PrivateExpedited).is_ok();
        if !ok {
            tracing::info!(
                "membarrier(PRIVATE_EXPEDITED) unavailable: read views use a fence per read"
            );
        }
        ok
    })
}

/// The reader's half: orders its entry announcement before its check of the published copy.
#[inline]
pub(crate) fn reader_barrier(asymmetric: bool) {
    if asymmetric {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The writer's half: after a flip, every reader either sees the new copy or is seen entered.
pub(crate) fn writer_barrier(asymmetric: bool) {
    if asymmetric {
        use rustix::thread::{MembarrierCommand, membarrier};
        // Registered and tried once in `asymmetric_barrier`; it cannot fail afterwards, but a
        // failure must not leave readers unordered: fall back to waiting out the scheduler.
        if membarrier(MembarrierCommand::PrivateExpedited).is_err() {
            tracing::error!("membarrier failed after succeeding once; yielding instead");
            fence(Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    } else {
        fence(Ordering::SeqCst);
    }
}

// ----- what a query records ---------------------------------------------------------------

/// What one query records while it reads a view: its outcome (the store's metrics rule: a found
/// entity is a hit, `NotFound` a miss, other errors an error, a request that is not a lookup a
/// success), store-specific counters, and which records it read (for recency).
pub struct Reads<'a> {
    pub(crate) record: &'a ReaderRecord,
    pub(crate) shared: bool,
    pub(crate) marks: &'a [AtomicU64],
    pub(crate) marked: &'a AtomicBool,
    pub(crate) now: watchpost_core::EpochNanos,
}

impl Reads<'_> {
    /// The time this query runs at (a coarse clock: a few ms of resolution).
    pub fn now(&self) -> watchpost_core::EpochNanos {
        self.now
    }

    fn touch(&self) {
        let last = &self.record.last_access;
        if self.shared {
            last.fetch_max(self.now, Ordering::Relaxed);
        } else if self.now > last.load(Ordering::Relaxed) {
            last.store(self.now, Ordering::Relaxed);
        }
    }

    /// A lookup found its entity.
    pub fn hit(&mut self) {
        add(&self.record.hits, self.shared);
        add(&self.record.successes, self.shared);
        self.touch();
    }

    /// A lookup answered `NotFound`.
    pub fn miss(&mut self) {
        add(&self.record.misses, self.shared);
        add(&self.record.successes, self.shared);
        self.touch();
    }

    /// A lookup found its entity or not.
    pub fn lookup(&mut self, found: bool) {
        if found { self.hit() } else { self.miss() }
    }

    /// A request that is not a lookup succeeded (a list).
    pub fn success(&mut self) {
        add(&self.record.successes, self.shared);
        self.touch();
    }

    /// A request failed (invalid argument, ...).
    pub fn error(&mut self) {
        add(&self.record.errors, self.shared);
        self.touch();
    }

    /// Counts a lookup's answer by the rule: found, `NotFound`, or another error.
    pub fn count<T>(&mut self, answer: &Result<T, StoreError>) {
        match answer {
            Ok(_) => self.hit(),
            Err(e) if e.is(ErrorKind::NotFound) => self.miss(),
            Err(_) => self.error(),
        }
    }

    /// Adds one to store-specific counter `which` (< [`EXTRA_COUNTERS`]).
    pub fn extra(&mut self, which: usize) {
        if let Some(c) = self.record.extra.get(which) {
            add(c, self.shared);
        }
    }

    /// Records that the query read the record in `slot`, whose identity is `id` (the store's
    /// owner refreshes its recency at its next write if the slot still holds `id`). Ignored by
    /// stores without recency.
    pub fn mark(&mut self, slot: u32, id: u32) {
        let Some(mark) = self.marks.get(slot as usize) else {
            return;
        };
        mark.store(encode_mark(self.now, id), Ordering::Relaxed);
        if !self.marked.load(Ordering::Relaxed) {
            self.marked.store(true, Ordering::Release);
        }
    }
}

/// A recency mark: access time in ms (the low 32 bits; never 0) and the record's identity.
pub(crate) fn encode_mark(now: watchpost_core::EpochNanos, id: u32) -> u64 {
    let tick = ((now / 1_000_000) as u32) | 1;
    (u64::from(tick) << 32) | u64::from(id)
}

/// `(tick, id)` of a mark.
pub(crate) fn decode_mark(mark: u64) -> (u32, u32) {
    ((mark >> 32) as u32, mark as u32)
}
