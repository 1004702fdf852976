//! The process store through its actor, backed by the real core `ProcessTable`, against the
//! reference's process-store cases: ancestry at depth 0, 1, 5 and past the root, a process that
//! does not exist, an exited process (kept while it has running descendants, gone after its
//! grace otherwise), children of an unknown process (empty, not an error), and a batch lookup.
//! Lifecycle events travel through the bounded intake as the collectors send them.

mod support;

use std::time::Duration;

use support::{eventually, registry, submit_and_wait};
use watchpost_actors::adapters::process::process_table_factory;
use watchpost_actors::stores::process::{
    ProcessExit, ProcessHandle, ProcessInfo, ProcessStart, ProcessUpdate,
};
use watchpost_actors::{ErrorKind, HealthStatus, IntakeSender, Registry, StoreOptions};
use watchpost_core::entity_id::entity_id;
use watchpost_core::process::ProcessTableConfig;

const HOUR: u64 = 3_600_000_000_000;
const EXIT_GRACE: Duration = Duration::from_millis(300);

/// Start times: pid `p` started at `base + p` ns.
struct Tree {
    base: u64,
}

impl Tree {
    fn start(&self, pid: u32) -> u64 {
        self.base + u64::from(pid)
    }
    fn id(&self, pid: u32) -> u32 {
        entity_id(pid, self.start(pid))
    }
    fn fork(&self, pid: u32, ppid: u32, comm: &str) -> ProcessUpdate {
        ProcessUpdate::Fork(ProcessStart {
            pid,
            start_time: self.start(pid),
            ppid,
            parent_start_time: if ppid == 0 { 0 } else { self.start(ppid) },
            uid: 1000,
            gid: 1000,
            comm: comm.into(),
            exe_path: Some(format!("/usr/bin/{comm}")),
            exe_flags: Default::default(),
        })
    }
    fn exit(&self, pid: u32) -> ProcessUpdate {
        ProcessUpdate::Exit(ProcessExit {
            pid,
            start_time: self.start(pid),
            exit_time: watchpost_actors::clock::now(),
        })
    }
}

fn pids(list: &[ProcessInfo]) -> Vec<u32> {
    list.iter().map(|p| p.pid).collect()
}

/// `init(1) → systemd(10) → sshd(11) → bash(12) → sudo(13) → bash(14) → vim(15)`, plus a
/// second child of sshd: `sshd(16)`.
async fn store() -> (Registry, ProcessHandle, IntakeSender<ProcessUpdate>, Tree) {
    let reg = registry().await;
    let intake = reg
        .register_process_store(
            process_table_factory(ProcessTableConfig {
                capacity: 64,
                exit_grace_ns: EXIT_GRACE.as_nanos() as u64,
                ..Default::default()
            }),
            StoreOptions::default(),
        )
        .await
        .expect("the process store registers");
    let tree = Tree {
        base: watchpost_actors::clock::now() - HOUR,
    };
    let handle = reg.processes();
    let chain = [
        (1, 0, "init"),
        (10, 1, "systemd"),
        (11, 10, "sshd"),
        (12, 11, "bash"),
        (13, 12, "sudo"),
        (14, 13, "bash"),
        (15, 14, "vim"),
        (16, 11, "sshd"),
    ];
    let forks = chain
        .iter()
        .map(|&(pid, ppid, comm)| tree.fork(pid, ppid, comm))
        .collect();
    submit_and_wait(&handle, &intake, forks).await;
    (reg, handle, intake, tree)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ancestry_at_depth_zero_one_five_and_past_the_root() {
    let (reg, p, _intake, tree) = store().await;
    let vim = tree.id(15);
    assert!(p.get_ancestry(vim, 0).await.unwrap().is_empty(), "depth 0");
    assert!(
        p.get_ancestry(vim, -3).await.unwrap().is_empty(),
        "negative"
    );
    assert_eq!(pids(&p.get_ancestry(vim, 1).await.unwrap()), [15], "itself");
    let five = p.get_ancestry(vim, 5).await.unwrap();
    assert_eq!(pids(&five), [15, 14, 13, 12, 11]);
    assert_eq!(five[1].name, "bash");
    assert_eq!(five[1].exe, "/usr/bin/bash");
    assert_eq!(five[0].ppid, 14);
    assert_eq!(five[0].entity_id, vim);
    assert_eq!(
        pids(&p.get_ancestry(vim, 100).await.unwrap()),
        [15, 14, 13, 12, 11, 10, 1],
        "stops at the root"
    );
    let init = p.get_process(tree.id(1)).await.unwrap();
    assert_eq!((init.name.as_str(), init.ppid), ("init", 0));
    assert_eq!(init.start_time, tree.start(1));
    assert_eq!(init.exit_time, None);
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_processes_are_not_found_or_empty() {
    let (reg, p, _intake, tree) = store().await;
    let unknown = entity_id(4242, tree.start(4242));
    let e = p.get_process(unknown).await.unwrap_err();
    assert!(e.is(ErrorKind::NotFound), "{e}");
    assert_eq!(e.operation, "get_process");
    assert!(p.get_ancestry(unknown, 5).await.unwrap().is_empty());
    assert!(
        p.get_child_processes(unknown).await.unwrap().is_empty(),
        "children of unknown: empty, not an error"
    );
    assert!(p.get_child_processes(tree.id(15)).await.unwrap().is_empty());
    let mut sshd_children = pids(&p.get_child_processes(tree.id(11)).await.unwrap());
    sshd_children.sort_unstable();
    assert_eq!(sshd_children, [12, 16]);

    let batch = p
        .get_processes(&[tree.id(16), unknown, tree.id(1)])
        .await
        .unwrap();
    assert_eq!(batch[0].as_ref().unwrap().pid, 16);
    assert!(batch[1].as_ref().unwrap_err().is(ErrorKind::NotFound));
    assert_eq!(batch[2].as_ref().unwrap().pid, 1);
    let m = p.get_metrics().await;
    assert_eq!(m.item_count, 8);
    assert!(m.cache_misses >= 2 && m.cache_hits >= 2, "{m:?}");
    assert_eq!(p.get_health().await.status, HealthStatus::Healthy);
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exited_processes_stay_while_pinned_and_leave_after_their_grace() {
    let (reg, p, intake, tree) = store().await;
    // sudo (13) exits while its descendants run; sshd (16), a leaf, exits too.
    submit_and_wait(&p, &intake, vec![tree.exit(13), tree.exit(16)]).await;
    let sudo = p.get_process(tree.id(13)).await.unwrap();
    assert!(
        sudo.exit_time.is_some(),
        "an exited process reports its exit"
    );
    assert!(
        eventually(Duration::from_secs(30), || async {
            p.get_process(tree.id(16))
                .await
                .is_err_and(|e| e.is(ErrorKind::NotFound))
        })
        .await,
        "an exited leaf is gone after its grace"
    );
    // Well past the grace, the exited sudo is still held: vim's ancestry goes through it.
    assert_eq!(
        pids(&p.get_ancestry(tree.id(15), 5).await.unwrap()),
        [15, 14, 13, 12, 11]
    );
    assert_eq!(
        pids(&p.get_child_processes(tree.id(11)).await.unwrap()),
        [12]
    );
    // Once its descendants exit, it goes too.
    submit_and_wait(&p, &intake, vec![tree.exit(15), tree.exit(14)]).await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            p.get_process(tree.id(13)).await.is_err() && p.get_process(tree.id(15)).await.is_err()
        })
        .await,
        "released and expired"
    );
    assert_eq!(
        pids(&p.get_ancestry(tree.id(12), 5).await.unwrap()),
        [12, 11, 10, 1]
    );
    reg.shutdown().await;
}
