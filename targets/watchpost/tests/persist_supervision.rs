//! Supervision meets persistence: a process store actor that panics is rebuilt by its factory
//! from the last committed snapshot (the `BuildContext` seam), and reconciled with `/proc`.

use std::time::Duration;

use watchpost::config::Config;
use watchpost::persistence::Persistence;
use watchpost::persistence::restore::process_factory;
use watchpost::procfs::ProcReader;
use watchpost_actors::stores::process::{ProcessStart, ProcessUpdate};
use watchpost_actors::{Registry, RegistryConfig, StoreOptions};
use watchpost_persist::BootIdentity;

/// Above `PID_MAX_LIMIT`: never a real process.
const PID: u32 = 5_000_000;
const START: u64 = 1_764_300_000_000_000_000;

async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_process_store_is_rebuilt_from_its_last_snapshot() {
    let dir = std::env::temp_dir().join(format!("wp-supervision-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = Config::default();
    config.daemon.data_dir = dir.join("data");
    let boot = BootIdentity {
        boot_id: "supervision-test".into(),
        btime: 1,
    };
    let persistence = Persistence::open(&config, boot).expect("open");
    assert!(persistence.enabled());
    let registry = Registry::start(RegistryConfig {
        call_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    let reader = ProcReader::system().unwrap();
    let intake = registry
        .register_process_store(
            process_factory(persistence.clone(), config.process_table(), reader),
            StoreOptions::default(),
        )
        .await
        .unwrap();
    let store = registry.processes();
    intake
        .submit(vec![ProcessUpdate::Fork(ProcessStart {
            pid: PID,
            start_time: START,
            ppid: 0,
            parent_start_time: 0,
            uid: 0,
            gid: 0,
            comm: "kept".into(),
            exe_path: Some("/usr/bin/kept".into()),
            exe_flags: Default::default(),
        })])
        .await
        .unwrap();
    let id = watchpost_core::entity_id::entity_id(PID, START);
    assert!(
        eventually(Duration::from_secs(30), async || store
            .get_process(id)
            .await
            .is_ok())
        .await
    );
    // Only the process store is registered here: the other stores' snapshots fail, this one's
    // is committed.
    let _ = persistence.snapshot_all(&registry).await;
    assert_eq!(persistence.status().stores["process"].records, 1);

    assert!(store.inject_panic());
    assert!(
        eventually(Duration::from_secs(30), async || {
            store.supervision().restarts >= 1 && store.get_process(id).await.is_ok()
        })
        .await,
        "the rebuilt store does not hold the snapshotted process"
    );
    let p = store.get_process(id).await.unwrap();
    assert_eq!(p.exe, "/usr/bin/kept");
    // Not in /proc: reconciled as exited while nobody watched.
    assert!(p.exit_time_unknown, "{p:?}");
    registry.shutdown().await;
    drop(persistence);
    let _ = std::fs::remove_dir_all(&dir);
}
