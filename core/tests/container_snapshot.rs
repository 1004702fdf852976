//! Snapshot and restore of the container table: random contents → records → restore answers
//! lookups by name and listings like the original, and evicts in the same order afterwards.

mod support;

#[global_allocator]
static ALLOC: support::CountingAllocator = support::CountingAllocator;

use proptest::prelude::*;
use watchpost_core::container::{
    ContainerFilter, ContainerRecord, ContainerTable, ContainerTableConfig, ContainerUpdate,
};

fn table(seed: u64) -> ContainerTable {
    ContainerTable::new(ContainerTableConfig {
        capacity: 6,
        removal_grace_ns: 20,
        hash_seed: seed,
    })
}

fn id(i: u8) -> String {
    format!("{:064x}", u64::from(i) + 1)
}

const NAMES: [&str; 3] = ["web", "db", "cache"];

#[derive(Debug, Clone, Copy)]
enum Op {
    Upsert(u8, u8),
    Remove(u8),
    Tick(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..12, 0u8..3).prop_map(|(i, n)| Op::Upsert(i, n)),
        2 => (0u8..12).prop_map(Op::Remove),
        1 => (0u8..8).prop_map(Op::Tick),
    ]
}

fn apply(t: &mut ContainerTable, op: Op, now: &mut u64) {
    match op {
        Op::Upsert(i, n) => {
            let id = id(i);
            let _ = t.upsert(&ContainerUpdate::new(&id).name(NAMES[usize::from(n)]), *now);
        }
        Op::Remove(i) => {
            let _ = t.mark_removed(&id(i), *now);
        }
        Op::Tick(d) => *now += u64::from(d),
    }
}

/// Every answer a detector can get, in order.
fn answers(t: &mut ContainerTable, now: u64) -> Vec<String> {
    let mut out: Vec<String> = t
        .list_containers(&ContainerFilter::all(), now)
        .map(|c| c.id.to_string())
        .collect();
    for n in NAMES {
        out.push(
            t.get_container_by_name(n, now)
                .map_or_else(|e| e.to_string(), |c| c.id.to_string()),
        );
    }
    for i in 0..12 {
        out.push(
            t.get_container(&id(i), now)
                .map_or_else(|e| e.to_string(), |c| format!("{} {}", c.id, c.name)),
        );
    }
    out
}

proptest! {
    #[test]
    fn restore_answers_and_evicts_like_the_original(
        before in proptest::collection::vec(op(), 1..80),
        after in proptest::collection::vec(op(), 0..80),
        reverse in any::<bool>(),
    ) {
        let mut a = table(1);
        let mut now = 1_000u64;
        for op in before {
            apply(&mut a, op, &mut now);
        }
        a.purge_expired(now);
        let mut records: Vec<ContainerRecord> = a.records().collect();
        if reverse {
            records.reverse();
        }
        let mut b = table(2);
        let report = b.restore(records, now);
        prop_assert_eq!((report.held, report.evicted, report.rejected), (a.len(), 0, 0));
        prop_assert_eq!(answers(&mut a, now), answers(&mut b, now));
        let mut now_b = now;
        for op in after {
            apply(&mut a, op, &mut now);
            apply(&mut b, op, &mut now_b);
            prop_assert_eq!(answers(&mut a, now), answers(&mut b, now_b));
        }
    }
}

#[test]
fn past_capacity_removed_go_first_then_least_recently_written() {
    let mut a = ContainerTable::new(ContainerTableConfig {
        capacity: 10,
        removal_grace_ns: 1_000,
        hash_seed: 3,
    });
    for i in 0..10 {
        apply(&mut a, Op::Upsert(i, 0), &mut 5);
    }
    apply(&mut a, Op::Remove(0), &mut 5);
    apply(&mut a, Op::Upsert(1, 1), &mut 5);
    let mut records: Vec<ContainerRecord> = a.records().collect();
    records.sort_by_key(ContainerRecord::restore_order);
    let mut b = table(4);
    let (count, report) = support::count_allocations(|| b.restore(records, 6));
    assert_eq!(count.allocations, 0);
    assert_eq!((report.held, report.evicted), (6, 4));
    let mut held: Vec<String> = b.records().map(|r| r.info.id.to_string()).collect();
    held.sort();
    // Removed 0 went first, then live 2, 3, 4 (least recently written); 1 was rewritten last.
    let mut want: Vec<String> = [1u8, 5, 6, 7, 8, 9].into_iter().map(id).collect();
    want.sort();
    assert_eq!(held, want);
}
