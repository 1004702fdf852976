//! Snapshot and restore of a [`ContainerTable`]: records out, and a table rebuilt from them
//! whose answers (name resolution by write order) and eviction order (removal order, then write
//! order) are the recorded ones.

use super::{ContainerTable, Entry};
use crate::container::ContainerRecord;
use crate::time::EpochNanos;

/// What [`ContainerTable::restore`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ContainerRestoreReport {
    /// Containers held afterwards.
    pub held: usize,
    /// Records dropped by the table's eviction rule (past capacity, or past their grace).
    pub evicted: usize,
    /// Records refused: an ID given twice (the first stays).
    pub rejected: usize,
}

impl ContainerTable {
    /// A counter that moves on every change: a snapshot is needed when it differs from the value
    /// seen at the last one.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Every container as a snapshot record, in slot order. Not a counted query.
    pub fn records(&self) -> impl Iterator<Item = ContainerRecord> + '_ {
        self.slots.iter().flatten().map(|e| ContainerRecord {
            info: e.info.clone(),
            removed_at: e.removed_at,
            written: e.written_seq,
            removed: e.removed_seq,
        })
    }

    /// Empties the table and rebuilds it from `records` (any order; in
    /// [`ContainerRecord::restore_order`] the table's own rule drops the right ones past
    /// capacity). Removed containers past their grace at `now` are not restored. Allocation-free.
    pub fn restore(
        &mut self,
        records: impl IntoIterator<Item = ContainerRecord>,
        now: EpochNanos,
    ) -> ContainerRestoreReport {
        for slot in 0..self.slots.len() as u32 {
            self.free_slot(slot);
        }
        // Every slot is free: start again from slot 0 (nothing above it is written).
        self.slots.clear();
        self.free.clear();
        let before = self.stats;
        let mut report = ContainerRestoreReport::default();
        let mut seq = self.seq;
        for record in records {
            seq = seq.max(record.written).max(record.removed);
            if self.exact_slot(record.info.id.as_str()).is_some() {
                report.rejected += 1;
                continue;
            }
            if record
                .removed_at
                .is_some_and(|t| now >= t.saturating_add(self.grace))
            {
                report.evicted += 1;
                continue;
            }
            let id = record.info.id.clone();
            let _ = self.store(None, record.info, now);
            let Some(slot) = self.exact_slot(id.as_str()) else {
                continue;
            };
            if let Some(entry) = self.slot_mut(slot) {
                entry.written_seq = record.written;
                entry.removed_seq = record.removed;
                entry.removed_at = record.removed_at;
            }
            if record.removed_at.is_some() {
                self.live.remove(slot);
                self.removed.touch(slot);
            }
        }
        self.seq = seq;
        let slots = &self.slots;
        let stamp = |slot: u32, removed: bool| {
            slots
                .get(slot as usize)
                .and_then(Option::as_ref)
                .map_or(0, |e: &Entry| {
                    if removed {
                        e.removed_seq
                    } else {
                        e.written_seq
                    }
                })
        };
        self.live.sort_by_key(|s| stamp(s, false));
        self.removed.sort_by_key(|s| stamp(s, true));
        let s = self.stats;
        report.evicted += (s.evicted_live + s.evicted_removed + s.expired_purged)
            .saturating_sub(before.evicted_live + before.evicted_removed + before.expired_purged)
            as usize;
        report.held = self.len();
        report
    }
}
