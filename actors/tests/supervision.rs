//! Supervision: a store actor that panics is rebuilt from its factory; while it is down queries
//! keep answering from its last published copy and writes get `StoreUnhealthy` at once (never a
//! hang); the restart is counted and visible in health and supervision stats; a store that keeps
//! failing is given up on (then queries answer `StoreUnhealthy` too).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{Gate, Notes, NotesRead, NotesWrite, eventually};
use watchpost_actors::{
    BuildContext, BuildError, ErrorKind, HealthStatus, Lifecycle, RestartPolicy, StoreOptions,
};
use watchpost_core::syscall::SyscallStore;

fn slow_restart(backoff: Duration) -> StoreOptions {
    StoreOptions {
        restart: RestartPolicy {
            max_restarts: 3,
            window: Duration::from_secs(60),
            initial_backoff: backoff,
            max_backoff: backoff,
        },
        degraded_window: Duration::from_secs(3),
        ..StoreOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_core_store_is_rebuilt_and_callers_never_hang() {
    let reg = support::registry().await;
    let builds = Arc::new(AtomicU64::new(0));
    let seen_attempts = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let builds = builds.clone();
        let seen = seen_attempts.clone();
        reg.register_syscall_store(
            move |ctx: &BuildContext| {
                builds.fetch_add(1, Ordering::SeqCst);
                seen.lock()
                    .unwrap()
                    .push((ctx.attempt, ctx.previous_failure.clone()));
                SyscallStore::for_host().ok_or_else(|| BuildError::new("syscall", "no table"))
            },
            // Long enough that "restarting" outlasts the checks below on a busy machine.
            slow_restart(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    }
    let s = reg.syscalls();
    assert_eq!(
        s.get_syscall_id("read").await.ok(),
        SyscallStore::for_host().unwrap().table().number("read")
    );
    assert!(s.inject_panic());

    // Down: queries keep answering at once from the last published copy; health says why.
    assert!(
        eventually(Duration::from_secs(30), || async {
            s.lifecycle() == Lifecycle::Restarting
        })
        .await
    );
    let started = Instant::now();
    assert_eq!(
        s.get_syscall_id("read").await.ok(),
        SyscallStore::for_host().unwrap().table().number("read")
    );
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "no waiting on a restarting store"
    );
    let h = s.get_health().await;
    assert_eq!(h.status, HealthStatus::Unhealthy);
    assert!(h.message.starts_with("restarting"), "{}", h.message);
    assert!(!reg.is_available("syscall").await);

    // Back: rebuilt from the factory, restart counted, degraded for the window, then healthy.
    assert!(
        eventually(Duration::from_secs(30), || async {
            s.lifecycle() == Lifecycle::Running
        })
        .await
    );
    assert_eq!(builds.load(Ordering::SeqCst), 2);
    let attempts = seen_attempts.lock().unwrap().clone();
    assert_eq!(attempts[0], (0, None));
    assert_eq!(attempts[1].0, 1);
    assert!(
        attempts[1]
            .1
            .as_deref()
            .unwrap()
            .contains("fault injection"),
        "{attempts:?}"
    );
    let stats = s.supervision();
    assert_eq!(stats.restarts, 1);
    assert_eq!(stats.lifecycle, Lifecycle::Running);
    assert_eq!(stats.unavailable_calls, 0, "queries never failed");
    assert_eq!(reg.metadata("syscall").await.unwrap().restarts, 1);
    let degraded = s.get_health().await;
    assert!(
        degraded.message.contains("restarted 1 times"),
        "{}",
        degraded.message
    );
    assert!(
        eventually(Duration::from_secs(30), || async {
            s.get_health().await.status == HealthStatus::Healthy
        })
        .await
    );
    assert!(reg.is_available("syscall").await);
    // The queries answered while it was down stay counted.
    assert!(s.get_metrics().await.cache_hits >= 2);
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_in_flight_when_the_store_panics_get_unhealthy_not_a_hang() {
    let reg = support::registry().await;
    let owner = reg
        .register_writable_store(
            "notes",
            support::notes_factory(8),
            slow_restart(Duration::from_millis(50)),
        )
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(10));
    let reader = owner.reader().with_timeout(Duration::from_secs(10));
    // Hold the actor, queue writes behind it, then the panic: writes still in the mailbox when
    // the actor dies must be answered by the drop of their reply ports, long before 10 s (a write
    // the actor answers before the panic is fine too: both are checked).
    let owner = Arc::new(owner);
    let o = owner.clone();
    let gate = Gate::new();
    let g = gate.clone();
    let stall = tokio::spawn(async move { o.write(NotesWrite::Hold(g)).await });
    gate.entered().await;
    let mut writes = Vec::new();
    for i in 0..8 {
        let o = owner.clone();
        writes.push(tokio::spawn(async move {
            o.write(NotesWrite::Put(format!("{i}"), "v".into())).await
        }));
    }
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
    let started = Instant::now();
    assert!(reader.inject_panic());
    // Reads never queue behind the held actor: they answer from the published copy (the gate
    // stays closed until the read returns, so waiting for the actor would hang here).
    assert!(reader.read(NotesRead::Len).await.unwrap().is_ok());
    gate.open();
    let _ = stall.await.unwrap();
    for w in writes {
        match w.await.unwrap() {
            Ok(answer) => assert!(answer.is_ok()),
            Err(e) => assert!(e.is(ErrorKind::StoreUnhealthy)),
        }
    }
    // Well under the 10 s call timeout: nobody waited for it.
    assert!(started.elapsed() < Duration::from_secs(8));
    // A rebuilt writable store starts from its factory (empty); a persistence factory would restore.
    assert!(
        eventually(Duration::from_secs(30), || async {
            reader.supervision().restarts == 1 && reader.lifecycle() == Lifecycle::Running
        })
        .await
    );
    assert_eq!(reader.read(NotesRead::Len).await.unwrap().unwrap(), "0");
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_keeps_failing_is_given_up_on() {
    let reg = support::registry().await;
    let builds = Arc::new(AtomicU64::new(0));
    let b = builds.clone();
    let owner = reg
        .register_writable_store(
            "flaky",
            move |ctx: &BuildContext| {
                b.fetch_add(1, Ordering::SeqCst);
                if ctx.attempt == 0 {
                    Ok(Notes::with_capacity(4))
                } else {
                    Err(BuildError::new(ctx.store, "snapshot unreadable"))
                }
            },
            slow_restart(Duration::from_millis(5)),
        )
        .await
        .unwrap();
    assert!(owner.inject_panic());
    assert!(
        eventually(Duration::from_secs(30), || async {
            owner.lifecycle() == Lifecycle::Failed
        })
        .await
    );
    // 1 initial build + 3 rebuild attempts (max_restarts), then no more.
    assert_eq!(builds.load(Ordering::SeqCst), 4);
    let h = owner.get_health().await;
    assert_eq!(h.status, HealthStatus::Unhealthy);
    assert!(h.message.contains("gave up"), "{}", h.message);
    assert!(
        owner
            .read(NotesRead::Len)
            .await
            .unwrap_err()
            .is(ErrorKind::StoreUnhealthy)
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        builds.load(Ordering::SeqCst),
        4,
        "no restart after giving up"
    );
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_drain_task_is_started_again_and_the_intake_goes_on() {
    let reg = support::registry().await;
    let owner = reg
        .register_writable_store(
            "notes",
            support::notes_factory(1_000),
            StoreOptions::default(),
        )
        .await
        .unwrap();
    let intake = owner.intake().clone();
    intake.inject_drain_panic();
    // This batch is taken by the drain task, which panics holding it: counted as dropped.
    intake
        .submit(vec![NotesWrite::Put("lost".into(), "v".into())])
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || async {
            owner.supervision().intake_drain_restarts == 1
        })
        .await,
        "{:?}",
        owner.supervision()
    );
    // A new drain task serves the same queue.
    intake
        .submit(vec![NotesWrite::Put("kept".into(), "v".into())])
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || async {
            owner.supervision().intake_applied_updates == 1
        })
        .await,
        "{:?}",
        owner.supervision()
    );
    let s = owner.supervision();
    assert_eq!(s.intake_dropped_updates, 1, "{s:?}");
    assert_eq!(
        owner
            .read(NotesRead::Get("kept".into()))
            .await
            .unwrap()
            .unwrap(),
        "v"
    );
    reg.shutdown().await;
}
