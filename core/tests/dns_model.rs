//! Property tests of the DNS store: the wire reader never panics (arbitrary bytes, and valid
//! responses with bytes flipped, cut or counts changed), and the cache agrees with a naive model
//! (a list of names in recency order, each with its addresses and expiries) under random inserts,
//! lookups by name and by address, time advances and purges, with the capacity bound reached.

mod dns_encoder;

use std::net::{IpAddr, Ipv4Addr};

use dns_encoder::*;
use proptest::prelude::*;
use watchpost_core::dns::{
    DnsCache, DnsCacheConfig, DnsOrigin, MAX_LABEL_LEN, MAX_NAME_TEXT_LEN, Message, NameBuf,
    RecordData,
};
use watchpost_core::time::NANOS_PER_SEC;

/// The host's network namespace, trusted.
const HOST: DnsOrigin = DnsOrigin::trusted(4_026_531_840);

const SEC: u64 = NANOS_PER_SEC;
const T0: u64 = 1_700_000_000 * SEC;

// ----- the reader never panics -------------------------------------------------------------------

/// Reads everything a parsed message offers, checking the bounds it promises; then feeds the
/// bytes to a cache.
fn consume(bytes: &[u8]) {
    if let Ok(m) = Message::parse(bytes) {
        let h = m.header();
        let mut buf = NameBuf::new();
        let mut check = |name: watchpost_core::dns::Name<'_>| {
            name.decode_into(&mut buf);
            assert!(buf.len() <= MAX_NAME_TEXT_LEN);
            assert!(name.wire_len() <= 255);
            assert!(
                name.labels()
                    .all(|l| !l.is_empty() && l.len() <= MAX_LABEL_LEN)
            );
            assert!(name.eq_ignore_ascii_case_name(&name));
        };
        assert_eq!(m.questions().count(), usize::from(h.question_count));
        for q in m.questions() {
            check(q.name);
        }
        let records = m.answers().chain(m.authorities()).chain(m.additionals());
        assert_eq!(
            records.clone().count(),
            usize::from(h.answer_count)
                + usize::from(h.authority_count)
                + usize::from(h.additional_count)
        );
        for r in records {
            check(r.name);
            match r.data {
                RecordData::Cname(n) | RecordData::Ptr(n) => check(n),
                RecordData::Mx { exchange, .. } => check(exchange),
                RecordData::Srv { target, .. } => check(target),
                RecordData::A(_) | RecordData::Aaaa(_) | RecordData::Other { .. } => {}
            }
        }
        assert!(m.end() <= bytes.len());
    }
    let mut cache = DnsCache::new(DnsCacheConfig {
        max_names: 4,
        max_addresses: 4,
        max_links: 4,
        name_bytes: 64,
        hash_seed: 3,
        trusted_answers_per_sec: u32::MAX,
        ..DnsCacheConfig::default()
    });
    let _ = cache.insert_packet(bytes, HOST, T0);
    let _ = cache.get_dns_response("a.example", T0);
}

const NAMES: [&str; 6] = [
    "a.example",
    "B.Example.com",
    "c.a.example",
    "x",
    "4.3.2.1.in-addr.arpa",
    "",
];

fn any_data() -> impl Strategy<Value = Data> {
    let name = prop::sample::select(&NAMES[..]).prop_map(str::to_owned);
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| Data::A(o.into())),
        any::<[u8; 16]>().prop_map(|o| Data::Aaaa(o.into())),
        name.clone().prop_map(Data::Cname),
        name.clone().prop_map(Data::Ptr),
        (any::<u16>(), name.clone()).prop_map(|(p, n)| Data::Mx(p, n)),
        (any::<u16>(), name).prop_map(|(p, n)| Data::Srv(p, 1, 80, n)),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(|b| Data::Raw(16, b)),
    ]
}

fn valid_packet() -> impl Strategy<Value = Vec<u8>> {
    let record = (prop::sample::select(&NAMES[..]), 0u32..100, any_data())
        .prop_map(|(n, ttl, data)| rr(n, ttl, data));
    (
        prop::sample::select(&NAMES[..]),
        prop::collection::vec(record, 0..6),
        any::<bool>(),
    )
        .prop_map(|(q, answers, compress)| {
            let mut b = Builder::new(7, RESPONSE);
            b.compress = compress;
            b.question(q, A);
            for (i, r) in answers.iter().enumerate() {
                match i % 3 {
                    0 | 1 => b.answer(r),
                    _ => b.additional(r),
                };
            }
            b.finish()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn reader_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        consume(&bytes);
    }

    #[test]
    fn reader_never_panics_on_small_counts_and_arbitrary_bodies(
        counts in any::<[u8; 4]>(),
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        // Counts of 0..=3 make the reader walk the body instead of stopping at the count check.
        let mut bytes = vec![0x12, 0x34, 0x81, 0x80];
        for c in counts {
            bytes.extend_from_slice(&u16::from(c % 4).to_be_bytes());
        }
        bytes.extend_from_slice(&body);
        consume(&bytes);
    }

    #[test]
    fn valid_packets_parse(packet in valid_packet()) {
        prop_assert!(Message::parse(&packet).is_ok());
        consume(&packet);
    }

    #[test]
    fn reader_never_panics_on_mutated_valid_packets(
        packet in valid_packet(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = packet;
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        consume(&bytes);
    }
}

// ----- the cache against a model --------------------------------------------------------------

const CAP: usize = 4;
const NAME_POOL: usize = 8;
const IP_POOL: usize = 6;

fn name_of(i: usize) -> String {
    format!("n{i}.model.example")
}

fn ip_of(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 9, 0, i as u8))
}

#[derive(Debug, Clone)]
enum Op {
    Insert {
        name: usize,
        ips: Vec<usize>,
        ttl: u32,
    },
    GetName(usize),
    GetIp(usize),
    Advance(u64),
    Purge,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..NAME_POOL, prop::collection::vec(0..IP_POOL, 1..4), 1u32..20)
            .prop_map(|(name, ips, ttl)| Op::Insert { name, ips, ttl }),
        3 => (0..NAME_POOL).prop_map(Op::GetName),
        2 => (0..IP_POOL).prop_map(Op::GetIp),
        2 => (0u64..15).prop_map(Op::Advance),
        1 => Just(Op::Purge),
    ]
}

/// One link of the model: address, expiry, global creation order.
#[derive(Debug, Clone)]
struct MLink {
    ip: usize,
    expires_at: u64,
    seq: u64,
}

/// The model: names in recency order (least recent first), each with its links.
#[derive(Debug, Default)]
struct Model {
    names: Vec<(usize, Vec<MLink>)>,
    seq: u64,
}

impl Model {
    fn position(&self, name: usize) -> Option<usize> {
        self.names.iter().position(|(n, _)| *n == name)
    }

    fn touch(&mut self, name: usize) {
        if let Some(i) = self.position(name) {
            let entry = self.names.remove(i);
            self.names.push(entry);
        }
    }

    /// Drops every expired link and every name left without one; links dropped.
    fn sweep(&mut self, now: u64) -> usize {
        let mut dropped = 0;
        for (_, links) in &mut self.names {
            let before = links.len();
            links.retain(|l| l.expires_at > now);
            dropped += before - links.len();
        }
        self.names.retain(|(_, links)| !links.is_empty());
        dropped
    }

    fn any_expired(&self, now: u64) -> bool {
        self.names
            .iter()
            .any(|(_, links)| links.iter().any(|l| l.expires_at <= now))
    }

    fn insert(&mut self, name: usize, ips: &[usize], ttl: u32, now: u64) {
        for &ip in ips {
            let expires_at = now + u64::from(ttl) * SEC;
            if self.position(name).is_some() {
                self.touch(name);
            } else {
                if self.names.len() == CAP {
                    let freed = self.any_expired(now) && {
                        let before = self.names.len();
                        self.sweep(now);
                        self.names.len() < before
                    };
                    if !freed {
                        self.names.remove(0);
                    }
                }
                self.names.push((name, Vec::new()));
            }
            let seq = self.seq;
            let links = &mut self.names.last_mut().unwrap().1;
            match links.iter_mut().find(|l| l.ip == ip) {
                Some(l) => l.expires_at = l.expires_at.max(expires_at),
                None => {
                    links.push(MLink {
                        ip,
                        expires_at,
                        seq,
                    });
                    self.seq += 1;
                }
            }
        }
    }

    fn get_name(&mut self, name: usize, now: u64) -> Option<(Vec<IpAddr>, Vec<String>)> {
        let i = self.position(name)?;
        let live: Vec<IpAddr> = self.names[i]
            .1
            .iter()
            .filter(|l| l.expires_at > now)
            .map(|l| ip_of(l.ip))
            .collect();
        if live.is_empty() {
            return None;
        }
        self.touch(name);
        Some((live, vec![name_of(name)]))
    }

    fn get_ip(&mut self, ip: usize, now: u64) -> Option<(Vec<IpAddr>, Vec<String>)> {
        let mut owners: Vec<(u64, usize)> = self
            .names
            .iter()
            .filter_map(|(n, links)| {
                links
                    .iter()
                    .find(|l| l.ip == ip && l.expires_at > now)
                    .map(|l| (l.seq, *n))
            })
            .collect();
        if owners.is_empty() {
            return None;
        }
        owners.sort();
        for &(_, n) in &owners {
            self.touch(n);
        }
        Some((
            vec![ip_of(ip)],
            owners.iter().map(|&(_, n)| name_of(n)).collect(),
        ))
    }
}

/// The counted query's answer; the read-only query must give the same one. With `read_only`,
/// the read-only query answers instead and its names are touched the way a shared copy's owner
/// does it (`refresh_recency`): the model (recency, evictions) must not tell the difference.
fn answer(
    c: &mut DnsCache,
    q: &str,
    now: u64,
    read_only: bool,
) -> Option<(Vec<IpAddr>, Vec<String>)> {
    let mut scratch = c.read_scratch();
    let read = c
        .find_dns_response(q, None, now, &mut scratch)
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
    if read_only {
        let names: Vec<(u32, u32)> = c.names_read(&scratch).collect();
        if read.is_some() {
            c.refresh_recency(names);
        }
        return read;
    }
    let counted = c.get_dns_response(q, now).ok().map(|v| {
        (
            v.ips().to_vec(),
            v.domains().iter().map(|d| d.to_string()).collect(),
        )
    });
    assert_eq!(
        read, counted,
        "read-only and counted answers differ for {q}"
    );
    counted
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn cache_agrees_with_the_model(ops in prop::collection::vec(op(), 1..80)) {
        // Addresses and links are plentiful here: names are the bound under test.
        let mut cache = DnsCache::new(DnsCacheConfig {
            max_names: CAP,
            max_addresses: IP_POOL * 2,
            max_links: CAP * IP_POOL * 2,
            name_bytes: CAP * 32,
            hash_seed: 11,
        trusted_answers_per_sec: u32::MAX,
        ..DnsCacheConfig::default()
        });
        let mut model = Model::default();
        let mut now = T0;
        for op in &ops {
            match op {
                Op::Insert { name, ips, ttl } => {
                    let answers: Vec<Rr> = ips
                        .iter()
                        .map(|&ip| rr(&name_of(*name), *ttl, Data::A(match ip_of(ip) {
                            IpAddr::V4(v4) => v4,
                            IpAddr::V6(_) => unreachable!(),
                        })))
                        .collect();
                    let got = cache.insert_packet(&a_response(&name_of(*name), &answers), HOST, now);
                    prop_assert!(got.is_ok());
                    model.insert(*name, ips, *ttl, now);
                }
                Op::GetName(name) => {
                    let want = model.get_name(*name, now);
                    let read_only = name % 2 == 0;
                    prop_assert_eq!(answer(&mut cache, &name_of(*name), now, read_only), want, "{:?}", op);
                }
                Op::GetIp(ip) => {
                    let want = model.get_ip(*ip, now);
                    let read_only = ip % 2 == 0;
                    prop_assert_eq!(answer(&mut cache, &ip_of(*ip).to_string(), now, read_only), want, "{:?}", op);
                }
                Op::Advance(secs) => now += secs * SEC,
                Op::Purge => {
                    let want = if model.any_expired(now) { model.sweep(now) } else { 0 };
                    prop_assert_eq!(cache.purge_expired(now), want);
                }
            }
            prop_assert!(cache.len() <= CAP);
            prop_assert_eq!(cache.len(), model.names.len(), "after {:?}", op);
            let links: usize = model.names.iter().map(|(_, l)| l.len()).sum();
            prop_assert_eq!(cache.usage().links, links);
        }
    }
}
