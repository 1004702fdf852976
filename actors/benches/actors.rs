//! What a query costs through a handle (the read path: the store's published copy, read in the
//! caller's task), against the direct core lookup and against the mailbox round trip every query
//! paid before the read path (a ractor actor owning the same table, asked by `call!`), measured in
//! the same run; what detectors
//! querying cost the intake; and (printed after criterion's report) query latency while the
//! intake applies process events, query latency during 4,096-update batches, and the memory of
//! each store's read view at the default configuration.
//!
//! Run: `cargo bench -p watchpost-actors --bench actors -- --warm-up-time 1 --measurement-time 3`
//!
//! Figures (one run, ratios to the baselines of the same run) are in the README, "Actors".

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use hdrhistogram::Histogram;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::runtime::Runtime;
use watchpost_actors::adapters::container::container_table_factory;
use watchpost_actors::adapters::dns::dns_cache_factory;
use watchpost_actors::adapters::ip_reputation::ip_reputation_factory;
use watchpost_actors::adapters::process::to_info;
use watchpost_actors::stores::ip_reputation::IpReputationReader;
use watchpost_actors::stores::process::{ProcessHandle, ProcessInfo, ProcessStart, ProcessUpdate};
use watchpost_actors::{
    BuildContext, IntakeOptions, IntakeSender, Registry, RegistryConfig, StoreOptions,
};
use watchpost_core::container::ContainerTableConfig;
use watchpost_core::dns::DnsCacheConfig;
use watchpost_core::entity_id::entity_id;
use watchpost_core::ip_reputation::{
    IpReputation, IpReputationConfig, IpReputationStore, ReputationStatus,
};
use watchpost_core::process::{Comm, ForkEvent, ProcessTable, ProcessTableConfig};

const PROCESSES: u32 = 10_000;
const ADDRESSES: u32 = 100_000;
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

fn reputation_store(entries: u32) -> IpReputationStore {
    let mut s = IpReputationStore::new(IpReputationConfig::new(entries as usize), &[]).unwrap();
    let all: Vec<u32> = (0..entries).collect();
    for chunk in all.chunks(4096) {
        let records: Vec<IpReputation> = chunk
            .iter()
            .map(|&i| IpReputation::new(&address(i), ReputationStatus::Deny, 5, START).unwrap())
            .collect();
        s.write_batch("feed", &records, START).unwrap();
    }
    s
}

fn address(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + i)
}

fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn registry_with_table(intake: IntakeOptions) -> (Registry, IntakeSender<ProcessUpdate>) {
    let reg = Registry::start(RegistryConfig::default()).await.unwrap();
    let sender = reg
        .register_process_store(
            |_: &BuildContext| Ok(table()),
            StoreOptions {
                intake,
                ..StoreOptions::default()
            },
        )
        .await
        .unwrap();
    (reg, sender)
}

async fn reputation_reader(reg: &Registry, name: &str, entries: u32) -> IpReputationReader {
    let owner = reg
        .register_writable_store(
            name,
            move |_: &BuildContext| Ok(reputation_store(entries)),
            StoreOptions::default(),
        )
        .await
        .unwrap();
    let reader = owner.reader();
    // The registry keeps the store; the owner's handle is not needed for reads.
    std::mem::forget(owner);
    reader
}

/// Runs `f` as a task on a runtime worker: detectors are tasks.
async fn on_worker<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    tokio::spawn(f).await.unwrap()
}

/// The query path before the read view: an actor that owns the table and answers each lookup
/// with an owned copy, one `call!` per query (the baseline the read path is measured against).
struct MailboxTable;

enum MailboxQuery {
    Get(u32, RpcReplyPort<Option<ProcessInfo>>),
}

impl Actor for MailboxTable {
    type Msg = MailboxQuery;
    type State = ProcessTable;
    type Arguments = ProcessTable;

    async fn pre_start(
        &self,
        _myself: ActorRef<MailboxQuery>,
        table: ProcessTable,
    ) -> Result<ProcessTable, ActorProcessingErr> {
        Ok(table)
    }

    async fn handle(
        &self,
        _myself: ActorRef<MailboxQuery>,
        message: MailboxQuery,
        table: &mut ProcessTable,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            MailboxQuery::Get(id, reply) => {
                let _ = reply.send(table.get(id, START).map(|v| to_info(&v)).ok());
            }
        }
        Ok(())
    }
}

fn pick(ids: &[u32], i: u64) -> u32 {
    ids[(i as usize).wrapping_mul(7919) % ids.len()]
}

/// `get_process` and the IP-reputation deny check: direct core call vs through a handle.
fn single_queries(c: &mut Criterion) {
    let rt = multi_thread();
    let ids = Arc::new(ids());
    let (reg, _intake) = rt.block_on(registry_with_table(IntakeOptions::default()));
    let readers = [
        (
            ADDRESSES,
            rt.block_on(reputation_reader(&reg, "ip_reputation", ADDRESSES)),
        ),
        (
            10_000,
            rt.block_on(reputation_reader(&reg, "ip_reputation_10k", 10_000)),
        ),
    ];
    let processes = reg.processes();

    let mut g = c.benchmark_group("get_process");
    let mut direct = table();
    let mut i = 0u64;
    g.bench_function("direct_core_owned", |b| {
        b.iter(|| {
            i += 1;
            black_box(direct.get(pick(&ids, i), START).map(|v| to_info(&v)).ok())
        })
    });
    g.bench_function("direct_core_view_pid", |b| {
        b.iter(|| {
            i += 1;
            black_box(direct.get(pick(&ids, i), START).map(|v| v.pid()).ok())
        })
    });
    let mailbox = rt.block_on(async {
        Actor::spawn(None, MailboxTable, table())
            .await
            .map(|(actor, _)| actor)
            .unwrap()
    });
    g.bench_function("mailbox_call_owned", |b| {
        let (actor, ids) = (mailbox.clone(), ids.clone());
        b.iter_custom(|iters| {
            let (actor, ids) = (actor.clone(), ids.clone());
            rt.block_on(on_worker(async move {
                let start = Instant::now();
                for i in 0..iters {
                    let id = pick(&ids, i);
                    black_box(ractor::call!(actor, |reply| MailboxQuery::Get(id, reply)).unwrap());
                }
                start.elapsed()
            }))
        })
    });
    g.bench_function("handle_owned", |b| {
        let (p, ids) = (processes.clone(), ids.clone());
        b.iter_custom(|iters| {
            let (p, ids) = (p.clone(), ids.clone());
            rt.block_on(on_worker(async move {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(p.get_process(pick(&ids, i)).await.unwrap());
                }
                start.elapsed()
            }))
        })
    });
    g.bench_function("handle_borrowed_exe_and_uid", |b| {
        let (p, ids) = (processes.clone(), ids.clone());
        b.iter_custom(|iters| {
            let (p, ids) = (p.clone(), ids.clone());
            rt.block_on(on_worker(async move {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(
                        p.with_process(pick(&ids, i), |v| (v.uid(), v.exe_path().map(str::len)))
                            .unwrap(),
                    );
                }
                start.elapsed()
            }))
        })
    });
    g.throughput(Throughput::Elements(64));
    // The same output as the handle's batch: 64 owned answers collected in one vector.
    g.bench_function("direct_core_owned_64", |b| {
        b.iter(|| {
            i += 1;
            let at = (i as usize * 64) % (ids.len() - 64);
            let answers: Vec<_> = ids[at..at + 64]
                .iter()
                .map(|&id| direct.get(id, START).map(|v| to_info(&v)))
                .collect();
            black_box(answers)
        })
    });
    g.bench_function("direct_core_view_uid_64", |b| {
        b.iter(|| {
            i += 1;
            let at = (i as usize * 64) % (ids.len() - 64);
            for &id in &ids[at..at + 64] {
                black_box(direct.get(id, START).map(|v| v.uid()).ok());
            }
        })
    });
    g.bench_function("handle_batch_64_owned", |b| {
        let (p, ids) = (processes.clone(), ids.clone());
        b.iter_custom(|iters| {
            let (p, ids) = (p.clone(), ids.clone());
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
    g.bench_function("handle_batch_64_borrowed_uid", |b| {
        let (p, ids) = (processes.clone(), ids.clone());
        b.iter_custom(|iters| {
            let (p, ids) = (p.clone(), ids.clone());
            rt.block_on(on_worker(async move {
                let start = Instant::now();
                for i in 0..iters {
                    let at = (i as usize * 64) % (ids.len() - 64);
                    p.with_processes(&ids[at..at + 64], |_, v| {
                        black_box(v.map(|v| v.uid()));
                    })
                    .unwrap();
                }
                start.elapsed()
            }))
        })
    });
    g.finish();
    mailbox.stop(None);

    // 100,000 entries (19.5 MB per copy: lookups go to memory, whose speed varies run to run
    // on this VM) and 10,000 (cache-resident: the read path's own cost shows).
    for (entries, reader) in readers {
        let mut g = c.benchmark_group(format!("is_denied_{entries}"));
        let mut direct = reputation_store(entries);
        let mut n = 0u32;
        g.bench_function("direct_core", |b| {
            b.iter(|| {
                n = n.wrapping_add(7919);
                black_box(direct.is_denied(&address(n % entries), START).unwrap())
            })
        });
        g.bench_function("handle", |b| {
            let reader = reader.clone();
            b.iter_custom(|iters| {
                let reader = reader.clone();
                rt.block_on(on_worker(async move {
                    let start = Instant::now();
                    for i in 0..iters {
                        let ip = address((i as u32).wrapping_mul(7919) % entries);
                        black_box(reader.is_denied(ip).await.unwrap());
                    }
                    start.elapsed()
                }))
            })
        });
        g.finish();
    }
    rt.block_on(reg.shutdown());
}

/// A detector: `per_ms` queries every millisecond (bursts) about processes forked recently (the
/// last 8,000 pids below `next`: what events name), each timed into `hist` if given.
async fn detector(
    p: ProcessHandle,
    next: Arc<AtomicU32>,
    seed: u64,
    per_ms: u64,
    stop: Arc<AtomicBool>,
    mut hist: Option<Histogram<u64>>,
) -> (u64, u64, Option<Histogram<u64>>) {
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut queries, mut hits) = (0u64, 0u64);
    let mut i = seed * 1_000_003;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let newest = next.load(Ordering::Relaxed);
        for _ in 0..per_ms {
            i += 1;
            let pid = newest.wrapping_sub(1 + ((i.wrapping_mul(7919)) % 8_000) as u32);
            let id = entity_id(pid, START + u64::from(pid));
            let t = Instant::now();
            let found = p.with_process(id, |v| v.uid()).is_ok();
            if let Some(h) = hist.as_mut() {
                h.saturating_record(t.elapsed().as_nanos() as u64);
            }
            queries += 1;
            hits += u64::from(found);
        }
    }
    (queries, hits, hist)
}

fn fork_batch(next_pid: &AtomicU32, len: u32) -> Vec<ProcessUpdate> {
    let first = next_pid.fetch_add(len, Ordering::Relaxed);
    (0..len)
        .map(|k| {
            let pid = first.wrapping_add(k);
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
        .collect()
}

/// Detector query rate: 5 questions per event at 100k events/s, over 4 detectors.
const QUERIES_PER_MS_PER_DETECTOR: u64 = 125;

/// Ingestion of fork batches of 1024 through the bounded intake, alone and while 4 detectors
/// query at 125k queries/s each.
fn ingestion(c: &mut Criterion) {
    const BATCH: u32 = 1024;
    let rt = multi_thread();
    let mut g = c.benchmark_group("ingestion");
    g.throughput(Throughput::Elements(u64::from(BATCH)));
    let (reg, intake) = rt.block_on(registry_with_table(IntakeOptions {
        queue_batches: 64,
        max_batch_len: BATCH as usize,
        batches_per_apply: 16,
        restart_wait: Duration::from_secs(1),
    }));
    let next = Arc::new(AtomicU32::new(PROCESSES + 1));
    for detectors in [0u64, 4] {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..detectors)
            .map(|d| {
                rt.spawn(detector(
                    reg.processes(),
                    next.clone(),
                    d,
                    QUERIES_PER_MS_PER_DETECTOR,
                    stop.clone(),
                    None,
                ))
            })
            .collect();
        g.bench_function(
            format!("fork_batches_1024_with_{detectors}_detectors"),
            |b| {
                b.iter_custom(|iters| {
                    let p = reg.processes();
                    let intake = intake.clone();
                    let next = next.clone();
                    rt.block_on(on_worker(async move {
                        let done = |p: &ProcessHandle| {
                            let s = p.supervision();
                            s.intake_applied_updates + s.intake_rejected_updates
                        };
                        let target = done(&p) + iters * u64::from(BATCH);
                        let start = Instant::now();
                        for _ in 0..iters {
                            intake.submit(fork_batch(&next, BATCH)).await.unwrap();
                        }
                        while done(&p) < target {
                            tokio::task::yield_now().await;
                        }
                        start.elapsed()
                    }))
                })
            },
        );
        stop.store(true, Ordering::Relaxed);
        let v = reg.processes().view_stats();
        println!(
            "ingestion with {detectors} detectors: view writer so far: {} publishes, {} waits for a reader, {} deferred catch-ups",
            v.publishes, v.writer_waits, v.deferred_catch_ups
        );
        for t in tasks {
            let (queries, hits, _) = rt.block_on(t).unwrap();
            if detectors > 0 {
                println!(
                    "ingestion with {detectors} detectors: {queries} queries answered ({:.1} % hits)",
                    100.0 * hits as f64 / queries.max(1) as f64
                );
            }
        }
    }
    g.finish();
    rt.block_on(reg.shutdown());
}

fn new_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 100_000_000, 3).unwrap()
}

fn print_histogram(label: &str, h: &Histogram<u64>) {
    println!(
        "{label}: n={} p50={} ns p90={} ns p99={} ns p99.9={} ns max={} ns",
        h.len(),
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.90),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

/// The cost of the timer itself: what every latency sample includes.
fn timer_floor() {
    let mut h = new_histogram();
    for _ in 0..200_000 {
        let t = Instant::now();
        h.saturating_record(black_box(t).elapsed().as_nanos() as u64);
    }
    print_histogram("latency/timer_floor (empty sample)", &h);
}

/// 4 detectors querying (125k queries/s each) while the intake applies fork batches of 128
/// every millisecond (128k events/s): latency of every query.
fn latency_under_ingest() {
    let rt = multi_thread();
    let (reg, intake) = rt.block_on(registry_with_table(IntakeOptions::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU32::new(PROCESSES + 1));
    let p = reg.processes();
    let applied_before = p.supervision().intake_applied_updates;
    let started = Instant::now();
    let writer = {
        let stop = stop.clone();
        let next = next.clone();
        rt.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                intake.submit(fork_batch(&next, 128)).await.unwrap();
            }
        })
    };
    let detectors: Vec<_> = (0..4u64)
        .map(|d| {
            rt.spawn(detector(
                reg.processes(),
                next.clone(),
                d,
                QUERIES_PER_MS_PER_DETECTOR,
                stop.clone(),
                Some(new_histogram()),
            ))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::Relaxed);
    rt.block_on(writer).unwrap();
    let elapsed = started.elapsed();
    let mut merged = new_histogram();
    let (mut queries, mut hits) = (0, 0);
    for d in detectors {
        let (q, h, hist) = rt.block_on(d).unwrap();
        queries += q;
        hits += h;
        merged.add(hist.unwrap()).unwrap();
    }
    let applied = p.supervision().intake_applied_updates - applied_before;
    let overflow = p.supervision().intake_overflow_updates;
    println!(
        "latency/4_detectors_under_ingest: intake applied {:.0} events/s ({} refused as overflow), detectors {:.0} queries/s ({:.1} % hits)",
        applied as f64 / elapsed.as_secs_f64(),
        overflow,
        queries as f64 / elapsed.as_secs_f64(),
        100.0 * hits as f64 / queries.max(1) as f64
    );
    print_histogram("latency/4_detectors_under_ingest with_process", &merged);
    rt.block_on(reg.shutdown());
}

/// One reader querying while the intake applies 4,096-update batches back to back: does a query
/// ever wait for a batch?
fn latency_during_big_batches() {
    const BATCH: u32 = 4096;
    let rt = multi_thread();
    let (reg, intake) = rt.block_on(registry_with_table(IntakeOptions {
        queue_batches: 4,
        max_batch_len: BATCH as usize,
        batches_per_apply: 1,
        restart_wait: Duration::from_secs(1),
    }));
    let ids = Arc::new(ids());
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU32::new(PROCESSES + 1));
    let p = reg.processes();
    let writer = {
        let stop = stop.clone();
        let p = p.clone();
        rt.spawn(async move {
            let mut batches = 0u64;
            let before = p.supervision().intake_applied_updates;
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                intake.submit(fork_batch(&next, BATCH)).await.unwrap();
                batches += 1;
            }
            let target = before + batches * u64::from(BATCH);
            while p.supervision().intake_applied_updates < target {
                tokio::task::yield_now().await;
            }
            (batches, start.elapsed())
        })
    };
    let reader = {
        let stop = stop.clone();
        let p = p.clone();
        let ids = ids.clone();
        rt.spawn(async move {
            // Every query sample is paired with an empty one taken just before it on the same
            // thread: what the thread itself lost (preemption by the OS) shows up in both.
            let (mut h, mut empty) = (new_histogram(), new_histogram());
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..256 {
                    i += 1;
                    let t = Instant::now();
                    empty.saturating_record(black_box(t).elapsed().as_nanos() as u64);
                    let t = Instant::now();
                    black_box(p.with_process(pick(&ids, i), |v| v.uid()).ok());
                    h.saturating_record(t.elapsed().as_nanos() as u64);
                }
                tokio::task::yield_now().await;
            }
            (h, empty)
        })
    };
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::Relaxed);
    let (batches, elapsed) = rt.block_on(writer).unwrap();
    let (h, empty) = rt.block_on(reader).unwrap();
    println!(
        "latency/during_4096_batches: {batches} batches of {BATCH} applied back to back, {:.2} ms per batch (both copies), {:.0} events/s",
        elapsed.as_secs_f64() * 1e3 / batches.max(1) as f64,
        (batches * u64::from(BATCH)) as f64 / elapsed.as_secs_f64()
    );
    print_histogram("latency/during_4096_batches with_process", &h);
    print_histogram(
        "latency/during_4096_batches empty sample (same thread)",
        &empty,
    );
    for (lo, hi) in [
        (0u64, 250u64),
        (250, 500),
        (500, 1_000),
        (1_000, 10_000),
        (10_000, 100_000),
        (100_000, 1_000_000),
        (1_000_000, u64::MAX),
    ] {
        let count = |h: &Histogram<u64>| -> u64 {
            h.iter_recorded()
                .filter(|v| v.value_iterated_to() >= lo && v.value_iterated_to() < hi)
                .map(|v| v.count_at_value())
                .sum()
        };
        println!(
            "  [{lo} ns, {hi} ns): queries {}, empty samples {}",
            count(&h),
            count(&empty)
        );
    }
    rt.block_on(reg.shutdown());
}

/// Bytes of each store's read view at the default configuration.
fn view_memory() {
    let rt = multi_thread();
    rt.block_on(async {
        let reg = Registry::start(RegistryConfig::default()).await.unwrap();
        reg.register_process_store(
            watchpost_actors::adapters::process::process_table_factory(
                ProcessTableConfig::default(),
            ),
            StoreOptions::default(),
        )
        .await
        .unwrap();
        reg.register_container_store(
            container_table_factory(ContainerTableConfig::default()),
            StoreOptions::default(),
        )
        .await
        .unwrap();
        reg.register_dns_store(
            dns_cache_factory(DnsCacheConfig::default()),
            StoreOptions::default(),
        )
        .await
        .unwrap();
        let owner = reg
            .register_writable_store(
                "ip_reputation",
                ip_reputation_factory(IpReputationConfig::new(100_000), Vec::new()),
                StoreOptions::default(),
            )
            .await
            .unwrap();
        for (name, bytes) in [
            ("process (10,000)", reg.processes().view_bytes()),
            ("container (512)", reg.containers().view_bytes()),
            ("dns (5,000 names)", reg.dns().view_bytes()),
            ("ip_reputation (100,000)", owner.view_bytes()),
        ] {
            println!(
                "view_memory/{name}: {} bytes total = two copies {} + recency marks {} + reader records {}",
                bytes.total(),
                bytes.copies,
                bytes.marks,
                bytes.readers
            );
        }
        reg.shutdown().await;
    });
}

criterion_group!(benches, single_queries, ingestion);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    timer_floor();
    latency_under_ingest();
    latency_during_big_batches();
    view_memory();
}
