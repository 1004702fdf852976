//! The DNS store through its actor, backed by the real core `DnsCache`: DNS response messages,
//! as a resolver sends them, go through the bounded intake into the cache; `get_dns_response`
//! and its batch answer forward (name → CNAMEs and addresses), backward (address → names) and
//! through PTR records; packets that do not parse or are not cacheable are refused and counted;
//! answers expire with their TTL.
//!
//! The messages are encoded by a small RFC 1035 writer in this file (uncompressed names), so
//! the store's parser reads bytes it did not write.

mod support;

use std::net::IpAddr;
use std::time::Duration;

use support::{eventually, registry, submit_and_wait};
use watchpost_actors::adapters::dns::dns_cache_factory;
use watchpost_actors::stores::dns::{DnsHandle, DnsPacket};
use watchpost_actors::{ErrorKind, HealthStatus, IntakeSender, Registry, StoreOptions};
use watchpost_core::dns::DnsCacheConfig;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_PTR: u16 = 12;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// A DNS message being written: header, one question, answer records.
struct Message {
    bytes: Vec<u8>,
    answers: u16,
}

fn name(out: &mut Vec<u8>, name: &str) {
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

impl Message {
    /// A response (QR set, recursion desired and available) with `rcode` to one IN question.
    fn response(id: u16, rcode: u8, qname: &str, qtype: u16) -> Message {
        Self::with_flags(id, 0x8180 | u16::from(rcode), qname, qtype)
    }

    fn with_flags(id: u16, flags: u16, qname: &str, qtype: u16) -> Message {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&id.to_be_bytes());
        bytes.extend_from_slice(&flags.to_be_bytes());
        bytes.extend_from_slice(&1u16.to_be_bytes()); // questions
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // answers (set later), authority, additional
        name(&mut bytes, qname);
        bytes.extend_from_slice(&qtype.to_be_bytes());
        bytes.extend_from_slice(&CLASS_IN.to_be_bytes());
        Message { bytes, answers: 0 }
    }

    fn record(mut self, owner: &str, kind: u16, ttl: u32, data: &[u8]) -> Message {
        name(&mut self.bytes, owner);
        self.bytes.extend_from_slice(&kind.to_be_bytes());
        self.bytes.extend_from_slice(&CLASS_IN.to_be_bytes());
        self.bytes.extend_from_slice(&ttl.to_be_bytes());
        self.bytes
            .extend_from_slice(&(data.len() as u16).to_be_bytes());
        self.bytes.extend_from_slice(data);
        self.answers += 1;
        self
    }

    fn address(self, owner: &str, ttl: u32, ip: &str) -> Message {
        match ip.parse::<IpAddr>().unwrap() {
            IpAddr::V4(a) => self.record(owner, TYPE_A, ttl, &a.octets()),
            IpAddr::V6(a) => self.record(owner, TYPE_AAAA, ttl, &a.octets()),
        }
    }

    fn pointing(self, owner: &str, kind: u16, ttl: u32, target: &str) -> Message {
        let mut data = Vec::new();
        name(&mut data, target);
        self.record(owner, kind, ttl, &data)
    }

    fn packet(mut self, observed_at: u64) -> DnsPacket {
        let count = self.answers.to_be_bytes();
        self.bytes[6..8].copy_from_slice(&count);
        DnsPacket::trusted(self.bytes, observed_at, HOST_NETNS)
    }
}

/// The host's network namespace (inode number), trusted.
const HOST_NETNS: u32 = 4_026_531_840;

async fn store() -> (Registry, DnsHandle, IntakeSender<DnsPacket>) {
    let reg = registry().await;
    let intake = reg
        .register_dns_store(
            dns_cache_factory(DnsCacheConfig::default()),
            StoreOptions::default(),
        )
        .await
        .expect("the DNS store registers");
    let handle = reg.dns();
    (reg, handle, intake)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observed_answers_are_served_forward_backward_and_by_ptr() {
    let (reg, dns, intake) = store().await;
    let now = watchpost_actors::clock::now();
    let www = Message::response(0x1234, 0, "www.example.com", TYPE_A)
        .pointing("www.example.com", TYPE_CNAME, 300, "edge.cdn.net")
        .address("edge.cdn.net", 60, "192.0.2.10")
        .address("edge.cdn.net", 60, "192.0.2.11")
        .packet(now);
    let v6 = Message::response(0x1235, 0, "edge.cdn.net", TYPE_AAAA)
        .address("edge.cdn.net", 60, "2001:db8::10")
        .packet(0); // 0: observed when applied
    let ptr = Message::response(0x1236, 0, "11.2.0.192.in-addr.arpa", TYPE_PTR)
        .pointing("11.2.0.192.in-addr.arpa", TYPE_PTR, 600, "mail.example.org")
        .packet(now);
    submit_and_wait(&dns, &intake, vec![www, v6, ptr]).await;
    let s = dns.supervision();
    assert_eq!(
        (s.intake_applied_updates, s.intake_rejected_updates),
        (3, 0)
    );

    let forward = dns.get_dns_response("WWW.Example.COM.").await.unwrap();
    assert_eq!(forward.query, "WWW.Example.COM.");
    // Everything below the name: its CNAME target, the addresses, and the PTR name of one of them.
    assert_eq!(
        forward.domains,
        ["www.example.com", "edge.cdn.net", "mail.example.org"]
    );
    assert_eq!(forward.ips, ["192.0.2.10", "192.0.2.11", "2001:db8::10"]);
    assert!(!forward.truncated);

    let backward = dns.get_dns_response("192.0.2.10").await.unwrap();
    assert_eq!(backward.ips, ["192.0.2.10"]);
    assert_eq!(backward.domains, ["edge.cdn.net", "www.example.com"]);
    // The PTR name is below the address, the names leading to it above.
    let by_ptr = dns.get_dns_response("192.0.2.11").await.unwrap();
    assert_eq!(
        by_ptr.domains,
        ["mail.example.org", "edge.cdn.net", "www.example.com"]
    );
    let reverse_name = dns
        .get_dns_response("11.2.0.192.in-addr.arpa")
        .await
        .unwrap();
    assert_eq!(
        reverse_name.domains, by_ptr.domains,
        "the reverse name is the address"
    );

    let unknown = dns.get_dns_response("nope.example").await.unwrap_err();
    assert!(unknown.is(ErrorKind::NotFound), "{unknown}");
    assert_eq!(unknown.operation, "get_dns_response");
    let empty = dns.get_dns_response("").await.unwrap_err();
    assert!(empty.is(ErrorKind::InvalidArgument), "{empty}");

    let batch = dns
        .get_dns_responses(&["edge.cdn.net", "nope.example", "2001:db8::10"])
        .await
        .unwrap();
    assert_eq!(batch.len(), 3);
    assert_eq!(batch[0].as_ref().unwrap().ips.len(), 3);
    assert!(batch[1].as_ref().unwrap_err().is(ErrorKind::NotFound));
    assert_eq!(
        batch[2].as_ref().unwrap().domains,
        ["edge.cdn.net", "www.example.com"]
    );

    let m = dns.get_metrics().await;
    // Hits: forward, backward, by_ptr, reverse_name, batch ×2; misses: unknown, batch ×1;
    // errors: the empty query. Plus one success per cached message.
    assert_eq!(
        (m.cache_hits, m.cache_misses, m.error_count),
        (6, 2, 1),
        "{m:?}"
    );
    assert_eq!(m.success_count, 3 + 6 + 2, "{m:?}");
    assert!(m.item_count > 0);
    assert_eq!(dns.get_health().await.status, HealthStatus::Healthy);
    let stats = dns.dns_stats().await.unwrap();
    assert_eq!(
        (stats.messages_cached, stats.records_inserted),
        (3, 5),
        "{stats:?}"
    );
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_that_do_not_parse_or_cannot_be_cached_are_refused_and_counted() {
    let (reg, dns, intake) = store().await;
    let now = watchpost_actors::clock::now();
    let good = Message::response(1, 0, "a.example", TYPE_A)
        .address("a.example", 60, "192.0.2.1")
        .packet(now);
    let mut cut = good.clone();
    cut.payload.truncate(cut.payload.len() - 3);
    let query = Message::with_flags(2, 0x0100, "a.example", TYPE_A).packet(now);
    let nxdomain_without_answers = Message::response(3, 3, "b.example", TYPE_A).packet(now);
    let out_of_chain = Message::response(4, 0, "c.example", TYPE_A)
        .address("bank.example", 60, "203.0.113.66")
        .packet(now);
    submit_and_wait(
        &dns,
        &intake,
        vec![cut, query, nxdomain_without_answers, out_of_chain, good],
    )
    .await;
    let s = dns.supervision();
    // The out-of-chain message is cached (a response with one answer) but its forged record is
    // not kept.
    assert_eq!(
        (s.intake_applied_updates, s.intake_rejected_updates),
        (2, 3)
    );
    let stats = dns.dns_stats().await.unwrap();
    assert_eq!(stats.messages_rejected, 1, "{stats:?}");
    assert_eq!(stats.messages_ignored, 2, "{stats:?}");
    assert_eq!(stats.records_out_of_chain, 1, "{stats:?}");
    assert!(
        dns.get_dns_response("bank.example")
            .await
            .is_err_and(|e| e.is(ErrorKind::NotFound)),
        "an injected record is never answered"
    );
    assert_eq!(
        dns.get_dns_response("a.example").await.unwrap().ips,
        ["192.0.2.1"]
    );
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_expire_with_their_ttl_and_are_swept() {
    let (reg, dns, intake) = store().await;
    let now = watchpost_actors::clock::now();
    // Observed 10 s ago with a TTL of 5 s: already expired when it arrives.
    let stale = Message::response(1, 0, "old.example", TYPE_A)
        .address("old.example", 5, "192.0.2.5")
        .packet(now - 10_000_000_000);
    let short = Message::response(2, 0, "short.example", TYPE_A)
        .address("short.example", 1, "192.0.2.6")
        .packet(now);
    submit_and_wait(&dns, &intake, vec![stale, short]).await;
    assert!(
        dns.get_dns_response("old.example")
            .await
            .is_err_and(|e| e.is(ErrorKind::NotFound))
    );
    let seen = dns.get_dns_response("short.example").await;
    if watchpost_actors::clock::now() < now + 1_000_000_000 {
        assert_eq!(seen.unwrap().ips, ["192.0.2.6"], "live within its TTL");
    }
    assert!(
        eventually(Duration::from_secs(30), || async {
            dns.get_dns_response("short.example")
                .await
                .is_err_and(|e| e.is(ErrorKind::NotFound))
        })
        .await,
        "gone once its TTL ran out"
    );
    // The next intake message sweeps both expired records out.
    let later = Message::response(3, 0, "new.example", TYPE_A)
        .address("new.example", 60, "192.0.2.7")
        .packet(0);
    submit_and_wait(&dns, &intake, vec![later]).await;
    let stats = dns.dns_stats().await.unwrap();
    assert_eq!(stats.links_expired, 2, "{stats:?}");
    assert!(dns.get_dns_response("192.0.2.7").await.is_ok());
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_from_an_untrusted_namespace_are_asked_for_by_namespace() {
    let (reg, dns, intake) = store().await;
    let now = watchpost_actors::clock::now();
    let mut planted = Message::response(1, 0, "planted.example", TYPE_A)
        .address("planted.example", 60, "203.0.113.9")
        .packet(now);
    planted.netns = 4_026_533_333;
    planted.trusted = false;
    submit_and_wait(&dns, &intake, vec![planted]).await;
    assert!(
        dns.get_dns_response("planted.example")
            .await
            .is_err_and(|e| e.is(ErrorKind::NotFound)),
        "not in the default (trusted) view"
    );
    assert_eq!(
        dns.get_dns_response_in("planted.example", 4_026_533_333)
            .await
            .unwrap()
            .ips,
        ["203.0.113.9"]
    );
    reg.shutdown().await;
}
