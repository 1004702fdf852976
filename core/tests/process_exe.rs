//! What the process table keeps about a program beyond its path: the path as invoked, the
//! flags (deleted, memfd, truncated), inherited across fork with both paths, filled by scans;
//! and renames (`prctl(PR_SET_NAME)`) that change a running process's name only. No arena
//! reference leaks: clearing the table empties the path arena.

use watchpost_core::process::{
    Comm, EventOutcome, ExeFlags, ExecEvent, ExitEvent, ForkEvent, ProcessKey, ProcessTable,
    ProcessTableConfig, RenameEvent, ScanRecord,
};
use watchpost_core::time::NANOS_PER_SEC;

const T0: u64 = 1_764_300_000 * NANOS_PER_SEC;

fn key(pid: u32) -> ProcessKey {
    ProcessKey::new(pid, T0 + u64::from(pid) * 10_000_000)
}

fn table() -> ProcessTable {
    ProcessTable::new(ProcessTableConfig {
        capacity: 16,
        exe_path_strings: 16,
        exe_path_bytes: 8192,
        ..ProcessTableConfig::default()
    })
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
        uid: 0,
        gid: 0,
        comm: Comm::new("svc"),
        exe_path: (ppid == 0).then_some("/usr/sbin/svc"),
    }
}

#[test]
fn exec_keeps_both_paths_and_flags_and_fork_inherits_them() {
    let mut t = table();
    t.apply_fork(&fork(1, 0), T0);
    let memfd = ExeFlags {
        deleted: true,
        memfd: true,
        ..ExeFlags::NONE
    };
    let exec = ExecEvent {
        pid: 1,
        start_time: key(1).start_time,
        uid: 0,
        gid: 0,
        comm: Comm::new("3"),
        exe_path: "/memfd:payload",
        invoked_path: Some("/dev/fd/3"),
        exe_flags: memfd,
    };
    assert_eq!(t.apply_exec(&exec, T0), EventOutcome::Updated);
    let p = t.get_exact(key(1), T0).unwrap();
    assert_eq!(p.exe_path(), Some("/memfd:payload"));
    assert_eq!(p.invoked_path(), Some("/dev/fd/3"));
    assert_eq!(p.exe_flags(), memfd);
    assert_eq!(
        p.exe_flags().memfd_name(p.exe_path().unwrap()),
        Some("payload")
    );
    let info = p.to_info();
    assert_eq!(info.invoked_path, "/dev/fd/3");
    assert!(info.exe_flags.deleted);

    // A child forked without a path runs the same program: both paths and flags inherited.
    t.apply_fork(&fork(2, 1), T0);
    let child = t.get_exact(key(2), T0).unwrap();
    assert_eq!(child.exe_path(), Some("/memfd:payload"));
    assert_eq!(child.invoked_path(), Some("/dev/fd/3"));
    assert_eq!(child.exe_flags(), memfd);

    // Everything released with the records.
    t.apply_exit(
        &ExitEvent {
            pid: 2,
            start_time: key(2).start_time,
            exit_time: T0 + 1,
        },
        T0 + 1,
    );
    t.clear();
    assert_eq!(t.stats().exe_paths, 0);
}

#[test]
fn an_early_exec_parks_its_paths_and_scans_fill_flags() {
    let mut t = table();
    let exec = ExecEvent {
        pid: 5,
        start_time: key(5).start_time,
        uid: 0,
        gid: 0,
        comm: Comm::new("dash"),
        exe_path: "/usr/bin/dash",
        invoked_path: Some("/tmp/renamed-shell"),
        exe_flags: ExeFlags::NONE,
    };
    assert_eq!(t.apply_exec(&exec, T0), EventOutcome::Pending);
    // A second early exec replaces the first (its paths released).
    let exec2 = ExecEvent {
        invoked_path: Some("../bin/sh"),
        ..exec
    };
    assert_eq!(t.apply_exec(&exec2, T0), EventOutcome::Pending);
    t.apply_fork(&fork(5, 0), T0);
    let p = t.get_exact(key(5), T0).unwrap();
    assert_eq!(p.exe_path(), Some("/usr/bin/dash"));
    assert_eq!(p.invoked_path(), Some("../bin/sh"));

    let deleted = ExeFlags {
        deleted: true,
        ..ExeFlags::NONE
    };
    let scan = ScanRecord {
        pid: 9,
        start_time: key(9).start_time,
        ppid: 0,
        parent_start_time: 0,
        uid: 0,
        gid: 0,
        comm: Comm::new("gone"),
        exe_path: Some("/tmp/gone"),
        exe_flags: deleted,
    };
    t.apply_scan(&scan, T0);
    let p = t.get_exact(key(9), T0).unwrap();
    assert_eq!(p.exe_flags(), deleted);
    assert_eq!(
        p.invoked_path(),
        None,
        "a scan cannot tell the invoked path"
    );
    t.clear();
    assert_eq!(t.stats().exe_paths, 0);
}

#[test]
fn renames_change_running_processes_only() {
    let mut t = table();
    t.apply_fork(&fork(1, 0), T0);
    let rename = |comm: &str| RenameEvent {
        pid: 1,
        start_time: key(1).start_time,
        comm: Comm::new(comm),
    };
    assert_eq!(t.apply_rename(&rename("worker"), T0), EventOutcome::Updated);
    assert_eq!(t.get_exact(key(1), T0).unwrap().name(), "worker");
    assert_eq!(
        t.apply_rename(&rename("worker"), T0),
        EventOutcome::Duplicate
    );
    let unknown = RenameEvent {
        pid: 77,
        start_time: key(77).start_time,
        comm: Comm::new("x"),
    };
    assert_eq!(t.apply_rename(&unknown, T0), EventOutcome::Ignored);
    t.apply_exit(
        &ExitEvent {
            pid: 1,
            start_time: key(1).start_time,
            exit_time: T0 + 1,
        },
        T0 + 1,
    );
    assert_eq!(
        t.apply_rename(&rename("late"), T0 + 2),
        EventOutcome::Ignored
    );
    assert_eq!(t.get_exact(key(1), T0 + 2).unwrap().name(), "worker");
}
