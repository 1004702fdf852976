//! What queries hand out: borrowed views of process records, iterators over children and
//! ancestry, and (with `alloc`) an owned copy for callers that must keep the answer.
//!
//! Views borrow the table, so a query allocates nothing; [`ProcessView::to_info`] copies into
//! the caller's own `String`s when the answer must outlive the borrow (e.g. to cross an actor
//! boundary).

use alloc::string::String;

use crate::entity_id::EntityId;
use crate::intern_arena::InternArena;
use crate::process::child_lists::Siblings;
use crate::process::table::{NO_SLOT, Record};
use crate::process::{Comm, ExeFlags, ProcessKey};
use crate::time::EpochNanos;

/// The record slab and the path arena, which every view needs together.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Records<'a> {
    records: &'a [Record],
    exe_paths: &'a InternArena,
}

impl<'a> Records<'a> {
    pub(crate) fn new(records: &'a [Record], exe_paths: &'a InternArena) -> Self {
        Records { records, exe_paths }
    }

    fn get(&self, slot: u32) -> Option<&'a Record> {
        self.records.get(slot as usize).filter(|r| r.occupied)
    }

    fn view(&self, slot: u32) -> Option<ProcessView<'a>> {
        Some(ProcessView::new(self.get(slot)?, slot, self.exe_paths))
    }
}

/// One process, borrowed from the table.
#[derive(Clone, Copy)]
pub struct ProcessView<'a> {
    record: &'a Record,
    slot: u32,
    exe_paths: &'a InternArena,
}

impl<'a> ProcessView<'a> {
    pub(crate) fn new(record: &'a Record, slot: u32, exe_paths: &'a InternArena) -> Self {
        ProcessView {
            record,
            slot,
            exe_paths,
        }
    }

    /// Where the record sits in the table: with [`ProcessView::entity_id`], what a reader of a
    /// shared copy records so that the table's owner can refresh the process's recency later
    /// ([`crate::process::ProcessTable::refresh_recency`]).
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// Entity ID (the reference's primary key).
    pub fn entity_id(&self) -> EntityId {
        self.record.entity_id
    }

    /// The exact key: pid and canonical start time.
    pub fn key(&self) -> ProcessKey {
        self.record.key()
    }

    /// Process ID.
    pub fn pid(&self) -> u32 {
        self.record.pid
    }

    /// Parent process ID (as recorded at fork; a scan's if no fork was seen).
    pub fn ppid(&self) -> u32 {
        self.record.ppid
    }

    /// The parent's exact key.
    pub fn parent_key(&self) -> ProcessKey {
        self.record.parent_key()
    }

    /// Name (`comm`), at most 16 bytes.
    pub fn name(&self) -> &'a str {
        self.record.comm.as_str()
    }

    /// Name as the fixed-size [`Comm`].
    pub fn comm(&self) -> Comm {
        self.record.comm
    }

    /// Path of the executed file, `None` if unknown (never reported, or the path arena was
    /// full).
    pub fn exe_path(&self) -> Option<&'a str> {
        self.record.exe.path.and_then(|h| self.exe_paths.get(h))
    }

    /// The path as given to execve, `None` if unknown (a `/proc` scan cannot tell it).
    pub fn invoked_path(&self) -> Option<&'a str> {
        self.record.exe.invoked.and_then(|h| self.exe_paths.get(h))
    }

    /// Deleted, memfd, truncated, unresolved.
    pub fn exe_flags(&self) -> ExeFlags {
        self.record.exe.flags
    }

    /// Canonical start time, epoch ns.
    pub fn start_time(&self) -> EpochNanos {
        self.record.start_time
    }

    /// Real user ID (from the latest fork, exec or scan).
    pub fn uid(&self) -> u32 {
        self.record.uid
    }

    /// Real group ID.
    pub fn gid(&self) -> u32 {
        self.record.gid
    }

    /// When the process exited; `None` while it runs.
    pub fn exit_time(&self) -> Option<EpochNanos> {
        (self.record.exit_time != 0).then_some(self.record.exit_time)
    }

    /// Whether the process exited while the daemon was not watching (found gone when a
    /// restored table was reconciled with `/proc`): its exit time is when that was noticed.
    pub fn exit_time_unknown(&self) -> bool {
        self.record.exit_unknown
    }

    /// Whether the process is still running.
    pub fn is_alive(&self) -> bool {
        self.record.is_live()
    }

    /// An owned copy (allocates the name and path strings in the caller's result).
    pub fn to_info(&self) -> ProcessInfo {
        ProcessInfo {
            entity_id: self.entity_id(),
            pid: self.pid(),
            ppid: self.ppid(),
            name: String::from(self.name()),
            exe: String::from(self.exe_path().unwrap_or("")),
            invoked_path: String::from(self.invoked_path().unwrap_or("")),
            exe_flags: self.exe_flags(),
            start_time: self.start_time(),
            uid: self.uid(),
            gid: self.gid(),
            exit_time: self.exit_time(),
            exit_time_unknown: self.exit_time_unknown(),
        }
    }
}

impl core::fmt::Debug for ProcessView<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ProcessView")
            .field("entity_id", &self.entity_id())
            .field("pid", &self.pid())
            .field("ppid", &self.ppid())
            .field("name", &self.name())
            .field("exe", &self.exe_path())
            .field("invoked", &self.invoked_path())
            .field("exe_flags", &self.exe_flags())
            .field("start_time", &self.start_time())
            .field("uid", &self.uid())
            .field("gid", &self.gid())
            .field("exit_time", &self.exit_time())
            .field("exit_time_unknown", &self.exit_time_unknown())
            .finish()
    }
}

/// An owned process record: the reference's `ProcessInfo`, plus the exit time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ProcessInfo {
    /// Entity ID.
    pub entity_id: EntityId,
    /// Process ID.
    pub pid: u32,
    /// Parent process ID.
    pub ppid: u32,
    /// Name (`comm`), at most 16 bytes.
    pub name: String,
    /// Path of the executed file; empty if unknown.
    pub exe: String,
    /// The path as given to execve; empty if unknown.
    pub invoked_path: String,
    /// Deleted, memfd, truncated, unresolved.
    pub exe_flags: ExeFlags,
    /// Canonical start time, epoch ns.
    pub start_time: EpochNanos,
    /// Real user ID.
    pub uid: u32,
    /// Real group ID.
    pub gid: u32,
    /// Exit time; `None` while running.
    pub exit_time: Option<EpochNanos>,
    /// The process exited while the daemon was down; `exit_time` is when that was noticed.
    pub exit_time_unknown: bool,
}

/// The children of one process; see [`crate::process::ProcessTable::children`].
#[derive(Debug, Clone)]
pub struct Children<'a> {
    records: Records<'a>,
    /// The parent's children list (empty for an unknown parent).
    slots: Siblings<'a>,
    /// For read-only queries, which cannot purge: hide children whose grace ended by `now`
    /// (`(now, grace)`), as if purged.
    hide_expired: Option<(EpochNanos, u64)>,
}

impl<'a> Children<'a> {
    pub(crate) fn new(records: Records<'a>, slots: Siblings<'a>) -> Self {
        Children {
            records,
            slots,
            hide_expired: None,
        }
    }

    /// The same walk, hiding records whose grace ended by `now`.
    pub(crate) fn hiding_expired(mut self, now: EpochNanos, grace: u64) -> Self {
        self.hide_expired = Some((now, grace));
        self
    }

    pub(crate) fn empty(records: Records<'a>) -> Self {
        Self::new(records, Siblings::empty())
    }
}

impl<'a> Iterator for Children<'a> {
    type Item = ProcessView<'a>;

    fn next(&mut self) -> Option<ProcessView<'a>> {
        // Every listed slot is occupied (the table unlinks a record before freeing it).
        let hide = self.hide_expired;
        let records = self.records;
        self.slots.find_map(|slot| {
            let view = records.view(slot)?;
            match hide {
                Some((now, grace)) if view.record.expired(now, grace) => None,
                _ => Some(view),
            }
        })
    }
}

/// A process and its ancestors, nearest first; see [`crate::process::ProcessTable::ancestry`].
#[derive(Debug, Clone)]
pub struct Ancestry<'a> {
    records: Records<'a>,
    next: u32,
    /// Entries still to yield; the walk was measured (cycles cut) when the query ran.
    remaining: usize,
}

impl<'a> Ancestry<'a> {
    pub(crate) fn new(records: Records<'a>, start: u32, length: usize) -> Self {
        Ancestry {
            records,
            next: start,
            remaining: length,
        }
    }

    pub(crate) fn empty(records: Records<'a>) -> Self {
        Self::new(records, NO_SLOT, 0)
    }
}

impl<'a> Iterator for Ancestry<'a> {
    type Item = ProcessView<'a>;

    fn next(&mut self) -> Option<ProcessView<'a>> {
        if self.remaining == 0 {
            return None;
        }
        let slot = self.next;
        let record = self.records.get(slot)?;
        self.remaining -= 1;
        self.next = record.parent_slot;
        Some(ProcessView::new(record, slot, self.records.exe_paths))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Ancestry<'_> {}
