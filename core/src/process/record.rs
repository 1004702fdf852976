//! What a snapshot keeps of one process: every field that restoring needs to answer the same
//! queries and evict in the same order, as plain serialisable data (no slot numbers, no
//! pointers, no handles).
//!
//! The one place to add a field that must survive a restart: add it here, fill it in
//! `ProcessTable`'s export and read it in its restore (`process/table/snapshot.rs`).

use crate::process::{Comm, ExeFlags, ProcessKey};
use crate::time::EpochNanos;

/// One process as a snapshot holds it. Produced by `ProcessTable::records` and
/// `ProcessTable::export_chunk`, consumed by `ProcessTable::restore`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ProcessRecord<'a> {
    /// Process ID.
    pub pid: u32,
    /// Canonical start time, epoch ns (with `pid`, the exact key).
    pub start_time: EpochNanos,
    /// Parent pid (0: none).
    pub ppid: u32,
    /// The parent's canonical start time.
    pub parent_start_time: EpochNanos,
    /// Real user ID.
    pub uid: u32,
    /// Real group ID.
    pub gid: u32,
    /// Name.
    pub comm: Comm,
    /// Path of the executed file, if known.
    #[cfg_attr(feature = "serde", serde(borrow))]
    pub exe_path: Option<&'a str>,
    /// The path as given to execve, if known.
    #[cfg_attr(feature = "serde", serde(borrow))]
    pub invoked_path: Option<&'a str>,
    /// Deleted, memfd, truncated, unresolved.
    pub exe_flags: ExeFlags,
    /// Exit time, epoch ns; 0 while running.
    pub exit_time: EpochNanos,
    /// The process exited while the daemon was not watching: `exit_time` is when a
    /// reconciliation noticed, not when it happened.
    pub exit_time_unknown: bool,
    /// For an exited process: when it became free to go (its grace counts from here).
    pub release_time: EpochNanos,
    /// Whether the parent came from a fork event (else from a `/proc` scan, which a later fork
    /// may correct).
    pub parent_from_fork: bool,
    /// Recency stamp: among running processes, the smaller is evicted first.
    pub recency: u64,
    /// Link stamp: among the children of one parent, the larger is listed first.
    pub linked: u64,
}

impl ProcessRecord<'_> {
    /// The exact key.
    pub const fn key(&self) -> ProcessKey {
        ProcessKey::new(self.pid, self.start_time)
    }

    /// The parent's exact key.
    pub const fn parent_key(&self) -> ProcessKey {
        ProcessKey::new(self.ppid, self.parent_start_time)
    }

    /// Whether it still ran when recorded.
    pub const fn is_live(&self) -> bool {
        self.exit_time == 0
    }

    /// The order to feed records to `ProcessTable::restore` in so that, when they do not all
    /// fit, the table's own eviction rule drops the same ones it would have dropped first:
    /// exited processes by the time they became free to go, then running ones least recently
    /// used first. (Under capacity the order does not matter: restore puts every list back by
    /// its stamps.)
    pub const fn restore_order(&self) -> (bool, u64, EpochNanos, u32) {
        if self.is_live() {
            (true, self.recency, self.start_time, self.pid)
        } else {
            (false, self.release_time, self.start_time, self.pid)
        }
    }
}
