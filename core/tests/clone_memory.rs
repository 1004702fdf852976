//! The actors keep two copies of every store (their published read view), the second a clone of
//! the first. A clone must be as bounded as the original: the same reserved bytes, and no
//! allocation when driven far past capacity (a derived `Clone` of a reserved `Vec` reserves only
//! its length, so its first push would allocate). The read-only queries readers run on a copy
//! allocate nothing either.

mod dns_encoder;
mod support;

#[global_allocator]
static ALLOC: support::CountingAllocator = support::CountingAllocator;

use std::net::Ipv4Addr;

use dns_encoder::{a, a_response, rr};
use watchpost_core::container::{ContainerFilter, ContainerTable, ContainerTableConfig};
use watchpost_core::container::{ContainerUpdate, Runtime};
use watchpost_core::dns::{DnsCache, DnsCacheConfig, DnsOrigin};
use watchpost_core::ip_reputation::{
    IpReputation, IpReputationConfig, IpReputationStore, ReputationStatus,
};
use watchpost_core::process::{
    Comm, ExitEvent, ForkEvent, ProcessKey, ProcessTable, ProcessTableConfig,
};
use watchpost_core::time::NANOS_PER_MILLI;

const T0: u64 = 1_764_300_000_000_000_000;

#[test]
fn a_cloned_process_table_runs_far_past_capacity_without_allocating() {
    let original = ProcessTable::new(ProcessTableConfig {
        capacity: 256,
        exit_grace_ns: 50 * NANOS_PER_MILLI,
        pending_capacity: 16,
        ..Default::default()
    });
    let mut t = original.clone();
    assert_eq!(t.bytes_reserved(), original.bytes_reserved());
    let paths: Vec<String> = (0..32).map(|i| format!("/usr/bin/p{i}")).collect();
    let (count, ()) = support::count_allocations(|| {
        let mut now = T0;
        for pid in 1..20_000u32 {
            now += NANOS_PER_MILLI;
            let fork = ForkEvent {
                pid,
                start_time: now,
                ppid: pid / 2,
                parent_start_time: T0 + u64::from(pid / 2) * NANOS_PER_MILLI,
                uid: 0,
                gid: 0,
                comm: Comm::new("p"),
                exe_path: Some(&paths[(pid % 32) as usize]),
            };
            t.apply_fork(&fork, now);
            if pid % 3 == 0 {
                t.apply_exit(
                    &ExitEvent {
                        pid: pid - 1,
                        start_time: now - NANOS_PER_MILLI,
                        exit_time: now,
                    },
                    now,
                );
            }
            // What a reader of the copy does, and the owner's recency fold.
            let found = t
                .find(fork.key().entity_id(), now)
                .process
                .map(|p| (p.slot(), p.entity_id()));
            if let Some(p) = t.find_exact(ProcessKey::new(pid, now), now) {
                assert_eq!(
                    t.ancestry_of(&p, 8, now).count().min(8),
                    t.ancestry_of(&p, 8, now).len()
                );
                let _ = t.children_of(&p, now).count();
            }
            t.refresh_recency(found);
        }
    });
    assert_eq!(count.allocations, 0, "{count:?}");
    assert_eq!(t.bytes_reserved(), original.bytes_reserved());
}

#[test]
fn a_cloned_container_table_runs_far_past_capacity_without_allocating() {
    let original = ContainerTable::new(ContainerTableConfig {
        capacity: 32,
        ..ContainerTableConfig::default()
    });
    let mut t = original.clone();
    let ids: Vec<String> = (0..2_000).map(|i| format!("{i:064x}")).collect();
    let (count, ()) = support::count_allocations(|| {
        for (i, id) in ids.iter().enumerate() {
            let now = T0 + i as u64;
            let update = ContainerUpdate::new(id)
                .name("web")
                .runtime(Runtime::Docker);
            let _ = t.upsert(&update, now);
            if i % 2 == 0 {
                let _ = t.mark_removed(id, now);
            }
            let _ = t.find_container(id, now);
            let _ = t.find_container_by_name("web", now);
            let _ = t.containers(&ContainerFilter::default()).count();
            t.purge_expired(now);
        }
    });
    assert_eq!(count.allocations, 0, "{count:?}");
    assert_eq!(t.bytes_reserved(), original.bytes_reserved());
}

#[test]
fn a_cloned_dns_cache_runs_far_past_capacity_without_allocating() {
    let original = DnsCache::new(DnsCacheConfig {
        max_names: 64,
        max_addresses: 128,
        max_links: 256,
        name_bytes: 64 * 24,
        hash_seed: 5,
        max_namespaces: 4,
        // Rates and shares are not under test: every answer is stored.
        untrusted_share_percent: 100,
        trusted_answers_per_sec: u32::MAX,
        untrusted_answers_per_sec: u32::MAX,
    });
    let mut c = original.clone();
    let packets: Vec<(String, Vec<u8>)> = (0..2_000)
        .map(|i| {
            let name = format!("host{i}.example");
            let ip = format!("10.0.{}.{}", (i / 250) % 250, i % 250);
            let packet = a_response(&name, &[rr(&name, 60, a(&ip))]);
            (name, packet)
        })
        .collect();
    let mut scratch = c.read_scratch();
    let mut answered = 0usize;
    let (count, ()) = support::count_allocations(|| {
        for (i, (name, packet)) in packets.iter().enumerate() {
            let now = T0 + i as u64 * NANOS_PER_MILLI;
            // Two trusted namespaces and an untrusted one, asked as each saw it.
            let netns = 100 + (i % 3) as u32;
            let origin = if i % 3 == 2 {
                DnsOrigin::untrusted(netns)
            } else {
                DnsOrigin::trusted(netns)
            };
            assert!(c.insert_packet(packet, origin, now).is_ok());
            let asked = (i % 3 == 2).then_some(netns);
            let found = c.find_dns_response(name, asked, now, &mut scratch).is_ok();
            // The read-only lookup answers as the counted one does (an untrusted namespace's
            // answer may be dropped under its limits).
            let counted = match asked {
                Some(netns) => c.get_dns_response_in(name, netns, now).is_ok(),
                None => c.get_dns_response(name, now).is_ok(),
            };
            assert_eq!(found, counted, "{name}");
            assert!(found || asked.is_some(), "{name}");
            answered += usize::from(found);
            let mut read = [(0u32, 0u32); 8];
            let mut n = 0;
            for r in c.names_read(&scratch).take(8) {
                read[n] = r;
                n += 1;
            }
            c.refresh_recency(read[..n].iter().copied());
        }
    });
    assert_eq!(count.allocations, 0, "{count:?}");
    assert!(answered > packets.len() * 2 / 3, "{answered}");
    assert_eq!(c.bytes_reserved(), original.bytes_reserved());
}

#[test]
fn a_cloned_reputation_store_runs_past_capacity_without_allocating() {
    let original = IpReputationStore::new(IpReputationConfig::new(128), &[]).unwrap();
    let mut s = original.clone();
    let records: Vec<IpReputation> = (0..1_000u32)
        .map(|i| {
            IpReputation::new(
                &Ipv4Addr::from(0x0a00_0000 + i),
                ReputationStatus::Deny,
                3,
                T0,
            )
            .unwrap()
        })
        .collect();
    let sources = ["a", "b", "c", "d", "e", "f"];
    let (count, ()) = support::count_allocations(|| {
        for (i, r) in records.iter().enumerate() {
            let _ = s.write(sources[i % sources.len()], r, T0);
            let _ = s.find_reputation(&Ipv4Addr::from(0x0a00_0000 + i as u32), "is_denied");
            let _ = s.sources().count();
            if i % 100 == 99 {
                let _ = s.clear(sources[(i / 100) % sources.len()], T0);
            }
        }
    });
    assert_eq!(count.allocations, 0, "{count:?}");
    assert_eq!(s.bytes_reserved(), original.bytes_reserved());
}

/// Churn on a small table: forks, some exits, some early execs; deterministic in `seed`.
fn churn(t: &mut ProcessTable, from: u32, to: u32) {
    let paths = ["/bin/a", "/bin/b", "/usr/bin/c"];
    for pid in from..to {
        let now = T0 + u64::from(pid) * NANOS_PER_MILLI;
        if pid % 7 == 0 {
            t.apply_exec(
                &watchpost_core::process::ExecEvent {
                    pid: pid + 1,
                    start_time: now + NANOS_PER_MILLI,
                    uid: 1,
                    gid: 1,
                    comm: Comm::new("early"),
                    exe_path: paths[(pid % 3) as usize],
                    invoked_path: (pid % 2 == 0).then_some("/usr/local/bin/link"),
                    exe_flags: Default::default(),
                },
                now,
            );
        }
        t.apply_fork(
            &ForkEvent {
                pid,
                start_time: now,
                ppid: pid / 3,
                parent_start_time: T0 + u64::from(pid / 3) * NANOS_PER_MILLI,
                uid: 0,
                gid: 0,
                comm: Comm::new("p"),
                exe_path: Some(paths[(pid % 3) as usize]),
            },
            now,
        );
        if pid % 2 == 0 {
            t.apply_exit(
                &ExitEvent {
                    pid: pid - 1,
                    start_time: now - NANOS_PER_MILLI,
                    exit_time: now,
                },
                now,
            );
        }
    }
}

fn state(t: &ProcessTable) -> Vec<String> {
    let mut v: Vec<String> = t
        .iter()
        .map(|p| format!("{p:?} slot {}", p.slot()))
        .collect();
    v.push(format!("{:?} {:?} {}", t.stats(), t.metrics(), t.len()));
    v
}

#[test]
fn copy_from_makes_a_table_equal_in_place_and_both_go_on_alike() {
    let config = ProcessTableConfig {
        capacity: 128,
        exit_grace_ns: 20 * NANOS_PER_MILLI,
        pending_capacity: 8,
        exe_path_strings: 4,
        exe_path_bytes: 32,
        ..Default::default()
    };
    let mut first = ProcessTable::new(config);
    let mut second = first.clone();
    churn(&mut first, 1, 3_000);
    let (count, copied) = support::count_allocations(|| second.copy_from(&first));
    assert!(copied);
    assert_eq!(count.allocations, 0, "{count:?}");
    assert_eq!(state(&second), state(&first));
    // Equal inside too: the same events from here on give the same tables.
    churn(&mut first, 3_000, 6_000);
    churn(&mut second, 3_000, 6_000);
    assert_eq!(state(&second), state(&first));
    // A table of another configuration is not copied.
    let mut other = ProcessTable::new(ProcessTableConfig {
        capacity: 64,
        ..config
    });
    assert!(!other.copy_from(&first));
}
