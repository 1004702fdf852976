//! The `[persist]` and `[ip_reputation]` sections: snapshots of the stores in the data directory,
//! and the IP reputation writable store. Every key has an upper limit as well as a lower one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use watchpost_core::ip_reputation::{ConflictPolicy, IpReputationConfig};

use super::{Config, Problem};

/// Snapshots in `daemon.data_dir/watchpost.redb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PersistSection {
    /// Whether stores are snapshotted and restored at all.
    pub enabled: bool,
    /// Period of the snapshots (1 s .. 1 day).
    pub snapshot_interval_ms: u64,
    /// The file is compacted when it passes this size (1 MiB .. 64 GiB).
    pub max_file_bytes: u64,
    /// Records copied out of a store actor per message (1 .. 65,536): the longest a snapshot
    /// holds a store between two queries.
    pub chunk_records: usize,
    /// Whether a reputation write waits for the disk (`immediate`: fsync, survives a power cut)
    /// or not (`eventual`: survives a daemon crash).
    pub reputation_durability: DurabilityChoice,
}

/// `persist.reputation_durability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityChoice {
    /// fsync on every accepted write batch.
    #[default]
    Immediate,
    /// No fsync (the OS writes it back; a power cut may lose the last writes).
    Eventual,
}

impl Default for PersistSection {
    fn default() -> Self {
        PersistSection {
            enabled: true,
            snapshot_interval_ms: 30_000,
            max_file_bytes: 256 << 20,
            chunk_records: 1_024,
            reputation_durability: DurabilityChoice::Immediate,
        }
    }
}

/// The IP reputation store (a writable store the daemon owns; written over the socket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IpReputationSection {
    /// Whether the store is registered.
    pub enabled: bool,
    /// `last_write_wins`, `max_severity` or `priority_based`.
    pub policy: PolicyChoice,
    /// Most (source, address) entries (1 .. 4,194,304).
    pub max_entries: usize,
    /// Most sources holding data at once (1 .. 1,024).
    pub max_sources: usize,
    /// Most records in one write batch (1 .. 65,536, at most `max_entries`).
    pub max_batch: usize,
    /// Priority per source name (tie-breaks; the main criterion of `priority_based`).
    pub priorities: BTreeMap<String, i32>,
}

/// `ip_reputation.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyChoice {
    /// The newest verdict wins.
    #[default]
    LastWriteWins,
    /// The highest severity wins.
    MaxSeverity,
    /// The source with the highest priority wins.
    PriorityBased,
}

impl Default for IpReputationSection {
    fn default() -> Self {
        IpReputationSection {
            enabled: true,
            policy: PolicyChoice::LastWriteWins,
            max_entries: 16_384,
            max_sources: 32,
            max_batch: 4_096,
            priorities: BTreeMap::new(),
        }
    }
}

impl IpReputationSection {
    /// The core store's configuration (the seed is chosen per build by the factory).
    pub fn store_config(&self) -> IpReputationConfig {
        let policy = match self.policy {
            PolicyChoice::LastWriteWins => ConflictPolicy::LastWriteWins,
            PolicyChoice::MaxSeverity => ConflictPolicy::MaxSeverity,
            PolicyChoice::PriorityBased => ConflictPolicy::SourcePriority,
        };
        IpReputationConfig {
            max_sources: self.max_sources,
            max_batch: self.max_batch,
            ..IpReputationConfig::new(self.max_entries).with_policy(policy)
        }
    }

    /// The priorities as the factory takes them.
    pub fn priority_list(&self) -> Vec<(String, i32)> {
        self.priorities
            .iter()
            .map(|(n, p)| (n.clone(), *p))
            .collect()
    }
}

/// Upper and lower limits of every key of both sections, and of
/// `collector.synthetic_events_per_second`.
pub(super) fn validate(config: &Config, problems: &mut Vec<Problem>) {
    let mut within = |key: &str, value: u64, low: u64, high: u64| {
        if value < low || value > high {
            problems.push(Problem {
                key: key.to_owned(),
                reason: format!("must be between {low} and {high}"),
            });
        }
    };
    let p = &config.persist;
    within(
        "persist.snapshot_interval_ms",
        p.snapshot_interval_ms,
        1_000,
        86_400_000,
    );
    within(
        "persist.max_file_bytes",
        p.max_file_bytes,
        1 << 20,
        64 << 30,
    );
    within("persist.chunk_records", p.chunk_records as u64, 1, 65_536);
    let r = &config.ip_reputation;
    within(
        "ip_reputation.max_entries",
        r.max_entries as u64,
        1,
        4_194_304,
    );
    within("ip_reputation.max_sources", r.max_sources as u64, 1, 1_024);
    within(
        "ip_reputation.max_batch",
        r.max_batch as u64,
        1,
        (r.max_entries as u64).clamp(1, 65_536),
    );
    within(
        "collector.synthetic_events_per_second",
        u64::from(config.collector.synthetic_events_per_second),
        0,
        1_000_000,
    );
    for name in r.priorities.keys() {
        if watchpost_core::writable::validate_source_name(name).is_err() {
            problems.push(Problem {
                key: "ip_reputation.priorities".to_owned(),
                reason: format!("{name:?} is not a valid source name"),
            });
        }
    }
}
