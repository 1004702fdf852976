//! Exec and exit events that arrived before the fork (or scan record) of their process.
//!
//! Ring buffers from different CPUs are read out of order, so a child's exec can be decoded
//! before its fork. Rather than drop it, the table parks it here under the exact key and applies
//! it when the process appears. The buffer is small and fixed; lookups are a linear scan, which
//! is cheaper than an index at this size and costs nothing while the buffer is empty (the usual
//! case).

use crate::intern_arena::StrHandle;
use crate::process::{Comm, ExeFlags, ProcessKey};
use crate::reserved_vec::ReservedVec;
use crate::time::EpochNanos;

/// A process's executable as the table holds it: the resolved path and the path as invoked
/// (each one arena reference, owned by whoever holds the `ExeRef`), and the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExeRef {
    pub(crate) path: Option<StrHandle>,
    pub(crate) invoked: Option<StrHandle>,
    pub(crate) flags: ExeFlags,
}

impl ExeRef {
    pub(crate) const NONE: ExeRef = ExeRef {
        path: None,
        invoked: None,
        flags: ExeFlags::NONE,
    };

    /// The arena references held.
    pub(crate) fn handles(&self) -> impl Iterator<Item = StrHandle> {
        self.path.into_iter().chain(self.invoked)
    }
}

/// The parts of an exec event the table keeps while waiting.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingExec {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) comm: Comm,
    /// Owned by this entry.
    pub(crate) exe: ExeRef,
}

/// Everything that arrived early for one process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingEntry {
    pub(crate) key: ProcessKey,
    /// When the first early event arrived (expiry counts from here).
    pub(crate) received_at: EpochNanos,
    /// The latest early exec, if any.
    pub(crate) exec: Option<PendingExec>,
    /// The early exit's time; 0 if none.
    pub(crate) exit_time: EpochNanos,
}

impl PendingEntry {
    pub(crate) fn is_expired(&self, now: EpochNanos, ttl: u64) -> bool {
        self.received_at.saturating_add(ttl) <= now
    }

    /// The arena references this entry owns, to be released when it goes.
    pub(crate) fn exe(&self) -> ExeRef {
        self.exec.map_or(ExeRef::NONE, |e| e.exe)
    }
}

/// Fixed-capacity list of pending entries, at most one per key.
#[derive(Debug, Clone)]
pub(crate) struct PendingBuffer {
    /// Invariant: `entries.len() <= capacity` and the vector never reallocates (its capacity was
    /// reserved at construction); keys are unique.
    entries: ReservedVec<PendingEntry>,
    capacity: usize,
}

impl PendingBuffer {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        PendingBuffer {
            entries: ReservedVec::with_capacity(capacity),
            capacity,
        }
    }

    pub(crate) fn copy_from(&mut self, other: &PendingBuffer) -> bool {
        let PendingBuffer { entries, capacity } = other;
        if self.capacity != *capacity {
            return false;
        }
        self.entries.copy_from(entries)
    }

    pub(crate) fn bytes_reserved(&self) -> usize {
        self.entries.capacity() * core::mem::size_of::<PendingEntry>()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() >= self.capacity
    }

    /// Removes and returns the entry for `key`.
    pub(crate) fn take(&mut self, key: ProcessKey) -> Option<PendingEntry> {
        if self.entries.is_empty() {
            return None;
        }
        let at = self.entries.iter().position(|e| e.key == key)?;
        Some(self.entries.swap_remove(at))
    }

    /// The entry for `key`, if any.
    pub(crate) fn get_mut(&mut self, key: ProcessKey) -> Option<&mut PendingEntry> {
        self.entries.iter_mut().find(|e| e.key == key)
    }

    /// Adds a fresh entry; hands it back if the buffer is full.
    pub(crate) fn push(&mut self, entry: PendingEntry) -> Result<&mut PendingEntry, PendingEntry> {
        if self.is_full() {
            return Err(entry);
        }
        self.entries.push(entry);
        self.entries.last_mut().ok_or(entry)
    }

    /// Removes and returns one expired entry, if any.
    pub(crate) fn take_expired(&mut self, now: EpochNanos, ttl: u64) -> Option<PendingEntry> {
        let at = self.entries.iter().position(|e| e.is_expired(now, ttl))?;
        Some(self.entries.swap_remove(at))
    }

    /// Removes and returns the entry that arrived first (ties: the smaller key).
    pub(crate) fn take_oldest(&mut self) -> Option<PendingEntry> {
        let at = self
            .entries
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| (e.received_at, e.key))
            .map(|(at, _)| at)?;
        Some(self.entries.swap_remove(at))
    }

    /// Removes every entry, handing each to `dropped`.
    pub(crate) fn drain(&mut self, mut dropped: impl FnMut(PendingEntry)) {
        while let Some(entry) = self.entries.pop() {
            dropped(entry);
        }
    }
}
