//! How the store picks one answer when several sources wrote about the same address: a strict
//! total order over the contenders, so the answer never depends on write order or map order.
//!
//! The reference breaks ties by Go map iteration order, which is random: two reads of the same data
//! can disagree. Here each policy compares its main criterion and then falls through a fixed chain
//! of tie-breaks that ends in the source name; source names are unique within a store, so two
//! contenders are never equal and the winner is unique.

use core::cmp::Ordering;

use crate::time::EpochNanos;

/// Which source's verdict wins when several wrote about one address.
///
/// Every policy ends its tie-break chain with **the lexicographically smaller source name wins**
/// (byte order). The chains:
///
/// | policy | 1st | 2nd | 3rd | last |
/// |---|---|---|---|---|
/// | [`LastWriteWins`](Self::LastWriteWins) | newer `last_updated` | higher priority | — | smaller name |
/// | [`MaxSeverity`](Self::MaxSeverity) | higher severity | newer `last_updated` | higher priority | smaller name |
/// | [`SourcePriority`](Self::SourcePriority) | higher priority | newer `last_updated` | — | smaller name |
///
/// Priorities are configured per source name when the store is built; a source without one has
/// priority 0. They act as tie-breaks under every policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConflictPolicy {
    /// The most recent verdict (by the record's `last_updated`) wins. The reference's default.
    #[default]
    LastWriteWins,
    /// The highest severity wins; a lower or equal severity never displaces a higher one.
    MaxSeverity,
    /// The source with the highest configured priority wins.
    SourcePriority,
}

impl ConflictPolicy {
    /// Lowercase name (the reference's: `last_write_wins`, `max_severity`, `priority_based`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::LastWriteWins => "last_write_wins",
            ConflictPolicy::MaxSeverity => "max_severity",
            ConflictPolicy::SourcePriority => "priority_based",
        }
    }

    /// How `a` ranks against `b`: `Greater` means `a` wins. A strict total order as long as the
    /// two have different source names; `Equal` only for the same source (the same entry).
    pub fn compare(self, a: &Contender<'_>, b: &Contender<'_>) -> Ordering {
        let newer = a.last_updated.cmp(&b.last_updated);
        let priority = a.priority.cmp(&b.priority);
        // Reversed: the smaller name ranks higher.
        let name = b.source.as_bytes().cmp(a.source.as_bytes());
        match self {
            ConflictPolicy::LastWriteWins => newer.then(priority).then(name),
            ConflictPolicy::MaxSeverity => a
                .severity
                .cmp(&b.severity)
                .then(newer)
                .then(priority)
                .then(name),
            ConflictPolicy::SourcePriority => priority.then(newer).then(name),
        }
    }
}

/// What the policy looks at in one source's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contender<'a> {
    /// Who wrote it.
    pub source: &'a str,
    /// That source's configured priority (0 if none).
    pub priority: i32,
    /// The record's severity.
    pub severity: u8,
    /// The record's `last_updated`.
    pub last_updated: EpochNanos,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(source: &str, priority: i32, severity: u8, last_updated: u64) -> Contender<'_> {
        Contender {
            source,
            priority,
            severity,
            last_updated,
        }
    }

    #[test]
    fn main_criteria() {
        let old_high = c("a", 0, 9, 1);
        let new_low = c("b", 5, 2, 2);
        use ConflictPolicy::*;
        assert_eq!(
            LastWriteWins.compare(&new_low, &old_high),
            Ordering::Greater
        );
        assert_eq!(MaxSeverity.compare(&old_high, &new_low), Ordering::Greater);
        assert_eq!(
            SourcePriority.compare(&new_low, &old_high),
            Ordering::Greater
        );
    }

    #[test]
    fn tie_breaks_end_in_the_smaller_name() {
        let x = c("alpha", 1, 5, 7);
        let y = c("beta", 1, 5, 7);
        for p in [
            ConflictPolicy::LastWriteWins,
            ConflictPolicy::MaxSeverity,
            ConflictPolicy::SourcePriority,
        ] {
            assert_eq!(p.compare(&x, &y), Ordering::Greater, "{p:?}");
            assert_eq!(p.compare(&y, &x), Ordering::Less, "{p:?}");
        }
    }

    #[test]
    fn middle_tie_breaks() {
        use ConflictPolicy::*;
        // Equal timestamps: higher priority wins under last-write-wins.
        assert_eq!(
            LastWriteWins.compare(&c("z", 2, 1, 5), &c("a", 1, 9, 5)),
            Ordering::Greater
        );
        // Equal severity: newer wins, then priority.
        assert_eq!(
            MaxSeverity.compare(&c("z", 0, 5, 6), &c("a", 9, 5, 5)),
            Ordering::Greater
        );
        assert_eq!(
            MaxSeverity.compare(&c("z", 1, 5, 5), &c("a", 0, 5, 5)),
            Ordering::Greater
        );
        // Equal priority: newer wins.
        assert_eq!(
            SourcePriority.compare(&c("z", 3, 1, 6), &c("a", 3, 9, 5)),
            Ordering::Greater
        );
    }
}
