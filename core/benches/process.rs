//! Process table costs on a 10,000-process tree: lookup, ancestry of depth 5, children, and
//! event ingestion at capacity. Also prints the memory reserved per entry.
//!
//! The tree is 10-ary (pid p's parent is (p - 2) / 10 + 1), so most processes sit at depth 4
//! and have a full ancestry of 5, and inner processes have 10 children. A second, flat table
//! puts every process under pid 1 (systemd, or a fork storm under one shell): the one parent
//! with ~10,000 children must cost no more per event than the spread tree. Measured (medians,
//! loaded 2-core box): a parent-keyed hash index of children cost ~46 µs per one-parent
//! fork+exit; the intrusive sibling lists cost 0.24–0.49 µs.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use watchpost_core::process::{
    Comm, ExeFlags, ExecEvent, ExitEvent, ForkEvent, ProcessKey, ProcessTable, ProcessTableConfig,
};
use watchpost_core::time::NANOS_PER_SEC;

const T0: u64 = 1_764_300_000 * NANOS_PER_SEC;
const PROCESSES: u32 = 10_000;
const PROGRAMS: [&str; 8] = [
    "/usr/bin/bash",
    "/usr/bin/python3",
    "/usr/sbin/sshd",
    "/usr/lib/systemd/systemd",
    "/usr/bin/containerd-shim-runc-v2",
    "/usr/sbin/nginx",
    "/usr/bin/node",
    "/usr/local/bin/app",
];

fn key(pid: u32) -> ProcessKey {
    ProcessKey::new(pid, T0 + u64::from(pid) * 10_000_000)
}

fn parent_of(pid: u32) -> u32 {
    if pid <= 1 { 0 } else { (pid - 2) / 10 + 1 }
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
        uid: 1000,
        gid: 1000,
        comm: Comm::new("bash"),
        exe_path: None,
    }
}

fn build() -> ProcessTable {
    let mut table = ProcessTable::new(ProcessTableConfig {
        capacity: PROCESSES as usize,
        ..ProcessTableConfig::default()
    });
    for pid in 1..=PROCESSES {
        table.apply_fork(&fork(pid, parent_of(pid)), T0);
        let path = PROGRAMS[(pid % 8) as usize];
        table.apply_exec(
            &ExecEvent {
                pid,
                start_time: key(pid).start_time,
                uid: 1000,
                gid: 1000,
                comm: Comm::new(&path[path.rfind('/').map_or(0, |i| i + 1)..]),
                exe_path: path,
                invoked_path: None,
                exe_flags: ExeFlags::NONE,
            },
            T0,
        );
    }
    assert_eq!(table.len(), PROCESSES as usize);
    table
}

fn benches(c: &mut Criterion) {
    let mut table = build();
    eprintln!(
        "process table: capacity {}, bytes_reserved {} ({} per entry)",
        table.capacity(),
        table.bytes_reserved(),
        table.bytes_reserved() / table.capacity()
    );
    // Visit processes in a scattered order so lookups do not ride one cache line.
    let ids: Vec<u32> = (0..PROCESSES)
        .map(|i| key((i.wrapping_mul(7919) % PROCESSES) + 1).entity_id())
        .collect();
    let leaves: Vec<u32> = (0..PROCESSES)
        .map(|i| key(1112 + (i.wrapping_mul(7919) % (PROCESSES - 1111))).entity_id())
        .collect();
    let inner: Vec<u32> = (0..1000u32)
        .map(|i| key(12 + (i.wrapping_mul(7919) % 989)).entity_id())
        .collect();
    let now = T0 + 1;

    let mut n = 0usize;
    c.bench_function("process/get", |b| {
        b.iter(|| {
            n = (n + 1) % ids.len();
            black_box(table.get(ids[n], now).map(|p| p.pid()).ok())
        })
    });
    c.bench_function("process/get_miss", |b| {
        b.iter(|| {
            n = (n + 1) % ids.len();
            black_box(table.get(ids[n] ^ 0x5555_5555, now).is_err())
        })
    });
    c.bench_function("process/ancestry_depth5", |b| {
        b.iter(|| {
            n = (n + 1) % leaves.len();
            let a = table.ancestry(leaves[n], 5, now).unwrap();
            black_box(a.map(|p| p.pid()).sum::<u32>())
        })
    });
    c.bench_function("process/children_10", |b| {
        b.iter(|| {
            n = (n + 1) % inner.len();
            let children = table.children(inner[n], now).unwrap();
            black_box(children.map(|p| p.pid()).sum::<u32>())
        })
    });

    // Ingestion at capacity: each round forks a new leaf (evicting one record), execs it, and
    // exits it, so the exit queue and the recency list both churn.
    let mut next_pid = PROCESSES + 1;
    let mut clock = T0 + 2;
    c.bench_function("process/fork_exec_exit_at_capacity", |b| {
        b.iter(|| {
            next_pid += 1;
            clock += 1000;
            let pid = next_pid;
            let ppid = 1 + (pid % 1000);
            table.apply_fork(&fork(pid, ppid), clock);
            table.apply_exec(
                &ExecEvent {
                    pid,
                    start_time: key(pid).start_time,
                    uid: 0,
                    gid: 0,
                    comm: Comm::new("curl"),
                    exe_path: "/usr/bin/curl",
                    invoked_path: None,
                    exe_flags: ExeFlags::NONE,
                },
                clock,
            );
            black_box(table.apply_exit(
                &ExitEvent {
                    pid,
                    start_time: key(pid).start_time,
                    exit_time: clock,
                },
                clock,
            ))
        })
    });
    eprintln!("after churn: {:?}", table.stats());
    drop(table);

    // Flat: pid 1 and 9,999 children. Each round forks one more child of pid 1 (evicting the
    // child that exited in the previous round, or the least recently used one) and exits it.
    let mut flat = ProcessTable::new(ProcessTableConfig {
        capacity: PROCESSES as usize,
        ..ProcessTableConfig::default()
    });
    for pid in 1..=PROCESSES {
        flat.apply_fork(&fork(pid, if pid == 1 { 0 } else { 1 }), T0);
    }
    assert_eq!(flat.len(), PROCESSES as usize);
    let pid1 = key(1).entity_id();
    c.bench_function("process/children_10k_one_parent", |b| {
        b.iter(|| {
            let children = flat.children(pid1, now).unwrap();
            black_box(children.map(|p| p.pid()).sum::<u32>())
        })
    });
    let mut next_pid = 2 * PROCESSES;
    let mut clock = T0 + 2;
    c.bench_function("process/fork_exit_one_parent_at_capacity", |b| {
        b.iter(|| {
            next_pid += 1;
            clock += 1000;
            let pid = next_pid;
            flat.apply_fork(&fork(pid, 1), clock);
            black_box(flat.apply_exit(
                &ExitEvent {
                    pid,
                    start_time: key(pid).start_time,
                    exit_time: clock,
                },
                clock,
            ))
        })
    });
    assert_eq!(
        flat.children(pid1, clock).unwrap().count(),
        PROCESSES as usize - 1
    );
    eprintln!("after one-parent churn: {:?}", flat.stats());
}

criterion_group!(process, benches);
criterion_main!(process);
