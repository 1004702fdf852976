//! The `/proc` collector in-process, against real stores and the real `/proc`: a new process
//! becomes an exec event with the right entity ID after the store holds it, its exit an exit
//! event; and a process store that crashed and came back empty is refilled at the next rescan.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use watchpost::collector::{Collector, CollectorOutputs};
use watchpost::config::Config;
use watchpost::procfs::ProcReader;
use watchpost::stats::DaemonCounters;
use watchpost_actors::adapters::container::container_table_factory;
use watchpost_actors::adapters::process::process_table_factory;
use watchpost_actors::detect::{Event, EventKind};
use watchpost_actors::{ErrorKind, Lifecycle, Registry, RegistryConfig};

async fn until(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Rescans until an event for `pid` of `kind` arrives.
async fn event_for(
    collector: &mut Collector,
    events: &mut mpsc::Receiver<Event>,
    pid: u32,
    kind: EventKind,
) -> Option<Event> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        collector.rescan().await.unwrap();
        while let Ok(e) = events.try_recv() {
            if e.pid == pid && e.kind == kind {
                return Some(e);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescans_turn_processes_into_events_and_refill_a_restarted_store() {
    let registry = Registry::start(RegistryConfig::default()).await.unwrap();
    let config = Config::default();
    let processes = registry
        .register_process_store(
            process_table_factory(config.process_table()),
            config.store_options(),
        )
        .await
        .unwrap();
    let containers = registry
        .register_container_store(
            container_table_factory(config.container_table()),
            config.store_options(),
        )
        .await
        .unwrap();
    let (events_tx, mut events) = mpsc::channel(4096);
    let stats = Arc::new(DaemonCounters::new(0));
    let reader = ProcReader::system().unwrap();
    let mut collector = Collector::new(
        reader.clone(),
        CollectorOutputs {
            processes,
            process_store: registry.processes(),
            containers,
            container_store: registry.containers(),
            events: events_tx,
            enrich: None,
        },
        stats.clone(),
        65_536,
        Duration::from_secs(1),
    );
    let described = collector.bootstrap().await.unwrap();
    assert!(described > 1);
    let me = reader.entity_id(std::process::id()).unwrap();
    // The bootstrap waited until the store applied it: no polling needed.
    assert_eq!(
        registry.processes().get_process(me).await.unwrap().pid,
        std::process::id()
    );
    assert!(events.try_recv().is_err(), "the bootstrap raises no events");

    // A new process: an exec event, sent only once the store holds it.
    let mut sleep = Command::new("sleep")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = sleep.id();
    let exec = event_for(&mut collector, &mut events, pid, EventKind::Exec)
        .await
        .expect("an exec event for the new process");
    assert_eq!(exec.entity_id, reader.entity_id(pid).unwrap());
    assert_eq!(exec.parent_entity_id, me);
    assert!(exec.exe.ends_with("/sleep"), "{exec:?}");
    let held = registry
        .processes()
        .get_process(exec.entity_id)
        .await
        .unwrap();
    assert_eq!(held.ppid, std::process::id());

    // Its exit: an exit event, and the store marks it exited.
    sleep.kill().unwrap();
    sleep.wait().unwrap();
    let exit = event_for(&mut collector, &mut events, pid, EventKind::Exit)
        .await
        .expect("an exit event");
    assert_eq!(exit.entity_id, exec.entity_id);
    let gone = registry
        .processes()
        .get_process(exec.entity_id)
        .await
        .unwrap();
    assert!(gone.exit_time.is_some());

    // The process store crashes and comes back empty; the next rescan refills it.
    let store = registry.processes();
    assert!(store.inject_panic());
    let restarted = until(Duration::from_secs(10), async || {
        store.supervision().restarts == 1 && store.lifecycle() == Lifecycle::Running
    })
    .await;
    assert!(restarted);
    let empty = store.get_process(me).await.unwrap_err();
    assert!(empty.is(ErrorKind::NotFound));
    collector.rescan().await.unwrap();
    let refilled = until(Duration::from_secs(10), async || {
        store.get_process(me).await.is_ok()
    })
    .await;
    assert!(refilled, "the restarted store was not refilled");
    let items = store.get_metrics().await.item_count;
    assert!(items as usize >= described / 2, "{items} of {described}");
    registry.shutdown().await;
}
