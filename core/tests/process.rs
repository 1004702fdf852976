//! The process table's contract: the reference's test cases (not found, children, ancestry
//! depths, exited processes) plus the rules watchpost adds (cycles, eviction order, grace
//! period, early events, collisions, duplicates, real uid/gid, counters that move).

use std::collections::{BTreeSet, HashMap};

use watchpost_core::ErrorKind;
use watchpost_core::entity_id::entity_id;
use watchpost_core::process::{
    Comm, EventOutcome, ExeFlags, ExecEvent, ExitEvent, ForkEvent, ProcessKey, ProcessTable,
    ProcessTableConfig, ScanRecord,
};
use watchpost_core::time::NANOS_PER_SEC;

const T0: u64 = 1_764_300_000 * NANOS_PER_SEC;
const GRACE: u64 = 10 * NANOS_PER_SEC;
const PENDING_TTL: u64 = 2 * NANOS_PER_SEC;

fn config(capacity: usize) -> ProcessTableConfig {
    ProcessTableConfig {
        capacity,
        exit_grace_ns: GRACE,
        pending_capacity: 4,
        pending_ttl_ns: PENDING_TTL,
        exe_path_strings: 64,
        exe_path_bytes: 4096,
        hash_seed: 7,
    }
}

/// Key of test process `pid`: start times differ per pid (10 ms apart, like clock ticks).
fn key(pid: u32) -> ProcessKey {
    ProcessKey::new(pid, T0 + u64::from(pid) * 10_000_000)
}

fn id(pid: u32) -> u32 {
    key(pid).entity_id()
}

fn fork(pid: u32, ppid: u32) -> ForkEvent<'static> {
    let parent = if ppid == 0 {
        ProcessKey::default()
    } else {
        key(ppid)
    };
    ForkEvent {
        pid,
        start_time: key(pid).start_time,
        ppid: parent.pid,
        parent_start_time: parent.start_time,
        uid: 1000 + pid,
        gid: 2000 + pid,
        comm: Comm::new("bash"),
        exe_path: if ppid == 0 { Some("/sbin/init") } else { None },
    }
}

fn exec<'a>(pid: u32, path: &'a str, name: &str) -> ExecEvent<'a> {
    ExecEvent {
        pid,
        start_time: key(pid).start_time,
        uid: 0,
        gid: 0,
        comm: Comm::new(name),
        exe_path: path,
        invoked_path: None,
        exe_flags: ExeFlags::NONE,
    }
}

fn exit(pid: u32, at: u64) -> ExitEvent {
    ExitEvent {
        pid,
        start_time: key(pid).start_time,
        exit_time: at,
    }
}

fn scan(pid: u32, ppid: u32) -> ScanRecord<'static> {
    ScanRecord {
        pid,
        start_time: key(pid).start_time,
        ppid,
        parent_start_time: if ppid == 0 { 0 } else { key(ppid).start_time },
        uid: 3000 + pid,
        gid: 4000 + pid,
        comm: Comm::new("scanned"),
        exe_path: Some("/usr/bin/scanned"),
        exe_flags: ExeFlags::NONE,
    }
}

/// A chain 1 <- 2 <- ... <- n (pid k's parent is k - 1).
fn chain(table: &mut ProcessTable, n: u32) {
    assert_eq!(table.apply_fork(&fork(1, 0), T0), EventOutcome::Inserted);
    for pid in 2..=n {
        assert_eq!(
            table.apply_fork(&fork(pid, pid - 1), T0),
            EventOutcome::Inserted
        );
    }
}

fn ancestry_pids(table: &mut ProcessTable, pid: u32, depth: i32, now: u64) -> Vec<u32> {
    table
        .ancestry(id(pid), depth, now)
        .unwrap()
        .map(|p| p.pid())
        .collect()
}

fn children_pids(table: &mut ProcessTable, pid: u32, now: u64) -> BTreeSet<u32> {
    table
        .children(id(pid), now)
        .unwrap()
        .map(|p| p.pid())
        .collect()
}

fn held_pids(table: &ProcessTable) -> BTreeSet<u32> {
    table.iter().map(|p| p.pid()).collect()
}

#[test]
fn unknown_process_is_not_found() {
    let mut table = ProcessTable::new(config(8));
    let err = table.get(12345, T0).unwrap_err();
    assert!(err.is(ErrorKind::NotFound));
    assert_eq!(err.store, "process");
    assert_eq!(err.operation, "get_process");
    let err = table.get_exact(key(9), T0).unwrap_err();
    assert!(err.is(ErrorKind::NotFound));
}

#[test]
fn children_of_unknown_process_is_empty() {
    let mut table = ProcessTable::new(config(8));
    chain(&mut table, 2);
    assert_eq!(table.children(id(77), T0).unwrap().count(), 0);
    assert_eq!(table.metrics().cache_misses, 1);
}

#[test]
fn children_are_found_through_the_index_including_early_ones() {
    let mut table = ProcessTable::new(config(16));
    // Scan order puts children before their parent: they are adopted when it arrives.
    table.apply_scan(&scan(11, 10), T0);
    table.apply_scan(&scan(12, 10), T0);
    assert_eq!(table.get(id(11), T0).unwrap().ppid(), 10);
    table.apply_scan(&scan(10, 1), T0);
    table.apply_fork(&fork(13, 10), T0);
    table.apply_fork(&fork(20, 13), T0); // grandchild: not a child of 10
    table.apply_exit(&exit(12, T0 + 1), T0 + 1);
    assert_eq!(
        children_pids(&mut table, 10, T0 + 1),
        BTreeSet::from([11, 12, 13])
    );
    assert_eq!(children_pids(&mut table, 13, T0 + 1), BTreeSet::from([20]));
    assert!(children_pids(&mut table, 20, T0 + 1).is_empty());
    assert_eq!(ancestry_pids(&mut table, 11, 5, T0 + 1), [11, 10]);
}

#[test]
fn ancestry_depths() {
    let mut table = ProcessTable::new(config(16));
    chain(&mut table, 7);
    assert_eq!(ancestry_pids(&mut table, 7, 5, T0), [7, 6, 5, 4, 3]);
    assert_eq!(ancestry_pids(&mut table, 7, 1, T0), [7]);
    assert_eq!(ancestry_pids(&mut table, 7, 100, T0), [7, 6, 5, 4, 3, 2, 1]);
    assert!(ancestry_pids(&mut table, 7, 0, T0).is_empty());
    assert!(ancestry_pids(&mut table, 7, -3, T0).is_empty());
    // Non-existent process: empty, no error.
    assert!(ancestry_pids(&mut table, 99, 5, T0).is_empty());
    let a = table.ancestry(id(5), 3, T0).unwrap();
    assert_eq!(a.len(), 3);
    // Views carry the fields.
    let chain: Vec<_> = table
        .ancestry(id(3), 5, T0)
        .unwrap()
        .map(|p| (p.pid(), p.ppid(), p.exe_path().map(str::to_owned)))
        .collect();
    assert_eq!(
        chain,
        [
            (3, 2, Some("/sbin/init".to_owned())),
            (2, 1, Some("/sbin/init".to_owned())),
            (1, 0, Some("/sbin/init".to_owned()))
        ]
    );
}

#[test]
fn ancestry_stops_at_missing_parent() {
    let mut table = ProcessTable::new(config(16));
    table.apply_fork(&fork(5, 4), T0); // 4 never seen
    table.apply_fork(&fork(6, 5), T0);
    assert_eq!(ancestry_pids(&mut table, 6, 5, T0), [6, 5]);
}

#[test]
fn ancestry_stops_at_any_cycle() {
    let mut table = ProcessTable::new(config(16));
    // 1 -> 2 -> 3 -> 1 through scan records (a pid-reuse race can produce this).
    table.apply_scan(&scan(1, 3), T0);
    table.apply_scan(&scan(2, 1), T0);
    table.apply_scan(&scan(3, 2), T0);
    table.apply_scan(&scan(4, 3), T0);
    assert_eq!(ancestry_pids(&mut table, 4, 10, T0), [4, 3, 2, 1]);
    assert_eq!(ancestry_pids(&mut table, 1, 10, T0), [1, 3, 2]);
    assert_eq!(ancestry_pids(&mut table, 2, i32::MAX, T0), [2, 1, 3]);
    // A self-parent record lists only itself.
    let mut own = scan(9, 9);
    own.parent_start_time = key(9).start_time;
    table.apply_scan(&own, T0);
    assert_eq!(ancestry_pids(&mut table, 9, 10, T0), [9]);
    // Marks were cleared: repeating the query gives the same answer.
    assert_eq!(ancestry_pids(&mut table, 4, 10, T0), [4, 3, 2, 1]);
    // A 2-cycle whose members exit does not pin itself: both are purged after their grace,
    // like an unrelated exited process.
    table.apply_scan(&scan(20, 21), T0);
    table.apply_scan(&scan(21, 20), T0);
    table.apply_scan(&scan(30, 0), T0);
    table.apply_exit(&exit(20, T0), T0);
    table.apply_exit(&exit(21, T0 + 1), T0 + 1);
    table.apply_exit(&exit(30, T0), T0);
    assert_eq!(ancestry_pids(&mut table, 20, 10, T0 + GRACE), [20, 21]);
    let later = T0 + 100 * GRACE;
    assert!(table.get(id(20), later).is_err());
    assert!(table.get(id(21), later).is_err());
    assert!(table.get(id(30), later).is_err());
}

/// A parent loop stays while a member or a descendant outside it runs, and its members start
/// their grace when the last of those exits (pid reuse can build such loops; they must not pin
/// themselves forever).
#[test]
fn a_parent_loop_is_held_only_by_running_processes() {
    let mut table = ProcessTable::new(config(16));
    // 1 -> 2 -> 3 -> 1, and 4 a child of 2 outside the loop.
    table.apply_scan(&scan(1, 3), T0);
    table.apply_scan(&scan(2, 1), T0);
    table.apply_scan(&scan(3, 2), T0);
    table.apply_scan(&scan(4, 2), T0);
    for pid in 1..=3 {
        table.apply_exit(&exit(pid, T0 + u64::from(pid)), T0 + u64::from(pid));
    }
    // 4 runs: the whole loop is its ancestry and stays.
    let later = T0 + 100 * GRACE;
    assert_eq!(table.purge_expired(later), 0);
    assert_eq!(ancestry_pids(&mut table, 4, 10, later), [4, 2, 1, 3]);
    // 4 exits: every member's grace counts from there.
    table.apply_exit(&exit(4, later), later);
    assert_eq!(table.purge_expired(later + GRACE - 1), 0);
    assert_eq!(table.purge_expired(later + GRACE), 4);
    assert!(held_pids(&table).is_empty());
    // A loop whose last running member exits is freed at that exit.
    table.apply_fork(&fork(5, 6), later);
    table.apply_fork(&fork(6, 5), later);
    table.apply_exit(&exit(5, later + 1), later + 1);
    assert_eq!(table.purge_expired(later + 1 + 100 * GRACE), 0, "6 runs");
    let end = later + 200 * GRACE;
    table.apply_exit(&exit(6, end), end);
    assert_eq!(table.purge_expired(end + GRACE - 1), 0);
    assert_eq!(table.purge_expired(end + GRACE), 2);
}

/// The read-only walk (Brent's cycle detection, no marks) lists exactly what the counted walk
/// lists: every start on cycles of length 1 to 7 behind tails of 0 to 5, at every depth up to
/// past the whole walk, and on a long chain with small depths.
#[test]
fn read_only_ancestry_agrees_with_the_counted_walk() {
    for cycle in 1..=7u32 {
        for tail in 0..=5u32 {
            let mut table = ProcessTable::new(config(64));
            // Cycle members 100.., each the child of the next, the last the child of the first;
            // tail members 200.. hang below the first cycle member.
            for i in 0..cycle {
                let parent = 100 + (i + 1) % cycle;
                let mut s = scan(100 + i, parent);
                if cycle == 1 {
                    s.ppid = 100;
                    s.parent_start_time = key(100).start_time;
                }
                table.apply_scan(&s, T0);
            }
            for j in 0..tail {
                let parent = if j == 0 { 100 } else { 200 + j - 1 };
                table.apply_scan(&scan(200 + j, parent), T0);
            }
            let starts: Vec<u32> = (0..cycle)
                .map(|i| 100 + i)
                .chain((0..tail).map(|j| 200 + j))
                .collect();
            for &pid in &starts {
                for depth in -1..=(cycle + tail + 3) as i32 {
                    let found = table.find(id(pid), T0).process.unwrap();
                    let read: Vec<u32> = table
                        .ancestry_of(&found, depth, T0)
                        .map(|p| p.pid())
                        .collect();
                    let counted = ancestry_pids(&mut table, pid, depth, T0);
                    assert_eq!(
                        read, counted,
                        "cycle {cycle} tail {tail} start {pid} depth {depth}"
                    );
                }
            }
        }
    }
    let mut table = ProcessTable::new(config(600));
    chain(&mut table, 500);
    for depth in [1, 2, 3, 7, 64, 499, 500, 501, i32::MAX] {
        let found = table.find(id(500), T0).process.unwrap();
        let read: Vec<u32> = table
            .ancestry_of(&found, depth, T0)
            .map(|p| p.pid())
            .collect();
        assert_eq!(
            read,
            ancestry_pids(&mut table, 500, depth, T0),
            "depth {depth}"
        );
    }
}

/// Read-only queries hide what the counted ones would purge first, and count nothing.
#[test]
fn read_only_queries_hide_expired_records_and_count_nothing() {
    let mut table = ProcessTable::new(config(16));
    chain(&mut table, 3);
    table.apply_exit(&exit(3, T0), T0);
    let before = table.metrics();
    let later = T0 + GRACE;
    assert!(table.find(id(3), later - 1).process.is_some());
    assert!(table.find(id(3), later).process.is_none());
    assert!(table.find_exact(key(3), later).is_none());
    let parent = table.find(id(2), later).process.unwrap();
    assert_eq!(table.children_of(&parent, later - 1).count(), 1);
    assert_eq!(table.children_of(&parent, later).count(), 0);
    assert_eq!(table.metrics(), before);
    assert_eq!(table.len(), 3, "read-only queries never purge");
}

#[test]
fn exited_process_stays_queryable_for_the_grace_period() {
    let mut table = ProcessTable::new(config(16));
    chain(&mut table, 2);
    let t_exit = T0 + NANOS_PER_SEC;
    assert_eq!(
        table.apply_exit(&exit(2, t_exit), t_exit),
        EventOutcome::Updated
    );
    let p = table.get(id(2), t_exit + GRACE - 1).unwrap();
    assert_eq!(p.exit_time(), Some(t_exit));
    assert!(!p.is_alive());
    assert_eq!(ancestry_pids(&mut table, 2, 5, t_exit + GRACE - 1), [2, 1]);
    // A duplicate exit changes nothing.
    assert_eq!(
        table.apply_exit(&exit(2, t_exit + 5), t_exit + 5),
        EventOutcome::Duplicate
    );
    // At exit + grace it is gone, even before any purge call.
    assert!(table.get(id(2), t_exit + GRACE).is_err());
    assert_eq!(table.stats().evicted_expired, 1);
    assert_eq!(table.len(), 1);
}

#[test]
fn purge_expired_removes_only_what_expired() {
    let mut table = ProcessTable::new(config(16));
    chain(&mut table, 4);
    table.apply_exit(&exit(4, T0 + 1), T0 + 1);
    table.apply_exit(&exit(3, T0 + 5), T0 + 5);
    assert_eq!(table.purge_expired(T0 + GRACE), 0);
    assert_eq!(table.purge_expired(T0 + 1 + GRACE), 1);
    assert_eq!(held_pids(&table), BTreeSet::from([1, 2, 3]));
    assert_eq!(table.purge_expired(T0 + 5 + GRACE), 1);
    assert_eq!(held_pids(&table), BTreeSet::from([1, 2]));
    assert_eq!(table.stats().evicted_expired, 2);
}

#[test]
fn exited_parent_stays_while_a_descendant_runs() {
    let mut table = ProcessTable::new(config(16));
    chain(&mut table, 3); // 1 <- 2 <- 3
    table.apply_exit(&exit(2, T0 + 1), T0 + 1);
    // Long past 2's grace, but 3 runs: 2 is kept and ancestry works through it.
    let later = T0 + 100 * GRACE;
    assert_eq!(ancestry_pids(&mut table, 3, 5, later), [3, 2, 1]);
    assert_eq!(table.purge_expired(later), 0);
    // 3 exits: both now count their grace from 3's exit.
    table.apply_exit(&exit(3, later), later);
    assert_eq!(
        ancestry_pids(&mut table, 3, 5, later + GRACE - 1),
        [3, 2, 1]
    );
    assert_eq!(table.purge_expired(later + GRACE), 2);
    assert_eq!(held_pids(&table), BTreeSet::from([1]));
}

#[test]
fn eviction_order_exited_then_pinned_then_least_recently_used() {
    let mut table = ProcessTable::new(config(6));
    // 1 <- 2 <- 3, and leaves 4, 5, 6 under 1.
    chain(&mut table, 3);
    for pid in [4, 5, 6] {
        table.apply_fork(&fork(pid, 1), T0);
    }
    table.apply_exit(&exit(5, T0 + 2), T0 + 2); // leaf, exits later
    table.apply_exit(&exit(4, T0 + 1), T0 + 1); // leaf, exits first
    table.apply_exit(&exit(2, T0), T0 + 3); // pinned by 3 (still running)
    assert_eq!(table.len(), 6);
    let mut now = T0 + 4;

    // 1. Exited without running descendants, earliest release first: 4, then 5.
    table.apply_fork(&fork(7, 1), now);
    assert_eq!(held_pids(&table), BTreeSet::from([1, 2, 3, 5, 6, 7]));
    table.apply_fork(&fork(8, 1), now);
    assert_eq!(held_pids(&table), BTreeSet::from([1, 2, 3, 6, 7, 8]));
    assert_eq!(table.stats().evicted_exited, 2);

    // 2. Then exited with running descendants: 2.
    table.apply_fork(&fork(9, 1), now);
    assert_eq!(held_pids(&table), BTreeSet::from([1, 3, 6, 7, 8, 9]));
    assert_eq!(table.stats().evicted_exited_pinned, 1);
    // 3's parent link is gone with 2.
    assert_eq!(ancestry_pids(&mut table, 3, 5, now), [3]);

    // 3. Then the least recently used running process. Recency, oldest first, is now
    //    6, 7, 8, 1, 9, 3 (each fork refreshed parent 1; the ancestry query refreshed 3).
    //    `get` refreshes 1 and 6: 7, 8, 9, 3, 1, 6. 6 was inserted before 7, 8 and 9 but the
    //    `get` saves it; each fork below refreshes 1 again.
    now += 1;
    table.get(id(1), now).unwrap();
    table.get(id(6), now).unwrap();
    table.apply_fork(&fork(10, 1), now);
    assert!(!held_pids(&table).contains(&7));
    table.apply_fork(&fork(11, 1), now);
    assert!(!held_pids(&table).contains(&8));
    table.apply_fork(&fork(12, 1), now);
    assert!(!held_pids(&table).contains(&9));
    table.apply_fork(&fork(13, 1), now);
    assert!(!held_pids(&table).contains(&3));
    assert_eq!(held_pids(&table), BTreeSet::from([1, 6, 10, 11, 12, 13]));
    let stats = table.stats();
    assert_eq!(stats.evicted_live, 4);
    assert_eq!(stats.evictions(), 7);
    assert_eq!(stats.evicted_expired, 0);
    assert!(table.len() <= table.capacity());
    assert!(!table.health(now).message.is_empty());
}

#[test]
fn early_exec_and_exit_wait_for_their_fork() {
    let mut table = ProcessTable::new(config(16));
    chain(&mut table, 1);
    assert_eq!(
        table.apply_exec(&exec(2, "/usr/bin/curl", "curl"), T0),
        EventOutcome::Pending
    );
    assert!(table.get(id(2), T0).is_err());
    assert_eq!(
        table.apply_fork(&fork(2, 1), T0 + 1),
        EventOutcome::Inserted
    );
    let p = table.get(id(2), T0 + 1).unwrap();
    assert_eq!(p.name(), "curl");
    assert_eq!(p.exe_path(), Some("/usr/bin/curl"));
    assert_eq!((p.uid(), p.gid()), (0, 0));

    // Exec then exit, both early: the fork inserts an exited process.
    table.apply_exec(&exec(3, "/bin/true", "true"), T0 + 2);
    assert_eq!(
        table.apply_exit(&exit(3, T0 + 3), T0 + 3),
        EventOutcome::Pending
    );
    assert_eq!(
        table.stats().pending,
        1,
        "two events for one key share an entry"
    );
    table.apply_fork(&fork(3, 1), T0 + 4);
    let p = table.get(id(3), T0 + 4).unwrap();
    assert_eq!(p.name(), "true");
    assert_eq!(p.exit_time(), Some(T0 + 3));

    let stats = table.stats();
    assert_eq!(stats.pending_buffered, 3);
    assert_eq!(stats.pending_applied, 2);
    assert_eq!(stats.pending, 0);
}

#[test]
fn early_events_expire_and_overflow() {
    let mut table = ProcessTable::new(config(16)); // 4 pending entries, 2 s TTL
    chain(&mut table, 1);
    table.apply_exec(&exec(2, "/bin/a", "a"), T0);
    // The fork comes too late: the exec is dropped, not applied.
    table.apply_fork(&fork(2, 1), T0 + PENDING_TTL);
    assert_eq!(table.get(id(2), T0 + PENDING_TTL).unwrap().name(), "bash");
    assert_eq!(table.stats().pending_expired, 1);

    // Overflow: 5 keys into 4 entries drops the oldest (pid 10).
    let now = T0 + 10 * PENDING_TTL;
    for (i, pid) in [10u32, 11, 12, 13, 14].into_iter().enumerate() {
        table.apply_exec(&exec(pid, "/bin/b", "b"), now + i as u64);
    }
    let stats = table.stats();
    assert_eq!(stats.pending_overflows, 1);
    assert_eq!(stats.pending, 4);
    table.apply_fork(&fork(10, 1), now + 10);
    table.apply_fork(&fork(11, 1), now + 10);
    assert_eq!(table.get(id(10), now + 10).unwrap().name(), "bash");
    assert_eq!(table.get(id(11), now + 10).unwrap().name(), "b");

    // purge_expired drops what waited too long; their paths are released.
    assert_eq!(table.stats().exe_paths, 2); // "/sbin/init", "/bin/b"
    table.purge_expired(now + 100 * PENDING_TTL);
    let stats = table.stats();
    assert_eq!(stats.pending, 0);
    assert_eq!(stats.pending_expired, 4);
    assert_eq!(stats.exe_paths, 2); // 11 still runs "/bin/b"
}

#[test]
fn uid_and_gid_come_from_events_and_scans() {
    let mut table = ProcessTable::new(config(16));
    chain(&mut table, 2);
    let p = table.get(id(2), T0).unwrap();
    assert_eq!((p.uid(), p.gid()), (1002, 2002));
    let mut e = exec(2, "/usr/bin/sudo", "sudo");
    e.uid = 0;
    e.gid = 27;
    table.apply_exec(&e, T0);
    let p = table.get(id(2), T0).unwrap();
    assert_eq!((p.uid(), p.gid()), (0, 27));
    table.apply_scan(&scan(30, 0), T0);
    let p = table.get(id(30), T0).unwrap();
    assert_eq!((p.uid(), p.gid()), (3030, 4030));
    assert_eq!(p.name(), "scanned");
}

#[test]
fn metrics_counters_move() {
    let mut table = ProcessTable::new(config(16));
    chain(&mut table, 3); // 3 writes
    table.get(id(1), T0 + 10).unwrap();
    table.get(id(99), T0 + 20).unwrap_err();
    let _ = table.children(id(1), T0 + 30).unwrap();
    let _ = table.ancestry(id(3), 5, T0 + 40).unwrap();
    let _ = table.ancestry(id(3), 0, T0 + 50).unwrap();
    let _ = table.ancestry(id(98), 2, T0 + 25).unwrap(); // clock went back: last_access holds
    let m = table.metrics();
    assert_eq!(m.item_count, 3);
    assert_eq!(m.cache_hits, 3);
    assert_eq!(m.cache_misses, 2);
    assert_eq!(m.success_count, 3 + 3 + 2 + 1);
    assert_eq!(m.error_count, 0);
    assert_eq!(m.last_access, T0 + 50);
}

#[test]
fn duplicate_fork_and_racing_scan_do_not_duplicate_or_reparent_wrongly() {
    let mut table = ProcessTable::new(config(16));
    chain(&mut table, 2);
    assert_eq!(table.apply_fork(&fork(2, 1), T0), EventOutcome::Duplicate);
    // A repeated fork naming another parent does not move a fork-sourced record.
    table.apply_fork(&fork(40, 0), T0);
    assert_eq!(table.apply_fork(&fork(2, 40), T0), EventOutcome::Duplicate);
    assert_eq!(table.len(), 3);
    assert_eq!(table.get(id(2), T0).unwrap().ppid(), 1);

    // Fork first, then a scan that sees the reaper (pid 40) after re-parenting: parent kept.
    table.apply_fork(&fork(3, 2), T0);
    assert_eq!(table.apply_scan(&scan(3, 40), T0), EventOutcome::Duplicate);
    assert_eq!(ancestry_pids(&mut table, 3, 5, T0), [3, 2, 1]);

    // Scan first (reaper as parent), then the fork event: the fork's parent wins.
    table.apply_scan(&scan(4, 40), T0);
    assert_eq!(children_pids(&mut table, 40, T0), BTreeSet::from([4]));
    assert_eq!(table.apply_fork(&fork(4, 2), T0), EventOutcome::Updated);
    assert_eq!(ancestry_pids(&mut table, 4, 5, T0), [4, 2, 1]);
    assert!(children_pids(&mut table, 40, T0).is_empty());
    assert_eq!(children_pids(&mut table, 2, T0), BTreeSet::from([3, 4]));
    assert_eq!(table.len(), 5);

    let stats = table.stats();
    assert_eq!(stats.duplicate_events, 3);
    assert_eq!(stats.parent_corrections, 1);
}

#[test]
fn exec_after_exit_is_stale() {
    let mut table = ProcessTable::new(config(16));
    chain(&mut table, 2);
    table.apply_exit(&exit(2, T0 + 1), T0 + 1);
    assert_eq!(
        table.apply_exec(&exec(2, "/bin/late", "late"), T0 + 2),
        EventOutcome::Ignored
    );
    assert_eq!(table.get(id(2), T0 + 2).unwrap().name(), "bash");
    assert_eq!(table.stats().stale_events, 1);
    assert_eq!(table.stats().exe_paths, 1, "the stale path was released");
}

/// Two (pid, start) pairs with the same entity ID, found by a birthday search: IDs of pids at
/// one start time, probed with pids at a second start time (~46 expected matches).
fn colliding_pair() -> (ProcessKey, ProcessKey) {
    let first_start = T0 + 100_000_000;
    let second_start = T0 + 900_000_000;
    let mut seen: HashMap<u32, u32> = HashMap::new();
    for pid in 1..200_000u32 {
        seen.insert(entity_id(pid, first_start), pid);
    }
    for pid in 1..1_000_000u32 {
        if let Some(&other) = seen.get(&entity_id(pid, second_start)) {
            return (
                ProcessKey::new(other, first_start),
                ProcessKey::new(pid, second_start),
            );
        }
    }
    panic!("no collision found");
}

#[test]
fn colliding_entity_ids_answer_deterministically_and_are_counted() {
    let (older, newer) = colliding_pair();
    assert_eq!(older.entity_id(), newer.entity_id());
    assert_ne!(older, newer);
    let shared = older.entity_id();
    let mut table = ProcessTable::new(config(16));
    for (k, name) in [(newer, "newer"), (older, "older")] {
        let ev = ForkEvent {
            pid: k.pid,
            start_time: k.start_time,
            ppid: 0,
            parent_start_time: 0,
            uid: 0,
            gid: 0,
            comm: Comm::new(name),
            exe_path: None,
        };
        table.apply_fork(&ev, T0);
    }
    assert_eq!(table.len(), 2);
    assert_eq!(table.stats().id_collisions, 1);
    // Both running: the newest start time answers.
    assert_eq!(table.get(shared, T0).unwrap().name(), "newer");
    // The newer one exits: running beats newer.
    table.apply_exit(
        &ExitEvent {
            pid: newer.pid,
            start_time: newer.start_time,
            exit_time: T0 + 1,
        },
        T0 + 1,
    );
    assert_eq!(table.get(shared, T0 + 1).unwrap().name(), "older");
    // The exact key always finds its own record.
    assert_eq!(table.get_exact(newer, T0 + 1).unwrap().name(), "newer");
    assert_eq!(table.stats().ambiguous_lookups, 2);
    // Once the exited one is purged the ID is unambiguous again.
    table.purge_expired(T0 + 1 + GRACE);
    assert_eq!(table.get(shared, T0 + 1 + GRACE).unwrap().name(), "older");
    assert_eq!(table.stats().ambiguous_lookups, 2);
}

#[test]
fn exe_paths_are_shared_and_released() {
    let mut table = ProcessTable::new(config(300));
    chain(&mut table, 1);
    for pid in 2..202 {
        table.apply_fork(&fork(pid, 1), T0);
        let path = if pid % 2 == 0 {
            "/usr/bin/python3"
        } else {
            "/bin/sh"
        };
        table.apply_exec(&exec(pid, path, "x"), T0);
    }
    // "/sbin/init" (pid 1) and two programs.
    assert_eq!(table.stats().exe_paths, 3);
    for pid in 2..202 {
        table.apply_exit(&exit(pid, T0 + 1), T0 + 1);
    }
    table.purge_expired(T0 + 1 + GRACE);
    assert_eq!(table.len(), 1);
    assert_eq!(table.stats().exe_paths, 1);
}

#[test]
fn full_path_arena_reads_as_unknown_path() {
    let mut table = ProcessTable::new(ProcessTableConfig {
        exe_path_strings: 2,
        ..config(16)
    });
    chain(&mut table, 1); // "/sbin/init"
    table.apply_fork(&fork(2, 1), T0);
    table.apply_exec(&exec(2, "/bin/a", "a"), T0);
    table.apply_fork(&fork(3, 1), T0);
    table.apply_exec(&exec(3, "/bin/b", "b"), T0);
    assert_eq!(table.get(id(3), T0).unwrap().exe_path(), None);
    assert_eq!(table.get(id(3), T0).unwrap().to_info().exe, "");
    assert_eq!(table.stats().exe_paths_dropped, 1);
}

#[test]
fn to_info_copies_every_field() {
    let mut table = ProcessTable::new(config(16));
    chain(&mut table, 2);
    table.apply_exit(&exit(2, T0 + 9), T0 + 9);
    let info = table.get(id(2), T0 + 9).unwrap().to_info();
    assert_eq!(info.entity_id, id(2));
    assert_eq!(info.pid, 2);
    assert_eq!(info.ppid, 1);
    assert_eq!(info.name, "bash");
    assert_eq!(info.exe, "/sbin/init");
    assert_eq!(info.start_time, key(2).start_time);
    assert_eq!((info.uid, info.gid), (1002, 2002));
    assert_eq!(info.exit_time, Some(T0 + 9));
}

#[test]
fn clear_keeps_capacity_and_counters() {
    let mut table = ProcessTable::new(config(16));
    chain(&mut table, 5);
    table.apply_exec(&exec(50, "/bin/early", "early"), T0);
    let reserved = table.bytes_reserved();
    table.clear();
    assert!(table.is_empty());
    assert_eq!(table.stats().pending, 0);
    assert_eq!(table.stats().exe_paths, 0);
    assert_eq!(table.bytes_reserved(), reserved);
    assert_eq!(table.metrics().success_count, 6);
    chain(&mut table, 3);
    assert_eq!(ancestry_pids(&mut table, 3, 5, T0), [3, 2, 1]);
}

#[test]
fn zero_pending_capacity_drops_early_events() {
    let mut table = ProcessTable::new(ProcessTableConfig {
        pending_capacity: 0,
        ..config(4)
    });
    assert_eq!(
        table.apply_exec(&exec(2, "/bin/a", "a"), T0),
        EventOutcome::Ignored
    );
    assert_eq!(table.stats().pending_overflows, 1);
    assert_eq!(table.stats().exe_paths, 0);
}

#[test]
fn capacity_is_at_least_one() {
    let mut table = ProcessTable::new(config(0));
    assert_eq!(table.capacity(), 1);
    chain(&mut table, 3);
    assert_eq!(held_pids(&table), BTreeSet::from([3]));
    assert!(table.bytes_reserved() > 0);
}

/// Events and configs survive postcard (run with `--features serde`); a name that would break
/// `Comm`'s invariant cannot be smuggled in through deserialization.
#[cfg(feature = "serde")]
#[test]
fn events_and_config_round_trip_through_postcard() {
    let record = scan(5, 1);
    let bytes = postcard::to_allocvec(&record).unwrap();
    let back: ScanRecord<'_> = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, record);
    let cfg = config(10);
    let back: ProcessTableConfig =
        postcard::from_bytes(&postcard::to_allocvec(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
    let long = postcard::to_allocvec("seventeen bytes!!").unwrap();
    assert!(postcard::from_bytes::<Comm>(&long).is_err());
    let ok = postcard::to_allocvec("nginx").unwrap();
    assert_eq!(
        postcard::from_bytes::<Comm>(&ok).unwrap(),
        Comm::new("nginx")
    );
}
