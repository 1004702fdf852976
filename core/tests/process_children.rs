//! Children at scale and in order: one parent with 10,000 children (pid 1, a fork storm under
//! one shell) keeps a complete, consistent children list through removals, early arrival,
//! the parent's eviction and its return; and children are listed most recently linked first.

use std::collections::BTreeSet;

use watchpost_core::process::{
    Comm, ExeFlags, ExitEvent, ForkEvent, ProcessKey, ProcessTable, ProcessTableConfig, ScanRecord,
};
use watchpost_core::time::NANOS_PER_SEC;

const T0: u64 = 1_764_300_000 * NANOS_PER_SEC;
const GRACE: u64 = 10 * NANOS_PER_SEC;
const FAMILY: u32 = 10_000;

fn table(capacity: usize) -> ProcessTable {
    ProcessTable::new(ProcessTableConfig {
        capacity,
        exit_grace_ns: GRACE,
        pending_capacity: 4,
        pending_ttl_ns: NANOS_PER_SEC,
        exe_path_strings: 16,
        exe_path_bytes: 1024,
        hash_seed: 11,
    })
}

fn key(pid: u32) -> ProcessKey {
    ProcessKey::new(pid, T0 + u64::from(pid) * 1000)
}

fn parent_key(ppid: u32) -> ProcessKey {
    if ppid == 0 {
        ProcessKey::default()
    } else {
        key(ppid)
    }
}

fn fork(pid: u32, ppid: u32) -> ForkEvent<'static> {
    let parent = parent_key(ppid);
    ForkEvent {
        pid,
        start_time: key(pid).start_time,
        ppid: parent.pid,
        parent_start_time: parent.start_time,
        uid: 0,
        gid: 0,
        comm: Comm::new("worker"),
        exe_path: None,
    }
}

fn scan(pid: u32, ppid: u32) -> ScanRecord<'static> {
    let parent = parent_key(ppid);
    ScanRecord {
        pid,
        start_time: key(pid).start_time,
        ppid: parent.pid,
        parent_start_time: parent.start_time,
        uid: 0,
        gid: 0,
        comm: Comm::new("worker"),
        exe_path: None,
        exe_flags: ExeFlags::NONE,
    }
}

fn children(table: &mut ProcessTable, pid: u32, now: u64) -> Vec<u32> {
    table
        .children(key(pid).entity_id(), now)
        .unwrap()
        .map(|p| p.pid())
        .collect()
}

fn ancestry(table: &mut ProcessTable, pid: u32, now: u64) -> Vec<u32> {
    table
        .ancestry(key(pid).entity_id(), 5, now)
        .unwrap()
        .map(|p| p.pid())
        .collect()
}

#[test]
fn ten_thousand_children_of_one_parent_survive_removal_one_by_one() {
    let mut table = table(FAMILY as usize + 1);
    table.apply_fork(&fork(1, 0), T0);
    for pid in 2..=FAMILY + 1 {
        table.apply_fork(&fork(pid, 1), T0);
    }
    assert_eq!(table.len(), FAMILY as usize + 1);
    // All of them, newest link first.
    let all: Vec<u32> = (2..=FAMILY + 1).rev().collect();
    assert_eq!(children(&mut table, 1, T0), all);

    // Remove them in a scattered order (heads, tails and middles of the list): each one exits
    // and is purged once its grace ends, alone.
    let mut remaining: BTreeSet<u32> = all.iter().copied().collect();
    let mut now = T0;
    for i in 0..FAMILY {
        let pid = 2 + i.wrapping_mul(7919) % FAMILY;
        now += 1;
        table.apply_exit(
            &ExitEvent {
                pid,
                start_time: key(pid).start_time,
                exit_time: now,
            },
            now,
        );
        now += GRACE;
        assert_eq!(table.purge_expired(now), 1);
        assert!(remaining.remove(&pid));
        let listed = table.children(key(1).entity_id(), now).unwrap().count();
        assert_eq!(listed, remaining.len(), "after removing {pid}");
        if i % 250 == 0 || remaining.len() < 5 {
            let got = children(&mut table, 1, now);
            // Still newest first, and exactly the ones left.
            let want: Vec<u32> = remaining.iter().rev().copied().collect();
            assert_eq!(got, want, "after removing {pid}");
            if let Some(&survivor) = remaining.first() {
                assert_eq!(ancestry(&mut table, survivor, now), [survivor, 1]);
            }
        }
    }
    assert!(children(&mut table, 1, now).is_empty());
    assert_eq!(table.len(), 1);
    assert_eq!(table.stats().evicted_expired, u64::from(FAMILY));
}

#[test]
fn ten_thousand_early_children_are_adopted_orphaned_and_adopted_again() {
    // The parent, its children and two more processes fill the table exactly.
    let mut table = table(FAMILY as usize + 2);
    let now = T0;
    // A scan lists the children before their parent: they wait for it.
    for pid in 2..=FAMILY + 1 {
        table.apply_scan(&scan(pid, 1), now);
    }
    assert_eq!(ancestry(&mut table, 500, now), [500]);
    table.apply_scan(&scan(1, 0), now);
    let all: Vec<u32> = (2..=FAMILY + 1).rev().collect();
    assert_eq!(children(&mut table, 1, now), all);
    assert_eq!(ancestry(&mut table, 500, now), [500, 1]);

    // The parent exits (pinned by its running children), then is evicted for room: the
    // children are orphans again and their ancestry stops at them.
    let exit_parent = ExitEvent {
        pid: 1,
        start_time: key(1).start_time,
        exit_time: now + 1,
    };
    table.apply_exit(&exit_parent, now + 1);
    let outsider = FAMILY + 2;
    table.apply_fork(&fork(outsider, 0), now + 2);
    assert_eq!(table.len(), table.capacity());
    table.apply_fork(&fork(outsider + 1, 0), now + 3);
    assert_eq!(table.stats().evicted_exited_pinned, 1);
    assert!(table.get(key(1).entity_id(), now + 3).is_err());
    assert_eq!(ancestry(&mut table, 500, now + 3), [500]);

    // The parent is seen again (a late scan): it takes the exited outsider's slot and adopts
    // every child, in the same order.
    table.apply_exit(
        &ExitEvent {
            pid: outsider,
            start_time: key(outsider).start_time,
            exit_time: now + 4,
        },
        now + 4,
    );
    table.apply_scan(&scan(1, 0), now + 5);
    assert_eq!(table.stats().evicted_exited, 1);
    assert_eq!(children(&mut table, 1, now + 5), all);
    assert_eq!(ancestry(&mut table, 500, now + 5), [500, 1]);
    assert_eq!(table.stats().evicted_live, 0);
}

#[test]
fn children_are_listed_most_recently_linked_first() {
    let mut table = table(16);
    let now = T0;
    table.apply_fork(&fork(10, 0), now);
    for pid in [11, 12, 13] {
        table.apply_fork(&fork(pid, 10), now);
    }
    assert_eq!(children(&mut table, 10, now), [13, 12, 11]);

    // Early children keep their order when the parent arrives.
    table.apply_scan(&scan(21, 20), now);
    table.apply_scan(&scan(22, 20), now);
    table.apply_scan(&scan(20, 0), now);
    table.apply_fork(&fork(23, 20), now);
    assert_eq!(children(&mut table, 20, now), [23, 22, 21]);

    // A fork corrects 21's parent (the scan saw a reaper): it moves to the front of 10's list.
    table.apply_fork(&fork(21, 10), now);
    assert_eq!(table.stats().parent_corrections, 1);
    assert_eq!(children(&mut table, 10, now), [21, 13, 12, 11]);
    assert_eq!(children(&mut table, 20, now), [23, 22]);
    assert_eq!(ancestry(&mut table, 21, now), [21, 10]);

    // A process that is its own parent, or whose parent is pid 0, is nobody's child.
    table.apply_scan(&scan(30, 30), now);
    assert!(children(&mut table, 30, now).is_empty());
    assert_eq!(ancestry(&mut table, 30, now), [30]);
}
