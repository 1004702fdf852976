//! The published read view of a store: two copies, one published to readers, one the store's
//! actor writes; readers never wait, never see half a batch, and never take a lock.
//!
//! # The scheme (left-right)
//! A [`ViewCell`] holds two copies of the store ("sides") and the number of the published one.
//! A reader announces itself on the published side in its own [`readers::ReaderRecord`], checks
//! that the side is still the published one (else it retries on the other), reads, and
//! un-announces. The writer (the store's actor, holding [`ViewCell::writer`]) applies a batch of
//! updates to the unpublished side, publishes it (one atomic store plus the writer's barrier),
//! waits until the readers still on the old side have left (they were mid-lookup: nanoseconds),
//! then applies the same batch to the old side, which becomes the next unpublished one. Every
//! update is therefore applied twice, deterministically (same input, same `now`), and the two
//! copies stay equal. Memory is two copies of the store, reserved when the store is built.
//!
//! What a reader sees is always a whole published state: never half a batch (the batch went
//! to the side no reader could enter), never a torn record. A store actor that panics mid-batch
//! panics while writing the unpublished side; readers keep the published one until the rebuilt
//! store is installed (installing is a publish like any other).
//!
//! The choice against a reader-writer lock, with its measurements, is in ARCHITECTURE.md
//! ("Read path").

pub(crate) mod readers;

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use watchpost_core::DataStoreMetrics;

pub use readers::{EXTRA_COUNTERS, Reads};

use readers::{
    OWNED_RECORDS, ReaderRecord, SHARED_RECORD, asymmetric_barrier, decode_mark, reader_barrier,
    records_in_use, thread_index, writer_barrier,
};

/// What a view holds in memory (see [`ViewCell::bytes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ViewBytes {
    /// Both copies of the store: twice what the store reserves.
    pub copies: usize,
    /// Recency marks of both copies (8 bytes per record slot, for stores with recency).
    pub marks: usize,
    /// The reader records (one 128-byte line per reader thread, 65 of them).
    pub readers: usize,
}

impl ViewBytes {
    /// Everything.
    pub fn total(&self) -> usize {
        self.copies + self.marks + self.readers
    }

    /// What the view of a store whose one copy is `store` holds once the store is installed
    /// (registered or rebuilt): two copies (the second a clone), their recency marks, the reader
    /// records. For memory ledgers that record a store as its factory builds it, before the view
    /// holds it. (A store whose copies share a table behind an `Arc` holds less.)
    pub fn of<P: crate::protocol::Protocol, B: crate::protocol::StoreBackend<P> + ?Sized>(
        store: &B,
    ) -> ViewBytes {
        ViewBytes {
            copies: store.bytes_reserved().saturating_mul(2),
            marks: store
                .read_mark_slots()
                .saturating_mul(2 * std::mem::size_of::<AtomicU64>()),
            readers: (OWNED_RECORDS + 1) * std::mem::size_of::<ReaderRecord>(),
        }
    }
}

/// One copy of a store with the recency marks its readers leave.
pub(crate) struct Side<T: ?Sized> {
    pub store: Box<T>,
    /// One mark per record slot of stores with recency (empty otherwise); see [`Reads::mark`].
    marks: Box<[AtomicU64]>,
    /// Set by a reader that marked something since the writer last gathered.
    marked: AtomicBool,
}

impl<T: ?Sized> Side<T> {
    /// `store` with `mark_slots` recency marks.
    pub fn new(store: Box<T>, mark_slots: usize) -> Self {
        Side {
            store,
            marks: (0..mark_slots).map(|_| AtomicU64::new(0)).collect(),
            marked: AtomicBool::new(false),
        }
    }

    /// Bytes of the marks (the view's own memory beyond the store).
    pub fn mark_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.marks)
    }

    /// Moves this side's marks into `out` as `(tick, slot, id)` and clears them (a mark a reader
    /// rewrites meanwhile stays for the next gathering).
    pub fn gather_marks(&self, out: &mut Vec<(u32, u32, u32)>) {
        if !self.marked.swap(false, Ordering::Acquire) {
            return;
        }
        for (slot, mark) in self.marks.iter().enumerate() {
            let value = mark.load(Ordering::Relaxed);
            if value == 0 || out.len() == out.capacity() {
                continue;
            }
            let (tick, id) = decode_mark(value);
            out.push((tick, slot as u32, id));
            let _ = mark.compare_exchange(value, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

/// A store's two copies, the number of the published one, and its readers' records.
pub(crate) struct ViewCell<T: ?Sized> {
    /// The published side (0 or 1).
    current: AtomicUsize,
    sides: [UnsafeCell<Option<Side<T>>>; 2],
    /// [`OWNED_RECORDS`] records owned by one thread each, then the shared one.
    readers: Box<[ReaderRecord]>,
    /// Held by whoever writes sides: the store's actor, the registry installing or removing.
    writer: Mutex<()>,
    asymmetric: bool,
    /// Publishes so far.
    publishes: AtomicU64,
    /// Times the writer found a reader still on the copy it needed and waited.
    writer_waits: AtomicU64,
    /// Times the old copy could not catch up right after a publish (a reader was on it).
    deferred_catch_ups: AtomicU64,
}

/// What a view's writer did (see [`ViewCell::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ViewStats {
    /// Copies published (two per install, one per write message).
    pub publishes: u64,
    /// Times the writer waited for a reader still on the copy it was about to write (readers
    /// finishing a lookup; never a reader waiting for the writer).
    pub writer_waits: u64,
    /// Times the copy that was published before could not catch up right after a publish
    /// because a reader was still on it (it caught up at the next write instead).
    pub deferred_catch_ups: u64,
}

// SAFETY: the sides are only written through a `ViewWriter` (one at a time: `writer` mutex),
// and only the unpublished side once no reader is on it (`ViewWriter::back`); readers only take
// shared references to the published side while announced on it. `T: Send + Sync` because the
// copies move between the writer's and the readers' threads and are shared by readers.
unsafe impl<T: ?Sized + Send + Sync> Sync for ViewCell<T> {}
// SAFETY: owning the cell owns the copies, which are `Send`.
unsafe impl<T: ?Sized + Send> Send for ViewCell<T> {}

impl<T: ?Sized> Default for ViewCell<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// A reader's announcement on one side; leaving it (even by unwinding) un-announces.
struct Entered<'a> {
    record: &'a ReaderRecord,
    side: usize,
    shared: bool,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        let Some(count) = self.record.entered.get(self.side) else {
            return;
        };
        // Release: everything this reader read happens before the writer sees it gone.
        if self.shared {
            count.fetch_sub(1, Ordering::Release);
        } else {
            let v = count.load(Ordering::Relaxed);
            count.store(v.saturating_sub(1), Ordering::Release);
        }
    }
}

impl<T: ?Sized> ViewCell<T> {
    /// An empty view: nothing published (reads answer `None`) until a writer installs copies.
    pub fn new() -> Self {
        ViewCell {
            current: AtomicUsize::new(0),
            sides: [UnsafeCell::new(None), UnsafeCell::new(None)],
            readers: (0..=OWNED_RECORDS)
                .map(|_| ReaderRecord::default())
                .collect(),
            writer: Mutex::new(()),
            asymmetric: asymmetric_barrier(),
            publishes: AtomicU64::new(0),
            writer_waits: AtomicU64::new(0),
            deferred_catch_ups: AtomicU64::new(0),
        }
    }

    fn enter(&self) -> Entered<'_> {
        let index = thread_index();
        let shared = index >= OWNED_RECORDS;
        let record = &self.readers[index.min(SHARED_RECORD)];
        loop {
            let side = self.current.load(Ordering::Relaxed) & 1;
            let count = &record.entered[side];
            if shared {
                count.fetch_add(1, Ordering::SeqCst);
            } else {
                let v = count.load(Ordering::Relaxed);
                count.store(v.wrapping_add(1), Ordering::Relaxed);
                reader_barrier(self.asymmetric);
            }
            let entered = Entered {
                record,
                side,
                shared,
            };
            // Acquire: pairs with the writer's publish, so the side's contents are visible.
            if self.current.load(Ordering::Acquire) == side {
                return entered;
            }
            drop(entered);
        }
    }

    /// Runs `f` on the published copy, recording into this thread's counters; `None` if nothing
    /// is published. Never waits: the writer never holds the published copy. `f` must be
    /// short (it delays the writer's next publish, never another reader).
    pub fn read<R>(&self, f: impl FnOnce(&T, &mut Reads<'_>) -> R) -> Option<R> {
        let entered = self.enter();
        // SAFETY: this reader is announced on `entered.side`, which it checked was the published
        // side after announcing; the writer writes a side only while it is unpublished and no
        // reader is announced on it (`ViewWriter::back`), so the side is not written while this
        // shared reference lives (it ends before `entered` is dropped).
        let side = unsafe { (*self.sides[entered.side].get()).as_ref() }?;
        let mut reads = Reads {
            record: entered.record,
            shared: entered.shared,
            marks: &side.marks,
            marked: &side.marked,
            now: crate::clock::coarse_now(),
        };
        Some(f(&side.store, &mut reads))
    }

    /// The reads counted so far by every reader of this view (all stores it ever held):
    /// success/error/hit/miss and last access, plus the store-specific counters.
    pub fn read_counts(&self) -> (DataStoreMetrics, [u64; EXTRA_COUNTERS]) {
        let mut m = DataStoreMetrics::default();
        let mut extra = [0u64; EXTRA_COUNTERS];
        for r in self.readers.iter() {
            let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
            m.success_count = m.success_count.saturating_add(load(&r.successes));
            m.error_count = m.error_count.saturating_add(load(&r.errors));
            m.cache_hits = m.cache_hits.saturating_add(load(&r.hits));
            m.cache_misses = m.cache_misses.saturating_add(load(&r.misses));
            m.last_access = m.last_access.max(load(&r.last_access));
            for (sum, c) in extra.iter_mut().zip(r.extra.iter()) {
                *sum = sum.saturating_add(load(c));
            }
        }
        (m, extra)
    }

    /// Bytes the view holds: both copies (`store_bytes` of each store, plus its recency marks)
    /// and the reader records. Waits for the writer's current message.
    pub fn bytes(&self, store_bytes: impl Fn(&T) -> usize) -> ViewBytes {
        let mut w = self.writer();
        let mut bytes = ViewBytes {
            copies: 0,
            marks: 0,
            readers: std::mem::size_of_val(&*self.readers),
        };
        let mut add = |side: Option<&Side<T>>| {
            if let Some(side) = side {
                bytes.copies += store_bytes(&side.store);
                bytes.marks += side.mark_bytes();
            }
        };
        add(w.published());
        add(w.back().as_ref());
        bytes
    }

    /// What the writer did so far.
    pub fn stats(&self) -> ViewStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ViewStats {
            publishes: load(&self.publishes),
            writer_waits: load(&self.writer_waits),
            deferred_catch_ups: load(&self.deferred_catch_ups),
        }
    }

    /// Exclusive write access to the sides (waits for another writer, never for readers).
    pub fn writer(&self) -> ViewWriter<'_, T> {
        ViewWriter {
            cell: self,
            _lock: self.writer.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// The one writer of a [`ViewCell`].
pub(crate) struct ViewWriter<'a, T: ?Sized> {
    cell: &'a ViewCell<T>,
    _lock: MutexGuard<'a, ()>,
}

impl<T: ?Sized> ViewWriter<'_, T> {
    fn current(&self) -> usize {
        self.cell.current.load(Ordering::Relaxed) & 1
    }

    /// The published side (readers read it too; the writer only reads it).
    pub fn published(&self) -> Option<&Side<T>> {
        // SAFETY: only this writer (holding the lock) writes sides, and it never writes the
        // published one; the shared reference borrows `self`, so no `back`/`publish` call (both
        // take `&mut self`) can happen while it lives.
        unsafe { (*self.cell.sides[self.current()].get()).as_ref() }
    }

    /// The unpublished side, for writing: waits until no reader is left on it (readers that
    /// entered it before the last publish and are finishing their lookup).
    pub fn back(&mut self) -> &mut Option<Side<T>> {
        let back = 1 - self.current();
        self.wait_idle(back);
        // SAFETY: `back` is not the published side, so no new reader can settle on it (a reader
        // announcing there re-checks the published side and leaves, see `ViewCell::enter`), and
        // `wait_idle` saw every earlier reader gone (the barrier in `publish` makes their
        // announcements visible); this writer holds the lock and `&mut self`, so it is the
        // only reference.
        unsafe { &mut *self.cell.sides[back].get() }
    }

    /// The unpublished side for writing (waiting as [`Self::back`] does) and the published one
    /// for reading, together: to copy one into the other.
    pub fn back_and_published(&mut self) -> (&mut Option<Side<T>>, Option<&Side<T>>) {
        let current = self.current();
        let back = 1 - current;
        self.wait_idle(back);
        // SAFETY: as in `back` for the unpublished side; the published side is only read (as in
        // `published`), and the two are different cells.
        unsafe {
            (
                &mut *self.cell.sides[back].get(),
                (*self.cell.sides[current].get()).as_ref(),
            )
        }
    }

    /// The unpublished side if no reader is on it right now (no waiting).
    pub fn try_back(&mut self) -> Option<&mut Option<Side<T>>> {
        let back = 1 - self.current();
        if self.busy(back) {
            self.cell.deferred_catch_ups.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // SAFETY: as in `back`: unpublished, and no reader announced on it.
        Some(unsafe { &mut *self.cell.sides[back].get() })
    }

    /// Publishes the unpublished side: from now on readers enter it.
    pub fn publish(&mut self) {
        let back = 1 - self.current();
        self.cell.current.store(back, Ordering::Release);
        writer_barrier(self.cell.asymmetric);
        self.cell.publishes.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits until no reader is announced on `side`. Readers hold a side for one lookup, so
    /// this spins briefly; a reader thread preempted mid-lookup is waited for with yields, then
    /// short sleeps.
    fn busy(&self, side: usize) -> bool {
        let in_use = records_in_use();
        self.cell.readers[..in_use]
            .iter()
            .chain(std::iter::once(&self.cell.readers[SHARED_RECORD]))
            .any(|r| r.entered[side].load(Ordering::Acquire) != 0)
    }

    fn wait_idle(&self, side: usize) {
        if !self.busy(side) {
            return;
        }
        self.cell.writer_waits.fetch_add(1, Ordering::Relaxed);
        let mut round = 0u32;
        while self.busy(side) {
            round = round.saturating_add(1);
            if round < 64 {
                std::hint::spin_loop();
            } else if round < 256 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }
}

#[cfg(test)]
mod tests;
