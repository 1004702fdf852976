//! The container store's state: a fixed-capacity table of containers, fed by cgroup discovery and
//! runtime enrichment, with a removal grace period and a defined eviction order.
//!
//! # Layout, and why
//! Records live inline in a slab of `capacity` slots reserved at construction (1372 bytes a slot
//! on 64-bit targets, indexes included; see [`ContainerTable::bytes_reserved`]); nothing allocates
//! afterwards. Exact lookups by ID and by name go through two [`SlotIndex`]es, because
//! `get_container(<full id>)` runs per event.
//! Unique-prefix lookups and the removal sweep scan the slab linearly: prefixes come from people
//! typing short IDs, and a container table holds hundreds to a few thousand entries, so a scan
//! costs microseconds and saves a prefix tree. Listing walks the live recency list, so it visits
//! live containers only.
//!
//! # Lifecycle
//! - [`observe`](ContainerTable::observe): a cgroup path named the container; inserts it with ID,
//!   runtime and pod UID, or fills only what is still unknown (runtime `unknown`, no pod).
//! - [`upsert`](ContainerTable::upsert): the runtime's API described it; `Some` fields replace what
//!   is stored (see [`ContainerUpdate`]).
//! - [`mark_removed`](ContainerTable::mark_removed): the runtime reported it gone at `now`. It
//!   stays gettable by ID and name while `now < removed_at + grace` (default 30 s; at exactly
//!   `removed_at + grace` it is gone) but is no longer listed. A later observe/upsert within the
//!   grace (`docker restart` keeps the ID) revives it with its metadata; after the grace the ID
//!   starts a fresh record.
//! - [`purge_expired`](ContainerTable::purge_expired) frees removed containers past their grace;
//!   the table also does it itself when it needs room.
//!
//! # Eviction when full (each counted in [`ContainerTableStats`])
//! 1. every removed container past its grace (`expired_purged`);
//! 2. otherwise the removed container marked removed first (`evicted_removed`);
//! 3. otherwise the live container least recently written by observe/upsert (`evicted_live`).
//!    Reads do not refresh recency: a detector polling a container must not keep it alive.
//!
//! # Lookups
//! - `get_container(q)`: `q` must look like an ID or a prefix of one (1..=76 of `[A-Za-z0-9._-]`),
//!   else `InvalidArgument`. A container whose full ID is `q` wins (so short `ctr` IDs work).
//!   Otherwise `q` is a prefix: shorter than [`MIN_ID_PREFIX_LEN`] (12, Docker's short ID) is
//!   `InvalidArgument`; matching two or more visible containers is `InvalidArgument`; none is
//!   `NotFound`.
//! - `get_container_by_name(n)`: exact. If several visible containers share the name (a removed one
//!   and its replacement, or two runtimes), a live one beats a removed one, then the most recently
//!   written wins.
//! - `list_containers(filter)`: live containers only, filters exact and ANDed, least recently
//!   written first.

use super::id::{CONTAINER_ID_MAX_LEN, check_identifier};
use super::info::{CONTAINER_NAME_MAX_LEN, ContainerInfo, ContainerUpdate, copy_bounded};
use super::pod::K8sPodInfo;
use super::runtime::Runtime;
use crate::cgroup::CgroupContainer;
use crate::error::{StoreError, store_names};
use crate::health::{HealthInfo, HealthStatus};
use crate::lru_list::LruList;
use crate::metrics::{DataStoreMetrics, StoreMetrics};
use crate::reserved_vec::ReservedVec;
use crate::slot_index::{KeyHasher, SlotIndex};
use crate::time::{EpochNanos, NANOS_PER_SEC};

mod read;

/// Default number of containers held: a default Kubernetes node (110 pods, with their sandbox and
/// init containers ≈ 330) with room for removed ones in grace; ≈ 700 KB reserved.
pub const DEFAULT_CAPACITY: usize = 512;
/// Default time a removed container stays gettable: the reference's 30 s.
pub const DEFAULT_REMOVAL_GRACE_NS: u64 = 30 * NANOS_PER_SEC;
/// Shortest ID prefix `get_container` resolves (Docker's short ID length).
pub const MIN_ID_PREFIX_LEN: usize = 12;

mod snapshot;
pub use snapshot::ContainerRestoreReport;

const STORE: &str = store_names::CONTAINER;

/// How a [`ContainerTable`] is sized and behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ContainerTableConfig {
    /// Most containers held (live and removed-in-grace); at least 1.
    pub capacity: usize,
    /// How long a removed container stays gettable, in nanoseconds.
    pub removal_grace_ns: u64,
    /// Seed for the ID and name indexes; pass a random value so IDs cannot be chosen to collide.
    pub hash_seed: u64,
}

impl Default for ContainerTableConfig {
    fn default() -> Self {
        ContainerTableConfig {
            capacity: DEFAULT_CAPACITY,
            removal_grace_ns: DEFAULT_REMOVAL_GRACE_NS,
            hash_seed: 0x636f_6e74_6169_6e72,
        }
    }
}

/// Exact-match filters for [`ContainerTable::list_containers`]; `None` fields match everything,
/// set fields must all match (AND).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContainerFilter<'a> {
    /// Container name.
    pub name: Option<&'a str>,
    /// Image reference.
    pub image: Option<&'a str>,
    /// Runtime.
    pub runtime: Option<Runtime>,
}

impl<'a> ContainerFilter<'a> {
    /// Matches every live container.
    pub const fn all() -> Self {
        ContainerFilter {
            name: None,
            image: None,
            runtime: None,
        }
    }

    /// Also require this name.
    pub const fn with_name(mut self, name: &'a str) -> Self {
        self.name = Some(name);
        self
    }

    /// Also require this image.
    pub const fn with_image(mut self, image: &'a str) -> Self {
        self.image = Some(image);
        self
    }

    /// Also require this runtime.
    pub const fn with_runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Whether `info` passes every set filter.
    pub fn matches(&self, info: &ContainerInfo) -> bool {
        self.name.is_none_or(|n| info.name.as_str() == n)
            && self.image.is_none_or(|i| info.image.as_str() == i)
            && self.runtime.is_none_or(|r| info.runtime == r)
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WriteOutcome {
    /// A new record.
    Inserted,
    /// An existing live record was updated.
    Updated,
    /// A removed record (within its grace) was made live again and updated.
    Revived,
}

/// Why a record was dropped to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EvictionReason {
    /// Removed containers past their grace were purged.
    ExpiredRemoved,
    /// The oldest removed container, still within its grace, was dropped.
    RemovedInGrace,
    /// The least recently written live container was dropped.
    LeastRecentlyUpdatedLive,
}

/// Result of [`ContainerTable::observe`] and [`ContainerTable::upsert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Written {
    /// What happened to the record.
    pub outcome: WriteOutcome,
    /// Set when room had to be made for a new record.
    pub evicted: Option<EvictionReason>,
}

/// Counters of the table's own work; all monotonic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ContainerTableStats {
    /// New records.
    pub inserted: u64,
    /// Writes to existing live records.
    pub updated: u64,
    /// Removed records made live again.
    pub revived: u64,
    /// Live records marked removed.
    pub marked_removed: u64,
    /// Removed records freed after their grace (by `purge_expired` or to make room).
    pub expired_purged: u64,
    /// Removed records still within their grace dropped to make room.
    pub evicted_removed: u64,
    /// Live records dropped to make room: the capacity is too small if this moves.
    pub evicted_live: u64,
    /// Writes rejected as invalid (bad ID, over-long field).
    pub rejected: u64,
}

/// One occupied slot.
#[derive(Debug, Clone)]
struct Entry {
    info: ContainerInfo,
    /// `Some(t)`: marked removed at `t`; the slot is then in `removed`, otherwise in `live`.
    removed_at: Option<EpochNanos>,
    /// Value of the table's write counter at the last write: larger = more recently written.
    written_seq: u64,
    /// Value of the table's write counter when marked removed: `removed` is in this order.
    removed_seq: u64,
}

/// The container store: see the module documentation.
#[derive(Debug, Clone)]
pub struct ContainerTable {
    /// Invariant: every `Some` slot is in exactly one of `live` / `removed` and indexed in `by_id`
    /// (and in `by_name` when its name is non-empty); every `None` slot below the high-water mark
    /// is in `free`.
    /// Slots handed out so far (up to a high-water mark), reserved for `capacity`: slots past
    /// the mark were never written, so what the table reserved but never used is not resident
    /// (in either copy of the read view).
    slots: ReservedVec<Option<Entry>>,
    /// Most slots (`slots` never grows past it).
    capacity: usize,
    /// Freed slot numbers below the high-water mark; capacity reserved for all slots, so pushes
    /// never reallocate.
    free: ReservedVec<u32>,
    /// Hash of the ID → slot. At most one slot per ID.
    by_id: SlotIndex,
    /// Hash of the name → slots (names may repeat).
    by_name: SlotIndex,
    /// Live slots, least recently written first.
    live: LruList,
    /// Removed slots, first marked first.
    removed: LruList,
    hasher: KeyHasher,
    grace: u64,
    /// Write counter (see `Entry::written_seq`).
    seq: u64,
    /// Moves on every change (a snapshot is needed when it moved since the last one).
    changes: u64,
    metrics: StoreMetrics,
    stats: ContainerTableStats,
}

impl ContainerTable {
    /// A table with all of its memory reserved now.
    pub fn new(config: ContainerTableConfig) -> Self {
        // Slot numbers are u32 and the recency list reserves two values.
        let capacity = config.capacity.clamp(1, (u32::MAX - 2) as usize);
        ContainerTable {
            slots: ReservedVec::with_capacity(capacity),
            capacity,
            free: ReservedVec::with_capacity(capacity),
            by_id: SlotIndex::with_capacity(capacity),
            by_name: SlotIndex::with_capacity(capacity),
            live: LruList::with_capacity(capacity),
            removed: LruList::with_capacity(capacity),
            hasher: KeyHasher::new(config.hash_seed),
            grace: config.removal_grace_ns,
            seq: 0,
            changes: 0,
            metrics: StoreMetrics::new(),
            stats: ContainerTableStats::default(),
        }
    }

    /// The store's registry name, `"container"`.
    pub const fn name(&self) -> &'static str {
        STORE
    }

    /// Records held: live, removed within grace, and removed past grace not yet purged.
    pub fn len(&self) -> usize {
        self.slots.len().saturating_sub(self.free.len())
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most records held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Live (not removed) containers.
    pub fn live_len(&self) -> usize {
        self.live.len()
    }

    /// Containers marked removed and not yet freed.
    pub fn removed_len(&self) -> usize {
        self.removed.len()
    }

    /// The removal grace in nanoseconds.
    pub const fn removal_grace_ns(&self) -> u64 {
        self.grace
    }

    /// Bytes reserved at construction (the table never reserves more).
    pub fn bytes_reserved(&self) -> usize {
        self.capacity * core::mem::size_of::<Option<Entry>>()
            + self.free.capacity() * core::mem::size_of::<u32>()
            + self.by_id.bytes_reserved()
            + self.by_name.bytes_reserved()
            + self.live.bytes_reserved()
            + self.removed.bytes_reserved()
    }

    /// The reference's metrics; `item_count` is [`len`](Self::len).
    pub fn metrics(&self) -> DataStoreMetrics {
        self.metrics.snapshot(self.len())
    }

    /// Counters of the table's own work.
    pub const fn stats(&self) -> ContainerTableStats {
        self.stats
    }

    /// Healthy: the table always answers for what it holds. When live containers had to be
    /// evicted the message says so (answers for them are then `NotFound`); raise the capacity.
    pub fn health(&self, now: EpochNanos) -> HealthInfo {
        if self.stats.evicted_live == 0 {
            HealthInfo::healthy(now)
        } else {
            HealthInfo::with_message(
                HealthStatus::Healthy,
                "capacity reached: live containers were evicted",
                now,
            )
        }
    }

    // ----- writes -------------------------------------------------------------------------

    /// A cgroup path named a container (at `now`). Inserts it, or fills in what is still unknown
    /// on the stored record (an `unknown` runtime, a missing pod): enrichment is never overwritten
    /// by discovery. Revives a removed record within its grace (a restarted container gets a new
    /// cgroup under the same ID), so do not observe a `/proc/<pid>/cgroup` line the kernel marked
    /// ` (deleted)` ([`CgroupLine::deleted`](crate::cgroup::CgroupLine::deleted)): that is a
    /// leftover process of a removed container, not a new one.
    pub fn observe(
        &mut self,
        found: &CgroupContainer,
        now: EpochNanos,
    ) -> Result<Written, StoreError> {
        let existing = self.visible_slot(found.id.as_str(), now);
        let mut info = match existing.and_then(|slot| self.entry(slot)) {
            Some(entry) => entry.info.clone(),
            None => ContainerInfo::new(found.id.clone(), found.runtime),
        };
        if info.runtime == Runtime::Unknown {
            info.runtime = found.runtime;
        }
        if let (None, Some(uid)) = (&info.pod, &found.pod_uid) {
            info.pod = Some(K8sPodInfo {
                // Cannot fail: a PodUid is at most as long as the field.
                uid: copy_bounded(uid.as_str()).unwrap_or_default(),
                ..K8sPodInfo::default()
            });
        }
        Ok(self.store(existing, info, now))
    }

    /// The runtime described a container (at `now`): `Some` fields of `update` replace the stored
    /// ones, `None` fields keep them. `InvalidArgument` (nothing stored) when the ID is not an ID
    /// or a field is over its bound.
    pub fn upsert(
        &mut self,
        update: &ContainerUpdate<'_>,
        now: EpochNanos,
    ) -> Result<Written, StoreError> {
        const OP: &str = "upsert_container";
        let existing = if update.validate().is_ok() {
            self.visible_slot(update.id, now)
        } else {
            None
        };
        let built = match existing.and_then(|slot| self.entry(slot)) {
            Some(entry) => {
                let mut info = entry.info.clone();
                info.apply(update).map(|()| info)
            }
            None => ContainerInfo::from_update(update),
        };
        match built {
            Ok(info) => Ok(self.store(existing, info, now)),
            Err(_) => {
                self.stats.rejected = self.stats.rejected.saturating_add(1);
                self.metrics.error(now);
                Err(StoreError::invalid_argument(STORE, OP))
            }
        }
    }

    /// The runtime reported container `id` gone at `now`. `Ok(true)` if a live container was
    /// marked; `Ok(false)` if it is unknown or already removed (the first removal time stands).
    pub fn mark_removed(&mut self, id: &str, now: EpochNanos) -> Result<bool, StoreError> {
        const OP: &str = "mark_removed";
        if check_identifier(id).is_err() {
            self.metrics.error(now);
            return Err(StoreError::invalid_argument(STORE, OP));
        }
        self.metrics.success(now);
        let Some(slot) = self.visible_slot(id, now) else {
            return Ok(false);
        };
        self.seq = self.seq.saturating_add(1);
        let seq = self.seq;
        let Some(entry) = self.slot_mut(slot) else {
            return Ok(false);
        };
        if entry.removed_at.is_some() {
            return Ok(false);
        }
        entry.removed_at = Some(now);
        entry.removed_seq = seq;
        self.changes = self.changes.wrapping_add(1);
        self.live.remove(slot);
        self.removed.touch(slot);
        self.stats.marked_removed = self.stats.marked_removed.saturating_add(1);
        Ok(true)
    }

    /// Frees every removed container whose grace has ended at `now`; returns how many.
    pub fn purge_expired(&mut self, now: EpochNanos) -> usize {
        if self.removed.is_empty() {
            return 0;
        }
        let mut purged = 0usize;
        for slot in 0..self.slots.len() {
            let expired = self
                .slots
                .get(slot)
                .and_then(Option::as_ref)
                .is_some_and(|e| !self.is_visible(e, now));
            if expired {
                self.free_slot(slot as u32);
                purged += 1;
            }
        }
        self.stats.expired_purged = self.stats.expired_purged.saturating_add(purged as u64);
        purged
    }

    // ----- queries ------------------------------------------------------------------------

    /// The container whose full ID is `id_or_prefix`, or the one container whose ID starts with
    /// it (at least 12 characters). Removed containers are found during their grace. Errors:
    /// `InvalidArgument` for a malformed query, a short prefix or an ambiguous prefix; `NotFound`.
    pub fn get_container(
        &mut self,
        id_or_prefix: &str,
        now: EpochNanos,
    ) -> Result<&ContainerInfo, StoreError> {
        const OP: &str = "get_container";
        match self.locate_container(id_or_prefix, now) {
            Err(e) => {
                self.metrics.error(now);
                Err(e)
            }
            Ok(slot) => self.answer(slot, OP, now),
        }
    }

    /// The container named `name` (exact). Removed containers are found during their grace; see
    /// the module doc for which one wins when several share the name. `InvalidArgument` for an
    /// empty or over-long name; `NotFound`.
    pub fn get_container_by_name(
        &mut self,
        name: &str,
        now: EpochNanos,
    ) -> Result<&ContainerInfo, StoreError> {
        const OP: &str = "get_container_by_name";
        match self.locate_by_name(name, now) {
            Err(e) => {
                self.metrics.error(now);
                Err(e)
            }
            Ok(slot) => self.answer(slot, OP, now),
        }
    }

    /// Live containers passing `filter` (removed ones are never listed, even within their
    /// grace), least recently written first. Counted as one successful request.
    pub fn list_containers<'t>(
        &'t mut self,
        filter: &ContainerFilter<'t>,
        now: EpochNanos,
    ) -> impl Iterator<Item = &'t ContainerInfo> + 't {
        self.metrics.success(now);
        self.containers(filter)
    }

    /// Every record with its removal time, in slot order, without counting a request: for
    /// snapshots. Restore with [`upsert`](Self::upsert) then [`mark_removed`](Self::mark_removed).
    pub fn entries(&self) -> impl Iterator<Item = (&ContainerInfo, Option<EpochNanos>)> + '_ {
        self.slots
            .iter()
            .filter_map(Option::as_ref)
            .map(|e| (&e.info, e.removed_at))
    }

    // ----- internals ----------------------------------------------------------------------

    fn entry(&self, slot: u32) -> Option<&Entry> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    fn slot_mut(&mut self, slot: u32) -> Option<&mut Entry> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    fn is_visible(&self, entry: &Entry, now: EpochNanos) -> bool {
        entry
            .removed_at
            .is_none_or(|t| now < t.saturating_add(self.grace))
    }

    /// The slot holding exactly `id`, whether or not it is still visible.
    fn exact_slot(&self, id: &str) -> Option<u32> {
        let hash = self.hasher.hash_bytes(id.as_bytes());
        self.by_id.find(hash, |slot| {
            self.entry(slot).is_some_and(|e| e.info.id.as_str() == id)
        })
    }

    /// The slot holding exactly `id` if it is visible at `now`.
    fn visible_slot(&self, id: &str, now: EpochNanos) -> Option<u32> {
        self.exact_slot(id)
            .filter(|&slot| self.entry(slot).is_some_and(|e| self.is_visible(e, now)))
    }

    /// The one visible slot whose ID starts with `prefix`; `Err` when several do.
    fn unique_prefix_slot(&self, prefix: &str, now: EpochNanos) -> Result<Option<u32>, ()> {
        let mut found = None;
        for (slot, entry) in self.slots.iter().enumerate() {
            let Some(entry) = entry else { continue };
            if entry.info.id.as_str().starts_with(prefix) && self.is_visible(entry, now) {
                if found.is_some() {
                    return Err(());
                }
                found = Some(slot as u32);
            }
        }
        Ok(found)
    }

    /// Counts a lookup's outcome and borrows its answer.
    fn answer(
        &mut self,
        slot: Option<u32>,
        op: &'static str,
        now: EpochNanos,
    ) -> Result<&ContainerInfo, StoreError> {
        let found = slot.is_some_and(|s| self.entry(s).is_some());
        self.metrics.lookup(found, now);
        slot.and_then(|s| self.entry(s))
            .map(|e| &e.info)
            .ok_or(StoreError::not_found(STORE, op))
    }

    /// Writes `info` to `existing` (a visible slot holding the same ID) or to a new slot.
    fn store(&mut self, existing: Option<u32>, info: ContainerInfo, now: EpochNanos) -> Written {
        self.metrics.success(now);
        self.changes = self.changes.wrapping_add(1);
        self.seq = self.seq.saturating_add(1);
        let seq = self.seq;
        if let Some(slot) = existing {
            let name_hash_new = self.hasher.hash_bytes(info.name.as_bytes());
            let hasher = self.hasher;
            if let Some(entry) = self.slot_mut(slot) {
                let old_name_hash = (!entry.info.name.is_empty())
                    .then(|| hasher.hash_bytes(entry.info.name.as_bytes()));
                let name_changed = entry.info.name != info.name;
                let new_name_nonempty = !info.name.is_empty();
                let revived = entry.removed_at.take().is_some();
                entry.info = info;
                entry.written_seq = seq;
                if name_changed {
                    if let Some(h) = old_name_hash {
                        self.by_name.remove(h, slot);
                    }
                    if new_name_nonempty {
                        // Cannot fail: one name entry per slot at most.
                        let _ = self.by_name.insert(name_hash_new, slot);
                    }
                }
                self.removed.remove(slot);
                self.live.touch(slot);
                let outcome = if revived {
                    self.stats.revived = self.stats.revived.saturating_add(1);
                    WriteOutcome::Revived
                } else {
                    self.stats.updated = self.stats.updated.saturating_add(1);
                    WriteOutcome::Updated
                };
                return Written {
                    outcome,
                    evicted: None,
                };
            }
        }
        // A record for this ID past its grace is gone: drop it so the ID starts afresh.
        if let Some(stale) = self.exact_slot(info.id.as_str()) {
            self.free_slot(stale);
            self.stats.expired_purged = self.stats.expired_purged.saturating_add(1);
        }
        let evicted = if self.free.is_empty() && self.slots.len() >= self.capacity {
            self.make_room(now)
        } else {
            None
        };
        if self.free.is_empty() && self.slots.len() < self.capacity {
            // No freed slot: the next one past the high-water mark (within the reservation, so
            // this push never allocates).
            self.free.push(self.slots.len() as u32);
            self.slots.push(None);
        }
        let Some(slot) = self.free.pop() else {
            // Unreachable: make_room frees at least one slot of a non-empty, full table.
            return Written {
                outcome: WriteOutcome::Inserted,
                evicted,
            };
        };
        let id_hash = self.hasher.hash_bytes(info.id.as_str().as_bytes());
        let name_hash =
            (!info.name.is_empty()).then(|| self.hasher.hash_bytes(info.name.as_bytes()));
        // Cannot fail: the indexes hold one entry per slot at most.
        let _ = self.by_id.insert(id_hash, slot);
        if let Some(h) = name_hash {
            let _ = self.by_name.insert(h, slot);
        }
        if let Some(place) = self.slots.get_mut(slot as usize) {
            *place = Some(Entry {
                info,
                removed_at: None,
                written_seq: seq,
                removed_seq: 0,
            });
        }
        self.live.touch(slot);
        self.stats.inserted = self.stats.inserted.saturating_add(1);
        Written {
            outcome: WriteOutcome::Inserted,
            evicted,
        }
    }

    /// Frees at least one slot of a full table, in the documented order.
    fn make_room(&mut self, now: EpochNanos) -> Option<EvictionReason> {
        if self.purge_expired(now) > 0 {
            return Some(EvictionReason::ExpiredRemoved);
        }
        if let Some(slot) = self.removed.least_recent() {
            self.free_slot(slot);
            self.stats.evicted_removed = self.stats.evicted_removed.saturating_add(1);
            return Some(EvictionReason::RemovedInGrace);
        }
        if let Some(slot) = self.live.least_recent() {
            self.free_slot(slot);
            self.stats.evicted_live = self.stats.evicted_live.saturating_add(1);
            return Some(EvictionReason::LeastRecentlyUpdatedLive);
        }
        None
    }

    /// Empties `slot`, unhooking it from every index and list.
    fn free_slot(&mut self, slot: u32) {
        let Some(entry) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        self.changes = self.changes.wrapping_add(1);
        self.by_id.remove(
            self.hasher.hash_bytes(entry.info.id.as_str().as_bytes()),
            slot,
        );
        if !entry.info.name.is_empty() {
            self.by_name
                .remove(self.hasher.hash_bytes(entry.info.name.as_bytes()), slot);
        }
        self.live.remove(slot);
        self.removed.remove(slot);
        self.free.push(slot);
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::container::K8sPodUpdate;
    use std::format;
    use std::string::String;
    use std::vec::Vec;

    impl ContainerTable {
        /// Checks the invariant written on `slots`.
        fn assert_consistent(&self) {
            let mut held = 0usize;
            let mut named = 0usize;
            for (slot, entry) in self.slots.iter().enumerate() {
                let slot = slot as u32;
                match entry {
                    Some(e) => {
                        held += 1;
                        assert_eq!(self.exact_slot(e.info.id.as_str()), Some(slot));
                        assert_eq!(self.live.contains(slot), e.removed_at.is_none());
                        assert_eq!(self.removed.contains(slot), e.removed_at.is_some());
                        assert!(!self.free.contains(&slot));
                        if !e.info.name.is_empty() {
                            named += 1;
                            let h = self.hasher.hash_bytes(e.info.name.as_bytes());
                            assert!(self.by_name.slots_with_hash(h).any(|s| s == slot));
                        }
                    }
                    None => {
                        assert!(self.free.contains(&slot));
                        assert!(!self.live.contains(slot) && !self.removed.contains(slot));
                    }
                }
            }
            assert_eq!(self.by_id.len(), held);
            assert_eq!(self.by_name.len(), named);
            assert_eq!(self.free.len() + held, self.slots.len());
            assert!(self.slots.len() <= self.capacity);
            assert_eq!(self.live.len() + self.removed.len(), held);
        }
    }

    #[test]
    fn indexes_lists_and_free_slots_stay_consistent() {
        let mut t = ContainerTable::new(ContainerTableConfig {
            capacity: 5,
            removal_grace_ns: 10,
            hash_seed: 7,
        });
        let ids: Vec<String> = (0..12u32).map(|n| format!("{n:064x}")).collect();
        let names = ["", "a", "b", "a"];
        let mut now = 1u64;
        for round in 0..400usize {
            let i = &ids[(round * 7) % ids.len()];
            let name = names[round % names.len()];
            match round % 5 {
                0 | 1 => {
                    let pod = K8sPodUpdate {
                        uid: name,
                        ..K8sPodUpdate::default()
                    };
                    assert!(
                        t.upsert(&ContainerUpdate::new(i).name(name).pod(pod), now)
                            .is_ok()
                    );
                }
                2 => assert!(t.mark_removed(i, now).is_ok()),
                3 => {
                    t.purge_expired(now);
                }
                _ => {
                    let _ = t.get_container(i, now);
                    let _ = t.get_container_by_name("a", now);
                }
            }
            now += (round % 4) as u64;
            t.assert_consistent();
        }
        assert!(t.stats().evicted_live + t.stats().evicted_removed + t.stats().expired_purged > 0);
    }
}
