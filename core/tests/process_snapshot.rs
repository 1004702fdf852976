//! Snapshot and restore of the process table: random contents → records → restore gives the same
//! answers to every query and the same future (evictions, children order) as the original;
//! past capacity the table's own eviction rule drops records, counted; exports and restores
//! allocate nothing.

mod support;

#[global_allocator]
static ALLOC: support::CountingAllocator = support::CountingAllocator;

use proptest::prelude::*;
use watchpost_core::process::{
    Comm, ExeFlags, ExecEvent, ExitEvent, ForkEvent, ProcessKey, ProcessRecord, ProcessTable,
    ProcessTableConfig, ScanRecord,
};
use watchpost_core::time::NANOS_PER_SEC;

const T0: u64 = 1_764_300_000 * NANOS_PER_SEC;
const PATHS: [&str; 4] = ["/bin/sh", "/usr/bin/python3", "/usr/sbin/sshd", "/tmp/x"];

fn table(capacity: usize, seed: u64) -> ProcessTable {
    ProcessTable::new(ProcessTableConfig {
        capacity,
        exit_grace_ns: 40,
        // Early events are not persisted (they wait at most seconds): keep none, so the two
        // tables cannot differ by a parked event.
        pending_capacity: 0,
        pending_ttl_ns: 10,
        exe_path_strings: 16,
        exe_path_bytes: 512,
        hash_seed: seed,
    })
}

fn key(i: u8) -> ProcessKey {
    ProcessKey::new(u32::from(i) + 1, T0 + u64::from(i) * 1000)
}

/// One step of traffic.
#[derive(Debug, Clone, Copy)]
enum Op {
    Fork {
        child: u8,
        parent: u8,
        path: Option<u8>,
    },
    Scan {
        child: u8,
        parent: u8,
        path: Option<u8>,
    },
    Exec {
        who: u8,
        path: u8,
    },
    Exit {
        who: u8,
    },
    Get {
        who: u8,
    },
    Children {
        who: u8,
    },
    Ancestry {
        who: u8,
    },
    Purge,
    Tick(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0u8..30;
    prop_oneof![
        4 => (k.clone(), 0u8..31, proptest::option::of(0u8..4))
            .prop_map(|(child, parent, path)| Op::Fork { child, parent, path }),
        1 => (k.clone(), 0u8..31, proptest::option::of(0u8..4))
            .prop_map(|(child, parent, path)| Op::Scan { child, parent, path }),
        2 => (k.clone(), 0u8..4).prop_map(|(who, path)| Op::Exec { who, path }),
        3 => k.clone().prop_map(|who| Op::Exit { who }),
        2 => k.clone().prop_map(|who| Op::Get { who }),
        1 => k.clone().prop_map(|who| Op::Children { who }),
        1 => k.prop_map(|who| Op::Ancestry { who }),
        1 => Just(Op::Purge),
        2 => (0u8..20).prop_map(Op::Tick),
    ]
}

/// What the step answered, for comparing two tables step by step.
type Answer = Vec<(u32, u64, Option<u64>, bool)>;

fn apply(t: &mut ProcessTable, op: Op, now: &mut u64) -> Answer {
    let parent_key = |p: u8| {
        if p == 30 {
            ProcessKey::default()
        } else {
            key(p)
        }
    };
    let path = |p: Option<u8>| p.map(|i| PATHS[usize::from(i)]);
    let view = |p: watchpost_core::process::ProcessView<'_>| {
        (
            p.pid(),
            p.start_time(),
            p.exit_time(),
            p.exit_time_unknown(),
        )
    };
    match op {
        Op::Fork {
            child,
            parent,
            path: p,
        } => {
            let (k, pk) = (key(child), parent_key(parent));
            t.apply_fork(
                &ForkEvent {
                    pid: k.pid,
                    start_time: k.start_time,
                    ppid: pk.pid,
                    parent_start_time: pk.start_time,
                    uid: 1,
                    gid: 2,
                    comm: Comm::new("f"),
                    exe_path: path(p),
                },
                *now,
            );
            vec![]
        }
        Op::Scan {
            child,
            parent,
            path: p,
        } => {
            let (k, pk) = (key(child), parent_key(parent));
            t.apply_scan(
                &ScanRecord {
                    pid: k.pid,
                    start_time: k.start_time,
                    ppid: pk.pid,
                    parent_start_time: pk.start_time,
                    uid: 3,
                    gid: 4,
                    comm: Comm::new("s"),
                    exe_path: path(p),
                    exe_flags: ExeFlags {
                        deleted: p.is_some_and(|p| p % 2 == 1),
                        ..ExeFlags::NONE
                    },
                },
                *now,
            );
            vec![]
        }
        Op::Exec { who, path: p } => {
            let k = key(who);
            t.apply_exec(
                &ExecEvent {
                    pid: k.pid,
                    start_time: k.start_time,
                    uid: 5,
                    gid: 6,
                    comm: Comm::new("e"),
                    exe_path: PATHS[usize::from(p)],
                    // The path as invoked and the flags survive a restore too.
                    invoked_path: (p % 2 == 0).then_some(PATHS[usize::from(3 - p % 4)]),
                    exe_flags: ExeFlags {
                        memfd: p == 3,
                        truncated: p == 1,
                        ..ExeFlags::NONE
                    },
                },
                *now,
            );
            vec![]
        }
        Op::Exit { who } => {
            let k = key(who);
            t.apply_exit(
                &ExitEvent {
                    pid: k.pid,
                    start_time: k.start_time,
                    exit_time: *now,
                },
                *now,
            );
            vec![]
        }
        Op::Get { who } => t
            .get(key(who).entity_id(), *now)
            .map(view)
            .into_iter()
            .collect(),
        Op::Children { who } => t
            .children(key(who).entity_id(), *now)
            .map(|c| c.map(view).collect())
            .unwrap_or_default(),
        Op::Ancestry { who } => t
            .ancestry(key(who).entity_id(), 8, *now)
            .map(|a| a.map(view).collect())
            .unwrap_or_default(),
        Op::Purge => {
            t.purge_expired(*now);
            vec![]
        }
        Op::Tick(d) => {
            *now += u64::from(d);
            vec![]
        }
    }
}

/// A record with its stamps replaced by their rank among all stamps held, so two tables whose
/// counters started apart still compare equal when their orders agree.
type Normal = (
    ProcessKey,
    ProcessKey,
    (u32, u32, String, Option<String>, Option<String>, ExeFlags),
    (u64, bool, u64, bool),
    (usize, usize),
);

fn normalized(t: &ProcessTable) -> Vec<Normal> {
    let records: Vec<ProcessRecord<'_>> = t.records().collect();
    let mut stamps: Vec<u64> = records.iter().flat_map(|r| [r.recency, r.linked]).collect();
    stamps.sort_unstable();
    stamps.dedup();
    let rank = |s: u64| stamps.binary_search(&s).unwrap_or(usize::MAX);
    let mut out: Vec<Normal> = records
        .iter()
        .map(|r| {
            (
                r.key(),
                r.parent_key(),
                (
                    r.uid,
                    r.gid,
                    r.comm.as_str().to_owned(),
                    r.exe_path.map(str::to_owned),
                    r.invoked_path.map(str::to_owned),
                    r.exe_flags,
                ),
                (
                    r.exit_time,
                    r.exit_time_unknown,
                    if r.is_live() { 0 } else { r.release_time },
                    r.parent_from_fork,
                ),
                (
                    if r.is_live() { rank(r.recency) } else { 0 },
                    rank(r.linked),
                ),
            )
        })
        .collect();
    out.sort();
    out
}

fn restored_copy(a: &ProcessTable, capacity: usize, now: u64) -> ProcessTable {
    let mut records: Vec<ProcessRecord<'_>> = a.records().collect();
    records.sort_by_key(ProcessRecord::restore_order);
    let mut b = table(capacity, 0xb0b);
    let report = b.restore(records.iter().copied(), now);
    assert_eq!(report.held, a.len());
    assert_eq!((report.evicted, report.rejected), (0, 0));
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random contents → records → restore: the same records, the same answers to every query,
    /// and the same evolution under the same later traffic.
    #[test]
    fn restore_answers_and_evicts_like_the_original(
        capacity in 3usize..20,
        before in proptest::collection::vec(op(), 1..250),
        after in proptest::collection::vec(op(), 0..250),
    ) {
        let mut a = table(capacity, 0xa);
        let mut now = T0;
        for op in before {
            apply(&mut a, op, &mut now);
        }
        let mut b = restored_copy(&a, capacity, now);
        prop_assert_eq!(normalized(&a), normalized(&b));
        // Every query, on both, in the same order.
        for who in 0..30u8 {
            for op in [Op::Get { who }, Op::Children { who }, Op::Ancestry { who }] {
                let (mut na, mut nb) = (now, now);
                prop_assert_eq!(apply(&mut a, op, &mut na), apply(&mut b, op, &mut nb));
            }
        }
        let mut now_b = now;
        for op in after {
            let x = apply(&mut a, op, &mut now);
            let y = apply(&mut b, op, &mut now_b);
            prop_assert_eq!(x, y);
            prop_assert_eq!(normalized(&a), normalized(&b));
        }
    }

    /// Changed-only exports applied to a copy of the records keep the copy equal to the table.
    #[test]
    fn changed_only_exports_track_the_table(
        rounds in proptest::collection::vec(proptest::collection::vec(op(), 0..60), 1..8),
        chunk in 1usize..7,
    ) {
        let mut t = table(12, 0xc);
        let mut now = T0;
        let mut copy: std::collections::BTreeMap<ProcessKey, Normal> = Default::default();
        for round in rounds {
            for op in round {
                apply(&mut t, op, &mut now);
            }
            let full = t.take_removed(|k| { copy.remove(&k); }).full_required;
            if full {
                copy.clear();
            }
            let mut cursor = Some(0);
            while let Some(from) = cursor {
                let mut got = Vec::new();
                cursor = t.export_chunk(from, chunk, !full, |r| got.push(r.key()));
                prop_assert!(got.len() <= chunk);
                for k in got {
                    copy.insert(k, Default::default());
                }
            }
            let held: Vec<ProcessKey> = t.records().map(|r| r.key()).collect();
            let mut held_sorted = held.clone();
            held_sorted.sort();
            prop_assert_eq!(copy.keys().copied().collect::<Vec<_>>(), held_sorted);
            // Nothing is left marked: a second changed-only pass hands out nothing.
            let mut again = 0;
            let mut cursor = Some(0);
            while let Some(from) = cursor {
                cursor = t.export_chunk(from, 64, true, |_| again += 1);
            }
            prop_assert_eq!(again, 0);
        }
    }
}

/// A record exported for each change: exec, exit, touch; nothing else.
#[test]
fn changes_mark_exactly_the_changed_records() {
    let mut t = table(10, 1);
    let mut now = T0;
    for i in 0..5 {
        apply(
            &mut t,
            Op::Fork {
                child: i,
                parent: 30,
                path: None,
            },
            &mut now,
        );
    }
    let drain = |t: &mut ProcessTable| {
        let mut keys = Vec::new();
        let mut cursor = Some(0);
        while let Some(from) = cursor {
            cursor = t.export_chunk(from, 2, true, |r| keys.push(r.pid));
        }
        keys.sort();
        keys
    };
    assert_eq!(drain(&mut t), [1, 2, 3, 4, 5]);
    assert_eq!(drain(&mut t), Vec::<u32>::new());
    apply(&mut t, Op::Exec { who: 1, path: 0 }, &mut now);
    apply(&mut t, Op::Exit { who: 3 }, &mut now);
    apply(&mut t, Op::Get { who: 4 }, &mut now);
    assert_eq!(drain(&mut t), [2, 4, 5]);
}

/// Past capacity: exited records go first, then running ones least recently used first; each
/// drop is counted.
#[test]
fn past_capacity_the_eviction_rule_drops_and_counts() {
    let mut a = table(20, 2);
    let mut now = T0;
    for i in 0..20u8 {
        apply(
            &mut a,
            Op::Fork {
                child: i,
                parent: 30,
                path: Some(i % 4),
            },
            &mut now,
        );
        now += 1;
    }
    for i in [3u8, 7, 11] {
        apply(&mut a, Op::Exit { who: i }, &mut now);
    }
    // Refresh a few old ones: they must survive.
    for i in [0u8, 1, 2] {
        apply(&mut a, Op::Get { who: i }, &mut now);
    }
    let mut records: Vec<ProcessRecord<'_>> = a.records().collect();
    records.sort_by_key(ProcessRecord::restore_order);
    let mut b = table(10, 3);
    let report = b.restore(records.iter().copied(), now);
    assert_eq!((report.held, report.evicted, report.rejected), (10, 10, 0));
    let held: std::collections::BTreeSet<u32> = b.records().map(|r| r.pid).collect();
    // 17 running: the 10 most recently used are pids 1, 2, 3 (refreshed) and 14..=20.
    let want: std::collections::BTreeSet<u32> = [1, 2, 3].into_iter().chain(14..=20).collect();
    assert_eq!(held, want);
    // Every eviction left a key to delete from the snapshot.
    let mut removed = 0;
    assert!(!b.take_removed(|_| removed += 1).full_required);
    assert_eq!(removed, 10);
}

/// Hostile records: pid 0 and repeated keys are refused, never a panic.
#[test]
fn bad_records_are_refused() {
    let mut a = table(5, 4);
    let mut now = T0;
    apply(
        &mut a,
        Op::Fork {
            child: 1,
            parent: 30,
            path: None,
        },
        &mut now,
    );
    let one = a.records().next().expect("one record");
    let zero = ProcessRecord { pid: 0, ..one };
    let mut b = table(5, 5);
    let report = b.restore([one, one, zero], now);
    assert_eq!((report.held, report.rejected), (1, 2));
}

/// Processes gone while the daemon was down are marked exited with the flag, keep their place
/// in ancestry and count in children.
#[test]
fn exited_while_away_keeps_ancestry_and_flags() {
    let mut t = table(10, 6);
    let mut now = T0;
    let chain = [(0u8, 30u8), (1, 0), (2, 1)];
    for (child, parent) in chain {
        apply(
            &mut t,
            Op::Fork {
                child,
                parent,
                path: None,
            },
            &mut now,
        );
    }
    let middle = key(1);
    let marked = t.mark_exited_while_away(now + 5, |k| k != middle);
    assert_eq!(marked, 1);
    let chain: Vec<(u32, bool, bool)> = t
        .ancestry(key(2).entity_id(), 5, now + 5)
        .expect("ancestry")
        .map(|p| (p.pid(), p.is_alive(), p.exit_time_unknown()))
        .collect();
    assert_eq!(
        chain,
        [(3, true, false), (2, false, true), (1, true, false)]
    );
    // The flag survives a snapshot.
    let b = restored_copy(&t, 10, now + 5);
    assert!(b.records().any(|r| r.pid == 2 && r.exit_time_unknown));
}

/// Exporting and restoring a full table allocates nothing.
#[test]
fn export_and_restore_do_not_allocate() {
    let mut a = table(500, 7);
    let mut now = T0;
    for i in 0..2000u32 {
        let k = ProcessKey::new(i + 1, T0 + u64::from(i));
        let parent = ProcessKey::new(i / 3 + 1, T0 + u64::from(i / 3));
        a.apply_fork(
            &ForkEvent {
                pid: k.pid,
                start_time: k.start_time,
                ppid: if i == 0 { 0 } else { parent.pid },
                parent_start_time: parent.start_time,
                uid: 0,
                gid: 0,
                comm: Comm::new("w"),
                exe_path: Some(PATHS[(i % 4) as usize]),
            },
            now,
        );
        if i % 3 == 0 {
            a.apply_exit(
                &ExitEvent {
                    pid: k.pid,
                    start_time: k.start_time,
                    exit_time: now,
                },
                now,
            );
        }
        now += 1;
    }
    let mut records: Vec<ProcessRecord<'_>> = a.records().collect();
    records.sort_by_key(ProcessRecord::restore_order);
    let mut b = table(400, 8);
    let (count, report) = support::count_allocations(|| b.restore(records.iter().copied(), now));
    assert_eq!(
        count.allocations, 0,
        "restore allocated {} bytes",
        count.bytes
    );
    assert_eq!((report.held, report.evicted), (400, 100));
    let (count, n) = support::count_allocations(|| {
        let mut n = 0usize;
        let mut cursor = Some(0);
        while let Some(from) = cursor {
            cursor = a.export_chunk(from, 64, false, |_| n += 1);
        }
        let _ = a.take_removed(|_| n += 0);
        n
    });
    assert_eq!(count.allocations, 0);
    assert_eq!(n, a.len());
}
