//! The read path: queries answer from the store's published copy while its actor writes.
//!
//! - Linearizability-style checks: a writer applies known batches while reader threads check
//!   invariants a half-applied batch would break (a fork and its child appear together; a batch
//!   of reputation writes is seen all or nothing; nothing seen ever disappears).
//! - A store that panics in the middle of a batch: readers keep answering from the last
//!   published copy while it restarts, never see the half-written one, then see the rebuilt
//!   store.
//! - Exact-key lookups answer both processes of an entity-ID collision.
//! - Reads count exactly in the metrics, and reads refresh recency (what is read is evicted
//!   last).

mod support;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use support::eventually;
use watchpost_actors::adapters::ip_reputation::ip_reputation_factory;
use watchpost_actors::adapters::process::process_table_factory;
use watchpost_actors::stores::process::{
    ProcessExit, ProcessHandle, ProcessProtocol, ProcessRef, ProcessStart, ProcessUpdate,
};
use watchpost_actors::view::ViewBytes;
use watchpost_actors::{
    BuildContext, ErrorKind, Lifecycle, Registry, RegistryConfig, RestartPolicy, StoreOptions,
};
use watchpost_core::entity_id::entity_id;
use watchpost_core::ip_reputation::{IpReputation, IpReputationConfig, ReputationStatus};
use watchpost_core::process::{ProcessTable, ProcessTableConfig};

const T0: u64 = 1_764_300_000_000_000_000;

/// Start time of test process `pid` (distinct per pid, 100 ms apart so entity IDs differ).
fn start(pid: u32) -> u64 {
    T0 + u64::from(pid) * 100_000_000
}

fn fork(pid: u32, ppid: u32) -> ProcessUpdate {
    ProcessUpdate::Fork(ProcessStart {
        pid,
        start_time: start(pid),
        ppid,
        parent_start_time: if ppid == 0 { 0 } else { start(ppid) },
        uid: 1000,
        gid: 1000,
        comm: "worker".into(),
        exe_path: Some("/usr/bin/worker".into()),
        exe_flags: Default::default(),
    })
}

fn id(pid: u32) -> u32 {
    entity_id(pid, start(pid))
}

/// The exact key of test process `pid` (thousands of test processes: entity IDs may collide).
fn key(pid: u32) -> ProcessRef {
    ProcessRef::Exact {
        pid,
        start_time: start(pid),
    }
}

/// Batch `k`: 64 parent/child pairs (parents `100_000 + 1000k + i`, children 500_000 above).
fn family_batch(k: u32) -> Vec<ProcessUpdate> {
    (0..64)
        .flat_map(|i| {
            let parent = 100_000 + 1000 * k + i;
            [fork(parent, 0), fork(parent + 500_000, parent)]
        })
        .collect()
}

fn family_keys(k: u32) -> Vec<ProcessRef> {
    (0..64)
        .flat_map(|i| {
            let parent = 100_000 + 1000 * k + i;
            [key(parent), key(parent + 500_000)]
        })
        .collect()
}

async fn process_registry(
    capacity: usize,
    options: StoreOptions,
) -> (
    Registry,
    watchpost_actors::IntakeSender<ProcessUpdate>,
    ProcessHandle,
) {
    let reg = Registry::start(RegistryConfig::default()).await.unwrap();
    let intake = reg
        .register_process_store(
            process_table_factory(ProcessTableConfig {
                capacity,
                ..Default::default()
            }),
            options,
        )
        .await
        .unwrap();
    let handle = reg.processes();
    (reg, intake, handle)
}

/// Waits until the store applied `n` updates in total.
async fn applied(handle: &ProcessHandle, n: u64) {
    assert!(
        eventually(Duration::from_secs(30), || async {
            let s = handle.supervision();
            s.intake_applied_updates + s.intake_rejected_updates >= n
        })
        .await,
        "store applied {n} updates in time"
    );
}

/// Reader threads check every batch they look at in one read: all of its processes or none,
/// each child under its parent, and (with `monotonic`: no restart on the way) a batch once seen
/// never disappears.
fn family_readers(
    handle: &ProcessHandle,
    batches: u32,
    monotonic: bool,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<u64>> {
    (0..3u32)
        .map(|r| {
            let handle = handle.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen = vec![false; batches as usize];
                let mut checks = 0u64;
                let mut k = r;
                while !stop.load(Ordering::Relaxed) {
                    k = (k + 7) % batches;
                    let ids = family_keys(k);
                    let mut present = 0usize;
                    let mut linked = 0usize;
                    handle
                        .with_processes(&ids, |_, found| {
                            if let Some(p) = found {
                                present += 1;
                                if p.ppid() != 0 {
                                    linked += 1;
                                }
                            }
                        })
                        .unwrap();
                    assert!(
                        present == 0 || present == ids.len(),
                        "batch {k}: a reader saw {present} of {} processes",
                        ids.len()
                    );
                    assert!(present == 0 || linked == ids.len() / 2);
                    let parent = key(100_000 + 1000 * k);
                    if present > 0 && monotonic {
                        // Children are listed with their parent (a second read: with no
                        // restart in between, it sees at least what the first one saw).
                        let kids = handle.with_children(parent, |c| c.count()).unwrap();
                        assert_eq!(kids, 1, "batch {k}: child not under its parent");
                    }
                    let slot = seen.get_mut(k as usize).unwrap();
                    assert!(
                        !(monotonic && *slot && present == 0),
                        "batch {k} disappeared after being seen"
                    );
                    *slot |= present > 0;
                    checks += 1;
                }
                checks
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_half_a_batch_of_forks() {
    const BATCHES: u32 = 200;
    let (reg, intake, handle) = process_registry(100_000, StoreOptions::default()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let readers = family_readers(&handle, BATCHES, true, &stop);
    for k in 0..BATCHES {
        intake.submit(family_batch(k)).await.unwrap();
    }
    applied(&handle, u64::from(BATCHES) * 128).await;
    stop.store(true, Ordering::Relaxed);
    let checks: u64 = readers.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(checks > 0);
    // Two publishes install the store, then one per intake message.
    let v = handle.view_stats();
    assert!(v.publishes >= 3, "{v:?}");
    // Every batch is there in the end.
    for k in 0..BATCHES {
        handle
            .with_processes(&family_keys(k), |_, found| assert!(found.is_some()))
            .unwrap();
    }
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_reputation_writes_is_seen_all_or_nothing() {
    const BATCHES: u32 = 100;
    const PER_BATCH: u32 = 256;
    let reg = Registry::start(RegistryConfig::default()).await.unwrap();
    let owner = reg
        .register_writable_store(
            "ip_reputation",
            ip_reputation_factory(IpReputationConfig::new(100_000), Vec::new()),
            StoreOptions::default(),
        )
        .await
        .unwrap();
    let reader = owner.reader();
    let addr = |k: u32, i: u32| Ipv4Addr::from(0x0a00_0000 + k * PER_BATCH + i);
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..3u32)
        .map(|r| {
            let reader = reader.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut checks = 0u64;
                let mut k = r;
                while !stop.load(Ordering::Relaxed) {
                    k = (k + 3) % BATCHES;
                    let ips: Vec<Ipv4Addr> = (0..PER_BATCH).map(|i| addr(k, i)).collect();
                    let mut denied = 0u32;
                    reader
                        .with_verdicts(&ips, |_, v| {
                            if v.is_ok_and(|v| v.status() == ReputationStatus::Deny) {
                                denied += 1;
                            }
                        })
                        .unwrap();
                    assert!(
                        denied == 0 || denied == PER_BATCH,
                        "batch {k}: {denied} of {PER_BATCH} verdicts visible"
                    );
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    for k in 0..BATCHES {
        let records = (0..PER_BATCH)
            .map(|i| IpReputation::new(&addr(k, i), ReputationStatus::Deny, 5, T0).unwrap())
            .collect();
        owner.write_batch("feed", records).await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let checks: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(checks > 0);
    assert!(
        reader
            .is_denied(addr(BATCHES - 1, PER_BATCH - 1))
            .await
            .unwrap()
    );
    reg.shutdown().await;
}

/// A marker process only the rebuilt store holds.
const REBUILT_MARKER: u32 = 999_999;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_panics_mid_batch_keeps_its_last_copy_until_rebuilt() {
    let reg = Registry::start(RegistryConfig::default()).await.unwrap();
    let builds = Arc::new(AtomicU64::new(0));
    let b = builds.clone();
    let intake = reg
        .register_process_store(
            move |ctx: &BuildContext| {
                b.fetch_add(1, Ordering::SeqCst);
                let mut table = ProcessTable::new(ProcessTableConfig {
                    capacity: 10_000,
                    ..Default::default()
                });
                if ctx.attempt > 0 {
                    table.apply_fork(
                        &watchpost_core::process::ForkEvent {
                            pid: REBUILT_MARKER,
                            start_time: start(REBUILT_MARKER),
                            ppid: 0,
                            parent_start_time: 0,
                            uid: 0,
                            gid: 0,
                            comm: watchpost_core::process::Comm::new("rebuilt"),
                            exe_path: None,
                        },
                        T0,
                    );
                }
                Ok(table)
            },
            StoreOptions {
                restart: RestartPolicy {
                    // Slow enough to observe the store restarting.
                    initial_backoff: Duration::from_millis(400),
                    max_backoff: Duration::from_millis(400),
                    ..RestartPolicy::default()
                },
                ..StoreOptions::default()
            },
        )
        .await
        .unwrap();
    let handle = reg.processes();
    intake.submit(family_batch(0)).await.unwrap();
    applied(&handle, 128).await;

    let stop = Arc::new(AtomicBool::new(false));
    let readers = family_readers(&handle, 2, false, &stop);
    // The next batch dies after writing half of its forks to the unpublished copy.
    assert!(handle.inject_panic_mid_batch(64));
    intake.submit(family_batch(1)).await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            handle.lifecycle() == Lifecycle::Restarting
        })
        .await
    );
    // Restarting: the last published copy answers (batch 0), never the half-written batch 1.
    assert!(handle.with_process(key(100_000), |_| ()).is_ok());
    let half = handle.with_process(key(101_000), |_| ()).unwrap_err();
    assert!(half.is(ErrorKind::NotFound), "{half}");
    assert!(handle.get_health().await.message.starts_with("restarting"));
    // Rebuilt: its own copy is published (the marker), the old one is gone.
    assert!(
        eventually(Duration::from_secs(10), || async {
            handle.lifecycle() == Lifecycle::Running
        })
        .await
    );
    assert!(handle.with_process(key(REBUILT_MARKER), |_| ()).is_ok());
    assert!(
        handle
            .with_process(key(100_000), |_| ())
            .unwrap_err()
            .is(ErrorKind::NotFound)
    );
    stop.store(true, Ordering::Relaxed);
    let checks: u64 = readers.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(checks > 0);
    assert_eq!(builds.load(Ordering::SeqCst), 2);
    assert_eq!(handle.supervision().intake_dropped_updates, 128);
    reg.shutdown().await;
}

/// Two processes whose 32-bit entity IDs collide: (pid, start) pairs found by search.
fn colliding_pair() -> ((u32, u64), (u32, u64)) {
    let (a, b) = (4242u32, 4343u32);
    let mut by_id = std::collections::HashMap::new();
    for k in 0..(1u64 << 18) {
        by_id.insert(entity_id(a, T0 + k * 100_000_000), k);
    }
    for k in 0..(1u64 << 18) {
        let t = T0 + k * 100_000_000;
        if let Some(&ka) = by_id.get(&entity_id(b, t)) {
            return ((a, T0 + ka * 100_000_000), (b, t));
        }
    }
    panic!("no collision among 2^36 pairs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_lookups_answer_both_processes_of_an_entity_id_collision() {
    let ((pa, ta), (pb, tb)) = colliding_pair();
    assert_eq!(entity_id(pa, ta), entity_id(pb, tb));
    let (reg, intake, handle) = process_registry(1_000, StoreOptions::default()).await;
    let scan = |pid, start_time| {
        ProcessUpdate::Scan(ProcessStart {
            pid,
            start_time,
            ppid: 0,
            parent_start_time: 0,
            uid: pid,
            gid: pid,
            comm: format!("p{pid}"),
            exe_path: None,
            exe_flags: Default::default(),
        })
    };
    intake
        .submit(vec![scan(pa, ta), scan(pb, tb)])
        .await
        .unwrap();
    applied(&handle, 2).await;
    let a = handle.get_process_exact(pa, ta).await.unwrap();
    let b = handle.get_process_exact(pb, tb).await.unwrap();
    assert_eq!((a.pid, a.start_time), (pa, ta));
    assert_eq!((b.pid, b.start_time), (pb, tb));
    // By entity ID, the collision rule answers the newest start time, and counts ambiguity.
    let newest = if ta > tb { pa } else { pb };
    assert_eq!(
        handle.get_process(entity_id(pa, ta)).await.unwrap().pid,
        newest
    );
    assert_eq!(handle.ambiguous_lookups(), 1);
    let uid = handle
        .with_process(
            ProcessRef::Exact {
                pid: pa,
                start_time: ta,
            },
            |p| p.uid(),
        )
        .unwrap();
    assert_eq!(uid, pa);
    assert!(
        handle
            .get_process_exact(pa, tb)
            .await
            .unwrap_err()
            .is(ErrorKind::NotFound)
    );
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_counted_exactly_and_refresh_recency() {
    let (reg, intake, handle) = process_registry(4, StoreOptions::default()).await;
    intake
        .submit(vec![fork(1, 0), fork(2, 0), fork(3, 0), fork(4, 0)])
        .await
        .unwrap();
    applied(&handle, 4).await;
    let before = handle.get_metrics().await;
    // Reads from several threads: every one counted.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let h = handle.clone();
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    h.with_process(id(1), |_| ()).unwrap();
                    assert!(h.with_process(id(77), |_| ()).is_err());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let after = handle.get_metrics().await;
    assert_eq!(after.cache_hits - before.cache_hits, 4000);
    assert_eq!(after.cache_misses - before.cache_misses, 4000);
    assert_eq!(after.success_count - before.success_count, 8000);
    assert!(after.last_access >= before.last_access);
    // Process 1 was read last among the four; a fifth process evicts the least recently used
    // running one: 2 (1 was inserted first but read since). Then 3.
    intake.submit(vec![fork(5, 0)]).await.unwrap();
    applied(&handle, 5).await;
    assert!(handle.get_process(id(1)).await.is_ok(), "read, so kept");
    assert!(
        handle.get_process(id(2)).await.is_err(),
        "least recently used"
    );
    intake.submit(vec![fork(6, 0)]).await.unwrap();
    applied(&handle, 6).await;
    assert!(handle.get_process(id(1)).await.is_ok());
    assert!(handle.get_process(id(3)).await.is_err());
    let exit = ProcessUpdate::Exit(ProcessExit {
        pid: 6,
        start_time: start(6),
        exit_time: T0,
    });
    intake.submit(vec![exit]).await.unwrap();
    applied(&handle, 7).await;
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_of_a_store_holds_two_copies_and_nothing_more() {
    let (reg, _intake, handle) = process_registry(10_000, StoreOptions::default()).await;
    let table = ProcessTable::new(ProcessTableConfig {
        capacity: 10_000,
        ..Default::default()
    });
    let bytes = handle.view_bytes();
    assert_eq!(bytes.copies, 2 * table.bytes_reserved());
    assert_eq!(bytes.marks, 2 * 8 * 10_000);
    assert!(bytes.readers <= 65 * 128);
    // What a memory ledger records from the store its factory built is what the view holds.
    assert_eq!(ViewBytes::of::<ProcessProtocol, _>(&table), bytes);
    // A store that failed or stopped frees its copies.
    reg.shutdown().await;
    assert_eq!(handle.view_bytes().copies, 0);
    assert!(
        handle
            .get_process(id(1))
            .await
            .unwrap_err()
            .is(ErrorKind::StoreUnhealthy)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_runs_on_both_copies_and_inspect_view_reads_the_published_one() {
    let (reg, intake, handle) = process_registry(1_000, StoreOptions::default()).await;
    intake.submit(family_batch(0)).await.unwrap();
    applied(&handle, 128).await;
    // Reading the published copy, uncounted, down to the concrete store.
    let before = handle.get_metrics().await;
    let held = handle.inspect_view(|b| b.records().count()).unwrap();
    assert_eq!(held, 128);
    let len = handle
        .inspect_view(|b| {
            b.as_any()
                .downcast_ref::<ProcessTable>()
                .map(ProcessTable::len)
        })
        .unwrap();
    assert_eq!(len, Some(128));
    assert_eq!(
        handle.get_metrics().await.success_count,
        before.success_count
    );
    // A change made through `inspect` reaches both copies: after two more publishes the old
    // processes must not come back from the other copy.
    let cleared = handle
        .inspect("clear", |t: &mut ProcessTable| {
            let n = t.len();
            t.clear();
            n
        })
        .await
        .unwrap();
    assert_eq!(cleared, 128);
    for k in 1..=2 {
        intake.submit(family_batch(k)).await.unwrap();
        applied(&handle, 128 * (k as u64 + 1)).await;
        let old = handle.with_process(key(100_000), |_| ()).unwrap_err();
        assert!(old.is(ErrorKind::NotFound), "after batch {k}: {old}");
        assert_eq!(
            handle.inspect_view(|b| b.records().count()).unwrap(),
            128 * k as usize
        );
    }
    // The wrong concrete type is refused, not a panic.
    let wrong = handle
        .inspect("len", |t: &mut String| t.len())
        .await
        .unwrap_err();
    assert!(wrong.is(ErrorKind::InvalidArgument), "{wrong}");
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_batches_catch_the_other_copy_up_by_copying_and_readers_see_whole_batches() {
    // 4,000 processes reserve ~0.75 MB: a batch of 2,048 forks is cheaper to copy than to replay.
    let (reg, intake, handle) = process_registry(4_000, StoreOptions::default()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let readers = family_readers(&handle, 18, true, &stop);
    let mut applied_so_far = 0;
    for big in 0..2u32 {
        let batch: Vec<ProcessUpdate> = (0..8).flat_map(|k| family_batch(big * 8 + k)).collect();
        applied_so_far += batch.len() as u64;
        intake.submit(batch).await.unwrap();
    }
    applied(&handle, applied_so_far).await;
    // Small batches (replayed) after copied ones: both copies must hold everything.
    for k in 16..18 {
        intake.submit(family_batch(k)).await.unwrap();
        applied_so_far += 128;
        applied(&handle, applied_so_far).await;
    }
    stop.store(true, Ordering::Relaxed);
    let checks: u64 = readers.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(checks > 0);
    for k in 0..18 {
        handle
            .with_processes(&family_keys(k), |_, found| {
                assert!(found.is_some(), "batch {k}")
            })
            .unwrap();
    }
    assert_eq!(
        handle.inspect_view(|b| b.records().count()).unwrap(),
        18 * 128
    );
    reg.shutdown().await;
}
