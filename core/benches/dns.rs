//! DNS store costs on a full default-size cache (5,000 names): lookups by name (plain, and the
//! head of a CNAME chain), by address (reverse), a miss; reading a typical answer packet; and
//! caching packets at capacity (a refresh, and new names that evict). Also prints the memory
//! reserved per name.
//!
//! The cache holds 2,500 plain names with two A records each and 1,250 chains
//! `www<i>.example.com CNAME edge<i>.cdn.example.net A <addr>`.

#[path = "../tests/dns_encoder/mod.rs"]
mod dns_encoder;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use dns_encoder::*;
use watchpost_core::dns::{DnsCache, DnsCacheConfig, DnsOrigin, Message, NameBuf, RecordData};
use watchpost_core::time::NANOS_PER_SEC;

/// The host's network namespace, trusted.
const HOST: DnsOrigin = DnsOrigin::trusted(4_026_531_840);

const T0: u64 = 1_764_300_000 * NANOS_PER_SEC;
const PLAIN: usize = 2_500;
const CHAINS: usize = 1_250;

fn addr(i: usize, k: usize) -> Data {
    a(&format!("10.{}.{}.{}", k, (i / 250) % 250, i % 250))
}

fn plain_packet(i: usize) -> Vec<u8> {
    let name = format!("host{i}.example.com");
    a_response(
        &name,
        &[rr(&name, 3600, addr(i, 1)), rr(&name, 3600, addr(i, 2))],
    )
}

fn chain_packet(i: usize) -> Vec<u8> {
    let head = format!("www{i}.example.com");
    let edge = format!("edge{i}.cdn.example.net");
    a_response(
        &head,
        &[rr(&head, 3600, cname(&edge)), rr(&edge, 60, addr(i, 3))],
    )
}

fn build() -> DnsCache {
    // Every message at the same instant: no rate limit in the way of the measurement.
    let mut cache = DnsCache::new(DnsCacheConfig {
        trusted_answers_per_sec: u32::MAX,
        ..DnsCacheConfig::default()
    });
    for i in 0..PLAIN {
        cache.insert_packet(&plain_packet(i), HOST, T0).unwrap();
    }
    for i in 0..CHAINS {
        cache.insert_packet(&chain_packet(i), HOST, T0).unwrap();
    }
    assert_eq!(cache.len(), PLAIN + 2 * CHAINS);
    assert_eq!(cache.stats().names_evicted, 0);
    cache
}

fn benches(c: &mut Criterion) {
    let mut cache = build();
    eprintln!(
        "dns cache: {} names, {:?}; {} bytes reserved, {} bytes per name slot",
        cache.len(),
        cache.usage(),
        cache.bytes_reserved(),
        cache.bytes_per_name()
    );
    let now = T0 + NANOS_PER_SEC;

    let plain: Vec<String> = (0..PLAIN).map(|i| format!("host{i}.example.com")).collect();
    let heads: Vec<String> = (0..CHAINS).map(|i| format!("www{i}.example.com")).collect();
    let ips: Vec<String> = (0..CHAINS)
        .map(|i| format!("10.3.{}.{}", i / 250, i % 250))
        .collect();
    let mut i = 0usize;
    c.bench_function("dns/get_hit_plain", |b| {
        b.iter(|| {
            i = (i + 7) % PLAIN;
            let v = cache.get_dns_response(black_box(&plain[i]), now).unwrap();
            black_box(v.ips().len())
        })
    });
    c.bench_function("dns/get_hit_cname_chain", |b| {
        b.iter(|| {
            i = (i + 7) % CHAINS;
            let v = cache.get_dns_response(black_box(&heads[i]), now).unwrap();
            black_box(v.domains().len() + v.ips().len())
        })
    });
    c.bench_function("dns/get_reverse_ip", |b| {
        b.iter(|| {
            i = (i + 7) % CHAINS;
            let v = cache.get_dns_response(black_box(&ips[i]), now).unwrap();
            black_box(v.domains().len())
        })
    });
    c.bench_function("dns/get_miss", |b| {
        b.iter(|| {
            black_box(
                cache
                    .get_dns_response(black_box("nowhere.example.org"), now)
                    .is_err(),
            )
        })
    });

    let typical = chain_packet(42);
    eprintln!("typical answer packet: {} bytes", typical.len());
    c.bench_function("dns/parse_typical_answer", |b| {
        let mut name = NameBuf::new();
        b.iter(|| {
            let m = Message::parse(black_box(&typical)).unwrap();
            let mut n = 0;
            for r in m.answers() {
                r.name.decode_into(&mut name);
                n += name.len();
                if let RecordData::Cname(t) = r.data {
                    t.decode_into(&mut name);
                    n += name.len();
                }
            }
            black_box(n)
        })
    });

    c.bench_function("dns/insert_refresh", |b| {
        b.iter(|| black_box(cache.insert_packet(black_box(&typical), HOST, now).unwrap()))
    });
    let fresh: Vec<Vec<u8>> = (0..4_096).map(|i| chain_packet(100_000 + i)).collect();
    let mut k = 0usize;
    c.bench_function("dns/insert_new_at_capacity", |b| {
        b.iter(|| {
            k = (k + 1) % fresh.len();
            black_box(
                cache
                    .insert_packet(black_box(&fresh[k]), HOST, now)
                    .unwrap(),
            )
        })
    });
    eprintln!("after ingestion: {:?}", cache.stats());
}

criterion_group!(dns, benches);
criterion_main!(dns);
