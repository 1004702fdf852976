//! The bounded IP reputation store: per-source entries in one reserved slab, found by address
//! through a hash index, merged at read time by the conflict policy.
//!
//! # Layout (all reserved in [`IpReputationStore::new`])
//! - `entries`: a slab of `max_entries` slots, one per (source, address). Free slots form a list.
//!   Slots of one source are threaded on a doubly linked list, so `clear(source)` and the source's
//!   entry count cost nothing extra.
//! - `index`: [`SlotIndex`] from the hash of the address to slots. All sources' entries for one
//!   address share a hash, so a merged read visits exactly the candidates (at most one per source).
//!   Why a hash index and not a sorted array: writes arrive in bulk from feeds, and inserting into a
//!   sorted array shifts half of it per write; the index makes reads and writes O(1).
//! - `sources`: `max_sources` slots with the name and configured priority, plus their ids sorted by
//!   name (binary search, and the order `list_sources` reports).
//! - `strings`: an [`InternArena`] for tags and metadata; entries hold 4-byte handles, so a tag
//!   shared by 100k entries is stored once.
//! - `batch_index`: scratch [`SlotIndex`] of `max_batch` entries to find a repeated address in a
//!   batch in O(n) without allocating.
//!
//! # When full: reject, never evict
//! Entries are data a detector or a feed owns: silently dropping a `Deny` to make room would let
//! traffic through that its owner believes is blocked. So a write that needs more entries, sources
//! or string space than is left is **refused whole** with a [`WriteError`] naming the resource,
//! counted in [`IpReputationStats`] and in the metrics' `error_count`, and reported in health. The
//! owner makes room with [`delete`](IpReputationStore::delete) or
//! [`clear`](IpReputationStore::clear). Replacing an entry that exists never needs a new slot.

mod read;

pub use read::ReputationLookup;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::net::{IpAddr, Ipv4Addr};

use crate::error::{ErrorKind, StoreError, store_names};
use crate::health::{HEALTH_MESSAGE_LEN, HealthInfo, HealthStatus};
use crate::intern_arena::{InternArena, StrHandle};
use crate::metrics::{DataStoreMetrics, StoreMetrics};
use crate::reserved_vec::ReservedVec;
use crate::slot_index::{KeyHasher, SlotIndex};
use crate::time::EpochNanos;
use crate::writable::{
    Rejection, SourceName, WritableStore, WritableStoreRead, WriteError, validate_source_name,
};

use super::policy::{ConflictPolicy, Contender};
use super::record::{
    IpInput, IpReputation, MAX_METADATA, MAX_TAGS, MetadataKey, MetadataValue, ReputationStatus,
    Tag, normalize_ip,
};

mod snapshot;
pub use snapshot::ReputationRestoreReport;

const STORE: &str = store_names::IP_REPUTATION;

/// No slot (list ends, empty free list).
const NO_SLOT: u32 = u32::MAX;
/// Marks a free entry slot.
const NO_SOURCE: u16 = u16::MAX;

/// Largest `max_entries` accepted (the slot index's limit).
pub const MAX_ENTRIES_LIMIT: usize = (u32::MAX / 2) as usize;
/// Largest `max_sources` accepted (source ids are 16-bit, one value marks "none").
pub const MAX_SOURCES_LIMIT: usize = (u16::MAX - 1) as usize;

/// Sizes and policy, fixed at construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct IpReputationConfig {
    /// How conflicts between sources are resolved on read.
    pub policy: ConflictPolicy,
    /// Most entries (one per source and address), 1..=[`MAX_ENTRIES_LIMIT`].
    pub max_entries: usize,
    /// Most sources holding data at once, 1..=[`MAX_SOURCES_LIMIT`].
    pub max_sources: usize,
    /// Most records in one `write_batch` (≥ 1); sizes the batch scratch index.
    pub max_batch: usize,
    /// Most distinct tag and metadata strings held at once.
    pub max_strings: usize,
    /// Most bytes of distinct tag and metadata strings held at once.
    pub max_string_bytes: usize,
    /// Seed for hashing addresses and strings. Use a random one per process: addresses come from
    /// feeds and traffic, i.e. from outside.
    pub seed: u64,
}

impl IpReputationConfig {
    /// A configuration for `max_entries` entries with defaults for the rest: last-write-wins, 32
    /// sources, batches up to `min(max_entries, 4096)`, one distinct string per entry and 24 bytes
    /// of string data per entry on average, a fixed seed (replace it).
    pub const fn new(max_entries: usize) -> Self {
        let max_batch = if max_entries < 4096 {
            max_entries
        } else {
            4096
        };
        IpReputationConfig {
            policy: ConflictPolicy::LastWriteWins,
            max_entries,
            max_sources: 32,
            max_batch,
            max_strings: max_entries,
            max_string_bytes: max_entries.saturating_mul(24),
            seed: 0x6970_7265_7075_7461, // "ipreputa"
        }
    }

    /// The same with `policy`.
    pub const fn with_policy(mut self, policy: ConflictPolicy) -> Self {
        self.policy = policy;
        self
    }
}

/// What the store did, beyond the reference's metrics. Every counter saturates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct IpReputationStats {
    /// Records applied by `write`/`write_batch` (new entries plus replacements).
    pub entries_written: u64,
    /// Of those, how many replaced what the same source had said about the same address.
    pub entries_replaced: u64,
    /// Entries removed by `delete`.
    pub entries_deleted: u64,
    /// Entries removed by `clear`.
    pub entries_cleared: u64,
    /// Batches applied (not counting single writes).
    pub batches_written: u64,
    /// Write-side requests refused as malformed (source name, key, record fields, repeated key,
    /// batch too large).
    pub rejected_invalid: u64,
    /// Writes refused because the entries were full.
    pub rejected_entries_full: u64,
    /// Writes refused because a new source did not fit.
    pub rejected_sources_full: u64,
    /// Writes refused because the string storage was full.
    pub rejected_strings_full: u64,
    /// Records in refused writes (a refused batch of 500 counts 500): what was not stored.
    pub records_rejected: u64,
    /// Lookups where more than one source held the address and the policy picked one.
    pub conflicts_resolved: u64,
    /// Most entries ever held at once.
    pub peak_entries: u64,
}

/// One (source, address) verdict in the slab.
#[derive(Debug, Clone)]
struct Entry {
    /// Normalised.
    ip: IpAddr,
    last_updated: EpochNanos,
    /// Owning source slot; `NO_SOURCE` when the slot is free.
    source: u16,
    status: ReputationStatus,
    severity: u8,
    /// Each handle holds one arena reference, given back when the entry is replaced or removed.
    tags: heapless::Vec<StrHandle, MAX_TAGS, u8>,
    /// As `tags`: one reference per handle.
    metadata: heapless::Vec<(StrHandle, StrHandle), MAX_METADATA, u8>,
    /// Previous entry of the same source (`NO_SLOT` at the head).
    prev: u32,
    /// Next entry of the same source, or the next free slot when this one is free.
    next: u32,
}

impl Entry {
    fn vacant(next: u32) -> Self {
        Entry {
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            last_updated: 0,
            source: NO_SOURCE,
            status: ReputationStatus::Unknown,
            severity: 0,
            tags: heapless::Vec::new(),
            metadata: heapless::Vec::new(),
            prev: NO_SLOT,
            next,
        }
    }
}

/// One source holding data.
#[derive(Debug, Clone)]
struct SourceSlot {
    /// Meaningful only while `entries > 0`.
    name: Option<SourceName>,
    priority: i32,
    /// Entries of this source; a slot with 0 is free (listed in `free_sources`).
    entries: u32,
    /// First entry of the source's list, `NO_SLOT` if none.
    head: u32,
}

/// Everything a [`ReputationView`] reads: kept apart from the counters so a lookup can bump the
/// counters while views borrow the data.
#[derive(Debug, Clone)]
struct Table {
    policy: ConflictPolicy,
    hasher: KeyHasher,
    /// Slots handed out so far (occupied or freed), reserved for `max_entries`: slots past the
    /// high-water mark are never written, so memory the store reserved but never used is never
    /// touched (not resident, in either copy of the read view).
    entries: ReservedVec<Entry>,
    /// Most slots (`entries` never grows past it).
    max_entries: usize,
    /// Head of the list of freed slots, threaded through `Entry::next`.
    free_entry: u32,
    /// Occupied slots; invariant: `len == entries.len() - freed slots == index.len()`.
    len: usize,
    /// Address hash → slot, one index entry per occupied slot.
    index: SlotIndex,
    sources: Box<[SourceSlot]>,
    /// Ids of sources with entries, sorted by name (byte order). Capacity `max_sources`, never
    /// exceeded, so inserts never reallocate.
    by_name: ReservedVec<u16>,
    /// Ids of free source slots. Capacity `max_sources`.
    free_sources: ReservedVec<u16>,
    /// Configured priorities, sorted by name, names unique.
    priorities: Box<[(SourceName, i32)]>,
    strings: InternArena,
}

impl Table {
    fn hash(&self, ip: IpAddr) -> u64 {
        match ip {
            IpAddr::V4(a) => self.hasher.hash_bytes(&a.octets()),
            IpAddr::V6(a) => self.hasher.hash_bytes(&a.octets()),
        }
    }

    fn source_name(&self, id: u16) -> &str {
        self.sources
            .get(usize::from(id))
            .and_then(|s| s.name.as_ref())
            .map_or("", SourceName::as_str)
    }

    fn find_source(&self, name: &str) -> Option<u16> {
        self.by_name
            .binary_search_by(|&id| self.source_name(id).cmp(name))
            .ok()
            .and_then(|pos| self.by_name.get(pos).copied())
    }

    fn find_entry(&self, source: u16, ip: IpAddr, hash: u64) -> Option<u32> {
        self.index.find(hash, |slot| {
            self.entries
                .get(slot as usize)
                .is_some_and(|e| e.source == source && e.ip == ip)
        })
    }

    fn free_entries(&self) -> usize {
        self.max_entries.saturating_sub(self.len)
    }

    fn contender(&self, entry: &Entry) -> Contender<'_> {
        let priority = self
            .sources
            .get(usize::from(entry.source))
            .map_or(0, |s| s.priority);
        Contender {
            source: self.source_name(entry.source),
            priority,
            severity: entry.severity,
            last_updated: entry.last_updated,
        }
    }

    /// The winning entry for `ip` and how many sources hold it.
    fn merged(&self, ip: IpAddr) -> (Option<&Entry>, usize) {
        let mut best: Option<&Entry> = None;
        let mut holders = 0usize;
        for slot in self.index.slots_with_hash(self.hash(ip)) {
            let Some(entry) = self.entries.get(slot as usize) else {
                continue;
            };
            if entry.source == NO_SOURCE || entry.ip != ip {
                continue;
            }
            holders = holders.saturating_add(1);
            best = match best {
                Some(current)
                    if self
                        .policy
                        .compare(&self.contender(entry), &self.contender(current))
                        .is_le() =>
                {
                    Some(current)
                }
                _ => Some(entry),
            };
        }
        (best, holders)
    }

    fn priority_of(&self, name: &str) -> i32 {
        self.priorities
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .and_then(|pos| self.priorities.get(pos))
            .map_or(0, |&(_, p)| p)
    }

    /// Takes a free source slot for `name`. The caller checked that one is free.
    fn create_source(&mut self, name: &str) -> Option<u16> {
        let source_name = SourceName::new(name).ok()?;
        let pos = self
            .by_name
            .binary_search_by(|&id| self.source_name(id).cmp(name))
            .err()?;
        if self.by_name.len() >= self.by_name.capacity() {
            return None;
        }
        let id = self.free_sources.pop()?;
        let priority = self.priority_of(name);
        let slot = self.sources.get_mut(usize::from(id))?;
        *slot = SourceSlot {
            name: Some(source_name),
            priority,
            entries: 0,
            head: NO_SLOT,
        };
        self.by_name.insert(pos, id);
        Some(id)
    }

    fn release_source(&mut self, id: u16) {
        let name_pos = self
            .by_name
            .binary_search_by(|&other| self.source_name(other).cmp(self.source_name(id)));
        if let Ok(pos) = name_pos {
            self.by_name.remove(pos);
        }
        if let Some(slot) = self.sources.get_mut(usize::from(id)) {
            slot.name = None;
            slot.entries = 0;
            slot.head = NO_SLOT;
        }
        if self.free_sources.len() < self.free_sources.capacity() {
            self.free_sources.push(id);
        }
    }

    /// Interned handles of `record`'s strings. Each string holds a reference taken beforehand by
    /// [`Table::intern_record`], which this hands over to the entry.
    fn handles_of(
        &self,
        record: &IpReputation,
    ) -> (
        heapless::Vec<StrHandle, MAX_TAGS, u8>,
        heapless::Vec<(StrHandle, StrHandle), MAX_METADATA, u8>,
    ) {
        let mut tags = heapless::Vec::new();
        for tag in &record.tags {
            if let Some(h) = self.strings.find(tag) {
                let _ = tags.push(h);
            }
        }
        let mut metadata = heapless::Vec::new();
        for (k, v) in &record.metadata {
            if let (Some(hk), Some(hv)) = (self.strings.find(k), self.strings.find(v)) {
                let _ = metadata.push((hk, hv));
            }
        }
        (tags, metadata)
    }

    /// Takes one arena reference per string of `record`. On failure gives back what it took for
    /// this record; the caller gives back the earlier records' references, so nothing leaks.
    fn intern_record(&mut self, record: &IpReputation) -> Result<(), ()> {
        for (taken, s) in record_strings(record).enumerate() {
            if self.strings.intern(s).is_err() {
                self.release_record(record, taken);
                return Err(());
            }
        }
        Ok(())
    }

    /// Gives back the references of the first `count` strings of `record`.
    fn release_record(&mut self, record: &IpReputation, count: usize) {
        for s in record_strings(record).take(count) {
            if let Some(h) = self.strings.find(s) {
                self.strings.release(h);
            }
        }
    }

    fn release_handles(&mut self, tags: &[StrHandle], metadata: &[(StrHandle, StrHandle)]) {
        for &h in tags {
            self.strings.release(h);
        }
        for &(k, v) in metadata {
            self.strings.release(k);
            self.strings.release(v);
        }
    }

    fn release_entry_strings(&mut self, slot: u32) {
        let Some(entry) = self.entries.get_mut(slot as usize) else {
            return;
        };
        let tags = core::mem::take(&mut entry.tags);
        let metadata = core::mem::take(&mut entry.metadata);
        self.release_handles(&tags, &metadata);
    }

    /// Writes `record` for source `id`; its strings' references were taken already and a free slot
    /// exists if the entry is new. Returns whether an entry was replaced.
    fn upsert(&mut self, id: u16, record: &IpReputation) -> bool {
        let ip = normalize_ip(record.ip);
        let hash = self.hash(ip);
        let (tags, metadata) = self.handles_of(record);
        if let Some(slot) = self.find_entry(id, ip, hash) {
            self.release_entry_strings(slot);
            if let Some(e) = self.entries.get_mut(slot as usize) {
                e.status = record.status;
                e.severity = record.severity;
                e.last_updated = record.last_updated;
                e.tags = tags;
                e.metadata = metadata;
            }
            return true;
        }
        if self.free_entry == NO_SLOT && self.entries.len() < self.max_entries {
            // No freed slot: the next one past the high-water mark (within the reservation, so
            // this push never allocates).
            self.free_entry = self.entries.len() as u32;
            self.entries.push(Entry::vacant(NO_SLOT));
        }
        let slot = self.free_entry;
        // The caller checked that a free slot and a live source exist; if that were ever wrong,
        // refuse quietly rather than panic, giving the string references back.
        let (Some(source), Some(entry)) = (
            self.sources.get_mut(usize::from(id)),
            self.entries.get_mut(slot as usize),
        ) else {
            self.release_handles(&tags, &metadata);
            return false;
        };
        if self.index.insert(hash, slot).is_err() {
            self.release_handles(&tags, &metadata);
            return false;
        }
        let old_head = source.head;
        self.free_entry = entry.next;
        *entry = Entry {
            ip,
            last_updated: record.last_updated,
            source: id,
            status: record.status,
            severity: record.severity,
            tags,
            metadata,
            prev: NO_SLOT,
            next: old_head,
        };
        if let Some(old) = self.entries.get_mut(old_head as usize) {
            old.prev = slot;
        }
        source.head = slot;
        source.entries = source.entries.saturating_add(1);
        self.len += 1;
        false
    }

    /// Removes the entry in `slot`; frees its source when it was the last one.
    fn remove_slot(&mut self, slot: u32) {
        let Some(entry) = self.entries.get(slot as usize) else {
            return;
        };
        if entry.source == NO_SOURCE {
            return;
        }
        let (id, prev, next, ip) = (entry.source, entry.prev, entry.next, entry.ip);
        self.release_entry_strings(slot);
        let hash = self.hash(ip);
        self.index.remove(hash, slot);
        if let Some(p) = self.entries.get_mut(prev as usize) {
            p.next = next;
        }
        if let Some(n) = self.entries.get_mut(next as usize) {
            n.prev = prev;
        }
        let mut emptied = false;
        if let Some(source) = self.sources.get_mut(usize::from(id)) {
            if source.head == slot {
                source.head = next;
            }
            source.entries = source.entries.saturating_sub(1);
            emptied = source.entries == 0;
        }
        if let Some(e) = self.entries.get_mut(slot as usize) {
            *e = Entry::vacant(self.free_entry);
        }
        self.free_entry = slot;
        self.len = self.len.saturating_sub(1);
        if emptied {
            self.release_source(id);
        }
    }
}

/// A record's strings, in a fixed order: tags, then each metadata key and value.
fn record_strings(record: &IpReputation) -> impl Iterator<Item = &str> {
    record.tags.iter().map(Tag::as_str).chain(
        record
            .metadata
            .iter()
            .flat_map(|(k, v)| [k.as_str(), v.as_str()]),
    )
}

/// The bounded, multi-source IP reputation store; see the module docs for layout and the
/// reject-when-full rule.
#[derive(Debug, Clone)]
pub struct IpReputationStore {
    table: Table,
    /// Scratch for batch validation; empty between calls.
    batch_index: SlotIndex,
    max_batch: usize,
    metrics: StoreMetrics,
    stats: IpReputationStats,
    /// Moves on every accepted change (a snapshot is needed when it moved since the last one).
    changes: u64,
}

impl IpReputationStore {
    /// A store sized by `config`, with source priorities `priorities` (name, priority); a source
    /// not listed has priority 0. Reserves all memory now.
    ///
    /// # Errors
    /// `InvalidArgument` (operation `"new"`) for a size out of range, an invalid or repeated
    /// priority source name.
    pub fn new(config: IpReputationConfig, priorities: &[(&str, i32)]) -> Result<Self, StoreError> {
        let invalid = StoreError::invalid_argument(STORE, "new");
        if !(1..=MAX_ENTRIES_LIMIT).contains(&config.max_entries)
            || !(1..=MAX_SOURCES_LIMIT).contains(&config.max_sources)
            || config.max_batch == 0
        {
            return Err(invalid);
        }
        let mut sorted: Vec<(SourceName, i32)> = Vec::with_capacity(priorities.len());
        for &(name, priority) in priorities {
            sorted.push((SourceName::new(name).map_err(|_| invalid)?, priority));
        }
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(invalid);
        }
        let n = config.max_entries;
        let sources: Box<[SourceSlot]> = (0..config.max_sources)
            .map(|_| SourceSlot {
                name: None,
                priority: 0,
                entries: 0,
                head: NO_SLOT,
            })
            .collect();
        let mut free_sources = ReservedVec::with_capacity(config.max_sources);
        // Popped from the end: hand out id 0 first.
        free_sources.extend((0..config.max_sources as u16).rev());
        Ok(IpReputationStore {
            table: Table {
                policy: config.policy,
                hasher: KeyHasher::new(config.seed),
                entries: ReservedVec::with_capacity(n),
                max_entries: n,
                free_entry: NO_SLOT,
                len: 0,
                index: SlotIndex::with_capacity(n),
                sources,
                by_name: ReservedVec::with_capacity(config.max_sources),
                free_sources,
                priorities: sorted.into_boxed_slice(),
                strings: InternArena::with_capacity(
                    config.max_strings,
                    config.max_string_bytes,
                    config.seed.rotate_left(17) ^ 0x7374_7269_6e67_7321,
                ),
            },
            batch_index: SlotIndex::with_capacity(config.max_batch),
            max_batch: config.max_batch,
            metrics: StoreMetrics::new(),
            stats: IpReputationStats::default(),
            changes: 0,
        })
    }

    /// The store's registry name, `"ip_reputation"`.
    pub const fn name(&self) -> &'static str {
        STORE
    }

    /// The conflict policy.
    pub const fn policy(&self) -> ConflictPolicy {
        self.table.policy
    }

    /// The configured priority of `source` (0 if none).
    pub fn priority(&self, source: &str) -> i32 {
        self.table.priority_of(source)
    }

    /// Entries held (one per source and address).
    pub fn len(&self) -> usize {
        self.table.len
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.table.len == 0
    }

    /// Most entries.
    pub fn capacity(&self) -> usize {
        self.table.max_entries
    }

    /// Sources holding data now.
    pub fn source_count(&self) -> usize {
        self.table.by_name.len()
    }

    /// Most sources holding data at once.
    pub fn source_capacity(&self) -> usize {
        self.table.sources.len()
    }

    /// Most records in one batch.
    pub const fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Distinct tag/metadata strings held, and their bytes.
    pub fn strings_used(&self) -> (usize, usize) {
        (self.table.strings.len(), self.table.strings.bytes_used())
    }

    /// All memory reserved at construction, in bytes (heap only).
    pub fn bytes_reserved(&self) -> usize {
        let t = &self.table;
        t.max_entries * core::mem::size_of::<Entry>()
            + t.index.bytes_reserved()
            + core::mem::size_of_val(&*t.sources)
            + t.by_name.capacity() * core::mem::size_of::<u16>()
            + t.free_sources.capacity() * core::mem::size_of::<u16>()
            + core::mem::size_of_val(&*t.priorities)
            + t.strings.bytes_reserved()
            + self.batch_index.bytes_reserved()
    }

    /// Counters beyond the reference's metrics.
    pub const fn stats(&self) -> IpReputationStats {
        self.stats
    }

    /// The reference's metrics; `item_count` is the number of entries.
    pub fn metrics(&self) -> DataStoreMetrics {
        self.metrics.snapshot(self.table.len)
    }

    /// Always `Healthy`: reads are answered whatever the fill level. When entries or sources are
    /// full the message says so, because new writes are then refused until the owner makes room.
    pub fn health(&self, now: EpochNanos) -> HealthInfo {
        let mut message = heapless::String::<HEALTH_MESSAGE_LEN>::new();
        if self.table.free_entries() == 0 {
            let _ = write!(
                message,
                "entries full ({}); new entries are refused",
                self.capacity()
            );
        } else if self.source_count() >= self.source_capacity() {
            let _ = write!(
                message,
                "sources full ({}); new sources are refused",
                self.source_capacity()
            );
        }
        if message.is_empty() {
            HealthInfo::healthy(now)
        } else {
            HealthInfo::with_message(HealthStatus::Healthy, &message, now)
        }
    }

    fn reject(
        &mut self,
        operation: &'static str,
        rejection: Rejection,
        item: Option<usize>,
        records: usize,
        now: EpochNanos,
    ) -> WriteError {
        self.metrics.error(now);
        let s = &mut self.stats;
        let counter = match rejection {
            Rejection::EntriesFull => &mut s.rejected_entries_full,
            Rejection::SourcesFull => &mut s.rejected_sources_full,
            Rejection::StringsFull => &mut s.rejected_strings_full,
            _ => &mut s.rejected_invalid,
        };
        *counter = counter.saturating_add(1);
        s.records_rejected = s.records_rejected.saturating_add(records as u64);
        WriteError::new(STORE, operation, rejection, item)
    }

    /// Writes `record` for `source`, replacing what `source` said about the same address before.
    ///
    /// # Errors
    /// [`WriteError`] (`InvalidArgument`) when the source name, severity, a tag or metadata breaks
    /// a rule, or when a new entry, source or string does not fit (nothing is evicted).
    pub fn write(
        &mut self,
        source: &str,
        record: &IpReputation,
        now: EpochNanos,
    ) -> Result<(), WriteError> {
        self.write_records("write", source, core::slice::from_ref(record), now)
    }

    /// Writes all of `records` for `source`, or none: every record is checked (fields, repeated
    /// addresses — `1.2.3.4` and `::ffff:1.2.3.4` are the same — and the batch size), then room for
    /// the new entries, a new source and new strings is checked, and only then is anything written.
    /// An empty batch is a successful no-op.
    ///
    /// # Errors
    /// As [`write`](Self::write); also for a repeated address or more than
    /// [`max_batch`](Self::max_batch) records. [`WriteError::item`] names the first bad record.
    pub fn write_batch(
        &mut self,
        source: &str,
        records: &[IpReputation],
        now: EpochNanos,
    ) -> Result<(), WriteError> {
        self.write_records("write_batch", source, records, now)
    }

    fn write_records(
        &mut self,
        op: &'static str,
        source: &str,
        records: &[IpReputation],
        now: EpochNanos,
    ) -> Result<(), WriteError> {
        let n = records.len();
        if let Err(e) = validate_source_name(source) {
            return Err(self.reject(op, Rejection::Source(e), None, n, now));
        }
        if n > self.max_batch {
            return Err(self.reject(op, Rejection::BatchTooLarge, None, n, now));
        }
        if let Some((i, rule)) = records
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.check().err().map(|rule| (i, rule)))
        {
            return Err(self.reject(op, Rejection::Value(rule), Some(i), n, now));
        }
        let existing_source = self.table.find_source(source);
        let (duplicate, new_entries) = self.scan_batch(existing_source, records);
        if let Some(i) = duplicate {
            return Err(self.reject(op, Rejection::DuplicateKey, Some(i), n, now));
        }
        if new_entries > self.table.free_entries() {
            return Err(self.reject(op, Rejection::EntriesFull, None, n, now));
        }
        if existing_source.is_none() && n > 0 && self.table.free_sources.is_empty() {
            return Err(self.reject(op, Rejection::SourcesFull, None, n, now));
        }
        for (i, record) in records.iter().enumerate() {
            if self.table.intern_record(record).is_err() {
                for earlier in records.get(..i).unwrap_or(&[]) {
                    self.table.release_record(earlier, usize::MAX);
                }
                return Err(self.reject(op, Rejection::StringsFull, Some(i), n, now));
            }
        }
        // Everything fits: from here on nothing can fail.
        if n > 0 {
            let id = match existing_source {
                Some(id) => Some(id),
                None => self.table.create_source(source),
            };
            let Some(id) = id else {
                // Unreachable while the source bookkeeping holds (a free slot was checked above);
                // if it ever did not, refuse cleanly rather than report a write that did not happen.
                for record in records {
                    self.table.release_record(record, usize::MAX);
                }
                return Err(self.reject(op, Rejection::SourcesFull, None, n, now));
            };
            let mut replaced = 0u64;
            for record in records {
                if self.table.upsert(id, record) {
                    replaced += 1;
                }
            }
            let s = &mut self.stats;
            s.entries_written = s.entries_written.saturating_add(n as u64);
            s.entries_replaced = s.entries_replaced.saturating_add(replaced);
            s.peak_entries = s.peak_entries.max(self.table.len as u64);
        }
        if op == "write_batch" {
            self.stats.batches_written = self.stats.batches_written.saturating_add(1);
        }
        self.changes = self.changes.wrapping_add(1);
        self.metrics.success(now);
        Ok(())
    }

    /// The index of the first record repeating an earlier record's address, and how many records
    /// would create entries (the rest replace what `source` already holds). Leaves the scratch
    /// index empty.
    fn scan_batch(
        &mut self,
        source: Option<u16>,
        records: &[IpReputation],
    ) -> (Option<usize>, usize) {
        let mut duplicate = None;
        let mut new_entries = 0usize;
        let mut inserted = 0usize;
        for (i, record) in records.iter().enumerate() {
            let ip = normalize_ip(record.ip);
            let hash = self.table.hash(ip);
            let seen = self.batch_index.find(hash, |j| {
                records
                    .get(j as usize)
                    .is_some_and(|r| normalize_ip(r.ip) == ip)
            });
            if seen.is_some() {
                duplicate = Some(i);
                break;
            }
            // Cannot fail: `records.len() <= max_batch`, the scratch index's capacity.
            if self.batch_index.insert(hash, i as u32).is_err() {
                duplicate = Some(i);
                break;
            }
            inserted += 1;
            if source.is_none_or(|id| self.table.find_entry(id, ip, hash).is_none()) {
                new_entries += 1;
            }
        }
        for (i, record) in records.iter().enumerate().take(inserted) {
            let hash = self.table.hash(normalize_ip(record.ip));
            self.batch_index.remove(hash, i as u32);
        }
        (duplicate, new_entries)
    }

    /// Removes what `source` said about `ip`. `Ok(false)` when it said nothing (idempotent).
    ///
    /// # Errors
    /// `InvalidArgument` for an invalid source name or an `ip` that is not an address.
    pub fn delete<Q: IpInput + ?Sized>(
        &mut self,
        source: &str,
        ip: &Q,
        now: EpochNanos,
    ) -> Result<bool, WriteError> {
        if let Err(e) = validate_source_name(source) {
            return Err(self.reject("delete", Rejection::Source(e), None, 0, now));
        }
        let Ok(ip) = ip.to_ip() else {
            return Err(self.reject("delete", Rejection::Key, None, 0, now));
        };
        let slot = self
            .table
            .find_source(source)
            .and_then(|id| self.table.find_entry(id, ip, self.table.hash(ip)));
        if let Some(slot) = slot {
            self.table.remove_slot(slot);
            self.stats.entries_deleted = self.stats.entries_deleted.saturating_add(1);
            self.changes = self.changes.wrapping_add(1);
        }
        self.metrics.success(now);
        Ok(slot.is_some())
    }

    /// Removes everything `source` wrote; answers how many entries that was (0 for a source with
    /// no data: not an error). The source disappears from [`list_sources`](Self::list_sources).
    ///
    /// # Errors
    /// `InvalidArgument` for an invalid source name.
    pub fn clear(&mut self, source: &str, now: EpochNanos) -> Result<usize, WriteError> {
        if let Err(e) = validate_source_name(source) {
            return Err(self.reject("clear", Rejection::Source(e), None, 0, now));
        }
        let mut removed = 0usize;
        if let Some(id) = self.table.find_source(source) {
            let mut slot = self
                .table
                .sources
                .get(usize::from(id))
                .map_or(NO_SLOT, |s| s.head);
            // Bounded by the slab size even if a list were ever corrupt.
            for _ in 0..self.table.entries.len() {
                let Some(entry) = self.table.entries.get(slot as usize) else {
                    break;
                };
                let next = entry.next;
                self.table.remove_slot(slot);
                removed += 1;
                slot = next;
            }
        }
        self.stats.entries_cleared = self.stats.entries_cleared.saturating_add(removed as u64);
        if removed > 0 {
            self.changes = self.changes.wrapping_add(1);
        }
        self.metrics.success(now);
        Ok(removed)
    }

    /// Names of the sources holding data, in byte order of their names.
    pub fn list_sources(&mut self, now: EpochNanos) -> SourceNames<'_> {
        self.metrics.success(now);
        SourceNames {
            table: &self.table,
            ids: self.table.by_name.iter(),
        }
    }

    /// The merged verdict on `ip` across sources, picked by the conflict policy.
    ///
    /// # Errors
    /// `NotFound` when no source holds `ip`; `InvalidArgument` when `ip` is not an address.
    pub fn get_reputation<Q: IpInput + ?Sized>(
        &mut self,
        ip: &Q,
        now: EpochNanos,
    ) -> Result<ReputationView<'_>, StoreError> {
        lookup(
            &self.table,
            &mut self.metrics,
            &mut self.stats,
            ip,
            "get_reputation",
            now,
        )
    }

    /// Whether the merged verdict on `ip` is [`Deny`](ReputationStatus::Deny); `false` when no
    /// source holds it.
    ///
    /// # Errors
    /// `InvalidArgument` when `ip` is not an address.
    pub fn is_denied<Q: IpInput + ?Sized>(
        &mut self,
        ip: &Q,
        now: EpochNanos,
    ) -> Result<bool, StoreError> {
        self.has_status(ip, ReputationStatus::Deny, "is_denied", now)
    }

    /// Whether the merged verdict on `ip` is [`Allow`](ReputationStatus::Allow); `false` when no
    /// source holds it.
    ///
    /// # Errors
    /// `InvalidArgument` when `ip` is not an address.
    pub fn is_allowed<Q: IpInput + ?Sized>(
        &mut self,
        ip: &Q,
        now: EpochNanos,
    ) -> Result<bool, StoreError> {
        self.has_status(ip, ReputationStatus::Allow, "is_allowed", now)
    }

    fn has_status<Q: IpInput + ?Sized>(
        &mut self,
        ip: &Q,
        status: ReputationStatus,
        op: &'static str,
        now: EpochNanos,
    ) -> Result<bool, StoreError> {
        match lookup(&self.table, &mut self.metrics, &mut self.stats, ip, op, now) {
            Ok(view) => Ok(view.status() == status),
            Err(e) if e.is(ErrorKind::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Looks up every address of `ips`, lazily: each is looked up (and counted in the metrics) when
    /// the iterator reaches it. Yields each input with its answer, in input order.
    pub fn check_ips<'s, 'q, Q: IpInput>(
        &'s mut self,
        ips: &'q [Q],
        now: EpochNanos,
    ) -> CheckIps<'s, 'q, Q> {
        CheckIps {
            table: &self.table,
            metrics: &mut self.metrics,
            stats: &mut self.stats,
            ips: ips.iter(),
            now,
        }
    }

    /// Every entry (not merged), source by source in name order. For snapshots and inspection;
    /// not counted in the metrics.
    pub fn entries(&self) -> impl Iterator<Item = ReputationView<'_>> + '_ {
        let table = &self.table;
        table.by_name.iter().flat_map(move |&id| {
            let head = table
                .sources
                .get(usize::from(id))
                .map_or(NO_SLOT, |s| s.head);
            SourceEntries {
                table,
                slot: head,
                steps_left: table.entries.len(),
            }
        })
    }
}

/// One lookup with its counting; shared by the single and batch reads.
fn lookup<'t, Q: IpInput + ?Sized>(
    table: &'t Table,
    metrics: &mut StoreMetrics,
    stats: &mut IpReputationStats,
    ip: &Q,
    op: &'static str,
    now: EpochNanos,
) -> Result<ReputationView<'t>, StoreError> {
    let Ok(ip) = ip.to_ip() else {
        metrics.error(now);
        return Err(StoreError::invalid_argument(STORE, op));
    };
    let (best, holders) = table.merged(ip);
    metrics.lookup(best.is_some(), now);
    if holders > 1 {
        stats.conflicts_resolved = stats.conflicts_resolved.saturating_add(1);
    }
    best.map(|entry| ReputationView { table, entry })
        .ok_or(StoreError::not_found(STORE, op))
}

/// One stored verdict, borrowed from the store: the winner of a merged read, or one entry of
/// [`IpReputationStore::entries`].
#[derive(Debug, Clone, Copy)]
pub struct ReputationView<'a> {
    table: &'a Table,
    entry: &'a Entry,
}

impl<'a> ReputationView<'a> {
    /// The address (normalised).
    pub fn ip(&self) -> IpAddr {
        self.entry.ip
    }

    /// The verdict.
    pub fn status(&self) -> ReputationStatus {
        self.entry.status
    }

    /// Severity, 1..=10.
    pub fn severity(&self) -> u8 {
        self.entry.severity
    }

    /// The record's `last_updated`.
    pub fn last_updated(&self) -> EpochNanos {
        self.entry.last_updated
    }

    /// The source that wrote it.
    pub fn source(&self) -> &'a str {
        self.table.source_name(self.entry.source)
    }

    /// That source's configured priority (0 if none).
    pub fn priority(&self) -> i32 {
        self.table
            .sources
            .get(usize::from(self.entry.source))
            .map_or(0, |s| s.priority)
    }

    /// Tags, in the order written.
    pub fn tags(&self) -> impl Iterator<Item = &'a str> + 'a {
        let strings = &self.table.strings;
        self.entry.tags.iter().filter_map(|&h| strings.get(h))
    }

    /// Metadata pairs, in the order written.
    pub fn metadata(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let strings = &self.table.strings;
        self.entry
            .metadata
            .iter()
            .filter_map(|&(k, v)| Some((strings.get(k)?, strings.get(v)?)))
    }

    /// The value of metadata `key`.
    pub fn metadata_value(&self, key: &str) -> Option<&'a str> {
        self.metadata().find(|&(k, _)| k == key).map(|(_, v)| v)
    }

    /// An owned copy (inline, bounded: no allocation), e.g. to answer across an actor boundary.
    pub fn to_record(&self) -> IpReputation {
        let mut record = IpReputation {
            ip: self.ip(),
            status: self.status(),
            severity: self.severity(),
            tags: heapless::Vec::new(),
            last_updated: self.last_updated(),
            metadata: heapless::Vec::new(),
        };
        // Cannot fail: the strings were checked against these same bounds when written.
        for tag in self.tags() {
            let _ = Tag::try_from(tag).map(|t| record.tags.push(t));
        }
        for (k, v) in self.metadata() {
            if let (Ok(k), Ok(v)) = (MetadataKey::try_from(k), MetadataValue::try_from(v)) {
                let _ = record.metadata.push((k, v));
            }
        }
        record
    }
}

/// Names of the sources holding data; see [`IpReputationStore::list_sources`].
#[derive(Debug, Clone)]
pub struct SourceNames<'a> {
    table: &'a Table,
    ids: core::slice::Iter<'a, u16>,
}

impl<'a> Iterator for SourceNames<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let table = self.table;
        self.ids.next().map(|&id| table.source_name(id))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ids.size_hint()
    }
}

impl ExactSizeIterator for SourceNames<'_> {}

/// The entries of one source, following its list.
struct SourceEntries<'a> {
    table: &'a Table,
    slot: u32,
    /// Guard against a corrupt list: never more steps than slots.
    steps_left: usize,
}

impl<'a> Iterator for SourceEntries<'a> {
    type Item = ReputationView<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        self.steps_left = self.steps_left.checked_sub(1)?;
        let entry = self.table.entries.get(self.slot as usize)?;
        self.slot = entry.next;
        Some(ReputationView {
            table: self.table,
            entry,
        })
    }
}

/// The answers of [`IpReputationStore::check_ips`], one per input, in order.
#[derive(Debug)]
pub struct CheckIps<'s, 'q, Q> {
    table: &'s Table,
    metrics: &'s mut StoreMetrics,
    stats: &'s mut IpReputationStats,
    ips: core::slice::Iter<'q, Q>,
    now: EpochNanos,
}

impl<'s, 'q, Q: IpInput> Iterator for CheckIps<'s, 'q, Q> {
    type Item = (&'q Q, Result<ReputationView<'s>, StoreError>);

    fn next(&mut self) -> Option<Self::Item> {
        let ip = self.ips.next()?;
        let answer = lookup(
            self.table,
            self.metrics,
            self.stats,
            ip,
            "check_ips",
            self.now,
        );
        Some((ip, answer))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ips.size_hint()
    }
}

impl<Q: IpInput> ExactSizeIterator for CheckIps<'_, '_, Q> {}

impl WritableStoreRead for IpReputationStore {
    type Key = IpAddr;
    type View<'a> = ReputationView<'a>;
    type Sources<'a> = SourceNames<'a>;

    fn name(&self) -> &'static str {
        STORE
    }

    fn get(&mut self, key: &IpAddr, now: EpochNanos) -> Result<ReputationView<'_>, StoreError> {
        self.get_reputation(key, now)
    }

    fn list_sources(&mut self, now: EpochNanos) -> SourceNames<'_> {
        IpReputationStore::list_sources(self, now)
    }

    fn len(&self) -> usize {
        IpReputationStore::len(self)
    }

    fn capacity(&self) -> usize {
        IpReputationStore::capacity(self)
    }

    fn metrics(&self) -> DataStoreMetrics {
        IpReputationStore::metrics(self)
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        IpReputationStore::health(self, now)
    }
}

impl WritableStore for IpReputationStore {
    type Record = IpReputation;

    fn write(
        &mut self,
        source: &str,
        record: &IpReputation,
        now: EpochNanos,
    ) -> Result<(), WriteError> {
        IpReputationStore::write(self, source, record, now)
    }

    fn write_batch(
        &mut self,
        source: &str,
        records: &[IpReputation],
        now: EpochNanos,
    ) -> Result<(), WriteError> {
        IpReputationStore::write_batch(self, source, records, now)
    }

    fn delete(&mut self, source: &str, key: &IpAddr, now: EpochNanos) -> Result<bool, WriteError> {
        IpReputationStore::delete(self, source, key, now)
    }

    fn clear(&mut self, source: &str, now: EpochNanos) -> Result<usize, WriteError> {
        IpReputationStore::clear(self, source, now)
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    impl Table {
        /// Every bookkeeping invariant the fields document.
        fn assert_invariants(&self) {
            assert_eq!(self.index.len(), self.len);
            let mut free = 0usize;
            let mut slot = self.free_entry;
            while let Some(e) = self.entries.get(slot as usize) {
                assert_eq!(e.source, NO_SOURCE);
                free += 1;
                slot = e.next;
            }
            assert_eq!(free + self.len, self.entries.len());
            assert!(self.entries.len() <= self.max_entries);
            assert_eq!(
                self.by_name.len() + self.free_sources.len(),
                self.sources.len()
            );
            assert!(
                self.by_name
                    .windows(2)
                    .all(|w| self.source_name(w[0]) < self.source_name(w[1]))
            );
            let mut listed = 0usize;
            for &id in &self.by_name {
                let source = &self.sources[usize::from(id)];
                assert!(source.entries > 0);
                let (mut slot, mut prev, mut walked) = (source.head, NO_SLOT, 0u32);
                while let Some(e) = self.entries.get(slot as usize) {
                    assert_eq!(e.source, id);
                    assert_eq!(e.prev, prev);
                    assert_eq!(self.find_entry(id, e.ip, self.hash(e.ip)), Some(slot));
                    (prev, slot) = (slot, e.next);
                    walked += 1;
                }
                assert_eq!(walked, source.entries);
                listed += walked as usize;
            }
            assert_eq!(listed, self.len);
        }
    }

    proptest! {
        #[test]
        fn bookkeeping_holds_under_churn(
            ops in proptest::collection::vec((0u8..4, 0u8..4, 0u8..12, any::<bool>()), 1..200)
        ) {
            let mut config = IpReputationConfig::new(10);
            config.max_sources = 3;
            config.max_strings = 6;
            config.max_string_bytes = 24;
            let mut store = IpReputationStore::new(config, &[]).unwrap();
            let names = ["a", "b", "c", "d"];
            let tags = ["t0", "t1", "t2", "tag-three"];
            for (kind, source, ip, flag) in ops {
                let name = names[usize::from(source)];
                let addr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, ip));
                match kind {
                    0 | 1 => {
                        let mut r = IpReputation::new(&addr, ReputationStatus::Deny, 5, 1).unwrap();
                        r.add_tag(tags[usize::from(ip % 4)]).unwrap();
                        if flag {
                            r.set_metadata("k", tags[usize::from(source)]).unwrap();
                        }
                        let _ = store.write(name, &r, 1);
                    }
                    2 => {
                        let _ = store.delete(name, &addr, 1);
                    }
                    _ => {
                        if flag {
                            let _ = store.clear(name, 1);
                        }
                    }
                }
                store.table.assert_invariants();
            }
            let _ = names.map(|n| store.clear(n, 1));
            store.table.assert_invariants();
            prop_assert_eq!(store.strings_used(), (0, 0));
            prop_assert!(store.is_empty());
        }
    }
}
