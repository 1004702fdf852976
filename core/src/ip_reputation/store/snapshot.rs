//! Snapshot and restore of an [`IpReputationStore`]: every (source, address) verdict out, and a
//! store rebuilt by writing them back through the store's own checks. The store refuses what
//! does not fit rather than evicting, so a restore into a smaller store keeps the records given
//! first and counts the rest.

use super::IpReputationStore;
use crate::ip_reputation::ReputationRecord;
use crate::time::EpochNanos;

/// What [`IpReputationStore::restore`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReputationRestoreReport {
    /// Entries held afterwards.
    pub held: usize,
    /// Records the store refused: past a capacity (entries, sources, strings), or breaking a
    /// rule (source name, severity, tags), or repeating a (source, address) pair.
    pub refused: usize,
}

impl IpReputationStore {
    /// A counter that moves on every accepted change: a snapshot is needed when it differs from
    /// the value seen at the last one.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Every (source, address) verdict as a snapshot record, source by source in name order.
    /// Not counted in the metrics.
    pub fn records(&self) -> impl Iterator<Item = ReputationRecord<'_>> + '_ {
        self.entries().map(|view| ReputationRecord {
            source: view.source(),
            reputation: view.to_record(),
        })
    }

    /// Empties the store and writes `records` back, each through the store's own checks (a
    /// record that is refused is counted, never a panic). Allocation-free.
    pub fn restore<'r>(
        &mut self,
        records: impl IntoIterator<Item = ReputationRecord<'r>>,
        now: EpochNanos,
    ) -> ReputationRestoreReport {
        // Clearing a source removes it from the name list: clear the first until none is left.
        for _ in 0..self.table.sources.len() {
            let Some(&id) = self.table.by_name.first() else {
                break;
            };
            let Some(name) = self
                .table
                .sources
                .get(usize::from(id))
                .and_then(|s| s.name.clone())
            else {
                break;
            };
            if self.clear(name.as_str(), now).is_err() {
                break;
            }
        }
        let mut report = ReputationRestoreReport::default();
        for record in records {
            let replaced_before = self.stats.entries_replaced;
            match self.write(record.source, &record.reputation, now) {
                Ok(()) if self.stats.entries_replaced == replaced_before => {}
                _ => report.refused += 1,
            }
        }
        report.held = self.len();
        report
    }
}
