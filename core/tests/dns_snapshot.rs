//! Snapshot and restore of the DNS cache: random answers in three network namespaces (two
//! trusted, one not) → records → restore gives the same answers to every query, in the default
//! view and in each namespace's (order included), and the same evictions under the same later
//! traffic; expired records are not restored; restoring allocates nothing.

mod dns_encoder;
mod support;

#[global_allocator]
static ALLOC: support::CountingAllocator = support::CountingAllocator;

use dns_encoder::*;
use proptest::prelude::*;
use watchpost_core::dns::{DnsCache, DnsCacheConfig, DnsOrigin, DnsRecord};
use watchpost_core::time::NANOS_PER_SEC;

const SEC: u64 = NANOS_PER_SEC;
const T0: u64 = 1_700_000_000 * SEC;
const NAMES: [&str; 8] = [
    "a.example",
    "b.example",
    "c.example",
    "d.example",
    "cdn.net",
    "e.org",
    "f.org",
    "g.org",
];
const IPS: [&str; 6] = [
    "192.0.2.1",
    "192.0.2.2",
    "198.51.100.7",
    "2001:db8::1",
    "203.0.113.9",
    "10.0.0.1",
];

/// The namespaces answers are seen in: the host's, a container's, one a user made.
const ORIGINS: [DnsOrigin; 3] = [
    DnsOrigin::trusted(4_026_531_840),
    DnsOrigin::trusted(4_026_532_500),
    DnsOrigin::untrusted(4_026_533_000),
];

fn cache(seed: u64) -> DnsCache {
    DnsCache::new(DnsCacheConfig {
        max_names: 5,
        max_addresses: 4,
        max_links: 7,
        name_bytes: 64,
        hash_seed: seed,
        max_namespaces: 3,
        untrusted_share_percent: 40,
        trusted_answers_per_sec: u32::MAX,
        untrusted_answers_per_sec: u32::MAX,
    })
}

#[derive(Debug, Clone, Copy)]
enum Op {
    /// question `q` answered in namespace `ns`: optional CNAME to `c`, then A/AAAA of ip `i`,
    /// TTL `ttl` s.
    Answer {
        ns: u8,
        q: u8,
        c: Option<u8>,
        i: u8,
        ttl: u8,
    },
    Query(u8),
    /// `q` as namespace `ns` saw it.
    QueryIn(u8, u8),
    QueryIp(u8),
    Tick(u8),
    Purge,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0u8..8, proptest::option::of(0u8..8), 0u8..6, 1u8..30)
            .prop_map(|(ns, q, c, i, ttl)| Op::Answer { ns, q, c, i, ttl }),
        3 => (0u8..8).prop_map(Op::Query),
        2 => (0u8..8, 0u8..3).prop_map(|(q, ns)| Op::QueryIn(q, ns)),
        2 => (0u8..6).prop_map(Op::QueryIp),
        2 => (0u8..10).prop_map(Op::Tick),
        1 => Just(Op::Purge),
    ]
}

fn data(ip: &str) -> Data {
    if ip.contains(':') { aaaa(ip) } else { a(ip) }
}

fn apply(c: &mut DnsCache, op: Op, now: &mut u64) -> Option<(Vec<String>, Vec<String>)> {
    match op {
        Op::Answer {
            ns,
            q,
            c: cn,
            i,
            ttl,
        } => {
            let q = NAMES[usize::from(q)];
            let ttl = u32::from(ttl);
            let ip = IPS[usize::from(i)];
            let packet = match cn {
                Some(t) => {
                    let t = NAMES[usize::from(t)];
                    response(q, 1, &[rr(q, ttl, cname(t)), rr(t, ttl, data(ip))])
                }
                None => response(q, 1, &[rr(q, ttl, data(ip))]),
            };
            let _ = c.insert_packet(&packet, ORIGINS[usize::from(ns)], *now);
            None
        }
        Op::QueryIn(n, ns) => c
            .get_dns_response_in(NAMES[usize::from(n)], ORIGINS[usize::from(ns)].netns, *now)
            .ok()
            .map(|r| {
                (
                    r.domains().iter().map(|d| d.to_string()).collect(),
                    r.ips().iter().map(|i| i.to_string()).collect(),
                )
            }),
        Op::Query(n) => c
            .get_dns_response(NAMES[usize::from(n)], *now)
            .ok()
            .map(|r| {
                (
                    r.domains().iter().map(|d| d.to_string()).collect(),
                    r.ips().iter().map(|i| i.to_string()).collect(),
                )
            }),
        Op::QueryIp(i) => c.get_dns_response(IPS[usize::from(i)], *now).ok().map(|r| {
            (
                r.domains().iter().map(|d| d.to_string()).collect(),
                r.ips().iter().map(|i| i.to_string()).collect(),
            )
        }),
        Op::Tick(s) => {
            *now += u64::from(s) * SEC;
            None
        }
        Op::Purge => {
            c.purge_expired(*now);
            None
        }
    }
}

/// Records with stamps replaced by their rank, sorted: equal for caches in the same state.
fn normalized(c: &DnsCache) -> Vec<String> {
    let records: Vec<DnsRecord<'_>> = c.records().collect();
    let mut stamps: Vec<u64> = records
        .iter()
        .map(|r| match r {
            DnsRecord::Name { recency, .. } => *recency,
            DnsRecord::Link { created, .. } => *created,
        })
        .collect();
    stamps.sort_unstable();
    stamps.dedup();
    let rank = |s: u64| stamps.binary_search(&s).unwrap_or(usize::MAX);
    let mut out: Vec<String> = records
        .iter()
        .map(|r| match *r {
            DnsRecord::Name {
                name,
                recency,
                netns,
                trusted,
            } => format!("N {netns} {trusted} {name} {}", rank(recency)),
            DnsRecord::Link {
                from,
                to,
                kind,
                expires_at,
                created,
                netns,
            } => {
                format!(
                    "L {netns} {from:?} {to:?} {kind:?} {expires_at} {}",
                    rank(created)
                )
            }
        })
        .collect();
    out.sort();
    out
}

/// Restores `c` into a fresh cache, feeding names then links, each group shuffled by `seed`
/// (the restore must put every order back from the stamps, whatever the file order).
fn restored(c: &DnsCache, now: u64, seed: u64) -> DnsCache {
    let mut records: Vec<DnsRecord<'_>> = c.records().collect();
    let mut s = seed | 1;
    let mut key = |r: &DnsRecord<'_>| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (matches!(r, DnsRecord::Link { .. }), s)
    };
    let mut keyed: Vec<_> = records.drain(..).map(|r| (key(&r), r)).collect();
    keyed.sort_by_key(|(k, _)| *k);
    let records: Vec<DnsRecord<'_>> = keyed.into_iter().map(|(_, r)| r).collect();
    let mut r = cache(0xbeef);
    let report = r.restore(records.iter().copied(), now);
    assert_eq!(report.evicted, 0, "{report:?}");
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn restore_answers_and_evicts_like_the_original(
        before in proptest::collection::vec(op(), 1..120),
        after in proptest::collection::vec(op(), 0..120),
        seed in any::<u64>(),
    ) {
        let mut a = cache(1);
        let mut now = T0;
        for op in before {
            apply(&mut a, op, &mut now);
        }
        // Expired links are not restored: purge them on the original too before comparing.
        a.purge_expired(now);
        let mut b = restored(&a, now, seed);
        prop_assert_eq!(normalized(&a), normalized(&b));
        for q in 0..8u8 {
            let (mut x, mut y) = (now, now);
            prop_assert_eq!(apply(&mut a, Op::Query(q), &mut x), apply(&mut b, Op::Query(q), &mut y));
            for ns in 0..3u8 {
                prop_assert_eq!(
                    apply(&mut a, Op::QueryIn(q, ns), &mut x),
                    apply(&mut b, Op::QueryIn(q, ns), &mut y)
                );
            }
        }
        for i in 0..6u8 {
            let (mut x, mut y) = (now, now);
            prop_assert_eq!(apply(&mut a, Op::QueryIp(i), &mut x), apply(&mut b, Op::QueryIp(i), &mut y));
        }
        let mut now_b = now;
        for op in after {
            prop_assert_eq!(apply(&mut a, op, &mut now), apply(&mut b, op, &mut now_b));
            prop_assert_eq!(normalized(&a), normalized(&b));
        }
    }
}

#[test]
fn expired_links_are_not_restored_and_changes_count() {
    let mut a = cache(2);
    let mut now = T0;
    let before = a.changes();
    apply(
        &mut a,
        Op::Answer {
            ns: 0,
            q: 0,
            c: None,
            i: 0,
            ttl: 5,
        },
        &mut now,
    );
    apply(
        &mut a,
        Op::Answer {
            ns: 0,
            q: 1,
            c: None,
            i: 1,
            ttl: 50,
        },
        &mut now,
    );
    assert_ne!(a.changes(), before);
    let records: Vec<DnsRecord<'_>> = a.records().collect();
    let mut b = cache(3);
    let report = b.restore(records.iter().copied(), now + 10 * SEC);
    assert_eq!((report.names, report.links, report.expired), (1, 1, 1));
    assert!(b.get_dns_response("a.example", now + 10 * SEC).is_err());
    assert!(b.get_dns_response("b.example", now + 10 * SEC).is_ok());
}

#[test]
fn hostile_records_are_refused() {
    let mut b = cache(4);
    let records = [
        DnsRecord::Name {
            name: "",
            recency: 1,
            netns: 4_026_531_840,
            trusted: true,
        },
        DnsRecord::Name {
            name: "UPPER.case",
            recency: 2,
            netns: 4_026_531_840,
            trusted: true,
        },
        DnsRecord::Name {
            name: "ok.example",
            recency: 3,
            netns: 4_026_531_840,
            trusted: true,
        },
        DnsRecord::Name {
            name: "ok.example",
            recency: 4,
            netns: 4_026_531_840,
            trusted: true,
        },
        DnsRecord::Link {
            from: watchpost_core::dns::DnsNodeRecord::Name("missing.example"),
            to: watchpost_core::dns::DnsNodeRecord::Addr("192.0.2.1".parse().unwrap()),
            kind: watchpost_core::dns::DnsLinkKind::A,
            expires_at: T0 + 100 * SEC,
            created: 9,
            netns: 4_026_531_840,
        },
    ];
    let report = b.restore(records, T0);
    // "ok.example" has no link left: dropped as well.
    assert_eq!((report.names, report.links), (0, 0));
    assert_eq!(report.rejected, 4);
    assert_eq!(report.evicted, 1);
}

#[test]
fn restore_does_not_allocate() {
    let mut src = DnsCache::new(DnsCacheConfig {
        trusted_answers_per_sec: u32::MAX,
        ..DnsCacheConfig::default()
    });
    let now = T0;
    for i in 0..3000u32 {
        let q = format!("host{i}.example.com");
        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        let _ = src.insert_packet(&response(&q, 1, &[rr(&q, 300, a(&ip))]), ORIGINS[0], now);
    }
    let mut records: Vec<DnsRecord<'_>> = src.records().collect();
    records.sort_by_key(DnsRecord::restore_order);
    let mut b = DnsCache::new(DnsCacheConfig::default());
    let (count, report) = support::count_allocations(|| b.restore(records.iter().copied(), now));
    assert_eq!(count.allocations, 0, "allocated {} bytes", count.bytes);
    assert_eq!((report.names, report.links), (3000, 3000));
}
