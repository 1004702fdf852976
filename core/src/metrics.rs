//! Operational counters every store keeps, and the reference's `DataStoreMetrics` view of them.
//!
//! Counting rule, the same in every store (the reference leaves its counters at zero):
//! - a lookup that finds its entity: `success_count` +1 and `cache_hits` +1;
//! - a lookup that answers `NotFound`: `success_count` +1 and `cache_misses` +1 (not found is a
//!   normal answer, not a failure);
//! - a request rejected or failed for any other reason (`InvalidArgument`, ...): `error_count` +1;
//! - every request, whatever its outcome, sets `last_access` to `now`.
//!
//! Writes count as successes or errors; they never touch hits or misses.

use crate::time::EpochNanos;

/// The reference's metrics structure, as handed to callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DataStoreMetrics {
    /// Number of items currently held.
    pub item_count: i64,
    /// Requests answered (found or not found).
    pub success_count: u64,
    /// Requests that failed.
    pub error_count: u64,
    /// Lookups that found their entity.
    pub cache_hits: u64,
    /// Lookups that answered `NotFound`.
    pub cache_misses: u64,
    /// Time of the last request of any kind; 0 if none yet.
    pub last_access: EpochNanos,
}

/// The counters a store owns and bumps on every operation. Item count is not kept here: the store
/// knows it and passes it to [`StoreMetrics::snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StoreMetrics {
    success_count: u64,
    error_count: u64,
    cache_hits: u64,
    cache_misses: u64,
    last_access: EpochNanos,
}

impl StoreMetrics {
    /// All counters at zero.
    pub const fn new() -> Self {
        StoreMetrics {
            success_count: 0,
            error_count: 0,
            cache_hits: 0,
            cache_misses: 0,
            last_access: 0,
        }
    }

    /// A lookup found its entity.
    pub fn hit(&mut self, now: EpochNanos) {
        self.success_count = self.success_count.saturating_add(1);
        self.cache_hits = self.cache_hits.saturating_add(1);
        self.touch(now);
    }

    /// A lookup answered `NotFound`.
    pub fn miss(&mut self, now: EpochNanos) {
        self.success_count = self.success_count.saturating_add(1);
        self.cache_misses = self.cache_misses.saturating_add(1);
        self.touch(now);
    }

    /// Records `found` as a hit or a miss.
    pub fn lookup(&mut self, found: bool, now: EpochNanos) {
        if found { self.hit(now) } else { self.miss(now) }
    }

    /// A request that succeeded without being a lookup (a write, a list).
    pub fn success(&mut self, now: EpochNanos) {
        self.success_count = self.success_count.saturating_add(1);
        self.touch(now);
    }

    /// A request that failed (invalid argument, ...).
    pub fn error(&mut self, now: EpochNanos) {
        self.error_count = self.error_count.saturating_add(1);
        self.touch(now);
    }

    fn touch(&mut self, now: EpochNanos) {
        // Time never runs backwards in the metrics, even if a caller's clock does.
        if now > self.last_access {
            self.last_access = now;
        }
    }

    /// The reference's view, with the store's current `item_count`.
    pub fn snapshot(&self, item_count: usize) -> DataStoreMetrics {
        DataStoreMetrics {
            item_count: i64::try_from(item_count).unwrap_or(i64::MAX),
            success_count: self.success_count,
            error_count: self.error_count,
            cache_hits: self.cache_hits,
            cache_misses: self.cache_misses,
            last_access: self.last_access,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_rule() {
        let mut m = StoreMetrics::new();
        m.hit(10);
        m.miss(20);
        m.error(15);
        m.success(5);
        let s = m.snapshot(3);
        assert_eq!(s.item_count, 3);
        assert_eq!(s.success_count, 3);
        assert_eq!(s.error_count, 1);
        assert_eq!(s.cache_hits, 1);
        assert_eq!(s.cache_misses, 1);
        assert_eq!(s.last_access, 20);
    }
}
