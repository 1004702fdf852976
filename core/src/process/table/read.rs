//! Read-only queries: what a reader of a shared copy of the table may ask without changing it.
//!
//! The counted queries (`get`, `children`, `ancestry`) take `&mut self` because they purge
//! expired records, count the metrics, refresh recency and mark the ancestry walk. A reader that
//! shares the table with others (the actors' published read view) can do none of that, so these
//! answer the same questions from `&self`:
//! - expired records (grace over by `now`) are hidden, exactly as if purged first;
//! - nothing is counted: the caller counts by the rule of [`crate::metrics`] and learns whether
//!   the lookup was ambiguous ([`ReadLookup::ambiguous`]);
//! - recency is not refreshed: the caller keeps each answer's [`ProcessView::slot`] and entity ID
//!   and hands them to the table's owner, who calls [`ProcessTable::refresh_recency`];
//! - the ancestry walk finds cycles with Brent's algorithm instead of marks, in O(`max_depth`)
//!   steps and no memory.
//!
//! Answers are the same as the counted queries' on a table purged at `now` (a property test in
//! `core/tests/process_model.rs` checks it).

use super::{NO_SLOT, ProcessTable, Record};
use crate::entity_id::EntityId;
use crate::process::ProcessKey;
use crate::process::view::{Ancestry, Children, ProcessView, Records};
use crate::time::EpochNanos;

/// The answer of [`ProcessTable::find`].
#[derive(Debug, Clone, Copy)]
pub struct ReadLookup<'a> {
    /// The process the entity ID names (see the module rules on collisions), if any.
    pub process: Option<ProcessView<'a>>,
    /// Whether more than one held process has this entity ID (the counted `get` adds these to
    /// `ambiguous_lookups`).
    pub ambiguous: bool,
}

impl ProcessTable {
    /// The record in `slot` if it is held and not expired at `now`.
    fn visible(&self, slot: u32, now: EpochNanos) -> Option<&Record> {
        self.record(slot)
            .filter(|r| !r.expired(now, self.config.exit_grace_ns))
    }

    fn visible_view(&self, slot: u32, now: EpochNanos) -> Option<ProcessView<'_>> {
        let record = self.visible(slot, now)?;
        Some(ProcessView::new(record, slot, &self.exe_paths))
    }

    /// Read-only [`get`](ProcessTable::get): the process `entity_id` names at `now`, counted
    /// nowhere, recency unchanged.
    pub fn find(&self, entity_id: EntityId, now: EpochNanos) -> ReadLookup<'_> {
        let mut best: Option<(u32, _)> = None;
        let mut matches = 0u32;
        for slot in self.by_entity_id.slots_with_hash(self.id_hash(entity_id)) {
            let Some(r) = self.visible(slot, now) else {
                continue;
            };
            if r.entity_id != entity_id {
                continue;
            }
            matches = matches.saturating_add(1);
            let rank = r.lookup_rank();
            if best.is_none_or(|(_, best_rank)| rank < best_rank) {
                best = Some((slot, rank));
            }
        }
        ReadLookup {
            process: best.and_then(|(slot, _)| self.visible_view(slot, now)),
            ambiguous: matches > 1,
        }
    }

    /// Read-only [`get_exact`](ProcessTable::get_exact): the process with exactly `key` at
    /// `now`, never ambiguous.
    pub fn find_exact(&self, key: ProcessKey, now: EpochNanos) -> Option<ProcessView<'_>> {
        let slot = self.find_exact_slot(key)?;
        self.visible_view(slot, now)
    }

    /// Read-only [`children`](ProcessTable::children) of a process found by a read-only lookup
    /// on this table at the same `now`.
    pub fn children_of(&self, parent: &ProcessView<'_>, now: EpochNanos) -> Children<'_> {
        let records = Records::new(&self.records, &self.exe_paths);
        if self.visible(parent.slot(), now).is_none() {
            return Children::empty(records);
        }
        Children::new(records, self.children.children(parent.slot()))
            .hiding_expired(now, self.config.exit_grace_ns)
    }

    /// Read-only [`ancestry`](ProcessTable::ancestry) from a process found by a read-only
    /// lookup on this table at the same `now`: `[it, parent, …]`, at most `max_depth` long
    /// (empty for `max_depth <= 0`), stopping at a parent not held or expired and before any
    /// process already listed.
    pub fn ancestry_of(
        &self,
        start: &ProcessView<'_>,
        max_depth: i32,
        now: EpochNanos,
    ) -> Ancestry<'_> {
        let records = Records::new(&self.records, &self.exe_paths);
        let limit = usize::try_from(max_depth).unwrap_or(0);
        if limit == 0 || self.visible(start.slot(), now).is_none() {
            return Ancestry::empty(records);
        }
        let length = self.distinct_ancestors(start.slot(), limit, now);
        Ancestry::new(records, start.slot(), length)
    }

    /// The parent of `slot` on the ancestry walk, if it is visible.
    fn walk_next(&self, slot: u32, now: EpochNanos) -> Option<u32> {
        let parent = self.visible(slot, now)?.parent_slot;
        if parent == NO_SLOT {
            return None;
        }
        self.visible(parent, now).map(|_| parent)
    }

    /// How many distinct records the walk up from `start` lists, at most `limit`: the chain's
    /// length if it ends, else (a cycle) the records before the first repeat.
    ///
    /// Brent's cycle detection: the hare meets the teleporting tortoise within
    /// `3 × (tail + cycle)` steps, so a walk that has not met it after `3 × limit` steps has more
    /// than `limit` distinct records and the answer is `limit`.
    fn distinct_ancestors(&self, start: u32, limit: usize, now: EpochNanos) -> usize {
        let bound = limit.saturating_mul(3).saturating_add(1);
        let mut tortoise = start;
        let mut hare = start;
        let mut power = 1usize;
        let mut cycle = 0usize;
        let mut steps = 0usize;
        loop {
            let Some(next) = self.walk_next(hare, now) else {
                // The chain ends after `steps + 1` records, all distinct.
                return (steps + 1).min(limit);
            };
            hare = next;
            steps += 1;
            cycle += 1;
            if hare == tortoise {
                break;
            }
            if steps >= bound {
                return limit;
            }
            if cycle == power {
                tortoise = hare;
                power = power.saturating_mul(2);
                cycle = 0;
            }
        }
        // A cycle of length `cycle`; its first record is `tail` steps from `start`.
        let mut ahead = start;
        for _ in 0..cycle {
            ahead = self.walk_next(ahead, now).unwrap_or(NO_SLOT);
        }
        let mut behind = start;
        let mut tail = 0usize;
        while behind != ahead && tail < bound {
            behind = self.walk_next(behind, now).unwrap_or(NO_SLOT);
            ahead = self.walk_next(ahead, now).unwrap_or(NO_SLOT);
            tail += 1;
        }
        tail.saturating_add(cycle).min(limit)
    }

    /// Refreshes the recency of processes that readers of a shared copy found, in the order
    /// given (least recent first): each `(slot, entity_id)` pair, as [`ProcessView::slot`] and
    /// [`ProcessView::entity_id`] reported it, touches the record in `slot` if it is still that
    /// process and running (a slot reused since is skipped). Allocates nothing.
    pub fn refresh_recency(&mut self, reads: impl IntoIterator<Item = (u32, EntityId)>) {
        for (slot, entity_id) in reads {
            if self
                .record(slot)
                .is_some_and(|r| r.entity_id == entity_id && r.is_live())
            {
                // As the counted queries do: recency, and the stamp snapshots keep.
                self.touch(slot);
            }
        }
    }
}
