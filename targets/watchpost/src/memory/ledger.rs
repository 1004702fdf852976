//! The bytes each part of the running daemon reserved (stores, when built or rebuilt) or may
//! hold at most (queues, buffers, rings: from the configuration), by part name. `query metrics`
//! shows it next to the process's RSS.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Reserved bytes by part.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    parts: Mutex<BTreeMap<String, u64>>,
    budget: std::sync::atomic::AtomicU64,
}

impl MemoryLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `part` holds `bytes` now (replacing what it held before).
    pub fn set(&self, part: &str, bytes: u64) {
        if let Ok(mut parts) = self.parts.lock() {
            parts.insert(part.to_owned(), bytes);
        }
    }

    /// Records the configured budget (the estimate's total).
    pub fn set_budget(&self, bytes: u64) {
        self.budget
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// The configured budget.
    pub fn budget(&self) -> u64 {
        self.budget.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every part and its bytes.
    pub fn parts(&self) -> BTreeMap<String, u64> {
        self.parts.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// The sum over every part.
    pub fn total(&self) -> u64 {
        self.parts()
            .values()
            .fold(0u64, |sum, b| sum.saturating_add(*b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_replaced_and_summed() {
        let l = MemoryLedger::new();
        l.set("process store", 100);
        l.set("dns store", 50);
        l.set("process store", 120);
        assert_eq!(l.total(), 170);
        assert_eq!(l.parts().len(), 2);
        l.set("huge", u64::MAX);
        assert_eq!(l.total(), u64::MAX);
    }
}
