//! Snapshot and restore of a [`ProcessTable`]: records out (all, or only those changed since the
//! last export, in bounded chunks), the keys removed since then, and a table rebuilt from records.
//!
//! # Why stamps
//! What a query answers and what is evicted next depends on two orders besides the records'
//! fields: the recency of running processes and the order of each parent's children. Each record
//! carries a stamp for each (`touched`, `linked`, from one table-wide counter), so a restore can
//! insert records in any order and then sort every list back by its stamps. A stamp changes only
//! for the record it belongs to, so changed-only snapshots stay small.
//!
//! # Changed-only exports
//! Every change to a persisted field or stamp marks the record dirty; an export clears the mark
//! of each record it hands out. Removed keys go to a bounded log; when it overflows (or after
//! [`ProcessTable::clear`]) only a full export describes the table, which
//! [`ProcessTable::take_removed`] says.

use super::{NO_SLOT, ParentSource, ProcessTable, Record, exit_order};
use crate::intern_arena::InternArena;
use crate::process::pending::ExeRef;
use crate::process::{ProcessKey, ProcessRecord};
use crate::reserved_vec::ReservedVec;
use crate::time::EpochNanos;

/// Size of the removed-keys log for a table of `capacity` records.
pub(super) fn removed_log_capacity(capacity: usize) -> usize {
    capacity.div_ceil(2).max(64)
}

/// Keys removed since the last export; bounded, reserved at construction.
#[derive(Debug, Clone)]
pub(super) struct RemovedLog {
    /// Invariant: never grows past the capacity reserved at construction (kept by clones too:
    /// the actors' second copy of the table is a clone).
    keys: ReservedVec<ProcessKey>,
    /// Some removal was not logged: the next export must be a full one.
    overflowed: bool,
}

impl RemovedLog {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        RemovedLog {
            keys: ReservedVec::with_capacity(capacity),
            overflowed: false,
        }
    }

    /// Makes this log equal to `other` (same capacity) without allocating.
    pub(super) fn copy_from(&mut self, other: &RemovedLog) -> bool {
        let RemovedLog { keys, overflowed } = other;
        self.overflowed = *overflowed;
        self.keys.copy_from(keys)
    }

    pub(super) fn bytes_reserved(&self) -> usize {
        self.keys.capacity() * core::mem::size_of::<ProcessKey>()
    }

    pub(super) fn push(&mut self, key: ProcessKey) {
        if self.keys.len() < self.keys.capacity() {
            self.keys.push(key);
        } else {
            self.overflowed = true;
        }
    }

    pub(super) fn mark_overflowed(&mut self) {
        self.overflowed = true;
    }

    fn take(&mut self, mut emit: impl FnMut(ProcessKey)) -> bool {
        for key in self.keys.drain(..) {
            emit(key);
        }
        core::mem::replace(&mut self.overflowed, false)
    }
}

/// What [`ProcessTable::restore`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RestoreReport {
    /// Records held after the restore.
    pub held: usize,
    /// Records dropped by the table's eviction rule because they did not all fit.
    pub evicted: usize,
    /// Records refused: pid 0, or a key given twice (the first one stays).
    pub rejected: usize,
}

/// Whether an export must be a full one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportState {
    /// Removals were not all logged since the last export: only a full export (replace
    /// everything) describes the table.
    pub full_required: bool,
}

fn record_of<'a>(r: &Record, exe_paths: &'a InternArena) -> ProcessRecord<'a> {
    ProcessRecord {
        pid: r.pid,
        start_time: r.start_time,
        ppid: r.ppid,
        parent_start_time: r.parent_start_time,
        uid: r.uid,
        gid: r.gid,
        comm: r.comm,
        exe_path: r.exe.path.and_then(|h| exe_paths.get(h)),
        invoked_path: r.exe.invoked.and_then(|h| exe_paths.get(h)),
        exe_flags: r.exe.flags,
        exit_time: r.exit_time,
        exit_time_unknown: r.exit_unknown,
        release_time: r.release_time,
        parent_from_fork: r.parent_source == ParentSource::Fork,
        recency: r.touched,
        linked: r.linked,
    }
}

impl ProcessTable {
    /// Every process held, as snapshot records, in slot order. Not a counted query; changes
    /// nothing (dirty marks stay).
    pub fn records(&self) -> impl Iterator<Item = ProcessRecord<'_>> + '_ {
        self.records
            .iter()
            .filter(|r| r.occupied)
            .map(|r| record_of(r, &self.exe_paths))
    }

    /// Hands at most `max` records to `emit`, starting at slot `from_slot`: every held record,
    /// or with `changed_only` those changed since they were last exported. Clears the change
    /// mark of each record handed out. Returns the slot to continue from, `None` when the whole
    /// table was visited. Bounded work per call, so an actor can export between queries.
    pub fn export_chunk(
        &mut self,
        from_slot: u32,
        max: usize,
        changed_only: bool,
        mut emit: impl FnMut(ProcessRecord<'_>),
    ) -> Option<u32> {
        let ProcessTable {
            records, exe_paths, ..
        } = self;
        let mut emitted = 0usize;
        let mut slot = from_slot as usize;
        while let Some(r) = records.get_mut(slot) {
            if emitted >= max {
                return u32::try_from(slot).ok();
            }
            if r.occupied && (r.dirty || !changed_only) {
                r.dirty = false;
                emit(record_of(r, exe_paths));
                emitted += 1;
            }
            slot += 1;
        }
        None
    }

    /// Hands every key removed since the last call to `emit` and forgets them. The answer says
    /// whether some removal was not logged (bounded log overflowed, or the table was cleared):
    /// then only a full export describes the table.
    pub fn take_removed(&mut self, emit: impl FnMut(ProcessKey)) -> ExportState {
        ExportState {
            full_required: self.removed.take(emit),
        }
    }

    /// Empties the table and rebuilds it from `records` (any order). Records past the capacity
    /// are dropped by the table's own eviction rule as they arrive (feed them in
    /// [`ProcessRecord::restore_order`] to drop exactly what the table would drop first) and
    /// counted; a record with pid 0 or a key already restored is refused. Every recency list and
    /// children list is then put back in its recorded order. Restored records are not marked
    /// changed; evicted ones are in the removed log. Allocation-free.
    pub fn restore<'r>(
        &mut self,
        records: impl IntoIterator<Item = ProcessRecord<'r>>,
        now: EpochNanos,
    ) -> RestoreReport {
        self.clear();
        let _ = self.removed.take(|_| {});
        let evictions_before = self.stats.evictions();
        let mut report = RestoreReport::default();
        let mut stamp = self.stamp;
        for record in records {
            stamp = stamp.max(record.recency).max(record.linked);
            if !self.restore_one(&record, now) {
                report.rejected += 1;
            }
        }
        self.stamp = stamp;
        self.sort_lists();
        report.evicted = self.stats.evictions().saturating_sub(evictions_before) as usize;
        report.held = self.len;
        report
    }

    fn restore_one(&mut self, rec: &ProcessRecord<'_>, now: EpochNanos) -> bool {
        let key = rec.key();
        if key.pid == 0 || self.find_exact_slot(key).is_some() {
            return false;
        }
        let Some(slot) = self.take_free_slot(now) else {
            return false;
        };
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
        let parent = rec.parent_key();
        let parent_slot = if parent.pid == 0 || parent == key {
            NO_SLOT
        } else {
            self.find_exact_slot(parent).unwrap_or(NO_SLOT)
        };
        let exe = ExeRef {
            path: rec.exe_path.and_then(|p| self.intern_exe(p)),
            invoked: rec.invoked_path.and_then(|p| self.intern_exe(p)),
            flags: rec.exe_flags,
        };
        let exited = rec.exit_time != 0;
        let Some(r) = self.records.get_mut(slot as usize) else {
            self.release_exe(exe);
            self.free.push(slot);
            return false;
        };
        *r = Record {
            pid: key.pid,
            start_time: key.start_time,
            ppid: parent.pid,
            parent_start_time: parent.start_time,
            entity_id,
            parent_slot,
            uid: rec.uid,
            gid: rec.gid,
            exit_time: rec.exit_time,
            release_time: if exited {
                rec.release_time.max(rec.exit_time)
            } else {
                0
            },
            holding_children: 0,
            exe,
            comm: rec.comm,
            parent_source: if rec.parent_from_fork {
                ParentSource::Fork
            } else {
                ParentSource::Scan
            },
            occupied: true,
            visited: false,
            touched: rec.recency,
            linked: rec.linked,
            dirty: false,
            exit_unknown: exited && rec.exit_time_unknown,
        };
        self.len += 1;
        // Cannot fail: the index holds one entry per occupied record and was sized for all.
        let _ = self.by_entity_id.insert(id_hash, slot);
        self.link_to_parent(slot);
        if exited {
            self.exits.push(slot, exit_order(&self.records));
        } else {
            self.live_recency.touch(slot);
            if parent_slot != NO_SLOT {
                self.hold(parent_slot);
            }
        }
        self.adopt_children(slot, key);
        true
    }

    /// Puts the recency list and every children list and orphan group in stamp order.
    fn sort_lists(&mut self) {
        let records = &self.records;
        let touched = |slot: u32| records.get(slot as usize).map_or(0, |r| r.touched);
        self.live_recency.sort_by_key(touched);
        let linked = |slot: u32| records.get(slot as usize).map_or(0, |r| r.linked);
        // Newest link first.
        let newer = |a: u32, b: u32| linked(a) > linked(b);
        for slot in 0..records.len() as u32 {
            let Some(r) = records.get(slot as usize).filter(|r| r.occupied) else {
                continue;
            };
            self.children.sort_children(slot, newer);
            if r.waits_for_parent() && self.children.is_detached_head(slot) {
                let head = self.children.sort_detached(slot, newer);
                if head != slot {
                    let hash = Self::parent_hash(&self.hasher, r.parent_key());
                    self.orphans.remove(hash, slot);
                    // Cannot fail: the group's entry was just removed.
                    let _ = self.orphans.insert(hash, head);
                }
            }
        }
    }

    /// Marks exited every running process for which `is_running` says no: after a restart in
    /// the same boot, the processes that ended while nobody watched. Their exit time is `now`
    /// and flagged unknown ([`crate::process::ProcessView::exit_time_unknown`]); they keep their
    /// place in ancestry and follow the normal grace. Returns how many were marked.
    pub fn mark_exited_while_away(
        &mut self,
        now: EpochNanos,
        mut is_running: impl FnMut(ProcessKey) -> bool,
    ) -> usize {
        let mut marked = 0;
        for slot in 0..self.records.len() as u32 {
            let Some(key) = self.record(slot).filter(|r| r.is_live()).map(Record::key) else {
                continue;
            };
            if is_running(key) {
                continue;
            }
            self.exit_record(slot, now.max(1));
            if let Some(r) = self.records.get_mut(slot as usize) {
                r.exit_unknown = true;
            }
            marked += 1;
        }
        marked
    }
}
