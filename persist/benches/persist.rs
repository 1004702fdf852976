//! Costs of restart safety on a large data set: 64k processes (a third exited), 10k DNS names
//! (one A record each) and 10k IP reputation entries (two sources), in one redb file.
//!
//! Criterion: a full snapshot and a full restore of everything; a changed-only process snapshot
//! after 1 % of the processes changed against a full rewrite of the process table; the
//! reputation write-through of one batch (fsync and not). Printed after: file bytes per record,
//! and query latency (p50/p99 of `get_process` through the real store actor) with and without a
//! snapshot copying records out of that actor in chunks.
//!
//! `WATCHPOST_BENCH_DATA_DIR=DIR` also leaves a file of this size in DIR (for timing a daemon
//! start with a restore: `persist/benches/daemon-start.sh`).

#[path = "../../core/tests/dns_encoder/mod.rs"]
mod dns_encoder;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::Criterion;
use dns_encoder::*;
use watchpost_core::dns::{DnsCache, DnsCacheConfig, DnsOrigin, DnsRecord};
use watchpost_core::ip_reputation::{
    IpReputation, IpReputationConfig, IpReputationStore, ReputationRecord, ReputationStatus,
};
use watchpost_core::process::{
    Comm, ExeFlags, ExecEvent, ExitEvent, ForkEvent, ProcessKey, ProcessRecord, ProcessTable,
    ProcessTableConfig,
};
use watchpost_persist::codec::{self, process_key};
use watchpost_persist::{BootIdentity, PersistFile, StoreWrite, WriteDurability};

const T0: u64 = 1_764_300_000_000_000_000;
const PROCESSES: u32 = 64_000;
const NAMES: u32 = 10_000;
const REPUTATION: u32 = 5_000; // per source, two sources

fn boot() -> BootIdentity {
    BootIdentity {
        boot_id: BootIdentity::read_boot_id().unwrap_or_else(|| "bench".into()),
        btime: 1,
    }
}

fn process_table() -> ProcessTable {
    ProcessTable::new(ProcessTableConfig {
        capacity: 65_536,
        exe_path_strings: 1024,
        exe_path_bytes: 64 * 1024,
        ..ProcessTableConfig::default()
    })
}

fn dns_cache() -> DnsCache {
    DnsCache::new(DnsCacheConfig {
        max_names: 12_000,
        max_addresses: 12_000,
        max_links: 24_000,
        name_bytes: 12_000 * 32,
        hash_seed: 7,
        trusted_answers_per_sec: u32::MAX,
        ..DnsCacheConfig::default()
    })
}

fn reputation_store() -> IpReputationStore {
    IpReputationStore::new(IpReputationConfig::new(12_000), &[]).unwrap()
}

struct Data {
    processes: ProcessTable,
    dns: DnsCache,
    reputation: IpReputationStore,
}

fn key(pid: u32) -> ProcessKey {
    ProcessKey::new(pid, T0 + u64::from(pid) * 1_000)
}

fn data() -> Data {
    let mut processes = process_table();
    let paths: Vec<String> = (0..200)
        .map(|i| format!("/usr/lib/app/bin/tool-{i}"))
        .collect();
    for pid in 1..=PROCESSES {
        let parent = if pid == 1 {
            ProcessKey::default()
        } else {
            key(pid / 4 + 1)
        };
        let k = key(pid);
        processes.apply_fork(
            &ForkEvent {
                pid,
                start_time: k.start_time,
                ppid: parent.pid,
                parent_start_time: parent.start_time,
                uid: 1000,
                gid: 1000,
                comm: Comm::new("worker"),
                exe_path: Some(&paths[(pid % 200) as usize]),
            },
            T0,
        );
        if pid % 3 == 0 {
            processes.apply_exit(
                &ExitEvent {
                    pid,
                    start_time: k.start_time,
                    exit_time: T0 + 1,
                },
                T0 + 1,
            );
        }
    }
    let mut dns = dns_cache();
    for i in 0..NAMES {
        let name = format!("host{i}.example.com");
        let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        let _ = dns.insert_packet(
            &a_response(&name, &[rr(&name, 86_400, a(&ip))]),
            DnsOrigin::trusted(4_026_531_840),
            T0,
        );
    }
    let mut reputation = reputation_store();
    for (s, source) in ["feed-a", "feed-b"].into_iter().enumerate() {
        let records: Vec<IpReputation> = (0..REPUTATION)
            .map(|i| {
                let ip = format!("172.16.{}.{}", i >> 8, i & 255);
                let mut r = IpReputation::new(
                    ip.as_str(),
                    ReputationStatus::Deny,
                    1 + (i % 10) as u8,
                    T0 + s as u64,
                )
                .unwrap();
                r.add_tag("botnet").unwrap();
                r
            })
            .collect();
        for chunk in records.chunks(4096) {
            reputation.write_batch(source, chunk, T0).unwrap();
        }
    }
    Data {
        processes,
        dns,
        reputation,
    }
}

/// Every record of `d`, encoded: what a full snapshot writes.
fn full_writes(d: &mut Data) -> [(&'static str, StoreWrite); 3] {
    let mut p = StoreWrite {
        full: true,
        ..StoreWrite::default()
    };
    let _ = d.processes.take_removed(|_| {});
    let mut cursor = Some(0);
    while let Some(from) = cursor {
        cursor = d.processes.export_chunk(from, 4096, false, |r| {
            p.upserts.push(codec::encode_process(&r).unwrap())
        });
    }
    let dns = StoreWrite {
        full: true,
        upserts: d
            .dns
            .records()
            .enumerate()
            .map(|(i, r)| codec::encode_dns(i as u64, &r).unwrap())
            .collect(),
        ..StoreWrite::default()
    };
    let rep = StoreWrite {
        full: true,
        upserts: d
            .reputation
            .records()
            .map(|r| codec::encode_reputation(&r).unwrap())
            .collect(),
        ..StoreWrite::default()
    };
    [("process", p), ("dns", dns), ("ip_reputation", rep)]
}

fn snapshot_all(file: &mut PersistFile, d: &mut Data) {
    for (store, write) in full_writes(d) {
        file.write_store(store, &write, WriteDurability::Immediate)
            .unwrap();
    }
}

/// Opens `dir`, verifies, decodes and restores every store: what a start does.
fn restore_all(dir: &Path) -> (PersistFile, Data) {
    let opened = PersistFile::open(dir, boot()).unwrap();
    let loaded = opened.loaded.expect("a snapshot");
    let mut d = Data {
        processes: process_table(),
        dns: dns_cache(),
        reputation: reputation_store(),
    };
    let p = &loaded.stores["process"].records;
    let mut records: Vec<ProcessRecord<'_>> = p
        .iter()
        .map(|(_, v)| codec::decode_process(v).unwrap())
        .collect();
    records.sort_by_key(ProcessRecord::restore_order);
    d.processes.restore(records, T0 + 2);
    let n = &loaded.stores["dns"].records;
    let mut records: Vec<DnsRecord<'_>> = n
        .iter()
        .map(|(_, v)| codec::decode_dns(v).unwrap())
        .collect();
    records.sort_by_key(DnsRecord::restore_order);
    d.dns.restore(records, T0 + 2);
    let r = &loaded.stores["ip_reputation"].records;
    let records: Vec<ReputationRecord<'_>> = r
        .iter()
        .map(|(_, v)| codec::decode_reputation(v).unwrap())
        .collect();
    d.reputation.restore(records, T0 + 2);
    (opened.file, d)
}

/// 1 % of the processes exec a new program.
fn change_one_percent(d: &mut Data, round: u32) {
    for i in 0..PROCESSES / 100 {
        let pid = 3 * ((i * 97 + round * 13) % (PROCESSES / 3)) + 1;
        let k = key(pid);
        d.processes.apply_exec(
            &ExecEvent {
                pid,
                start_time: k.start_time,
                uid: 0,
                gid: 0,
                comm: Comm::new("exec"),
                exe_path: "/usr/bin/changed",
                invoked_path: None,
                exe_flags: ExeFlags::NONE,
            },
            T0 + 3,
        );
    }
}

fn changed_processes(d: &mut Data) -> StoreWrite {
    let mut w = StoreWrite::default();
    let _ = d.processes.take_removed(|k| w.deletes.push(process_key(k)));
    let mut cursor = Some(0);
    while let Some(from) = cursor {
        cursor = d.processes.export_chunk(from, 4096, true, |r| {
            w.upserts.push(codec::encode_process(&r).unwrap())
        });
    }
    w
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut d = data();
    let mut file = PersistFile::open(dir.path(), boot()).unwrap().file;
    snapshot_all(&mut file, &mut d);
    let records = u64::from(PROCESSES) + u64::from(NAMES) * 2 + u64::from(REPUTATION) * 2;
    println!(
        "file: {} bytes for {} processes + {} DNS names and links + {} reputation entries = {:.0} bytes per record",
        file.file_size(),
        PROCESSES,
        d.dns.records().count(),
        REPUTATION * 2,
        file.file_size() as f64 / records as f64
    );

    let mut g = c.benchmark_group("snapshot");
    g.sample_size(10);
    g.bench_function("full: 64k processes + 10k dns + 10k reputation", |b| {
        b.iter(|| snapshot_all(&mut file, &mut d))
    });
    let mut round = 0;
    g.bench_function("process changed-only after 1% changed", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                change_one_percent(&mut d, round);
                let t = Instant::now();
                let w = changed_processes(&mut d);
                file.write_store("process", &w, WriteDurability::Immediate)
                    .unwrap();
                total += t.elapsed();
            }
            total
        })
    });
    g.bench_function("process full rewrite after 1% changed", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                change_one_percent(&mut d, round);
                let t = Instant::now();
                let [(_, w), _, _] = full_writes(&mut d);
                file.write_store("process", &w, WriteDurability::Immediate)
                    .unwrap();
                total += t.elapsed();
            }
            total
        })
    });
    for (label, durability) in [
        (
            "reputation write-through of 100, immediate (fsync)",
            WriteDurability::Immediate,
        ),
        (
            "reputation write-through of 100, eventual (no fsync)",
            WriteDurability::Eventual,
        ),
    ] {
        g.bench_function(label, |b| {
            b.iter(|| {
                let w = StoreWrite {
                    upserts: d
                        .reputation
                        .records()
                        .take(100)
                        .map(|r| codec::encode_reputation(&r).unwrap())
                        .collect(),
                    ..StoreWrite::default()
                };
                file.write_store("ip_reputation", &w, durability).unwrap();
            })
        });
    }
    g.finish();
    snapshot_all(&mut file, &mut d);
    drop(file);

    let mut g = c.benchmark_group("restore");
    g.sample_size(10);
    g.bench_function(
        "full: open, verify, decode, rebuild all three stores",
        |b| b.iter(|| black_box(restore_all(dir.path()))),
    );
    g.finish();

    if let Ok(out) = std::env::var("WATCHPOST_BENCH_DATA_DIR") {
        let out = Path::new(&out);
        let mut f = PersistFile::open(out, boot()).unwrap().file;
        snapshot_all(&mut f, &mut data());
        println!(
            "left a snapshot file of {} bytes in {}",
            f.file_size(),
            out.display()
        );
    }
    query_latency();
}

/// p50/p99 of `get_process` through the real store actor, without and with a snapshot copying
/// chunks out of the same actor and writing them to redb meanwhile.
fn query_latency() {
    use watchpost_actors::{BuildContext, Registry, RegistryConfig, StoreOptions};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let registry = Registry::start(RegistryConfig {
            call_timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
        let table = std::sync::Mutex::new(Some(data().processes));
        registry
            .register_process_store(
                move |_: &BuildContext| {
                    Ok(table.lock().unwrap().take().unwrap_or_else(process_table))
                },
                StoreOptions::default(),
            )
            .await
            .unwrap();
        let handle = registry.processes();
        let measure = |n: u32| {
            let handle = handle.clone();
            async move {
                let mut lat = Vec::with_capacity(n as usize);
                for i in 0..n {
                    let id = key(i % PROCESSES + 1).entity_id();
                    let t = Instant::now();
                    let _ = handle.get_process(id).await;
                    lat.push(t.elapsed());
                }
                lat.sort();
                let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
                (q(0.5), q(0.99))
            }
        };
        let (p50, p99) = measure(20_000).await;
        let dir = tempfile::tempdir().unwrap();
        let file = std::sync::Arc::new(std::sync::Mutex::new(
            PersistFile::open(dir.path(), boot()).unwrap().file,
        ));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let snapshots = {
            let (handle, file, stop) = (handle.clone(), file.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut w = StoreWrite {
                        full: true,
                        ..StoreWrite::default()
                    };
                    let mut cursor = Some(0u32);
                    while let Some(from) = cursor {
                        let (mut out, next) = handle
                            .inspect("snapshot", move |t: &mut ProcessTable| {
                                let mut out = Vec::new();
                                let next = t.export_chunk(from, 4096, false, |r| {
                                    out.push(codec::encode_process(&r).unwrap())
                                });
                                (out, next)
                            })
                            .await
                            .unwrap();
                        w.upserts.append(&mut out);
                        cursor = next;
                    }
                    let file = file.clone();
                    tokio::task::spawn_blocking(move || {
                        file.lock()
                            .unwrap()
                            .write_store("process", &w, WriteDurability::Immediate)
                            .unwrap();
                    })
                    .await
                    .unwrap();
                    n += 1;
                }
                n
            })
        };
        let (s50, s99) = measure(20_000).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let n = snapshots.await.unwrap();
        println!(
            "get_process through the actor: p50 {p50:?} p99 {p99:?} without a snapshot; \
             p50 {s50:?} p99 {s99:?} during {n} back-to-back full snapshots of 64k processes \
             (p99 ratio {:.2})",
            s99.as_secs_f64() / p99.as_secs_f64()
        );
        registry.shutdown().await;
    });
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    benches(&mut c);
    c.final_summary();
}
