//! Snapshot and restore of the IP reputation store: random verdicts from several sources →
//! records → restore gives the same merged verdict for every address under every policy; past
//! capacity the store refuses (never evicts) and counts; restoring allocates nothing.

mod support;

#[global_allocator]
static ALLOC: support::CountingAllocator = support::CountingAllocator;

use proptest::prelude::*;
use watchpost_core::ip_reputation::{
    ConflictPolicy, IpReputation, IpReputationConfig, IpReputationStore, ReputationRecord,
    ReputationStatus,
};

const SOURCES: [&str; 3] = ["feed-a", "feed-b", "local"];

fn store(policy: ConflictPolicy, entries: usize) -> IpReputationStore {
    IpReputationStore::new(
        IpReputationConfig::new(entries).with_policy(policy),
        &[("feed-a", 5), ("local", 1)],
    )
    .expect("store")
}

fn ip(i: u8) -> String {
    format!("192.0.2.{i}")
}

fn verdicts(s: &mut IpReputationStore) -> Vec<String> {
    (0..20u8)
        .map(|i| match s.get_reputation(ip(i).as_str(), 1) {
            Ok(v) => format!("{} {:?}", v.source(), v.to_record()),
            Err(e) => e.to_string(),
        })
        .collect()
}

proptest! {
    #[test]
    fn restore_gives_the_same_verdicts_under_every_policy(
        writes in proptest::collection::vec((0usize..3, 0u8..20, 0u8..4, 1u8..11, 0u64..5, any::<bool>()), 1..120),
        deletes in proptest::collection::vec((0usize..3, 0u8..20), 0..10),
    ) {
        for policy in [ConflictPolicy::LastWriteWins, ConflictPolicy::MaxSeverity, ConflictPolicy::SourcePriority] {
            let mut a = store(policy, 64);
            for &(src, i, status, severity, t, tagged) in &writes {
                let mut r = IpReputation::new(ip(i).as_str(), ReputationStatus::from_u8(status).unwrap(), severity, t).unwrap();
                if tagged {
                    r.add_tag("tor").unwrap();
                    r.set_metadata("why", "seen in feed").unwrap();
                }
                let _ = a.write(SOURCES[src], &r, 1);
            }
            for &(src, i) in &deletes {
                let _ = a.delete(SOURCES[src], ip(i).as_str(), 1);
            }
            let records: Vec<ReputationRecord<'_>> = a.records().collect();
            let mut b = store(policy, 64);
            let report = b.restore(records.iter().cloned(), 2);
            prop_assert_eq!((report.held, report.refused), (a.len(), 0));
            prop_assert_eq!(verdicts(&mut a), verdicts(&mut b));
            prop_assert_eq!(a.list_sources(1).collect::<Vec<_>>(), b.list_sources(1).collect::<Vec<_>>());
        }
    }
}

#[test]
fn past_capacity_refuses_and_counts_without_allocating() {
    let mut a = store(ConflictPolicy::MaxSeverity, 100);
    for i in 0..50u8 {
        for src in SOURCES.iter().take(2) {
            let r = IpReputation::new(ip(i).as_str(), ReputationStatus::Deny, 5, 1).unwrap();
            a.write(src, &r, 1).unwrap();
        }
    }
    let records: Vec<ReputationRecord<'_>> = a.records().collect();
    let mut b = store(ConflictPolicy::MaxSeverity, 60);
    let (count, report) = support::count_allocations(|| b.restore(records.iter().cloned(), 2));
    assert_eq!(count.allocations, 0, "allocated {} bytes", count.bytes);
    assert_eq!((report.held, report.refused), (60, 40));
    // Restoring again replaces, never duplicates.
    let report = b.restore(records.iter().take(10).cloned(), 3);
    assert_eq!((report.held, report.refused), (10, 0));
}
