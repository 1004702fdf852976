//! The bounded process table: records of processes built from fork/exec/exit events and `/proc`
//! scan records, with lookups by entity ID, children and ancestry.
//!
//! Memory is reserved in [`ProcessTable::new`]; nothing allocates afterwards. The rules (which
//! record a colliding entity ID answers, which record is evicted, how duplicates merge) are
//! listed in the [module documentation](super).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cmp::Reverse;

use crate::entity_id::EntityId;
use crate::error::{StoreError, store_names};
use crate::health::{HealthInfo, HealthStatus};
use crate::intern_arena::{InternArena, StrHandle};
use crate::lru_list::LruList;
use crate::metrics::{DataStoreMetrics, StoreMetrics};
use crate::process::child_lists::ChildLists;
use crate::process::exit_queue::ExitQueue;
use crate::process::pending::{ExeRef, PendingBuffer, PendingEntry, PendingExec};
use crate::process::view::{Ancestry, Children, ProcessView, Records};
use crate::process::{
    Comm, ExeFlags, ExecEvent, ExitEvent, ForkEvent, ProcessKey, RenameEvent, ScanRecord,
};
use crate::reserved_vec::ReservedVec;
use crate::slot_index::{KeyHasher, SlotIndex};
use crate::time::{EpochNanos, NANOS_PER_SEC};

mod read;
mod snapshot;

pub use read::ReadLookup;
pub use snapshot::{ExportState, RestoreReport};

/// "No slot": an unresolved parent link.
pub(crate) const NO_SLOT: u32 = u32::MAX;

/// Largest capacity: slot numbers must stay below the [`NO_SLOT`] and list sentinels.
pub const MAX_CAPACITY: usize = (u32::MAX - 2) as usize;

/// Sizes and timings of a [`ProcessTable`], fixed at construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ProcessTableConfig {
    /// Most process records held (clamped to `1..=MAX_CAPACITY`).
    pub capacity: usize,
    /// How long an exited process stays after it no longer has live descendants, ns.
    pub exit_grace_ns: u64,
    /// Most exec/exit events waiting for their process's fork (0: never wait, drop them).
    pub pending_capacity: usize,
    /// How long an early event waits for its fork before it is dropped, ns.
    pub pending_ttl_ns: u64,
    /// Most distinct executable paths held at once.
    pub exe_path_strings: usize,
    /// Most bytes of distinct executable paths held at once.
    pub exe_path_bytes: usize,
    /// Seed of the index hashes (choose it at random per run).
    pub hash_seed: u64,
}

impl Default for ProcessTableConfig {
    /// 10,000 processes (the reference's default), 30 s exit grace, 256 early events kept 5 s,
    /// 4,096 distinct paths in 256 KiB.
    fn default() -> Self {
        ProcessTableConfig {
            capacity: 10_000,
            exit_grace_ns: 30 * NANOS_PER_SEC,
            pending_capacity: 256,
            pending_ttl_ns: 5 * NANOS_PER_SEC,
            exe_path_strings: 4096,
            exe_path_bytes: 256 * 1024,
            hash_seed: 0x0005_eed0_f7ab_1e00,
        }
    }
}

/// Counters of everything the table decided on its own, plus a few gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ProcessTableStats {
    /// Exited processes removed because their grace period ended.
    pub evicted_expired: u64,
    /// Exited processes without live descendants removed early to make room.
    pub evicted_exited: u64,
    /// Exited processes that still had live descendants, removed to make room.
    pub evicted_exited_pinned: u64,
    /// Live processes removed to make room (least recently used first).
    pub evicted_live: u64,
    /// Inserted processes whose entity ID was already held by a different process.
    pub id_collisions: u64,
    /// Lookups by entity ID that matched more than one process.
    pub ambiguous_lookups: u64,
    /// Fork or scan records for a process already held (merged, nothing duplicated).
    pub duplicate_events: u64,
    /// Parents replaced because a fork event contradicted an earlier scan record.
    pub parent_corrections: u64,
    /// Exec/exit events for a process that had already exited (ignored).
    pub stale_events: u64,
    /// Early exec/exit events parked to wait for their fork.
    pub pending_buffered: u64,
    /// Parked events applied when their process arrived.
    pub pending_applied: u64,
    /// Parked events dropped because the buffer was full (the oldest is dropped).
    pub pending_overflows: u64,
    /// Parked events dropped because their process never arrived in time.
    pub pending_expired: u64,
    /// Executable paths not kept because the path arena was full (the path reads as unknown).
    pub exe_paths_dropped: u64,
    /// Gauge: live processes held.
    pub live: u64,
    /// Gauge: exited processes held.
    pub exited: u64,
    /// Gauge: parked early events.
    pub pending: u64,
    /// Gauge: distinct executable paths held.
    pub exe_paths: u64,
}

impl ProcessTableStats {
    /// Every eviction, whatever its reason.
    pub fn evictions(&self) -> u64 {
        self.evicted_expired
            .saturating_add(self.evicted_exited)
            .saturating_add(self.evicted_exited_pinned)
            .saturating_add(self.evicted_live)
    }
}

/// What an event did to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EventOutcome {
    /// A new process record.
    Inserted,
    /// An existing record changed.
    Updated,
    /// The record already said this; nothing changed (counted in `duplicate_events`).
    Duplicate,
    /// Parked until the process's fork or scan record arrives.
    Pending,
    /// Dropped: the process already exited, or early events are not kept (pending capacity 0).
    Ignored,
}

/// Who set a record's parent. A fork event knows the real parent; a scan may see a reaper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParentSource {
    Fork,
    Scan,
}

/// One process. Slots of the table hold these; `occupied` says whether the slot is in use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    pub(crate) pid: u32,
    pub(crate) start_time: EpochNanos,
    pub(crate) ppid: u32,
    pub(crate) parent_start_time: EpochNanos,
    /// `entity_id(pid, start_time)`, cached: it is the index key.
    pub(crate) entity_id: EntityId,
    /// Invariant: the slot of the occupied record whose key is `(ppid, parent_start_time)`, or
    /// `NO_SLOT` when that record is absent, `ppid == 0`, or the parent key is the record's own.
    /// The record is in that slot's children list ([`ChildLists`]); with `NO_SLOT` and a parent
    /// that may still arrive ([`Record::waits_for_parent`]), in the orphan group of its parent
    /// key; else in no list.
    pub(crate) parent_slot: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// 0 while the process runs.
    pub(crate) exit_time: EpochNanos,
    /// For an exited record with no holding children: when it last became free to go (its exit,
    /// or the exit/eviction of its last holding descendant). Its grace period counts from here.
    pub(crate) release_time: EpochNanos,
    /// Invariant: the number of occupied records `c` with `c.parent_slot == this slot` that are
    /// "holding" (running, or exited with `holding_children > 0`). An exited record with a
    /// non-zero count has live descendants and is kept ("pinned"); the members of a parent
    /// cycle with no running descendant count 0 (see `release_unsupported_cycle`).
    pub(crate) holding_children: u32,
    /// The executable: paths owned by this record, and flags.
    pub(crate) exe: ExeRef,
    pub(crate) comm: Comm,
    pub(crate) parent_source: ParentSource,
    pub(crate) occupied: bool,
    /// Scratch for the ancestry walk's visited set; false between queries.
    pub(crate) visited: bool,
    /// Table stamp of the last recency refresh: the recency list is ordered by it, so a restored
    /// table can put the list back (see `snapshot`).
    pub(crate) touched: u64,
    /// Table stamp of the last time the record was linked to its parent (or its orphan group):
    /// children lists are ordered by it, newest first.
    pub(crate) linked: u64,
    /// Changed since the last export (see `snapshot`): persisted fields or stamps moved.
    pub(crate) dirty: bool,
    /// Marked exited by a reconciliation after a restart: it exited while nobody watched, and
    /// `exit_time` is when that was noticed, not when it happened.
    pub(crate) exit_unknown: bool,
}

impl Record {
    const EMPTY: Record = Record {
        pid: 0,
        start_time: 0,
        ppid: 0,
        parent_start_time: 0,
        entity_id: 0,
        parent_slot: NO_SLOT,
        uid: 0,
        gid: 0,
        exit_time: 0,
        release_time: 0,
        holding_children: 0,
        exe: ExeRef::NONE,
        comm: Comm::EMPTY,
        parent_source: ParentSource::Scan,
        occupied: false,
        visited: false,
        touched: 0,
        linked: 0,
        dirty: false,
        exit_unknown: false,
    };

    pub(crate) fn key(&self) -> ProcessKey {
        ProcessKey::new(self.pid, self.start_time)
    }

    pub(crate) fn parent_key(&self) -> ProcessKey {
        ProcessKey::new(self.ppid, self.parent_start_time)
    }

    pub(crate) fn is_live(&self) -> bool {
        self.exit_time == 0
    }

    /// Whether the parent key names another process (pid 0 and the record's own key name
    /// none): the parent is linked whenever it is held.
    fn has_parent_key(&self) -> bool {
        self.ppid != 0 && self.parent_key() != self.key()
    }

    /// An orphan: its parent is not held (yet, or any more) and will be linked if it arrives.
    fn waits_for_parent(&self) -> bool {
        self.parent_slot == NO_SLOT && self.has_parent_key()
    }

    /// Whether this record keeps its exited ancestors in the table.
    fn is_holding(&self) -> bool {
        self.is_live() || self.holding_children > 0
    }

    /// Whether its grace ended by `now`: exited, no live descendants, released at least `grace`
    /// ago. The owner removes such records before every operation; read-only queries hide them.
    pub(crate) fn expired(&self, now: EpochNanos, grace: u64) -> bool {
        !self.is_live()
            && self.holding_children == 0
            && self.release_time.saturating_add(grace) <= now
    }

    /// Order of the exit queue: unpinned before pinned, then the time the record became free
    /// to go (unpinned) or its exit (pinned), oldest first; ties by start time, then pid.
    fn exit_order(&self) -> (bool, EpochNanos, EpochNanos, u32) {
        let pinned = self.holding_children > 0;
        let time = if pinned {
            self.exit_time
        } else {
            self.release_time
        };
        (pinned, time, self.start_time, self.pid)
    }

    /// Preference among records sharing an entity ID: smaller is preferred. Running first,
    /// then the newest start time, then the smaller pid.
    fn lookup_rank(&self) -> LookupRank {
        (!self.is_live(), Reverse(self.start_time), self.pid)
    }
}

/// Sort key of [`Record::lookup_rank`]: exited?, newest start first, pid.
type LookupRank = (bool, Reverse<EpochNanos>, u32);

/// The exit queue's key function over the record slab.
fn exit_order(records: &[Record]) -> impl Fn(u32) -> (bool, EpochNanos, EpochNanos, u32) + '_ {
    move |slot| {
        records
            .get(slot as usize)
            .map_or((true, u64::MAX, u64::MAX, u32::MAX), Record::exit_order)
    }
}

/// Why a record left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EvictionReason {
    Expired,
    Exited,
    ExitedPinned,
    Live,
}

/// The bounded process table. See the [module documentation](super) for its rules.
#[derive(Debug, Clone)]
pub struct ProcessTable {
    config: ProcessTableConfig,
    /// Slab of `capacity` records; `len` of them occupied.
    records: Box<[Record]>,
    /// Free slots, popped from the end. Invariant: exactly the unoccupied slots; the vector's
    /// capacity was reserved for all of them, so pushes never allocate.
    free: ReservedVec<u32>,
    len: usize,
    /// `hash(entity_id)` → slot, one entry per occupied record. Also finds exact keys (a key's
    /// entity ID is a function of it).
    by_entity_id: SlotIndex,
    /// The children of every held record, as intrusive sibling lists (O(1) per child, whatever
    /// the family size); also links each orphan group (below).
    children: ChildLists,
    /// `hash(parent key)` → head slot of that key's *orphan group*: the detached list of the
    /// records waiting for that parent (`Record::waits_for_parent`), newest first. Invariant:
    /// one entry per distinct missing parent key, never one per child, so a parent with many
    /// waiting children is still one short probe; a group for key K exists only while no
    /// record with key K is held (the record's arrival adopts the whole group at once).
    orphans: SlotIndex,
    /// Recency of running records. Invariant: holds exactly the occupied, running slots.
    live_recency: LruList,
    /// Invariant: holds exactly the occupied, exited slots, ordered by `Record::exit_order`.
    exits: ExitQueue,
    pending: PendingBuffer,
    exe_paths: InternArena,
    hasher: KeyHasher,
    metrics: StoreMetrics,
    stats: ProcessTableStats,
    /// Source of `Record::touched` / `Record::linked`; strictly increasing.
    stamp: u64,
    /// Keys removed since the last export, for changed-only snapshots.
    removed: snapshot::RemovedLog,
}

impl ProcessTable {
    /// A table sized by `config`, all of its memory reserved now.
    pub fn new(config: ProcessTableConfig) -> Self {
        let capacity = config.capacity.clamp(1, MAX_CAPACITY);
        let config = ProcessTableConfig { capacity, ..config };
        // Popped from the end: slots are handed out 0, 1, 2, ...
        let free: ReservedVec<u32> = (0..capacity as u32).rev().collect::<Vec<u32>>().into();
        ProcessTable {
            config,
            records: alloc::vec![Record::EMPTY; capacity].into_boxed_slice(),
            free,
            len: 0,
            by_entity_id: SlotIndex::with_capacity(capacity),
            children: ChildLists::with_capacity(capacity),
            // Groups never outnumber the orphan records, which never outnumber the records.
            orphans: SlotIndex::with_capacity(capacity),
            live_recency: LruList::with_capacity(capacity),
            exits: ExitQueue::with_capacity(capacity),
            pending: PendingBuffer::with_capacity(config.pending_capacity),
            exe_paths: InternArena::with_capacity(
                config.exe_path_strings,
                config.exe_path_bytes,
                config.hash_seed ^ 0x9e37_79b9_7f4a_7c15,
            ),
            hasher: KeyHasher::new(config.hash_seed),
            metrics: StoreMetrics::new(),
            stats: ProcessTableStats::default(),
            stamp: 0,
            removed: snapshot::RemovedLog::with_capacity(snapshot::removed_log_capacity(capacity)),
        }
    }

    /// The configuration in force (capacity after clamping).
    pub fn config(&self) -> &ProcessTableConfig {
        &self.config
    }

    /// Processes held (running and exited).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no process is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most processes held.
    pub fn capacity(&self) -> usize {
        self.records.len()
    }

    /// Every byte this table reserved at construction (it never reserves more). See the module
    /// documentation for the cost per entry.
    pub fn bytes_reserved(&self) -> usize {
        core::mem::size_of_val(&*self.records)
            + self.free.capacity() * core::mem::size_of::<u32>()
            + self.by_entity_id.bytes_reserved()
            + self.children.bytes_reserved()
            + self.orphans.bytes_reserved()
            + self.live_recency.bytes_reserved()
            + self.exits.bytes_reserved()
            + self.pending.bytes_reserved()
            + self.exe_paths.bytes_reserved()
            + self.removed.bytes_reserved()
    }

    /// Makes this table equal to `other` without allocating: every slab copied in place. For a
    /// second copy of a table (the actors' read view) to catch up with the first faster than by
    /// replaying many events. `false`, and nothing changed, unless both were built with the same
    /// configuration (which fixes the size of every slab).
    pub fn copy_from(&mut self, other: &ProcessTable) -> bool {
        let ProcessTable {
            config,
            records,
            free,
            len,
            by_entity_id,
            children,
            orphans,
            live_recency,
            exits,
            pending,
            exe_paths,
            hasher,
            metrics,
            stats,
            stamp,
            removed,
        } = other;
        if self.config != *config {
            return false;
        }
        // Equal configurations reserve equal slabs, so every copy below takes.
        let copied = crate::reserved_vec::copy_slab(&mut self.records, records)
            & self.free.copy_from(free)
            & self.by_entity_id.copy_from(by_entity_id)
            & self.children.copy_from(children)
            & self.orphans.copy_from(orphans)
            & self.live_recency.copy_from(live_recency)
            & self.exits.copy_from(exits)
            & self.pending.copy_from(pending)
            & self.exe_paths.copy_from(exe_paths)
            & self.removed.copy_from(removed);
        debug_assert!(copied, "equal configurations reserve equal slabs");
        self.len = *len;
        self.hasher = *hasher;
        self.metrics = *metrics;
        self.stats = *stats;
        self.stamp = *stamp;
        true
    }

    /// The reference's metrics (counting rule in [`crate::metrics`]).
    pub fn metrics(&self) -> DataStoreMetrics {
        self.metrics.snapshot(self.len)
    }

    /// Counters of evictions, collisions, duplicates and early events, with current gauges.
    pub fn stats(&self) -> ProcessTableStats {
        ProcessTableStats {
            live: self.live_recency.len() as u64,
            exited: self.exits.len() as u64,
            pending: self.pending.len() as u64,
            exe_paths: self.exe_paths.len() as u64,
            ..self.stats
        }
    }

    /// Healthy: the table always answers. The message warns when it is too small for the host
    /// (running processes were evicted, or early events overflowed).
    pub fn health(&self, now: EpochNanos) -> HealthInfo {
        if self.stats.evicted_live > 0 {
            HealthInfo::with_message(
                HealthStatus::Healthy,
                "capacity too small: running processes were evicted",
                now,
            )
        } else if self.stats.pending_overflows > 0 {
            HealthInfo::with_message(
                HealthStatus::Healthy,
                "pending buffer too small: early exec/exit events were dropped",
                now,
            )
        } else {
            HealthInfo::healthy(now)
        }
    }

    // ----- hashing and lookup -------------------------------------------------------------

    fn id_hash(&self, id: EntityId) -> u64 {
        self.hasher.hash_u64(u64::from(id))
    }

    fn parent_hash(hasher: &KeyHasher, key: ProcessKey) -> u64 {
        // Mix the pid into the time so that (pid, time) pairs spread; equal mixes of different
        // keys are harmless: callers compare the exact key.
        hasher.hash_u64(
            key.start_time
                .rotate_left(17)
                .wrapping_add(u64::from(key.pid).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        )
    }

    fn record(&self, slot: u32) -> Option<&Record> {
        self.records.get(slot as usize).filter(|r| r.occupied)
    }

    /// The slot holding exactly `key`.
    fn find_exact_slot(&self, key: ProcessKey) -> Option<u32> {
        let records = &self.records;
        self.by_entity_id
            .find(self.id_hash(key.entity_id()), |slot| {
                records
                    .get(slot as usize)
                    .is_some_and(|r| r.occupied && r.key() == key)
            })
    }

    /// The record `id` answers (see the module documentation), counting ambiguity.
    fn resolve(&mut self, id: EntityId) -> Option<u32> {
        let mut best: Option<(u32, LookupRank)> = None;
        let mut matches = 0u32;
        for slot in self.by_entity_id.slots_with_hash(self.id_hash(id)) {
            let Some(r) = self.records.get(slot as usize) else {
                continue;
            };
            if !r.occupied || r.entity_id != id {
                continue;
            }
            matches = matches.saturating_add(1);
            let rank = r.lookup_rank();
            if best.is_none_or(|(_, best_rank)| rank < best_rank) {
                best = Some((slot, rank));
            }
        }
        if matches > 1 {
            self.stats.ambiguous_lookups = self.stats.ambiguous_lookups.saturating_add(1);
        }
        best.map(|(slot, _)| slot)
    }

    fn touch_if_live(&mut self, slot: u32) {
        if self.record(slot).is_some_and(Record::is_live) {
            self.touch(slot);
        }
    }

    /// Refreshes `slot`'s recency, stamping the record.
    fn touch(&mut self, slot: u32) {
        let stamp = self.next_stamp();
        if let Some(r) = self.records.get_mut(slot as usize) {
            r.touched = stamp;
            r.dirty = true;
        }
        self.live_recency.touch(slot);
    }

    fn next_stamp(&mut self) -> u64 {
        self.stamp = self.stamp.saturating_add(1);
        self.stamp
    }

    fn view(&self, slot: u32) -> Option<ProcessView<'_>> {
        let record = self.record(slot)?;
        Some(ProcessView::new(record, slot, &self.exe_paths))
    }

    // ----- queries ------------------------------------------------------------------------

    /// The process `entity_id` names, `NotFound` if none (operation `get_process`). When several
    /// processes share the ID, the running one with the newest start time answers (see the
    /// module documentation). Refreshes the process's recency.
    pub fn get(
        &mut self,
        entity_id: EntityId,
        now: EpochNanos,
    ) -> Result<ProcessView<'_>, StoreError> {
        self.purge_expired_records(now);
        let slot = self.resolve(entity_id);
        self.answer_get(slot, now)
    }

    /// The process with exactly this key, `NotFound` if none (operation `get_process`).
    /// Refreshes its recency. For callers that know the start time (events), this is never
    /// ambiguous.
    pub fn get_exact(
        &mut self,
        key: ProcessKey,
        now: EpochNanos,
    ) -> Result<ProcessView<'_>, StoreError> {
        self.purge_expired_records(now);
        let slot = self.find_exact_slot(key);
        self.answer_get(slot, now)
    }

    /// The answer of `get`/`get_exact` once the slot is known: counts the hit or miss and
    /// refreshes a found process's recency.
    fn answer_get(
        &mut self,
        slot: Option<u32>,
        now: EpochNanos,
    ) -> Result<ProcessView<'_>, StoreError> {
        let not_found = StoreError::not_found(store_names::PROCESS, "get_process");
        let Some(slot) = slot else {
            self.metrics.miss(now);
            return Err(not_found);
        };
        self.metrics.hit(now);
        self.touch_if_live(slot);
        self.view(slot).ok_or(not_found)
    }

    /// The children of the process `entity_id` names (running and exited ones still held),
    /// most recently linked first; empty if it is unknown (operation `get_child_processes`).
    /// A child is linked when it arrives, when a fork corrects its parent to this one, or, if
    /// it arrived first, when this parent arrives (children adopted together keep their
    /// order). Costs the number of children, not the table size. Refreshes the parent's
    /// recency.
    pub fn children(
        &mut self,
        entity_id: EntityId,
        now: EpochNanos,
    ) -> Result<Children<'_>, StoreError> {
        self.purge_expired_records(now);
        let parent = self.resolve(entity_id);
        self.metrics.lookup(parent.is_some(), now);
        let Some(parent) = parent else {
            return Ok(Children::empty(Records::new(
                &self.records,
                &self.exe_paths,
            )));
        };
        self.touch_if_live(parent);
        let records = Records::new(&self.records, &self.exe_paths);
        Ok(Children::new(records, self.children.children(parent)))
    }

    /// `[self, parent, grandparent, …]` of the process `entity_id` names, at most `max_depth`
    /// long (operation `get_ancestry`). Empty, without error, for `max_depth <= 0` or an
    /// unknown process. Stops at a parent not held, at parent pid 0, and before any process
    /// already listed (a cycle, however long). Refreshes the recency of every running process
    /// listed.
    pub fn ancestry(
        &mut self,
        entity_id: EntityId,
        max_depth: i32,
        now: EpochNanos,
    ) -> Result<Ancestry<'_>, StoreError> {
        self.purge_expired_records(now);
        if max_depth <= 0 {
            // A valid request answered without a lookup.
            self.metrics.success(now);
            return Ok(Ancestry::empty(Records::new(
                &self.records,
                &self.exe_paths,
            )));
        }
        let Some(start) = self.resolve(entity_id) else {
            self.metrics.miss(now);
            return Ok(Ancestry::empty(Records::new(
                &self.records,
                &self.exe_paths,
            )));
        };
        self.metrics.hit(now);
        let limit = usize::try_from(max_depth).unwrap_or(usize::MAX);
        // Walk with a visited mark (a real visited set, in the records themselves: no memory per
        // query), then walk again to clear the marks. Both walks take the same path.
        let mut length = 0usize;
        let mut cursor = start;
        while length < limit {
            let Some(r) = self.records.get_mut(cursor as usize).filter(|r| r.occupied) else {
                break;
            };
            if r.visited {
                break;
            }
            r.visited = true;
            let live = r.is_live();
            let parent = r.parent_slot;
            if live {
                self.touch(cursor);
            }
            length += 1;
            cursor = parent;
        }
        let mut cursor = start;
        for _ in 0..length {
            let Some(r) = self.records.get_mut(cursor as usize) else {
                break;
            };
            r.visited = false;
            cursor = r.parent_slot;
        }
        Ok(Ancestry::new(
            Records::new(&self.records, &self.exe_paths),
            start,
            length,
        ))
    }

    /// Every process held, in slot order. For snapshots and inspection; not a counted query and
    /// no recency change.
    pub fn iter(&self) -> impl Iterator<Item = ProcessView<'_>> + '_ {
        self.records
            .iter()
            .zip(0u32..)
            .filter(|(r, _)| r.occupied)
            .map(|(r, slot)| ProcessView::new(r, slot, &self.exe_paths))
    }

    // ----- events -------------------------------------------------------------------------

    /// A process was forked. A fork for a process already held never duplicates it: it only
    /// corrects a parent that came from a scan record. Refreshes the parent's recency.
    pub fn apply_fork(&mut self, event: &ForkEvent<'_>, now: EpochNanos) -> EventOutcome {
        self.metrics.success(now);
        self.purge_expired_records(now);
        // The parent is active: protect it from being the eviction victim of its own child.
        if let Some(parent) = self.find_exact_slot(event.parent_key()) {
            self.touch_if_live(parent);
        }
        if let Some(slot) = self.find_exact_slot(event.key()) {
            return self.merge_fork(slot, event, now);
        }
        match self.insert(
            event.key(),
            event.parent_key(),
            ParentSource::Fork,
            event.uid,
            event.gid,
            event.comm,
            match event.exe_path {
                Some(path) => ExeSource::Path(path, ExeFlags::NONE),
                None => ExeSource::InheritFromParent,
            },
            now,
        ) {
            Some(_) => EventOutcome::Inserted,
            None => EventOutcome::Ignored,
        }
    }

    /// A running process seen by a `/proc` scan. For a process already held it only fills an
    /// unknown executable path: events are authoritative, and a scan's parent may be a reaper.
    pub fn apply_scan(&mut self, record: &ScanRecord<'_>, now: EpochNanos) -> EventOutcome {
        self.metrics.success(now);
        self.purge_expired_records(now);
        if let Some(slot) = self.find_exact_slot(record.key()) {
            self.stats.duplicate_events = self.stats.duplicate_events.saturating_add(1);
            let needs_exe = self.record(slot).is_some_and(|r| r.exe.path.is_none());
            if needs_exe && let Some(path) = record.exe_path {
                let exe = self.intern_exe(path);
                if let Some(r) = self.records.get_mut(slot as usize) {
                    r.exe.path = exe;
                    r.exe.flags = record.exe_flags;
                    r.dirty = true;
                }
                if exe.is_some() {
                    return EventOutcome::Updated;
                }
            }
            return EventOutcome::Duplicate;
        }
        match self.insert(
            record.key(),
            record.parent_key(),
            ParentSource::Scan,
            record.uid,
            record.gid,
            record.comm,
            // An unreadable /proc/<pid>/exe (kernel threads, permissions) stays unknown.
            record
                .exe_path
                .map_or(ExeSource::Unknown, |p| ExeSource::Path(p, record.exe_flags)),
            now,
        ) {
            Some(_) => EventOutcome::Inserted,
            None => EventOutcome::Ignored,
        }
    }

    /// A process executed a new program: name, path and IDs change. Parked if the process is not
    /// held yet; ignored if it already exited. Refreshes the process's recency.
    pub fn apply_exec(&mut self, event: &ExecEvent<'_>, now: EpochNanos) -> EventOutcome {
        self.metrics.success(now);
        self.purge_expired_records(now);
        let exe = ExeRef {
            path: self.intern_exe(event.exe_path),
            invoked: event.invoked_path.and_then(|p| self.intern_exe(p)),
            flags: event.exe_flags,
        };
        let exec = PendingExec {
            uid: event.uid,
            gid: event.gid,
            comm: event.comm,
            exe,
        };
        match self.find_exact_slot(event.key()) {
            Some(slot) => {
                if self.record(slot).is_some_and(|r| !r.is_live()) {
                    self.release_exe(exe);
                    self.stats.stale_events = self.stats.stale_events.saturating_add(1);
                    return EventOutcome::Ignored;
                }
                self.exec_record(slot, exec);
                self.touch(slot);
                EventOutcome::Updated
            }
            None => self
                .park(event.key(), now, |entry, arena| {
                    for old in entry.exe().handles() {
                        arena.release(old);
                    }
                    entry.exec = Some(exec);
                })
                .unwrap_or_else(|| {
                    self.release_exe(exe);
                    EventOutcome::Ignored
                }),
        }
    }

    /// A process's name changed. Only a running, held process is renamed (a rename is not
    /// parked: the exec or scan that brings the process carries its name). Refreshes its recency.
    pub fn apply_rename(&mut self, event: &RenameEvent, now: EpochNanos) -> EventOutcome {
        self.metrics.success(now);
        self.purge_expired_records(now);
        let Some(slot) = self.find_exact_slot(event.key()) else {
            return EventOutcome::Ignored;
        };
        let Some(r) = self.records.get_mut(slot as usize).filter(|r| r.is_live()) else {
            self.stats.stale_events = self.stats.stale_events.saturating_add(1);
            return EventOutcome::Ignored;
        };
        if r.comm == event.comm {
            self.stats.duplicate_events = self.stats.duplicate_events.saturating_add(1);
            return EventOutcome::Duplicate;
        }
        r.comm = event.comm;
        // Marks the record changed for snapshots, too.
        self.touch(slot);
        EventOutcome::Updated
    }

    /// A process exited. It stays queryable while it has running descendants and then for the
    /// grace period. Parked if the process is not held yet.
    pub fn apply_exit(&mut self, event: &ExitEvent, now: EpochNanos) -> EventOutcome {
        self.metrics.success(now);
        self.purge_expired_records(now);
        let exit_time = event.exit_time.max(1);
        match self.find_exact_slot(event.key()) {
            Some(slot) => {
                if self.record(slot).is_some_and(|r| !r.is_live()) {
                    self.stats.duplicate_events = self.stats.duplicate_events.saturating_add(1);
                    return EventOutcome::Duplicate;
                }
                self.exit_record(slot, exit_time);
                EventOutcome::Updated
            }
            None => self
                .park(event.key(), now, |entry, _| entry.exit_time = exit_time)
                .unwrap_or(EventOutcome::Ignored),
        }
    }

    /// Removes exited processes whose grace period has ended and early events that waited too
    /// long. Every other operation also purges expired processes first, so a query never sees
    /// one; call this periodically to release their memory (and paths) without traffic.
    /// Returns the number of processes removed.
    pub fn purge_expired(&mut self, now: EpochNanos) -> usize {
        let removed = self.purge_expired_records(now);
        let ttl = self.config.pending_ttl_ns;
        while let Some(entry) = self.pending.take_expired(now, ttl) {
            self.drop_pending(entry, DropReason::Expired);
        }
        removed
    }

    /// Removes every process and parked event, keeping the reserved memory. Counters stay.
    pub fn clear(&mut self) {
        for slot in 0..self.records.len() as u32 {
            if let Some(exe) = self.record(slot).map(|r| r.exe) {
                self.release_exe(exe);
            }
        }
        self.records.fill(Record::EMPTY);
        self.free.clear();
        self.free.extend((0..self.records.len() as u32).rev());
        self.len = 0;
        self.by_entity_id.clear();
        self.children.clear();
        self.orphans.clear();
        self.live_recency.clear();
        self.exits.clear();
        // Everything went: a changed-only export cannot describe that, ask for a full one.
        self.removed.mark_overflowed();
        let ProcessTable {
            pending, exe_paths, ..
        } = self;
        pending.drain(|entry| {
            for handle in entry.exe().handles() {
                exe_paths.release(handle);
            }
        });
    }

    // ----- internals: records -------------------------------------------------------------

    fn intern_exe(&mut self, path: &str) -> Option<StrHandle> {
        match self.exe_paths.intern(path) {
            Ok(handle) => Some(handle),
            Err(_) => {
                self.stats.exe_paths_dropped = self.stats.exe_paths_dropped.saturating_add(1);
                None
            }
        }
    }

    fn release_exe(&mut self, exe: ExeRef) {
        for handle in exe.handles() {
            self.exe_paths.release(handle);
        }
    }

    /// Inserts a new running record and links it into the tree; applies its parked events.
    /// `None` only if no slot could be freed (impossible: every held record is evictable).
    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        key: ProcessKey,
        parent: ProcessKey,
        source: ParentSource,
        uid: u32,
        gid: u32,
        comm: Comm,
        exe_source: ExeSource<'_>,
        now: EpochNanos,
    ) -> Option<u32> {
        let slot = self.take_free_slot(now)?;
        let entity_id = key.entity_id();
        let id_hash = self.id_hash(entity_id);

        let records = &self.records;
        let collides = self.by_entity_id.slots_with_hash(id_hash).any(|s| {
            records
                .get(s as usize)
                .is_some_and(|r| r.occupied && r.entity_id == entity_id)
        });
        if collides {
            self.stats.id_collisions = self.stats.id_collisions.saturating_add(1);
        }

        let parent_slot = if parent.pid == 0 || parent == key {
            NO_SLOT
        } else {
            self.find_exact_slot(parent).unwrap_or(NO_SLOT)
        };
        let exe = match exe_source {
            ExeSource::Path(path, flags) => ExeRef {
                path: self.intern_exe(path),
                invoked: None,
                flags,
            },
            ExeSource::InheritFromParent => {
                // A fork without a path runs its parent's program.
                let inherited = self.record(parent_slot).map_or(ExeRef::NONE, |p| p.exe);
                for handle in inherited.handles() {
                    self.exe_paths.retain(handle);
                }
                inherited
            }
            ExeSource::Unknown => ExeRef::NONE,
        };
        let linked = self.next_stamp();
        let Some(r) = self.records.get_mut(slot as usize) else {
            self.release_exe(exe);
            return None;
        };
        *r = Record {
            pid: key.pid,
            start_time: key.start_time,
            ppid: parent.pid,
            parent_start_time: parent.start_time,
            entity_id,
            parent_slot,
            uid,
            gid,
            exit_time: 0,
            release_time: 0,
            holding_children: 0,
            exe,
            comm,
            parent_source: source,
            occupied: true,
            visited: false,
            touched: 0,
            linked,
            dirty: true,
            exit_unknown: false,
        };
        self.len += 1;
        // Cannot fail: the index holds one entry per occupied record and was sized for all.
        let _ = self.by_entity_id.insert(id_hash, slot);
        self.link_to_parent(slot);
        self.touch(slot);
        if parent_slot != NO_SLOT {
            self.hold(parent_slot);
        }
        self.adopt_children(slot, key);
        self.apply_parked(slot, key, now);
        Some(slot)
    }

    /// Links the records that named `key` as parent before it arrived: its whole orphan group
    /// becomes its children list, in one O(1) move plus one visit per child to set its link.
    fn adopt_children(&mut self, slot: u32, key: ProcessKey) {
        let hash = Self::parent_hash(&self.hasher, key);
        let Some(head) = self.orphan_group(hash, key) else {
            return;
        };
        self.orphans.remove(hash, head);
        let mut holding = 0u32;
        for child in self.children.iter_from(head) {
            if let Some(c) = self.records.get_mut(child as usize) {
                c.parent_slot = slot;
                if c.is_holding() {
                    holding = holding.saturating_add(1);
                }
            }
        }
        self.children.attach_children(slot, head);
        if self.record(slot).is_some_and(Record::is_live) {
            if let Some(r) = self.records.get_mut(slot as usize) {
                // A running record already holds its own parent: no flip to propagate.
                r.holding_children = r.holding_children.saturating_add(holding);
            }
        } else {
            // An exited record (only a restore inserts one) may become pinned: one `hold` per
            // holding child carries the flip up the tree.
            for _ in 0..holding {
                self.hold(slot);
            }
        }
    }

    /// Head of the orphan group waiting for `parent` (`hash` is its parent hash).
    fn orphan_group(&self, hash: u64, parent: ProcessKey) -> Option<u32> {
        let records = &self.records;
        self.orphans.find(hash, |slot| {
            records
                .get(slot as usize)
                .is_some_and(|r| r.occupied && r.waits_for_parent() && r.parent_key() == parent)
        })
    }

    /// Puts the record in `slot` (in no list) where its parent link says: at the front of its
    /// parent's children, at the front of its parent key's orphan group, or nowhere.
    fn link_to_parent(&mut self, slot: u32) {
        let Some(r) = self.record(slot).copied() else {
            return;
        };
        if r.parent_slot != NO_SLOT {
            self.children.link_child(r.parent_slot, slot);
        } else if r.has_parent_key() {
            let hash = Self::parent_hash(&self.hasher, r.parent_key());
            let head = self.orphan_group(hash, r.parent_key());
            if let Some(head) = head {
                self.orphans.remove(hash, head);
            }
            self.children
                .push_front_detached(head.unwrap_or(NO_SLOT), slot);
            // Cannot fail: one entry per group, groups never outnumber records.
            let _ = self.orphans.insert(hash, slot);
        }
    }

    /// Takes the record in `slot` out of its parent's children or its orphan group; its
    /// `parent_slot` and parent key must still be the ones it was linked with.
    fn unlink_from_parent(&mut self, slot: u32) {
        let Some(r) = self.record(slot).copied() else {
            return;
        };
        if r.parent_slot != NO_SLOT {
            self.children.unlink_child(r.parent_slot, slot);
        } else if r.has_parent_key()
            && let Some(next) = self.children.unlink_detached(slot)
        {
            // It headed its group: the next orphan (if any) takes over the index entry.
            let hash = Self::parent_hash(&self.hasher, r.parent_key());
            self.orphans.remove(hash, slot);
            if next != NO_SLOT {
                let _ = self.orphans.insert(hash, next);
            }
        }
    }

    /// Applies the events that waited for `key`, if they have not expired.
    fn apply_parked(&mut self, slot: u32, key: ProcessKey, now: EpochNanos) {
        let Some(entry) = self.pending.take(key) else {
            return;
        };
        if entry.is_expired(now, self.config.pending_ttl_ns) {
            self.drop_pending(entry, DropReason::Expired);
            return;
        }
        self.stats.pending_applied = self.stats.pending_applied.saturating_add(1);
        if let Some(exec) = entry.exec {
            self.exec_record(slot, exec);
        }
        if entry.exit_time != 0 {
            self.exit_record(slot, entry.exit_time);
        }
    }

    /// Applies an exec to a running record; takes over `exec.exe`'s arena reference.
    fn exec_record(&mut self, slot: u32, exec: PendingExec) {
        let Some(r) = self.records.get_mut(slot as usize) else {
            self.release_exe(exec.exe);
            return;
        };
        let old = core::mem::replace(&mut r.exe, exec.exe);
        r.dirty = true;
        r.uid = exec.uid;
        r.gid = exec.gid;
        r.comm = exec.comm;
        self.release_exe(old);
    }

    /// Marks a running record exited: it leaves the recency list for the exit queue, and if it
    /// holds nobody, its parent may lose its last holding child.
    fn exit_record(&mut self, slot: u32, exit_time: EpochNanos) {
        let Some(r) = self.records.get_mut(slot as usize) else {
            return;
        };
        r.exit_time = exit_time;
        r.release_time = exit_time;
        r.dirty = true;
        let pinned = r.holding_children > 0;
        let parent = r.parent_slot;
        self.live_recency.remove(slot);
        self.exits.push(slot, exit_order(&self.records));
        if !pinned && parent != NO_SLOT {
            self.unhold(parent, exit_time);
        } else if pinned {
            // On a parent cycle, its own run may have been all that held the cycle.
            self.release_unsupported_cycle(slot, exit_time);
        }
    }

    /// Merges a fork event into the record it names.
    fn merge_fork(&mut self, slot: u32, event: &ForkEvent<'_>, now: EpochNanos) -> EventOutcome {
        let Some(r) = self.record(slot).copied() else {
            return EventOutcome::Ignored;
        };
        let new_parent = event.parent_key();
        if r.parent_source == ParentSource::Fork || r.parent_key() == new_parent {
            if let Some(rec) = self.records.get_mut(slot as usize) {
                if rec.parent_source != ParentSource::Fork {
                    rec.dirty = true;
                }
                rec.parent_source = ParentSource::Fork;
            }
            self.stats.duplicate_events = self.stats.duplicate_events.saturating_add(1);
            return EventOutcome::Duplicate;
        }
        // The scan saw a reaper (or raced a pid reuse); the fork knows the real parent.
        self.stats.parent_corrections = self.stats.parent_corrections.saturating_add(1);
        if r.parent_slot != NO_SLOT && r.is_holding() {
            self.unhold(r.parent_slot, now);
        }
        self.unlink_from_parent(slot);
        let parent_slot = if new_parent.pid == 0 || new_parent == r.key() {
            NO_SLOT
        } else {
            self.find_exact_slot(new_parent).unwrap_or(NO_SLOT)
        };
        let linked = self.next_stamp();
        if let Some(rec) = self.records.get_mut(slot as usize) {
            rec.ppid = new_parent.pid;
            rec.parent_start_time = new_parent.start_time;
            rec.parent_slot = parent_slot;
            rec.parent_source = ParentSource::Fork;
            rec.linked = linked;
            rec.dirty = true;
        }
        self.link_to_parent(slot);
        if parent_slot != NO_SLOT && r.is_holding() {
            self.hold(parent_slot);
        }
        EventOutcome::Updated
    }

    /// `slot` gained a holding child. If that makes an exited record holding again, its own
    /// parent gains one too, and so on up.
    fn hold(&mut self, slot: u32) {
        let mut cursor = slot;
        // Each step flips one record from not holding to holding, so at most `len` steps.
        for _ in 0..=self.len {
            let Some(r) = self.records.get_mut(cursor as usize).filter(|r| r.occupied) else {
                return;
            };
            let before = r.holding_children;
            r.holding_children = before.saturating_add(1);
            if before != 0 || r.is_live() {
                return;
            }
            let parent = r.parent_slot;
            self.exits.update(cursor, exit_order(&self.records));
            cursor = parent;
        }
    }

    /// `slot` lost a holding child at `cause_time`. If that frees an exited record, its grace
    /// period starts (at the later of its exit and `cause_time`) and its parent loses a holding
    /// child, and so on up.
    fn unhold(&mut self, slot: u32, cause_time: EpochNanos) {
        let mut cursor = slot;
        // Each step flips one record from holding to not holding, so at most `len` steps.
        for _ in 0..=self.len {
            let Some(r) = self.records.get_mut(cursor as usize).filter(|r| r.occupied) else {
                return;
            };
            let before = r.holding_children;
            if before == 0 {
                return;
            }
            r.holding_children = before - 1;
            if r.is_live() {
                return;
            }
            if before != 1 {
                if before == 2 {
                    // Its last holding child may be the next record of a parent cycle that
                    // only the child just lost held.
                    self.release_unsupported_cycle(cursor, cause_time);
                }
                return;
            }
            r.release_time = r.exit_time.max(cause_time);
            r.dirty = true;
            let parent = r.parent_slot;
            self.exits.update(cursor, exit_order(&self.records));
            cursor = parent;
        }
    }

    /// Frees a parent cycle through `slot` that holds only itself. Hostile or reused pids can
    /// link records into a cycle (each the other's parent); while any of them runs, each holds
    /// the next, and the counts stay at one per member after the last one exits. A record
    /// holds only while it has a running descendant, so once every member has exited and none
    /// has a holding child outside the cycle, every member is freed at `cause_time` (a restore
    /// computes the same from the records). Walks up from `slot` until a running record, a
    /// root, or `slot` again: one step in the usual tree, whose parents run.
    fn release_unsupported_cycle(&mut self, slot: u32, cause_time: EpochNanos) {
        let mut cursor = slot;
        let mut steps = 0usize;
        loop {
            let Some(r) = self.record(cursor) else {
                return;
            };
            // A running member, or a member held from outside (its cycle child is one of its
            // holding children): the cycle keeps its ancestors.
            if r.is_live() || r.holding_children != 1 {
                return;
            }
            cursor = r.parent_slot;
            steps += 1;
            if cursor == slot {
                break;
            }
            if cursor == NO_SLOT || steps > self.len {
                return;
            }
        }
        // Every member exited and holds only the next one: none holds.
        for _ in 0..steps {
            let Some(r) = self.records.get_mut(cursor as usize) else {
                return;
            };
            r.holding_children = 0;
            r.release_time = r.exit_time.max(cause_time);
            r.dirty = true;
            let parent = r.parent_slot;
            self.exits.update(cursor, exit_order(&self.records));
            cursor = parent;
        }
    }

    /// Removes the record in `slot` and every trace of it.
    fn remove_record(&mut self, slot: u32, now: EpochNanos) {
        let Some(r) = self.record(slot).copied() else {
            return;
        };
        if r.is_holding() && r.parent_slot != NO_SLOT {
            self.unhold(r.parent_slot, now);
        }
        self.unlink_from_parent(slot);
        // Its children become the orphan group of its key (none exists while it is held), in
        // their order, ready for the key's return.
        let head = self.children.detach_children(slot);
        if head != NO_SLOT {
            for child in self.children.iter_from(head) {
                if let Some(c) = self.records.get_mut(child as usize) {
                    c.parent_slot = NO_SLOT;
                }
            }
            let _ = self
                .orphans
                .insert(Self::parent_hash(&self.hasher, r.key()), head);
        }
        self.by_entity_id.remove(self.id_hash(r.entity_id), slot);
        self.live_recency.remove(slot);
        self.exits.remove(slot, exit_order(&self.records));
        self.release_exe(r.exe);
        if let Some(rec) = self.records.get_mut(slot as usize) {
            *rec = Record::EMPTY;
        }
        self.removed.push(r.key());
        self.free.push(slot);
        self.len -= 1;
    }

    fn count_eviction(&mut self, reason: EvictionReason) {
        let counter = match reason {
            EvictionReason::Expired => &mut self.stats.evicted_expired,
            EvictionReason::Exited => &mut self.stats.evicted_exited,
            EvictionReason::ExitedPinned => &mut self.stats.evicted_exited_pinned,
            EvictionReason::Live => &mut self.stats.evicted_live,
        };
        *counter = counter.saturating_add(1);
    }

    /// Removes exited records whose grace period ended by `now`, oldest first.
    fn purge_expired_records(&mut self, now: EpochNanos) -> usize {
        let grace = self.config.exit_grace_ns;
        let mut removed = 0;
        while let Some(slot) = self.exits.peek() {
            let expired = self.record(slot).is_some_and(|r| {
                r.holding_children == 0 && r.release_time.saturating_add(grace) <= now
            });
            if !expired {
                break;
            }
            self.remove_record(slot, now);
            self.count_eviction(EvictionReason::Expired);
            removed += 1;
        }
        removed
    }

    /// A free slot, evicting one record if the table is full: the head of the exit queue
    /// (exited without running descendants, longest free first; then exited with running
    /// descendants, earliest exit first), else the least recently used running process.
    fn take_free_slot(&mut self, now: EpochNanos) -> Option<u32> {
        if let Some(slot) = self.free.pop() {
            return Some(slot);
        }
        let (victim, reason) = if let Some(slot) = self.exits.peek() {
            let r = self.record(slot)?;
            let reason = if r.holding_children > 0 {
                EvictionReason::ExitedPinned
            } else if r.release_time.saturating_add(self.config.exit_grace_ns) <= now {
                EvictionReason::Expired
            } else {
                EvictionReason::Exited
            };
            (slot, reason)
        } else {
            (self.live_recency.least_recent()?, EvictionReason::Live)
        };
        self.remove_record(victim, now);
        self.count_eviction(reason);
        self.free.pop()
    }

    // ----- internals: pending buffer ------------------------------------------------------

    /// Parks an early event for `key`: `fill` merges it into the key's entry (new or existing).
    /// `None` when early events are not kept at all (pending capacity 0).
    fn park(
        &mut self,
        key: ProcessKey,
        now: EpochNanos,
        fill: impl FnOnce(&mut PendingEntry, &mut InternArena),
    ) -> Option<EventOutcome> {
        if self.config.pending_capacity == 0 {
            self.stats.pending_overflows = self.stats.pending_overflows.saturating_add(1);
            return None;
        }
        self.stats.pending_buffered = self.stats.pending_buffered.saturating_add(1);
        if self.pending.get_mut(key).is_none() {
            if self.pending.is_full() {
                // Room first from every entry that waited too long, else from the oldest.
                let ttl = self.config.pending_ttl_ns;
                while let Some(entry) = self.pending.take_expired(now, ttl) {
                    self.drop_pending(entry, DropReason::Expired);
                }
                if self.pending.is_full()
                    && let Some(entry) = self.pending.take_oldest()
                {
                    self.drop_pending(entry, DropReason::Overflow);
                }
            }
            let fresh = PendingEntry {
                key,
                received_at: now,
                exec: None,
                exit_time: 0,
            };
            if self.pending.push(fresh).is_err() {
                return None;
            }
        }
        let ProcessTable {
            pending, exe_paths, ..
        } = self;
        let entry = pending.get_mut(key)?;
        fill(entry, exe_paths);
        Some(EventOutcome::Pending)
    }

    fn drop_pending(&mut self, entry: PendingEntry, reason: DropReason) {
        self.release_exe(entry.exe());
        let counter = match reason {
            DropReason::Expired => &mut self.stats.pending_expired,
            DropReason::Overflow => &mut self.stats.pending_overflows,
        };
        *counter = counter.saturating_add(1);
    }
}

/// Where a new record's executable path comes from.
#[derive(Debug, Clone, Copy)]
enum ExeSource<'a> {
    Path(&'a str, ExeFlags),
    /// A fork that did not read the path: the child runs the parent's program.
    InheritFromParent,
    Unknown,
}

/// Why a parked event was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DropReason {
    Expired,
    Overflow,
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn record_size_is_what_the_docs_say() {
        assert_eq!(core::mem::size_of::<Record>(), 120);
        let table = ProcessTable::new(ProcessTableConfig::default());
        std::println!(
            "pending entry {} B; default table {} B ({} B per process)",
            core::mem::size_of::<PendingEntry>(),
            table.bytes_reserved(),
            table.bytes_reserved() / table.capacity()
        );
    }

    /// Every family link against the records: each linked record is exactly once in its
    /// parent's list, each orphan exactly once in the one group of its parent key, nothing
    /// else is listed, and the orphan index holds one head per missing parent key.
    fn check_links(t: &ProcessTable) {
        let mut listed = BTreeSet::new();
        let mut groups = BTreeSet::new();
        for slot in 0..t.records.len() as u32 {
            let Some(r) = t.record(slot) else {
                assert_eq!(
                    t.children.children(slot).count(),
                    0,
                    "free slot {slot} has children"
                );
                continue;
            };
            for child in t.children.children(slot) {
                let c = t.record(child).expect("listed slot is occupied");
                assert_eq!(c.parent_slot, slot);
                assert_eq!(c.parent_key(), r.key());
                assert!(listed.insert(child), "slot {child} listed twice");
            }
            if r.parent_slot != NO_SLOT {
                let p = t.record(r.parent_slot).expect("parent is occupied");
                assert_eq!(p.key(), r.parent_key());
            } else if r.has_parent_key() {
                assert_eq!(
                    t.find_exact_slot(r.parent_key()),
                    None,
                    "orphan of a held parent"
                );
                let hash = ProcessTable::parent_hash(&t.hasher, r.parent_key());
                let head = t
                    .orphan_group(hash, r.parent_key())
                    .expect("orphan has a group");
                if groups.insert(head) {
                    for member in t.children.iter_from(head) {
                        let m = t.record(member).expect("grouped slot is occupied");
                        assert!(m.waits_for_parent());
                        assert_eq!(m.parent_key(), r.parent_key());
                        assert!(listed.insert(member), "slot {member} listed twice");
                    }
                }
            }
        }
        let expected: BTreeSet<u32> = (0..t.records.len() as u32)
            .filter(|&s| {
                t.record(s)
                    .is_some_and(|r| r.parent_slot != NO_SLOT || r.has_parent_key())
            })
            .collect();
        assert_eq!(listed, expected);
        assert_eq!(t.orphans.len(), groups.len(), "stale orphan index entries");
    }

    #[test]
    fn family_links_stay_consistent_under_random_traffic() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let t0 = 1_764_300_000 * NANOS_PER_SEC;
        let key = |i: u64| ProcessKey::new(i as u32 + 1, t0 + i * 1000);
        for round in 0..20u64 {
            let mut t = ProcessTable::new(ProcessTableConfig {
                capacity: 4 + (round as usize % 12),
                exit_grace_ns: 40,
                pending_capacity: 2,
                pending_ttl_ns: 30,
                exe_path_strings: 8,
                exe_path_bytes: 256,
                hash_seed: round,
            });
            let mut now = t0;
            for _ in 0..3000 {
                now += next(5);
                let k = key(next(40));
                // Any parent: absent ones (orphans), later ones, loops, itself, none.
                let p = match next(10) {
                    0 => ProcessKey::default(),
                    1 => k,
                    _ => key(next(40)),
                };
                let (pid, start_time) = (k.pid, k.start_time);
                let (ppid, parent_start_time) = (p.pid, p.start_time);
                let comm = Comm::new("x");
                match next(6) {
                    0 | 1 => {
                        let e = ForkEvent {
                            pid,
                            start_time,
                            ppid,
                            parent_start_time,
                            uid: 0,
                            gid: 0,
                            comm,
                            exe_path: None,
                        };
                        t.apply_fork(&e, now);
                    }
                    2 => {
                        let e = ScanRecord {
                            pid,
                            start_time,
                            ppid,
                            parent_start_time,
                            uid: 0,
                            gid: 0,
                            comm,
                            exe_path: None,
                            exe_flags: ExeFlags::NONE,
                        };
                        t.apply_scan(&e, now);
                    }
                    3 => {
                        t.apply_exit(
                            &ExitEvent {
                                pid,
                                start_time,
                                exit_time: now,
                            },
                            now,
                        );
                    }
                    4 => {
                        let n = t.children(k.entity_id(), now).map_or(0, Iterator::count);
                        assert!(n <= t.len());
                    }
                    _ => {
                        t.purge_expired(now);
                    }
                }
                check_links(&t);
            }
            t.clear();
            check_links(&t);
            assert_eq!(t.orphans.len(), 0);
        }
    }
}
