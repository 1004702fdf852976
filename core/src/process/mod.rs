//! The process tree: who runs, who started whom, what they run, as one bounded table.
//!
//! Detectors ask by entity ID ([`crate::entity_id`]) for a process, its children, or its
//! ancestry. The table is fed fork/exec/exit events and `/proc` scan records ([`event`]), all
//! carrying the exact key (pid, canonical start time, see [`crate::start_time`]).
//!
//! ```
//! # #[cfg(feature = "alloc")] {
//! use watchpost_core::process::{Comm, ForkEvent, ProcessTable, ProcessTableConfig};
//!
//! let mut table = ProcessTable::new(ProcessTableConfig { capacity: 100, ..Default::default() });
//! let now = 1_764_300_000_000_000_000;
//! let fork = |pid, ppid, parent_start| ForkEvent {
//!     pid, start_time: now, ppid, parent_start_time: parent_start,
//!     uid: 1000, gid: 1000, comm: Comm::new("sh"), exe_path: None,
//! };
//! table.apply_fork(&ForkEvent { exe_path: Some("/bin/sh"), ..fork(100, 0, 0) }, now);
//! table.apply_fork(&fork(101, 100, now), now);
//! let child = watchpost_core::entity_id::entity_id(101, now);
//! let chain: Vec<u32> = table.ancestry(child, 5, now)?.map(|p| p.pid()).collect();
//! assert_eq!(chain, [101, 100]);
//! assert_eq!(table.get(child, now)?.exe_path(), Some("/bin/sh")); // inherited at fork
//! # }
//! # Ok::<(), watchpost_core::StoreError>(())
//! ```
//!
//! # Rules of [`ProcessTable`]
//!
//! **Identity.** A record is keyed by its exact [`ProcessKey`]; the entity ID index is a
//! multimap, because 32-bit IDs collide. When several held processes share the asked ID, the
//! answer is, in order of preference: a running one over an exited one; then the newest start
//! time; then the smaller pid. Each such lookup counts in `ambiguous_lookups`, each insertion of
//! a process whose ID was already taken in `id_collisions`. Callers that know the exact key use
//! [`ProcessTable::get_exact`], which is never ambiguous.
//!
//! **Duplicates.** A fork or scan record for a key already held never creates a second record.
//! The parent is set by the first record and changed only when a fork event contradicts a parent
//! that came from a scan (a scan sees a reaper after re-parenting; the fork saw the real parent):
//! `parent_corrections`. A later scan never changes a parent and only fills an unknown path.
//! Exec updates name, path, uid and gid; exec or exit after exit is stale and ignored.
//!
//! **Early events.** An exec or exit whose process is not held yet waits in a fixed buffer
//! (`pending_capacity`), keyed by exact key, and is applied when the fork or scan record
//! arrives. Two early events for one key merge into one entry (the later exec wins). An entry is
//! dropped when it waited `pending_ttl_ns` (`pending_expired`: checked when its process arrives,
//! by [`ProcessTable::purge_expired`], and for all entries when a new key finds the buffer full)
//! or, if the buffer is still full, when it is the oldest (first arrival, then smaller key) and a
//! new key needs room (`pending_overflows`).
//!
//! **Retention and eviction.** A running process stays until evicted for room. An exited
//! process stays while it has running descendants ("pinned": ancestry of a running process
//! keeps working after its parent exits); once it has none, it stays for `exit_grace_ns`,
//! counted from its *release time* (its own exit, or the exit or eviction of its last running
//! descendant, whichever is later). Then it is gone: every operation first removes expired
//! processes (`evicted_expired`), so queries never see one, and
//! [`ProcessTable::purge_expired`] does it without traffic. When a new process needs a slot and
//! the table is full, exactly one record is evicted, the first of:
//! 1. an exited, unpinned process: earliest release time first (`evicted_exited`, or
//!    `evicted_expired` if its grace had ended);
//! 2. an exited, pinned process: earliest exit first (`evicted_exited_pinned`);
//! 3. the least recently used running process (`evicted_live`).
//!
//! Ties break on the smaller start time, then the smaller pid. Recency of a running process is
//! refreshed when it is inserted, by `get`/`get_exact`, by `children` (the parent), by
//! `ancestry` (every running process listed), by its exec, and by a fork of a child (the
//! parent). Evicting a process unlinks its children (their ancestry then stops there); they
//! wait for it like early children (below).
//!
//! **Children.** A record is linked to its parent whenever a held record has its parent key
//! (parent pid 0 or the record's own key name no parent). Children that arrive before their
//! parent (scan order, lost events) wait and are linked when it arrives; so are the children
//! of an evicted parent that comes back. [`ProcessTable::children`] lists them most recently
//! linked first: by arrival, or by the fork that corrected the child's parent; children that
//! waited together keep their order. Each record carries intrusive first-child / sibling links
//! (12 bytes), so linking, unlinking and listing cost O(1) per child however many children one
//! parent has (pid 1 with 10,000 children costs what a small family does). Waiting children
//! form one *orphan group* per missing parent key, indexed by that key: one index entry per
//! missing parent, not per child, so 10,000 children waiting for one parent are still one short
//! probe, and the parent's arrival adopts the whole group by moving its head.
//!
//! **Cycles.** Scan records can describe a parent loop (pid reuse races). Ancestry stops before
//! any process it already listed, however long the loop. A loop keeps its exited members only
//! while one of them, or a descendant outside the loop, runs: when the last of those exits,
//! every member starts its grace period (a restore from records computes the same).
//!
//! **Paths.** Executable paths are interned in a bounded [`crate::intern_arena::InternArena`]:
//! records sharing a binary share one copy, released with the last record (or parked exec) that
//! uses it. A fork without a path inherits its parent's. When the arena is full the path reads
//! as unknown (`exe_paths_dropped`). Two paths are kept per process: the executed file's own
//! (resolved by the collector: symlinks followed, `..` gone) and the one given to execve
//! (`invoked_path`; unknown from a scan), with [`ExeFlags`] (deleted, memfd, truncated). A
//! rename ([`RenameEvent`]) changes the name of a running process only.
//!
//! **Memory.** Everything is reserved by [`ProcessTable::new`]. Per capacity entry: the 120-byte
//! record (state with two path handles and the exe flags, plus recency/link stamps and flags
//! for snapshots), 12 bytes of
//! child/sibling links, 4 in the free-slot stack, 8 in the recency list, 8 in the exit queue,
//! 8 in the removed-keys log (16 bytes per half entry), and two hash indexes (entity ID; orphan
//! groups) of 8-byte positions at ≤ 75 % load (10.7–21.3 bytes each, by the power-of-two
//! rounding), plus the path arena and the pending buffer (80 bytes per entry). With the default
//! configuration, 10,000 processes reserve 2.28 MB in total (227 bytes per entry, of
//! which ~26 are the 256 KiB path arena).
//!
//! **Snapshots.** [`ProcessTable::records`] / [`ProcessTable::export_chunk`] hand out
//! [`ProcessRecord`]s (all, or only those changed since the last export, in bounded chunks),
//! [`ProcessTable::take_removed`] the keys removed since, and [`ProcessTable::restore`] rebuilds
//! a table that answers every query and evicts exactly like the one recorded (recency and
//! children order come back from per-record stamps). Early events waiting in the pending buffer
//! are not recorded (they wait seconds at most).
//! [`ProcessTable::bytes_reserved`] gives the exact total.

pub mod comm;
pub mod event;
pub mod record;

#[cfg(feature = "alloc")]
mod child_lists;
#[cfg(feature = "alloc")]
mod exit_queue;
#[cfg(feature = "alloc")]
mod pending;
#[cfg(feature = "alloc")]
pub mod table;
#[cfg(feature = "alloc")]
pub mod view;

pub use comm::{COMM_LEN, Comm};
pub use event::{ExeFlags, ExecEvent, ExitEvent, ForkEvent, ProcessKey, RenameEvent, ScanRecord};
pub use record::ProcessRecord;

#[cfg(feature = "alloc")]
pub use table::{
    EventOutcome, ProcessTable, ProcessTableConfig, ProcessTableStats, ReadLookup, RestoreReport,
};
#[cfg(feature = "alloc")]
pub use view::{Ancestry, Children, ProcessInfo, ProcessView};
