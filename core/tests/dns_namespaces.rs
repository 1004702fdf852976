//! The DNS cache keeps every answer in the network namespace it was seen in: the default view is
//! the trusted namespaces' (host, known containers), an explicit namespace asks one namespace's
//! view, untrusted namespaces together hold at most their share of each pool and never evict a
//! trusted answer, a namespace can push another down to its own size but not below, rates are
//! per namespace, and none of it allocates after construction.

mod dns_encoder;
mod support;

#[global_allocator]
static ALLOC: support::CountingAllocator = support::CountingAllocator;

use std::net::IpAddr;

use dns_encoder::*;
use watchpost_core::dns::{DnsCache, DnsCacheConfig, DnsOrigin, MessageOutcome};
use watchpost_core::time::NANOS_PER_SEC;

const SEC: u64 = NANOS_PER_SEC;
const T0: u64 = 1_700_000_000 * SEC;
const HOST: DnsOrigin = DnsOrigin::trusted(4_026_531_840);
const CONTAINER: DnsOrigin = DnsOrigin::trusted(4_026_532_500);
const ATTACKER: DnsOrigin = DnsOrigin::untrusted(4_026_533_000);

fn cache(max_names: usize, untrusted_per_sec: u32) -> DnsCache {
    DnsCache::new(DnsCacheConfig {
        max_names,
        max_addresses: max_names * 2,
        max_links: max_names * 4,
        name_bytes: max_names * 32,
        hash_seed: 3,
        max_namespaces: 64,
        untrusted_share_percent: 25,
        trusted_answers_per_sec: u32::MAX,
        untrusted_answers_per_sec: untrusted_per_sec,
    })
}

fn packet(name: &str, ip: &str) -> Vec<u8> {
    a_response(name, &[rr(name, 600, a(ip))])
}

/// The counted answer's addresses; the read-only lookup (the actors' published copy) must
/// answer the same.
fn ips(c: &mut DnsCache, q: &str, netns: Option<u32>) -> Option<Vec<IpAddr>> {
    let mut scratch = c.read_scratch();
    let read = c
        .find_dns_response(q, netns, T0, &mut scratch)
        .ok()
        .map(|v| {
            (
                v.ips().to_vec(),
                v.domains()
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>(),
            )
        });
    let counted = match netns {
        Some(n) => c.get_dns_response_in(q, n, T0),
        None => c.get_dns_response(q, T0),
    }
    .ok()
    .map(|v| {
        (
            v.ips().to_vec(),
            v.domains()
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>(),
        )
    });
    assert_eq!(
        read, counted,
        "read-only and counted answers differ for {q} in {netns:?}"
    );
    let view = match netns {
        Some(n) => c.get_dns_response_in(q, n, T0),
        None => c.get_dns_response(q, T0),
    };
    view.ok().map(|v| v.ips().to_vec())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn each_answer_belongs_to_its_namespace() {
    let mut c = cache(64, 1000);
    c.insert_packet(&packet("bank.example", "192.0.2.1"), HOST, T0)
        .unwrap();
    c.insert_packet(&packet("bank.example", "203.0.113.66"), ATTACKER, T0)
        .unwrap();
    c.insert_packet(&packet("only-evil.example", "203.0.113.67"), ATTACKER, T0)
        .unwrap();
    c.insert_packet(&packet("app.example", "198.51.100.9"), CONTAINER, T0)
        .unwrap();

    // The default view: host and container, never the attacker's namespace.
    assert_eq!(
        ips(&mut c, "bank.example", None),
        Some(vec![ip("192.0.2.1")])
    );
    assert_eq!(ips(&mut c, "only-evil.example", None), None);
    assert_eq!(ips(&mut c, "203.0.113.66", None), None, "reverse too");
    assert_eq!(
        ips(&mut c, "app.example", None),
        Some(vec![ip("198.51.100.9")])
    );
    // One namespace's view, when asked for.
    assert_eq!(
        ips(&mut c, "bank.example", Some(ATTACKER.netns)),
        Some(vec![ip("203.0.113.66")])
    );
    assert_eq!(ips(&mut c, "app.example", Some(HOST.netns)), None);
    assert_eq!(ips(&mut c, "bank.example", Some(12345)), None);
    let reverse = c
        .get_dns_response_in("203.0.113.67", ATTACKER.netns, T0)
        .unwrap();
    assert_eq!(reverse.domains(), ["only-evil.example"]);
}

#[test]
fn the_same_answer_in_two_trusted_namespaces_is_listed_once() {
    let mut c = cache(64, 1000);
    for origin in [HOST, CONTAINER] {
        c.insert_packet(&packet("shared.example", "192.0.2.8"), origin, T0)
            .unwrap();
    }
    let v = c.get_dns_response("shared.example", T0).unwrap();
    assert_eq!(v.ips(), [ip("192.0.2.8")]);
    assert_eq!(v.domains(), ["shared.example"]);
    assert_eq!(c.len(), 2, "one name per namespace");
}

#[test]
fn trust_follows_the_latest_answer() {
    let mut c = cache(64, 1000);
    let later = DnsOrigin::untrusted(CONTAINER.netns);
    c.insert_packet(&packet("a.example", "192.0.2.10"), later, T0)
        .unwrap();
    assert_eq!(ips(&mut c, "a.example", None), None);
    // The runtime's container became known: its namespace is trusted from its next answer on.
    c.insert_packet(&packet("b.example", "192.0.2.11"), CONTAINER, T0)
        .unwrap();
    assert_eq!(ips(&mut c, "a.example", None), Some(vec![ip("192.0.2.10")]));
    // And untrusted again once the collector says so (the container is gone, its inode reused).
    c.insert_packet(&packet("c.example", "192.0.2.12"), later, T0)
        .unwrap();
    assert_eq!(ips(&mut c, "a.example", None), None);
}

#[test]
fn an_untrusted_flood_never_evicts_a_trusted_answer() {
    const NAMES: usize = 400;
    let mut c = cache(NAMES, u32::MAX);
    let host_names: Vec<String> = (0..NAMES / 2).map(|i| format!("real{i}.example")).collect();
    for (i, name) in host_names.iter().enumerate() {
        c.insert_packet(
            &packet(name, &format!("10.1.{}.{}", i / 250, i % 250)),
            HOST,
            T0,
        )
        .unwrap();
    }
    // 6,000 forged answers from one namespace, then from 50 namespaces (every one a new name),
    // each sent as its own message; plus multi-record messages to fill addresses and links.
    let floods: Vec<(DnsOrigin, Vec<u8>)> = (0..6_000)
        .map(|i| {
            let name = format!("evil{i}.example");
            (ATTACKER, packet(&name, "203.0.113.1"))
        })
        .chain((0..6_000).map(|i| {
            let name = format!("evil-many{i}.example");
            let records: Vec<_> = (0..20)
                .map(|k| rr(&name, 600, a(&format!("203.0.{}.{}", i % 250, k))))
                .collect();
            (
                DnsOrigin::untrusted(5_000_000 + (i % 50) as u32),
                a_response(&name, &records),
            )
        }))
        .collect();
    let (count, ()) = support::count_allocations(|| {
        for (origin, p) in &floods {
            let _ = c.insert_packet(p, *origin, T0);
        }
    });
    assert_eq!(count.allocations, 0);
    for (i, name) in host_names.iter().enumerate() {
        assert_eq!(
            ips(&mut c, name, None),
            Some(vec![ip(&format!("10.1.{}.{}", i / 250, i % 250))]),
            "{name} lost to the flood"
        );
    }
    let s = c.stats();
    assert_eq!(s.trusted_names_evicted, 0, "{s:?}");
    assert!(s.names_evicted_untrusted_share > 0, "{s:?}");
    // The flood holds at most its share (25 % of 400 names) and is still answered in its own
    // namespace (the newest of it).
    let u = c.usage();
    assert!(u.names <= NAMES / 2 + NAMES / 4, "{u:?}");
    assert!(ips(&mut c, "evil5999.example", Some(ATTACKER.netns)).is_some());
    // The health stays quiet: untrusted namespaces losing answers is the defence working.
    assert_eq!(c.health(T0).message, "");
}

#[test]
fn a_namespace_pushes_another_down_to_its_own_size_not_below() {
    const NAMES: usize = 200;
    let mut c = cache(NAMES, u32::MAX);
    // The host holds 50 names; a container (trusted, but hostile) floods with 5,000.
    for i in 0..50 {
        c.insert_packet(&packet(&format!("real{i}.example"), "10.0.0.1"), HOST, T0)
            .unwrap();
    }
    for i in 0..5_000 {
        let _ = c.insert_packet(
            &packet(&format!("noise{i}.example"), "10.9.9.9"),
            CONTAINER,
            T0,
        );
    }
    for i in 0..50 {
        assert!(
            ips(&mut c, &format!("real{i}.example"), None).is_some(),
            "real{i} lost"
        );
    }
    assert_eq!(c.len(), NAMES);
    // The host then grows; once it is the bigger one, it pays for its own growth.
    for i in 50..400 {
        c.insert_packet(&packet(&format!("real{i}.example"), "10.0.0.1"), HOST, T0)
            .unwrap();
    }
    assert!(ips(&mut c, "real399.example", None).is_some());
    assert!(
        ips(&mut c, "noise4999.example", None).is_some(),
        "the container keeps its share"
    );
}

#[test]
fn rates_are_per_namespace() {
    let mut c = cache(256, 10);
    let mut outcomes = Vec::new();
    for i in 0..30 {
        let p = packet(&format!("r{i}.example"), "192.0.2.4");
        outcomes.push(c.insert_packet(&p, ATTACKER, T0).unwrap().outcome);
    }
    let cached = outcomes
        .iter()
        .filter(|o| **o == MessageOutcome::Cached)
        .count();
    assert_eq!(cached, 10, "{outcomes:?}");
    assert_eq!(c.stats().messages_rate_limited, 20);
    // Another namespace is not slowed by it; the first gets tokens back with time.
    let p = packet("other.example", "192.0.2.5");
    assert_eq!(
        c.insert_packet(&p, DnsOrigin::untrusted(77), T0)
            .unwrap()
            .outcome,
        MessageOutcome::Cached
    );
    let p = packet("later.example", "192.0.2.6");
    assert_eq!(
        c.insert_packet(&p, ATTACKER, T0 + SEC).unwrap().outcome,
        MessageOutcome::Cached
    );
}

#[test]
fn a_full_namespace_table_makes_room_for_trusted_namespaces_only() {
    let mut c = DnsCache::new(DnsCacheConfig {
        max_namespaces: 4,
        trusted_answers_per_sec: u32::MAX,
        untrusted_answers_per_sec: u32::MAX,
        ..DnsCacheConfig::default()
    });
    for n in 0..4 {
        let p = packet(&format!("e{n}.example"), "192.0.2.1");
        c.insert_packet(&p, DnsOrigin::untrusted(100 + n), T0)
            .unwrap();
    }
    let p = packet("late-evil.example", "192.0.2.2");
    assert_eq!(
        c.insert_packet(&p, DnsOrigin::untrusted(200), T0)
            .unwrap()
            .outcome,
        MessageOutcome::NoNamespaceSlot
    );
    let p = packet("real.example", "192.0.2.3");
    assert_eq!(
        c.insert_packet(&p, HOST, T0).unwrap().outcome,
        MessageOutcome::Cached
    );
    assert!(c.get_dns_response("real.example", T0).is_ok());
    assert_eq!(c.stats().messages_no_namespace_slot, 1);
}
