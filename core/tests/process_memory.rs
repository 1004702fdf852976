//! The process table never allocates after construction and never holds more than its
//! capacity, however far it is driven past it; evictions follow the documented order.

mod support;

#[global_allocator]
static ALLOC: support::CountingAllocator = support::CountingAllocator;

use std::collections::BTreeSet;

use watchpost_core::process::{
    Comm, ExeFlags, ExecEvent, ExitEvent, ForkEvent, ProcessKey, ProcessTable, ProcessTableConfig,
};
use watchpost_core::time::{NANOS_PER_MILLI, NANOS_PER_SEC};

const T0: u64 = 1_764_300_000 * NANOS_PER_SEC;
const CAPACITY: usize = 1000;

fn key(pid: u32) -> ProcessKey {
    ProcessKey::new(pid, T0 + u64::from(pid) * 10_000_000)
}

fn fork(pid: u32, ppid: u32) -> ForkEvent<'static> {
    let parent = key(ppid);
    ForkEvent {
        pid,
        start_time: key(pid).start_time,
        ppid,
        parent_start_time: parent.start_time,
        uid: pid % 7,
        gid: pid % 5,
        comm: Comm::new("worker"),
        exe_path: None,
    }
}

fn exec(pid: u32, path: &str) -> ExecEvent<'_> {
    ExecEvent {
        pid,
        start_time: key(pid).start_time,
        uid: 0,
        gid: 0,
        comm: Comm::new("tool"),
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

#[test]
fn driven_far_past_capacity_without_allocating() {
    let mut table = ProcessTable::new(ProcessTableConfig {
        capacity: CAPACITY,
        exit_grace_ns: 100 * NANOS_PER_MILLI,
        pending_capacity: 32,
        pending_ttl_ns: NANOS_PER_SEC,
        exe_path_strings: 64,
        exe_path_bytes: 8 * 1024,
        hash_seed: 0xfeed,
    });
    // Inputs prepared before counting: 48 distinct program paths (more than fit with the
    // ones held by parked events, so the arena also runs full at times).
    let paths: Vec<String> = (0..48)
        .map(|i| format!("/usr/lib/watchpost-test/bin/program-{i:02}"))
        .collect();
    let reserved = table.bytes_reserved();

    let (count, (over_capacity, live_before_exited, last_phase2_pid, now)) =
        support::count_allocations(|| {
            let mut over_capacity = 0u32;
            let mut live_before_exited = 0u32;
            let mut now = T0;
            table.apply_fork(&fork(1, 0), now);

            // Phase 1: a churning tree. Each process forks under a recent one, execs a program,
            // and exits 20 ms later, except every 50th, which keeps running (so the table
            // fills up with running processes towards the end); every 11th exec arrives before
            // its fork.
            let phase1 = 60_000u32;
            for i in 0..phase1 {
                now += NANOS_PER_MILLI;
                let pid = i + 2;
                let ppid = if i % 10 == 0 { 1 } else { pid - 1 - (i % 5) };
                let path = &paths[(i % 48) as usize];
                if i % 11 == 0 {
                    table.apply_exec(&exec(pid, path), now);
                }
                let before = table.stats();
                table.apply_fork(&fork(pid, ppid), now);
                let after = table.stats();
                if after.evicted_live > before.evicted_live && before.exited > 0 {
                    live_before_exited += 1;
                }
                if i % 11 != 0 {
                    table.apply_exec(&exec(pid, path), now);
                }
                if (i + 30) % 50 != 0 && pid > 21 {
                    table.apply_exit(&exit(pid - 20, now), now);
                }
                if table.len() > table.capacity() {
                    over_capacity += 1;
                }
                // Queries: all borrowed, nothing allocated.
                let target = key(pid - (i % 50).min(pid - 1)).entity_id();
                let _ = table.get(target, now).map(|p| p.name().len());
                let _ = table.ancestry(target, 5, now).map(|a| a.count());
                let _ = table
                    .children(key(ppid).entity_id(), now)
                    .map(|c| c.count());
                if i % 1000 == 0 {
                    table.purge_expired(now);
                }
            }

            // Phase 2: only running processes, under pid 1, far later. Every exited process
            // must go before any running one, then running ones least recently used first.
            now += 100 * NANOS_PER_SEC;
            let first = phase1 + 10;
            let mut pid = first;
            while pid < first + 3 * CAPACITY as u32 {
                now += NANOS_PER_MILLI;
                let before = table.stats();
                table.apply_fork(&fork(pid, 1), now);
                let after = table.stats();
                if after.evicted_live > before.evicted_live && before.exited > 0 {
                    live_before_exited += 1;
                }
                if table.len() > table.capacity() {
                    over_capacity += 1;
                }
                pid += 1;
            }
            (over_capacity, live_before_exited, pid - 1, now)
        });

    assert_eq!(count.allocations, 0, "allocated {} bytes", count.bytes);
    assert_eq!(over_capacity, 0);
    assert_eq!(table.len(), table.capacity());
    assert_eq!(
        live_before_exited, 0,
        "a running process went before an exited one"
    );
    assert_eq!(table.bytes_reserved(), reserved);

    let stats = table.stats();
    assert!(stats.evicted_expired > 0, "{stats:?}");
    assert!(stats.evicted_exited > 0, "{stats:?}");
    assert!(stats.evicted_live > 0, "{stats:?}");
    assert!(stats.pending_applied > 0, "{stats:?}");
    assert_eq!(stats.exited, 0);
    // Least recently used first: pid 1 (refreshed by every fork) and the newest 999 remain.
    let held: BTreeSet<u32> = table.iter().map(|p| p.pid()).collect();
    let expected: BTreeSet<u32> = std::iter::once(1)
        .chain(last_phase2_pid + 1 - (CAPACITY as u32 - 1)..=last_phase2_pid)
        .collect();
    assert_eq!(held, expected);
    assert!(table.get(key(1).entity_id(), now).is_ok());
}
