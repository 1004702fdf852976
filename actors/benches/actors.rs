//! What a query costs through the actors, against its floors: a direct core lookup and a raw
//! tokio mpsc + oneshot round trip; a batch of 64 through the actor; 1, 2 and 4 concurrent
//! detectors; ingestion through the bounded intake; and (printed after criterion's report) the
//! latency histogram of queries under 4 concurrent detectors.
//!
//! Run: `cargo bench -p watchpost-actors --bench actors -- --warm-up-time 1 --measurement-time 3`
//!
//! Measured once on the 2-core build machine (medians): direct lookup 66 ns (view) / 195 ns
//! (owned `ProcessInfo`); raw tokio round trip 268 ns (current-thread) / 529 ns (multi-thread);
//! one `get_process` through the actor 1.48 µs / 2.93 µs; batch of 64 15.1 µs / 20.3 µs
//! (235 / 317 ns per item); 1, 2, 4 concurrent detectors 2.13, 1.62, 1.46 µs per query;
//! ingestion 1024-event fork batches 510 µs (2.0 M events/s); latency under 4 detectors p50 7.0 µs,
//! p99 45 µs.
//!
//! `new_stores` (added later, one run while the machine's load average was ~5 on 2 cores, so
//! slower than the figures above): container `get_container` by full ID 4.6 µs, by 12-character
//! prefix 10.1 µs (scans the 512-slot table); IP reputation `is_denied` 4.6 µs, `check_ips` of 64
//! addresses 49.9 µs (780 ns per address: each owned verdict copies a ~1 KB inline record).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};
use watchpost_actors::stores::process::{ProcessStart, ProcessUpdate};
use watchpost_actors::{BuildContext, IntakeOptions, Registry, RegistryConfig, StoreOptions};
use watchpost_core::entity_id::entity_id;
use watchpost_core::process::{Comm, ForkEvent, ProcessTable, ProcessTableConfig};

const PROCESSES: u32 = 10_000;
const START: u64 = 1_764_300_000_000_000_000;

fn table() -> ProcessTable {
    let mut t = ProcessTable::new(ProcessTableConfig {
        capacity: PROCESSES as usize,
        ..Default::default()
    });
    for pid in 1..=PROCESSES {
        let fork = ForkEvent {
            pid,
            start_time: START + u64::from(pid),
            ppid: if pid == 1 { 0 } else { pid / 2 },
            parent_start_time: if pid == 1 {
                0
            } else {
                START + u64::from(pid / 2)
            },
            uid: 0,
            gid: 0,
            comm: Comm::new("worker"),
            exe_path: Some("/usr/bin/worker"),
        };
        t.apply_fork(&fork, START);
    }
    t
}

fn ids() -> Vec<u32> {
    (1..=PROCESSES)
        .map(|pid| entity_id(pid, START + u64::from(pid)))
        .collect()
}

fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn registry_with_table() -> Registry {
    let reg = Registry::start(RegistryConfig::default()).await.unwrap();
    reg.register_process_store(|_: &BuildContext| Ok(table()), StoreOptions::default())
        .await
        .unwrap();
    reg
}

/// Runs `f` as a task on a runtime worker: callers in the daemon are tasks, and a caller on the
/// `block_on` thread would pay a cross-thread wake-up per message.
async fn on_worker<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    tokio::spawn(f).await.unwrap()
}

fn direct(c: &mut Criterion) {
    let mut g = c.benchmark_group("direct_core");
    let mut t = table();
    let ids = ids();
    let mut i = 0usize;
    g.bench_function("get_process_view", |b| {
        b.iter(|| {
            i = (i + 7919) % ids.len();
            black_box(t.get(ids[i], START).map(|v| v.pid()).ok())
        })
    });
    g.bench_function("get_process_owned", |b| {
        b.iter(|| {
            i = (i + 7919) % ids.len();
            black_box(
                t.get(ids[i], START)
                    .map(|v| watchpost_actors::adapters::process::to_info(&v))
                    .ok(),
            )
        })
    });
    g.finish();
}

fn round_trips(c: &mut Criterion) {
    for (flavor, rt) in [
        ("current_thread", current_thread()),
        ("multi_thread", multi_thread()),
    ] {
        let mut g = c.benchmark_group(format!("round_trip/{flavor}"));
        g.bench_function("raw_tokio_mpsc_oneshot", |b| {
            b.iter_custom(|iters| {
                rt.block_on(on_worker(async move {
                    let (tx, mut rx) = mpsc::unbounded_channel::<(u32, oneshot::Sender<u32>)>();
                    tokio::spawn(async move {
                        while let Some((v, reply)) = rx.recv().await {
                            let _ = reply.send(v + 1);
                        }
                    });
                    let start = Instant::now();
                    for i in 0..iters {
                        let (otx, orx) = oneshot::channel();
                        tx.send((i as u32, otx)).unwrap();
                        black_box(orx.await.unwrap());
                    }
                    start.elapsed()
                }))
            })
        });
        let reg = rt.block_on(registry_with_table());
        let ids = std::sync::Arc::new(ids());
        g.bench_function("actor_get_process", |b| {
            b.iter_custom(|iters| {
                let p = reg.processes();
                let ids = ids.clone();
                rt.block_on(on_worker(async move {
                    let start = Instant::now();
                    for i in 0..iters {
                        let id = ids[(i as usize * 7919) % ids.len()];
                        black_box(p.get_process(id).await.unwrap());
                    }
                    start.elapsed()
                }))
            })
        });
        g.throughput(Throughput::Elements(64));
        g.bench_function("actor_get_processes_batch_64", |b| {
            b.iter_custom(|iters| {
                let p = reg.processes();
                let ids = ids.clone();
                rt.block_on(on_worker(async move {
                    let start = Instant::now();
                    for i in 0..iters {
                        let at = (i as usize * 64) % (ids.len() - 64);
                        black_box(p.get_processes(&ids[at..at + 64]).await.unwrap());
                    }
                    start.elapsed()
                }))
            })
        });
        g.finish();
        rt.block_on(reg.shutdown());
    }
}

fn concurrent_detectors(c: &mut Criterion) {
    let rt = multi_thread();
    let reg = rt.block_on(registry_with_table());
    let ids = std::sync::Arc::new(ids());
    let mut g = c.benchmark_group("concurrent_detectors/multi_thread");
    g.throughput(Throughput::Elements(1));
    for detectors in [1u64, 2, 4] {
        g.bench_function(format!("{detectors}_detectors_get_process"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let per = iters.div_ceil(detectors);
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..detectors)
                        .map(|d| {
                            let p = reg.processes();
                            let ids = ids.clone();
                            tokio::spawn(async move {
                                for i in 0..per {
                                    let id = ids[((i + d * 1000) as usize * 7919) % ids.len()];
                                    black_box(p.get_process(id).await.unwrap());
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
    rt.block_on(reg.shutdown());
}

fn ingestion(c: &mut Criterion) {
    let rt = multi_thread();
    let mut g = c.benchmark_group("ingestion/multi_thread");
    const BATCH: usize = 1024;
    g.throughput(Throughput::Elements(BATCH as u64));
    let (reg, intake) = rt.block_on(async {
        let reg = Registry::start(RegistryConfig::default()).await.unwrap();
        let intake = reg
            .register_process_store(
                |_: &BuildContext| Ok(table()),
                StoreOptions {
                    intake: IntakeOptions {
                        queue_batches: 64,
                        max_batch_len: BATCH,
                        batches_per_apply: 16,
                        restart_wait: Duration::from_secs(1),
                    },
                    ..StoreOptions::default()
                },
            )
            .await
            .unwrap();
        (reg, intake)
    });
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(PROCESSES + 1));
    g.bench_function("fork_events_batched_1024", |b| {
        b.iter_custom(|iters| {
            let p = reg.processes();
            let intake = intake.clone();
            let next = next.clone();
            rt.block_on(on_worker(async move {
                let mut next_pid = next.load(std::sync::atomic::Ordering::Relaxed);
                let before = p.supervision().intake_applied_updates
                    + p.supervision().intake_rejected_updates;
                let start = Instant::now();
                for _ in 0..iters {
                    let batch: Vec<ProcessUpdate> = (0..BATCH as u32)
                        .map(|k| {
                            let pid = next_pid.wrapping_add(k);
                            ProcessUpdate::Fork(ProcessStart {
                                pid,
                                start_time: START + u64::from(pid),
                                ppid: pid / 2,
                                parent_start_time: START + u64::from(pid / 2),
                                uid: 1000,
                                gid: 1000,
                                comm: "worker".into(),
                                exe_path: None,
                                exe_flags: Default::default(),
                            })
                        })
                        .collect();
                    next_pid = next_pid.wrapping_add(BATCH as u32);
                    intake.submit(batch).await.unwrap();
                }
                let target = before + iters * BATCH as u64;
                while p.supervision().intake_applied_updates
                    + p.supervision().intake_rejected_updates
                    < target
                {
                    tokio::task::yield_now().await;
                }
                next.store(next_pid, std::sync::atomic::Ordering::Relaxed);
                start.elapsed()
            }))
        })
    });
    g.finish();
    rt.block_on(reg.shutdown());
}

/// Latency of single queries while 4 detectors query concurrently, as a histogram.
fn latency_histogram() {
    let rt = multi_thread();
    let reg = rt.block_on(registry_with_table());
    let ids = std::sync::Arc::new(ids());
    const PER_DETECTOR: u64 = 100_000;
    let merged = rt.block_on(async {
        let tasks: Vec<_> = (0..4u64)
            .map(|d| {
                let p = reg.processes();
                let ids = ids.clone();
                tokio::spawn(async move {
                    let mut h =
                        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
                    for i in 0..PER_DETECTOR {
                        let id = ids[((i + d * 1000) as usize * 7919) % ids.len()];
                        let t = Instant::now();
                        black_box(p.get_process(id).await.unwrap());
                        // A loaded machine can stall a call past the 10 ms bound: count it there.
                        h.saturating_record(t.elapsed().as_nanos() as u64);
                    }
                    h
                })
            })
            .collect();
        let mut merged = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
        for t in tasks {
            merged.add(t.await.unwrap()).unwrap();
        }
        merged
    });
    println!(
        "latency/4_detectors/multi_thread get_process: n={} p50={} ns p90={} ns p99={} ns p99.9={} ns max={} ns",
        merged.len(),
        merged.value_at_quantile(0.50),
        merged.value_at_quantile(0.90),
        merged.value_at_quantile(0.99),
        merged.value_at_quantile(0.999),
        merged.max()
    );
    rt.block_on(reg.shutdown());
}

/// The container store (a full table of 512) and the IP reputation store (100k entries) through
/// their actors, multi-thread runtime: exact ID, 12-character prefix (a linear scan of the table),
/// a deny check, and a batch of 64 addresses.
fn container_and_reputation(c: &mut Criterion) {
    use watchpost_actors::adapters::container::container_table_factory;
    use watchpost_actors::adapters::ip_reputation::ip_reputation_factory;
    use watchpost_actors::stores::container::{ContainerInfo, ContainerUpdate};
    use watchpost_core::container::ContainerTableConfig;
    use watchpost_core::ip_reputation::{IpReputation, IpReputationConfig, ReputationStatus};

    const CONTAINERS: usize = 512;
    const ADDRESSES: u32 = 100_000;
    let rt = multi_thread();
    let reg = rt
        .block_on(Registry::start(RegistryConfig::default()))
        .unwrap();
    let container_ids: Vec<String> = (0..CONTAINERS)
        .map(|i| format!("{:012x}{:052x}", i * 7919 + 1, i))
        .collect();
    let (containers, owner) = rt.block_on(async {
        let intake = reg
            .register_container_store(
                container_table_factory(ContainerTableConfig::default()),
                StoreOptions::default(),
            )
            .await
            .unwrap();
        let updates = container_ids
            .iter()
            .map(|id| {
                ContainerUpdate::Upsert(ContainerInfo {
                    id: id.clone(),
                    name: format!("c-{id}"),
                    runtime: "docker".into(),
                    ..Default::default()
                })
            })
            .collect();
        intake.submit(updates).await.unwrap();
        let handle = reg.containers();
        while handle.get_metrics().await.item_count < CONTAINERS as i64 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let owner = reg
            .register_writable_store(
                "ip_reputation",
                ip_reputation_factory(IpReputationConfig::new(ADDRESSES as usize), Vec::new()),
                StoreOptions::default(),
            )
            .await
            .unwrap();
        for chunk in (0..ADDRESSES).collect::<Vec<_>>().chunks(4096) {
            let records = chunk
                .iter()
                .map(|&i| {
                    let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
                    IpReputation::new(&ip, ReputationStatus::Deny, 5, START).unwrap()
                })
                .collect();
            owner.write_batch("feed", records).await.unwrap();
        }
        (handle, owner)
    });
    let container_ids = std::sync::Arc::new(container_ids);
    let reader = owner.reader();
    let mut g = c.benchmark_group("new_stores/multi_thread");
    for (name, prefix_len) in [
        ("actor_get_container_full_id", 64),
        ("actor_get_container_prefix_12", 12),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let handle = containers.clone();
                let ids = container_ids.clone();
                rt.block_on(on_worker(async move {
                    let start = Instant::now();
                    for i in 0..iters {
                        let id = &ids[(i as usize * 31) % ids.len()];
                        black_box(handle.get_container(&id[..prefix_len]).await.unwrap());
                    }
                    start.elapsed()
                }))
            })
        });
    }
    g.bench_function("actor_ip_is_denied", |b| {
        b.iter_custom(|iters| {
            let reader = reader.clone();
            rt.block_on(on_worker(async move {
                let start = Instant::now();
                for i in 0..iters {
                    let ip = std::net::Ipv4Addr::from(0x0a00_0000 + (i as u32 * 7919) % ADDRESSES);
                    black_box(reader.is_denied(ip).await.unwrap());
                }
                start.elapsed()
            }))
        })
    });
    g.throughput(Throughput::Elements(64));
    g.bench_function("actor_ip_check_ips_64", |b| {
        b.iter_custom(|iters| {
            let reader = reader.clone();
            rt.block_on(on_worker(async move {
                let start = Instant::now();
                for i in 0..iters {
                    let base = (i as u32 * 64) % (ADDRESSES - 64);
                    let ips = (base..base + 64).map(|n| std::net::Ipv4Addr::from(0x0a00_0000 + n));
                    black_box(reader.check_ips(ips).await.unwrap());
                }
                start.elapsed()
            }))
        })
    });
    g.finish();
    rt.block_on(reg.shutdown());
}

criterion_group!(
    benches,
    direct,
    round_trips,
    concurrent_detectors,
    ingestion,
    container_and_reputation
);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    latency_histogram();
}
