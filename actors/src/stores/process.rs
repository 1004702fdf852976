//! The process store: owned reply types, the updates collectors send, the backend trait a
//! process table implements, and the handle's queries (`registry.processes().get_process(id)`),
//! answered from the store's published read view.

use serde::{Deserialize, Serialize};
use watchpost_core::error::store_names;
use watchpost_core::process::{
    Ancestry, Children, ExeFlags, ProcessKey, ProcessTableStats, ProcessView, ReadLookup,
};
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo, StoreError};

use crate::adapters::process::to_info;
use crate::handle::StoreHandle;
use crate::protocol::{IntoCopies, Protocol, StoreBackend};
use crate::view::Reads;

/// One process, owned (the reference's `ProcessInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Entity ID (Tracee-compatible hash of pid and start time): the lookup key.
    pub entity_id: u32,
    /// OS process ID (display only).
    pub pid: u32,
    /// OS parent process ID (display only).
    pub ppid: u32,
    /// Binary name (`comm`, at most 16 bytes), current (renames followed).
    pub name: String,
    /// Path of the file the kernel executed (symlinks followed, `..` gone; `/memfd:<name>`
    /// for a memfd; behind `…/` when cut short); empty if unknown.
    pub exe: String,
    /// The path as given to execve (a symlink's name, a relative path, `/dev/fd/N`); empty if
    /// unknown (a process first seen by a `/proc` scan).
    #[serde(default)]
    pub invoked_path: String,
    /// The executed file had been unlinked.
    #[serde(default)]
    pub exe_deleted: bool,
    /// The executed file is a memfd (no file system path: "fileless").
    #[serde(default)]
    pub exe_memfd: bool,
    /// The memfd's name, for a memfd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memfd_name: Option<String>,
    /// `exe` holds only the components nearest the file (too long or too deep).
    #[serde(default)]
    pub exe_truncated: bool,
    /// Start time, epoch ns.
    pub start_time: EpochNanos,
    /// Real user ID.
    pub uid: u32,
    /// Real group ID.
    pub gid: u32,
    /// Exit time, epoch ns; `None` while running.
    pub exit_time: Option<EpochNanos>,
    /// The process exited while the daemon was down (found gone when a restored tree was
    /// reconciled with `/proc`): `exit_time` is when that was noticed, not when it happened.
    #[serde(default)]
    pub exit_time_unknown: bool,
}

/// A process as a fork event or a `/proc` scan reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStart {
    /// Process ID.
    pub pid: u32,
    /// Canonical start time, epoch ns.
    pub start_time: EpochNanos,
    /// Parent process ID (0: none).
    pub ppid: u32,
    /// The parent's canonical start time.
    pub parent_start_time: EpochNanos,
    /// Real user ID.
    pub uid: u32,
    /// Real group ID.
    pub gid: u32,
    /// Name (`comm`).
    pub comm: String,
    /// Executable path, if known (a fork without one inherits the parent's).
    pub exe_path: Option<String>,
    /// Deleted, memfd (as `/proc/<pid>/exe` shows them, for a scan).
    #[serde(default)]
    pub exe_flags: ExeFlags,
}

/// A process replaced its program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessExec {
    /// Process ID.
    pub pid: u32,
    /// Canonical start time, epoch ns (unchanged by exec).
    pub start_time: EpochNanos,
    /// Real user ID after the exec.
    pub uid: u32,
    /// Real group ID after the exec.
    pub gid: u32,
    /// New name.
    pub comm: String,
    /// Path of the file executed.
    pub exe_path: String,
    /// The path as given to execve, if known.
    #[serde(default)]
    pub invoked_path: Option<String>,
    /// Deleted, memfd, truncated, unresolved.
    #[serde(default)]
    pub exe_flags: ExeFlags,
}

/// A process's name changed (`prctl(PR_SET_NAME)` and the like).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRename {
    /// Process ID.
    pub pid: u32,
    /// Canonical start time, epoch ns.
    pub start_time: EpochNanos,
    /// The new name.
    pub comm: String,
}

/// A process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessExit {
    /// Process ID.
    pub pid: u32,
    /// Canonical start time, epoch ns.
    pub start_time: EpochNanos,
    /// Exit time, epoch ns.
    pub exit_time: EpochNanos,
}

/// What collectors feed the process store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcessUpdate {
    /// `sched_process_fork` of a new process.
    Fork(ProcessStart),
    /// A running process found by a `/proc` scan.
    Scan(ProcessStart),
    /// `sched_process_exec`.
    Exec(ProcessExec),
    /// `sched_process_exit` of a thread-group leader.
    Exit(ProcessExit),
    /// `task_rename` of a thread-group leader.
    Rename(ProcessRename),
}

/// The process store protocol.
pub struct ProcessProtocol;

impl Protocol for ProcessProtocol {
    type Update = ProcessUpdate;
    type Applied = bool;
    type Backend = dyn ProcessBackend;

    fn accepted(applied: &bool) -> bool {
        *applied
    }
}

/// Which store-specific read counter counts what (see [`Reads::extra`]).
const AMBIGUOUS_LOOKUPS: usize = 0;

/// What a process table must do to run behind the process store: answer read-only queries from
/// `&self` (the handle reads the published copy; answers borrow it), and apply updates
/// deterministically (the actor applies each to both copies). Implemented for the core
/// [`ProcessTable`] in [`crate::adapters`]; the read answers are the core's borrowed views.
pub trait ProcessBackend: Send + Sync + 'static {
    /// The process `entity_id` names at `now` (see the core's collision rule), and whether the
    /// ID was ambiguous. Counts nothing, changes nothing.
    fn find(&self, entity_id: u32, now: EpochNanos) -> ReadLookup<'_>;
    /// The process with exactly `key` at `now`.
    fn find_exact(&self, key: ProcessKey, now: EpochNanos) -> Option<ProcessView<'_>>;
    /// Children of a process found on this copy at the same `now`.
    fn children_of<'a>(&'a self, parent: &ProcessView<'a>, now: EpochNanos) -> Children<'a>;
    /// Ancestry (`[it, parent, …]`, at most `max_depth`) of a process found on this copy.
    fn ancestry_of<'a>(
        &'a self,
        start: &ProcessView<'a>,
        max_depth: i32,
        now: EpochNanos,
    ) -> Ancestry<'a>;
    /// Every record held (including expired ones not purged yet), for snapshots; not a query.
    fn records(&self) -> Box<dyn Iterator<Item = ProcessView<'_>> + '_>;
    /// Applies one update; `false` if refused.
    fn apply(&mut self, update: &ProcessUpdate, now: EpochNanos) -> bool;
    /// Refreshes the recency of processes readers found (`(slot, entity_id)`, oldest first).
    fn refresh_recency(&mut self, reads: &[(u32, u32)]);
    /// Makes this table equal to `other` (another copy of the same store) in place; `false` if
    /// it cannot (the writer then replays the updates instead).
    fn copy_from(&mut self, _other: &dyn std::any::Any) -> bool {
        false
    }
    /// Most records held (one recency mark each).
    fn capacity(&self) -> usize;
    /// Bytes reserved.
    fn bytes_reserved(&self) -> usize;
    /// The store itself, to downcast to its concrete type (snapshots, inspection).
    fn as_any(&self) -> &dyn std::any::Any;
    /// The store itself, mutably.
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
    /// The table's own counters and its capacity; `None` (answered `NotImplemented`) if it
    /// keeps none.
    fn stats(&self) -> Option<(ProcessTableStats, usize)> {
        None
    }
    /// Health.
    fn health(&self, now: EpochNanos) -> HealthInfo;
    /// Metrics (writes; the view counts reads).
    fn metrics(&self) -> DataStoreMetrics;
}

impl<T: ProcessBackend + ?Sized> StoreBackend<ProcessProtocol> for T {
    fn apply_update(&mut self, update: &ProcessUpdate, now: EpochNanos) -> bool {
        self.apply(update, now)
    }

    fn read_mark_slots(&self) -> usize {
        self.capacity()
    }

    fn apply_read_marks(&mut self, marks: &[(u32, u32)]) {
        self.refresh_recency(marks)
    }

    fn copy_from_any(&mut self, other: &dyn std::any::Any) -> bool {
        ProcessBackend::copy_from(self, other)
    }

    fn bytes_reserved(&self) -> usize {
        ProcessBackend::bytes_reserved(self)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        ProcessBackend::as_any(self)
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        ProcessBackend::as_any_mut(self)
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        ProcessBackend::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        ProcessBackend::metrics(self)
    }
}

impl<T: ProcessBackend + Clone> IntoCopies<ProcessProtocol> for T {
    fn into_copies(self) -> [Box<dyn ProcessBackend>; 2] {
        [Box::new(self.clone()), Box::new(self)]
    }
}

/// Handle to the process store (`registry.processes()`).
pub type ProcessHandle = StoreHandle<ProcessProtocol>;

/// How a caller names a process: by entity ID (32 bits: two processes may share one, and the
/// core's collision rule picks the answer), or by its exact key when the caller knows the start
/// time (events do), which is never ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProcessRef {
    /// By entity ID.
    Entity(u32),
    /// By pid and canonical start time (epoch ns).
    Exact {
        /// Process ID.
        pid: u32,
        /// Canonical start time.
        start_time: EpochNanos,
    },
}

impl From<u32> for ProcessRef {
    fn from(entity_id: u32) -> Self {
        ProcessRef::Entity(entity_id)
    }
}

impl From<ProcessKey> for ProcessRef {
    fn from(key: ProcessKey) -> Self {
        ProcessRef::Exact {
            pid: key.pid,
            start_time: key.start_time,
        }
    }
}

fn not_found(operation: &'static str) -> StoreError {
    StoreError::not_found(store_names::PROCESS, operation)
}

/// The process `which` names, counted (hit or miss, ambiguity) and marked as read.
fn lookup<'a>(
    store: &'a dyn ProcessBackend,
    reads: &mut Reads<'_>,
    which: ProcessRef,
) -> Option<ProcessView<'a>> {
    let found = match which {
        ProcessRef::Entity(entity_id) => {
            let found = store.find(entity_id, reads.now());
            if found.ambiguous {
                reads.extra(AMBIGUOUS_LOOKUPS);
            }
            found.process
        }
        ProcessRef::Exact { pid, start_time } => {
            store.find_exact(ProcessKey::new(pid, start_time), reads.now())
        }
    };
    count_found(reads, found)
}

fn count_found<'a>(
    reads: &mut Reads<'_>,
    found: Option<ProcessView<'a>>,
) -> Option<ProcessView<'a>> {
    match &found {
        Some(p) => {
            reads.hit();
            reads.mark(p.slot(), p.entity_id());
        }
        None => reads.miss(),
    }
    found
}

/// Queries answer from the store's published copy in the caller's task (no message, never
/// waiting for the store's writer). The `with_*` forms lend the borrowed record to a closure, so
/// a detector that needs two fields pays a lookup, not a copy; the others return owned records.
/// Every query counts in the store's metrics (hit/miss/error, last access) and refreshes the
/// recency of what it found, as the core's own queries do.
impl StoreHandle<ProcessProtocol> {
    /// Runs `f` on the process `which` names (an entity ID, or an exact key); `NotFound` if the
    /// store does not hold it. When several processes share an entity ID (32-bit IDs collide),
    /// the running one with the newest start time answers; an exact key is never ambiguous.
    pub fn with_process<R>(
        &self,
        which: impl Into<ProcessRef>,
        f: impl FnOnce(&ProcessView<'_>) -> R,
    ) -> Result<R, StoreError> {
        let which = which.into();
        self.read_view("get_process", |store, reads| {
            lookup(store, reads, which)
                .map(|p| f(&p))
                .ok_or(not_found("get_process"))
        })?
    }

    /// The process with `entity_id`; `NotFound` if the store does not hold it.
    pub async fn get_process(&self, entity_id: u32) -> Result<ProcessInfo, StoreError> {
        self.with_process(entity_id, to_info)
    }

    /// The process with exactly this pid and canonical start time; `NotFound` if the store does
    /// not hold it. Unlike [`Self::get_process`], never answers another process whose entity ID
    /// collides.
    pub async fn get_process_exact(
        &self,
        pid: u32,
        start_time: EpochNanos,
    ) -> Result<ProcessInfo, StoreError> {
        self.with_process(ProcessRef::Exact { pid, start_time }, to_info)
    }

    /// Runs `f` on each process of `which` (entity IDs or exact keys) in order (`None`: not
    /// held), all from one published copy.
    pub fn with_processes<W: Into<ProcessRef> + Copy>(
        &self,
        which: &[W],
        mut f: impl FnMut(W, Option<&ProcessView<'_>>),
    ) -> Result<(), StoreError> {
        self.read_view("get_processes", |store, reads| {
            for &w in which {
                f(w, lookup(store, reads, w.into()).as_ref());
            }
        })
    }

    /// Many processes, one answer per ID in order, all from one published copy.
    pub async fn get_processes(
        &self,
        entity_ids: &[u32],
    ) -> Result<Vec<Result<ProcessInfo, StoreError>>, StoreError> {
        let mut answers = Vec::with_capacity(entity_ids.len());
        self.with_processes(entity_ids, |_, found| {
            answers.push(found.map(to_info).ok_or(not_found("get_process")));
        })?;
        Ok(answers)
    }

    /// Runs `f` on the children of `which` (empty if none or unknown).
    pub fn with_children<R>(
        &self,
        which: impl Into<ProcessRef>,
        f: impl FnOnce(&mut dyn Iterator<Item = ProcessView<'_>>) -> R,
    ) -> Result<R, StoreError> {
        let which = which.into();
        self.read_view("get_child_processes", |store, reads| {
            let now = reads.now();
            match lookup(store, reads, which) {
                Some(parent) => f(&mut store.children_of(&parent, now)),
                None => f(&mut std::iter::empty()),
            }
        })
    }

    /// The children of `entity_id` (empty if none or unknown).
    pub async fn get_child_processes(
        &self,
        entity_id: u32,
    ) -> Result<Vec<ProcessInfo>, StoreError> {
        self.with_children(entity_id, |children| {
            children.map(|c| to_info(&c)).collect()
        })
    }

    /// Runs `f` on `[self, parent, …]` of `which`, up to `max_depth` entries (empty for
    /// `max_depth <= 0` or an unknown process).
    pub fn with_ancestry<R>(
        &self,
        which: impl Into<ProcessRef>,
        max_depth: i32,
        f: impl FnOnce(&mut dyn Iterator<Item = ProcessView<'_>>) -> R,
    ) -> Result<R, StoreError> {
        let which = which.into();
        self.read_view("get_ancestry", |store, reads| {
            if max_depth <= 0 {
                reads.success();
                return f(&mut std::iter::empty());
            }
            let now = reads.now();
            match lookup(store, reads, which) {
                Some(start) => {
                    let mut walk = store.ancestry_of(&start, max_depth, now).inspect(|p| {
                        reads.mark(p.slot(), p.entity_id());
                    });
                    f(&mut walk)
                }
                None => f(&mut std::iter::empty()),
            }
        })
    }

    /// The table's counters (evictions by reason, collisions) and capacity, read from the
    /// published copy; `ambiguous_lookups` adds those the readers counted (see
    /// [`Self::ambiguous_lookups`]). `NotImplemented` for a backend that keeps none;
    /// `StoreUnhealthy` with no published copy. Not counted as a request in the metrics.
    pub async fn process_stats(&self) -> Result<(ProcessTableStats, usize), StoreError> {
        let (mut stats, capacity) =
            self.inspect_view(|store| store.stats())?
                .ok_or(StoreError::new(
                    store_names::PROCESS,
                    "get_stats",
                    watchpost_core::ErrorKind::NotImplemented,
                ))?;
        stats.ambiguous_lookups = stats
            .ambiguous_lookups
            .saturating_add(self.ambiguous_lookups());
        Ok((stats, capacity))
    }

    /// `[self, parent, …]` up to `max_depth` entries (empty for `max_depth <= 0` or unknown).
    pub async fn get_ancestry(
        &self,
        entity_id: u32,
        max_depth: i32,
    ) -> Result<Vec<ProcessInfo>, StoreError> {
        self.with_ancestry(entity_id, max_depth, |walk| {
            walk.map(|p| to_info(&p)).collect()
        })
    }

    /// Lookups so far that found several processes under one entity ID (answered by the
    /// collision rule); counted by readers, not by the store.
    pub fn ambiguous_lookups(&self) -> u64 {
        self.slot.read_extras()[AMBIGUOUS_LOOKUPS]
    }
}
