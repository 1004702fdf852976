//! The DNS store: the wire reader on real encoded responses and on malformed ones, and the cache
//! (forward and reverse lookups, CNAME chains, PTR, MX, SRV, case, TTL with an injected clock,
//! refresh, what is and is not cached, bounds, eviction order, metrics, no allocation after
//! construction).

mod dns_encoder;
mod support;

#[global_allocator]
static ALLOC: support::CountingAllocator = support::CountingAllocator;

use std::collections::BTreeSet;
use std::net::IpAddr;

use dns_encoder::*;
use watchpost_core::dns::{
    DnsCache, DnsCacheConfig, DnsOrigin, MAX_RESPONSE_IPS, Message, MessageOutcome, NameBuf,
    RecordData, RecordType, Section, WireError,
};
use watchpost_core::error::store_names;
use watchpost_core::time::NANOS_PER_SEC;
use watchpost_core::{ErrorKind, HealthStatus};

/// The host's network namespace, trusted.
const HOST: DnsOrigin = DnsOrigin::trusted(4_026_531_840);

const SEC: u64 = NANOS_PER_SEC;
const T0: u64 = 1_700_000_000 * SEC;

fn cache() -> DnsCache {
    DnsCache::new(DnsCacheConfig {
        max_names: 64,
        max_addresses: 64,
        max_links: 128,
        name_bytes: 64 * 32,
        hash_seed: 7,
        trusted_answers_per_sec: u32::MAX,
        ..DnsCacheConfig::default()
    })
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// (ips, domains) of a hit, in answer order.
fn get(c: &mut DnsCache, q: &str, now: u64) -> Option<(Vec<IpAddr>, Vec<String>)> {
    match c.get_dns_response(q, now) {
        Ok(v) => {
            assert_eq!(v.query, q);
            Some((
                v.ips().to_vec(),
                v.domains().iter().map(|d| d.to_string()).collect(),
            ))
        }
        Err(e) => {
            assert_eq!(e.store, store_names::DNS);
            assert_eq!(e.operation, "get_dns_response");
            assert!(e.is(ErrorKind::NotFound), "{e}");
            None
        }
    }
}

fn insert(c: &mut DnsCache, packet: &[u8], now: u64) -> watchpost_core::dns::Ingested {
    c.insert_packet(packet, HOST, now).expect("packet parses")
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

// ----- wire reader ---------------------------------------------------------------------------

fn decoded(name: watchpost_core::dns::Name<'_>) -> String {
    let mut buf = NameBuf::new();
    name.decode_into(&mut buf);
    buf.as_str().unwrap().to_owned()
}

#[test]
fn parses_every_supported_record_type_and_skips_others() {
    let mut b = Builder::new(0xBEEF, RESPONSE);
    b.question("WWW.Example.COM", A)
        .answer(&rr("WWW.Example.COM", 300, cname("Edge.Example.net")))
        .answer(&rr("Edge.Example.net", 60, a("192.0.2.7")))
        .answer(&rr("Edge.Example.net", 60, aaaa("2001:db8::7")))
        .answer(&rr("example.com", 3600, mx(10, "mail.example.com")))
        .answer(&rr(
            "_sip._tcp.example.com",
            30,
            srv(5, 20, 5060, "sip.example.com"),
        ))
        .answer(&rr("7.2.0.192.in-addr.arpa", 30, ptr("edge.example.net")))
        .answer(&rr(
            "example.com",
            30,
            Data::Raw(TXT, b"\x05hello".to_vec()),
        ))
        .authority(&rr("example.com", 30, Data::Raw(2, vec![0xC0, 0x0C])))
        .additional(&rr("", 0, Data::Raw(41, vec![])));
    let bytes = b.finish();
    let m = Message::parse(&bytes).unwrap();
    let h = m.header();
    assert_eq!(h.id, 0xBEEF);
    assert!(h.is_response());
    assert_eq!(h.opcode(), 0);
    assert_eq!(h.rcode(), 0);
    assert!(h.recursion_desired() && h.recursion_available());
    assert!(!h.is_truncated() && !h.is_authoritative());
    assert_eq!(
        (
            h.question_count,
            h.answer_count,
            h.authority_count,
            h.additional_count
        ),
        (1, 7, 1, 1)
    );
    assert_eq!(m.end(), bytes.len());

    let q: Vec<_> = m.questions().collect();
    assert_eq!(q.len(), 1);
    assert_eq!(decoded(q[0].name), "WWW.Example.COM"); // case preserved
    assert_eq!(q[0].qtype, RecordType::A);
    assert_eq!(q[0].qclass, 1);

    let answers: Vec<_> = m.answers().collect();
    assert_eq!(answers.len(), 7);
    assert_eq!(decoded(answers[0].name), "WWW.Example.COM");
    assert_eq!(answers[0].ttl, 300);
    match answers[0].data {
        RecordData::Cname(n) => assert_eq!(decoded(n), "Edge.Example.net"),
        other => panic!("{other:?}"),
    }
    assert_eq!(answers[1].data, RecordData::A("192.0.2.7".parse().unwrap()));
    assert_eq!(
        answers[2].data,
        RecordData::Aaaa("2001:db8::7".parse().unwrap())
    );
    match answers[3].data {
        RecordData::Mx {
            preference,
            exchange,
        } => {
            assert_eq!(preference, 10);
            assert_eq!(decoded(exchange), "mail.example.com");
        }
        other => panic!("{other:?}"),
    }
    match answers[4].data {
        RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } => {
            assert_eq!((priority, weight, port), (5, 20, 5060));
            assert_eq!(decoded(target), "sip.example.com");
        }
        other => panic!("{other:?}"),
    }
    match answers[5].data {
        RecordData::Ptr(n) => assert_eq!(decoded(n), "edge.example.net"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        answers[6].data,
        RecordData::Other {
            rtype: TXT,
            rdata: b"\x05hello"
        }
    );
    assert_eq!(answers[6].record_type(), RecordType::Other(TXT));
    assert_eq!(m.authorities().count(), 1);
    let opt: Vec<_> = m.additionals().collect();
    assert!(opt[0].name.is_root());
    assert_eq!(opt[0].record_type(), RecordType::Other(41));
    // Compression was used: the first answer's owner (after the 17 + 4 question bytes) is a
    // pointer to the question.
    assert_eq!(answers[0].name.offset(), 33);
    assert_eq!(bytes[33..35], [0xC0, 12]);
}

#[test]
fn uncompressed_and_compressed_forms_read_the_same() {
    let answers = [
        rr("a.example.com", 60, cname("b.example.com")),
        rr("b.example.com", 60, a("10.0.0.1")),
    ];
    let mut plain = Builder::new(1, RESPONSE);
    plain.compress = false;
    plain.question("a.example.com", A);
    let mut packed = Builder::new(1, RESPONSE);
    packed.question("a.example.com", A);
    for r in &answers {
        plain.answer(r);
        packed.answer(r);
    }
    let (plain, packed) = (plain.finish(), packed.finish());
    assert!(packed.len() < plain.len());
    let render = |bytes: &[u8]| -> Vec<String> {
        let m = Message::parse(bytes).unwrap();
        m.answers()
            .map(|r| format!("{} {:?}", decoded(r.name), r.record_type()))
            .collect()
    };
    assert_eq!(render(&plain), render(&packed));
}

#[test]
fn rejects_short_headers_and_counts_beyond_the_data() {
    assert_eq!(Message::parse(&[]), Err(WireError::Truncated));
    assert_eq!(Message::parse(&[0; 11]), Err(WireError::Truncated));
    assert!(Message::parse(&[0; 12]).is_ok());

    let full = a_response("x.example", &[rr("x.example", 60, a("10.0.0.1"))]);
    // Every strict prefix is rejected, never a panic.
    for cut in 0..full.len() {
        let e = Message::parse(&full[..cut]).unwrap_err();
        assert!(
            matches!(e, WireError::Truncated | WireError::CountExceedsData(_)),
            "{cut}: {e:?}"
        );
    }
    // Whole entries missing: the count is what is wrong.
    let mut b = Builder::new(1, RESPONSE);
    b.question("x.example", A).count(0, 2);
    assert_eq!(
        Message::parse(&b.finish()),
        Err(WireError::CountExceedsData(Section::Question))
    );
    let mut b = Builder::new(1, RESPONSE);
    b.question("x.example", A)
        .answer(&rr("x.example", 60, a("10.0.0.1")))
        .count(1, 2);
    let bytes = b.finish();
    assert_eq!(
        Message::parse(&bytes),
        Err(WireError::CountExceedsData(Section::Answer))
    );
    // Counts that could never fit are caught before walking.
    let mut b = Builder::new(1, RESPONSE);
    b.count(3, 0xFFFF);
    assert_eq!(
        Message::parse(&b.finish()),
        Err(WireError::CountExceedsData(Section::Additional))
    );
    // Record data running past the end.
    let mut b = Builder::new(1, RESPONSE);
    b.question("x.example", A)
        .raw(b"\xC0\x0C\x00\x01\x00\x01\x00\x00\x00\x3C\x00\x04\x0A\x00")
        .count(1, 1);
    assert_eq!(Message::parse(&b.finish()), Err(WireError::Truncated));
    // Trailing bytes after the last record are padding.
    let mut padded = full.clone();
    padded.extend_from_slice(&[0; 5]);
    let m = Message::parse(&padded).unwrap();
    assert_eq!(m.end(), full.len());
    assert_eq!(m.answers().count(), 1);
    // Too long for DNS at all.
    assert_eq!(
        Message::parse(&vec![0; 70_000]),
        Err(WireError::MessageTooLong)
    );
}

#[test]
fn rejects_bad_labels_and_names() {
    // A label length byte of 64.
    let mut b = Builder::new(1, RESPONSE);
    b.raw(&[64])
        .raw(&[b'a'; 64])
        .raw(&[0, 0, 1, 0, 1])
        .count(0, 1);
    assert_eq!(Message::parse(&b.finish()), Err(WireError::LabelTooLong));
    // A 63-byte label is fine.
    let label = "a".repeat(63);
    assert!(Message::parse(&response(&label, A, &[])).is_ok());
    // 256 bytes in wire form, built from a long suffix reached through a pointer.
    let long = format!("{0}.{0}.{0}", "b".repeat(63)); // 193 bytes in wire form
    let mut b = Builder::new(1, RESPONSE);
    b.question(&long, A); // at 12
    b.raw(&[61]).raw(&[b'c'; 61]).raw(&[0xC0, 12]); // 62 + 193 = 255: fine
    b.raw(&[0, 1, 0, 1]).count(0, 2);
    assert!(Message::parse(&b.finish()).is_ok());
    let mut b = Builder::new(1, RESPONSE);
    b.question(&long, A);
    b.raw(&[62]).raw(&[b'c'; 62]).raw(&[0xC0, 12]); // 63 + 193 = 256: too long
    b.raw(&[0, 1, 0, 1]).count(0, 2);
    assert_eq!(Message::parse(&b.finish()), Err(WireError::NameTooLong));
}

#[test]
fn rejects_looping_forward_and_header_pointers() {
    let question_then = |name_bytes: &[u8]| {
        let mut b = Builder::new(1, RESPONSE);
        b.question("x.example", A) // 12..27
            .raw(name_bytes)
            .raw(b"\x00\x01\x00\x01\x00\x00\x00\x3C\x00\x04\x0A\x00\x00\x01")
            .count(1, 1);
        b.finish()
    };
    // Owner at 27: a pointer to itself.
    assert_eq!(
        Message::parse(&question_then(&[0xC0, 27])),
        Err(WireError::ForwardPointer)
    );
    // A pointer past the end.
    assert_eq!(
        Message::parse(&question_then(&[0xFF, 0xFF])),
        Err(WireError::ForwardPointer)
    );
    // A label, then a pointer back to that label: a loop.
    assert_eq!(
        Message::parse(&question_then(&[1, b'a', 0xC0, 27])),
        Err(WireError::PointerLoop)
    );
    // Two names pointing at each other (27: "a" -> 33, 33: "b" -> 27): whichever is read
    // first points forward.
    let mut b = Builder::new(1, RESPONSE);
    b.question("x.example", A)
        .raw(&[1, b'a', 0xC0, 33, 0, 0, 1, b'b', 0xC0, 27])
        .count(0, 2);
    assert_eq!(Message::parse(&b.finish()), Err(WireError::ForwardPointer));
    // Into the header.
    assert_eq!(
        Message::parse(&question_then(&[0xC0, 4])),
        Err(WireError::PointerIntoHeader)
    );
    // A valid pointer to the question is fine.
    let ok = question_then(&[0xC0, 12]);
    let m = Message::parse(&ok).unwrap();
    assert_eq!(decoded(m.answers().next().unwrap().name), "x.example");
}

#[test]
fn rejects_record_data_that_does_not_fit_its_type() {
    let with = |rr_: Rr| a_response("x.example", &[rr_]);
    let bad = |t: u16, data: Vec<u8>| with(rr("x.example", 60, Data::Raw(t, data)));
    assert_eq!(
        Message::parse(&bad(A, vec![1, 2, 3, 4, 5])),
        Err(WireError::BadRdataLength(A))
    );
    assert_eq!(
        Message::parse(&bad(A, vec![1, 2, 3])),
        Err(WireError::BadRdataLength(A))
    );
    assert_eq!(
        Message::parse(&bad(AAAA, vec![0; 4])),
        Err(WireError::BadRdataLength(AAAA))
    );
    assert_eq!(
        Message::parse(&bad(AAAA, vec![0; 17])),
        Err(WireError::BadRdataLength(AAAA))
    );
    // A CNAME whose name leaves a byte over, or whose data is empty.
    assert_eq!(
        Message::parse(&bad(CNAME, b"\x01a\x00\x00".to_vec())),
        Err(WireError::BadRdataLength(CNAME))
    );
    assert_eq!(
        Message::parse(&bad(CNAME, vec![])),
        Err(WireError::BadRdataLength(CNAME))
    );
    // A PTR whose name runs past its data length into the next bytes.
    let mut b = Builder::new(1, RESPONSE);
    b.question("x.example", A)
        .raw(b"\xC0\x0C\x00\x0C\x00\x01\x00\x00\x00\x3C\x00\x02\x01a\x00")
        .count(1, 1);
    assert_eq!(
        Message::parse(&b.finish()),
        Err(WireError::BadRdataLength(PTR))
    );
    assert_eq!(
        Message::parse(&bad(MX, vec![0, 1])),
        Err(WireError::BadRdataLength(MX))
    );
    assert_eq!(
        Message::parse(&bad(SRV, vec![0, 1, 0, 1, 0, 80])),
        Err(WireError::BadRdataLength(SRV))
    );
    // Other types take any data.
    assert!(Message::parse(&bad(TXT, vec![0; 9])).is_ok());
    // Display is specific.
    assert_eq!(
        WireError::BadRdataLength(A).to_string(),
        "dns record data length does not fit type 1"
    );
    assert_eq!(
        WireError::CountExceedsData(Section::Answer).to_string(),
        "dns answer count exceeds the data"
    );
}

// ----- cache: lookups ------------------------------------------------------------------------

#[test]
fn a_record_forward_and_reverse() {
    let mut c = cache();
    let got = insert(
        &mut c,
        &a_response(
            "example.com",
            &[
                rr("example.com", 60, a("93.184.216.34")),
                rr("example.com", 60, a("93.184.216.35")),
            ],
        ),
        T0,
    );
    assert_eq!(got.outcome, MessageOutcome::Cached);
    assert_eq!((got.inserted, got.refreshed, got.ignored), (2, 0, 0));
    assert_eq!(
        get(&mut c, "example.com", T0),
        Some((
            ips(&["93.184.216.34", "93.184.216.35"]),
            names(&["example.com"])
        ))
    );
    // By address: the address itself, then the names leading to it.
    assert_eq!(
        get(&mut c, "93.184.216.35", T0),
        Some((ips(&["93.184.216.35"]), names(&["example.com"])))
    );
    // The reverse-name form of the same address.
    assert_eq!(
        get(&mut c, "35.216.184.93.in-addr.arpa", T0),
        Some((ips(&["93.184.216.35"]), names(&["example.com"])))
    );
    assert_eq!(get(&mut c, "93.184.216.36", T0), None);
    assert_eq!(get(&mut c, "example.org", T0), None);
    let usage = c.usage();
    assert_eq!((usage.names, usage.addresses, usage.links), (1, 2, 2));
}

#[test]
fn aaaa_records_and_ipv6_reverse() {
    let mut c = cache();
    insert(
        &mut c,
        &response(
            "dailymaverick.co.za",
            AAAA,
            &[
                rr("dailymaverick.co.za", 300, aaaa("2606:4700:10::6816:1f")),
                rr("dailymaverick.co.za", 300, aaaa("2606:4700:10::ac43:9e4")),
            ],
        ),
        T0,
    );
    let (got_ips, got_names) = get(&mut c, "dailymaverick.co.za", T0).unwrap();
    assert_eq!(
        got_ips,
        ips(&["2606:4700:10::6816:1f", "2606:4700:10::ac43:9e4"])
    );
    assert_eq!(got_names, names(&["dailymaverick.co.za"]));
    assert_eq!(
        get(&mut c, "2606:4700:10::6816:1f", T0),
        Some((
            ips(&["2606:4700:10::6816:1f"]),
            names(&["dailymaverick.co.za"])
        ))
    );
    // Any textual form of the address finds it.
    assert!(get(&mut c, "2606:4700:0010:0000:0000:0000:6816:001F", T0).is_some());
    let arpa = "f.1.0.0.6.1.8.6.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.7.4.6.0.6.2.ip6.arpa";
    assert_eq!(
        get(&mut c, arpa, T0),
        Some((
            ips(&["2606:4700:10::6816:1f"]),
            names(&["dailymaverick.co.za"])
        ))
    );
    // IPv4-mapped IPv6 is the IPv4 address.
    insert(
        &mut c,
        &response(
            "mapped.example",
            AAAA,
            &[rr("mapped.example", 60, aaaa("::ffff:10.1.2.3"))],
        ),
        T0,
    );
    assert_eq!(
        get(&mut c, "10.1.2.3", T0),
        Some((ips(&["10.1.2.3"]), names(&["mapped.example"])))
    );
    assert!(get(&mut c, "::ffff:10.1.2.3", T0).is_some());
}

#[test]
fn cname_chains_of_several_levels() {
    let mut c = cache();
    insert(
        &mut c,
        &a_response(
            "www.example.com",
            &[
                rr("www.example.com", 300, cname("a.example.net")),
                rr("a.example.net", 300, cname("b.cdn.net")),
                rr("b.cdn.net", 60, a("1.2.3.4")),
                rr("b.cdn.net", 60, a("1.2.3.5")),
            ],
        ),
        T0,
    );
    assert_eq!(
        get(&mut c, "www.example.com", T0),
        Some((
            ips(&["1.2.3.4", "1.2.3.5"]),
            names(&["www.example.com", "a.example.net", "b.cdn.net"])
        ))
    );
    // From the middle: down to the addresses, up to the head.
    assert_eq!(
        get(&mut c, "a.example.net", T0),
        Some((
            ips(&["1.2.3.4", "1.2.3.5"]),
            names(&["a.example.net", "b.cdn.net", "www.example.com"])
        ))
    );
    // From an address: the names leading to it, nearest first; not the sibling address.
    assert_eq!(
        get(&mut c, "1.2.3.4", T0),
        Some((
            ips(&["1.2.3.4"]),
            names(&["b.cdn.net", "a.example.net", "www.example.com"])
        ))
    );
    // A second alias of the same CDN name joins the graph.
    insert(
        &mut c,
        &a_response(
            "img.example.org",
            &[
                rr("img.example.org", 300, cname("b.cdn.net")),
                rr("b.cdn.net", 60, a("1.2.3.4")),
            ],
        ),
        T0 + SEC,
    );
    let (_, by_ip) = get(&mut c, "1.2.3.4", T0 + SEC).unwrap();
    assert_eq!(
        by_ip,
        names(&[
            "b.cdn.net",
            "a.example.net",
            "img.example.org",
            "www.example.com"
        ])
    );
    // Going up never goes down again: img.example.org does not list www's head.
    assert_eq!(
        get(&mut c, "img.example.org", T0 + SEC),
        Some((
            ips(&["1.2.3.4", "1.2.3.5"]),
            names(&["img.example.org", "b.cdn.net"])
        ))
    );
    assert_eq!(c.stats().records_refreshed, 1);
}

#[test]
fn cname_loops_terminate() {
    let mut c = cache();
    insert(
        &mut c,
        &a_response(
            "a.loop",
            &[
                rr("a.loop", 60, cname("b.loop")),
                rr("b.loop", 60, cname("a.loop")),
                rr("a.loop", 60, cname("a.loop")),
            ],
        ),
        T0,
    );
    assert_eq!(
        get(&mut c, "a.loop", T0),
        Some((vec![], names(&["a.loop", "b.loop"])))
    );
    // The self-reference was not stored.
    assert_eq!(c.stats().records_ignored, 1);
    assert_eq!(c.usage().links, 2);
}

#[test]
fn ptr_answers_give_reverse_lookups_with_the_address_in_order() {
    let mut c = cache();
    let got = insert(
        &mut c,
        &response(
            "231.92.80.190.in-addr.arpa",
            PTR,
            &[rr(
                "231.92.80.190.in-addr.arpa",
                3600,
                ptr("231-92-pool.dsl.gol.net.gy"),
            )],
        ),
        T0,
    );
    assert_eq!(got.inserted, 1);
    let expected = Some((
        ips(&["190.80.92.231"]),
        names(&["231-92-pool.dsl.gol.net.gy"]),
    ));
    assert_eq!(get(&mut c, "231.92.80.190.in-addr.arpa", T0), expected);
    assert_eq!(get(&mut c, "190.80.92.231", T0), expected);
    // The reference kept the octets reversed; that address is not what the PTR is about.
    assert_eq!(get(&mut c, "231.92.80.190", T0), None);
    // From the name: the address it is the PTR of.
    assert_eq!(
        get(&mut c, "231-92-pool.dsl.gol.net.gy", T0),
        Some((
            ips(&["190.80.92.231"]),
            names(&["231-92-pool.dsl.gol.net.gy"])
        ))
    );
    // IPv6 PTR.
    let arpa = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa";
    insert(
        &mut c,
        &response(arpa, PTR, &[rr(arpa, 60, ptr("host6.example"))]),
        T0,
    );
    assert_eq!(
        get(&mut c, "2001:db8::1", T0),
        Some((ips(&["2001:db8::1"]), names(&["host6.example"])))
    );
    // A PTR not about an address (DNS-SD) links name to name.
    insert(
        &mut c,
        &response(
            "_http._tcp.local",
            PTR,
            &[rr("_http._tcp.local", 60, ptr("printer._http._tcp.local"))],
        ),
        T0,
    );
    assert_eq!(
        get(&mut c, "_http._tcp.local", T0),
        Some((
            vec![],
            names(&["_http._tcp.local", "printer._http._tcp.local"])
        ))
    );
}

#[test]
fn reverse_lookups_list_every_name_of_an_address() {
    let mut c = cache();
    for (i, name) in ["one.example", "two.example", "three.example"]
        .iter()
        .enumerate()
    {
        insert(
            &mut c,
            &a_response(name, &[rr(name, 60, a("203.0.113.9"))]),
            T0 + i as u64,
        );
    }
    let arpa = "9.113.0.203.in-addr.arpa";
    insert(
        &mut c,
        &response(arpa, PTR, &[rr(arpa, 60, ptr("ptr.example"))]),
        T0,
    );
    let (got_ips, got_names) = get(&mut c, "203.0.113.9", T0 + 5).unwrap();
    assert_eq!(got_ips, ips(&["203.0.113.9"]));
    // PTR names (below the address) first, then the names that resolve to it, first seen first.
    assert_eq!(
        got_names,
        names(&["ptr.example", "one.example", "two.example", "three.example"])
    );
}

#[test]
fn mx_and_srv_targets() {
    let mut c = cache();
    insert(
        &mut c,
        &response(
            "example.com",
            MX,
            &[
                rr("example.com", 300, mx(10, "mx1.example.com")),
                rr("example.com", 300, mx(20, "mx2.example.com")),
            ],
        ),
        T0,
    );
    insert(
        &mut c,
        &a_response(
            "mx1.example.com",
            &[rr("mx1.example.com", 300, a("198.51.100.25"))],
        ),
        T0,
    );
    assert_eq!(
        get(&mut c, "example.com", T0),
        Some((
            ips(&["198.51.100.25"]),
            names(&["example.com", "mx1.example.com", "mx2.example.com"])
        ))
    );
    assert_eq!(
        get(&mut c, "198.51.100.25", T0),
        Some((
            ips(&["198.51.100.25"]),
            names(&["mx1.example.com", "example.com"])
        ))
    );
    insert(
        &mut c,
        &response(
            "_xmpp._tcp.example.com",
            SRV,
            &[rr(
                "_xmpp._tcp.example.com",
                300,
                srv(5, 0, 5222, "xmpp.example.com"),
            )],
        ),
        T0,
    );
    assert_eq!(
        get(&mut c, "_xmpp._tcp.example.com", T0),
        Some((
            vec![],
            names(&["_xmpp._tcp.example.com", "xmpp.example.com"])
        ))
    );
    // Null MX / SRV "no service" targets are the root: nothing to keep.
    let got = insert(
        &mut c,
        &response(
            "nomail.example",
            MX,
            &[rr("nomail.example", 300, mx(0, ""))],
        ),
        T0,
    );
    assert_eq!((got.inserted, got.ignored), (0, 1));
    assert_eq!(get(&mut c, "nomail.example", T0), None);
}

#[test]
fn names_are_case_insensitive_and_stored_lowercase() {
    let mut c = cache();
    insert(
        &mut c,
        &a_response(
            "WwW.ExAmPlE.CoM",
            &[
                rr("WwW.ExAmPlE.CoM", 60, cname("CDN.Example.NET")),
                rr("cdn.example.net", 60, a("10.9.8.7")),
            ],
        ),
        T0,
    );
    let expected = Some((
        ips(&["10.9.8.7"]),
        names(&["www.example.com", "cdn.example.net"]),
    ));
    assert_eq!(get(&mut c, "www.example.com", T0), expected);
    assert_eq!(get(&mut c, "WWW.EXAMPLE.COM", T0), expected);
    assert_eq!(get(&mut c, "www.example.com.", T0), expected);
    // The same name in another case refreshes, not duplicates.
    let got = insert(
        &mut c,
        &a_response(
            "CDN.EXAMPLE.NET",
            &[rr("CDN.EXAMPLE.NET", 60, a("10.9.8.7"))],
        ),
        T0,
    );
    assert_eq!((got.inserted, got.refreshed), (0, 1));
    assert_eq!(c.usage().names, 2);
}

// ----- cache: time ---------------------------------------------------------------------------

#[test]
fn records_expire_exactly_at_observed_time_plus_ttl() {
    let mut c = cache();
    insert(
        &mut c,
        &a_response(
            "www.example.com",
            &[
                rr("www.example.com", 300, cname("edge.example.net")),
                rr("edge.example.net", 30, a("10.0.0.1")),
            ],
        ),
        T0,
    );
    let before = T0 + 30 * SEC - 1;
    assert_eq!(
        get(&mut c, "www.example.com", before),
        Some((
            ips(&["10.0.0.1"]),
            names(&["www.example.com", "edge.example.net"])
        ))
    );
    assert!(get(&mut c, "10.0.0.1", before).is_some());
    // At exactly +30 s the A record is gone; the CNAME (300 s) is still answered.
    let at = T0 + 30 * SEC;
    assert_eq!(
        get(&mut c, "www.example.com", at),
        Some((vec![], names(&["www.example.com", "edge.example.net"])))
    );
    assert_eq!(get(&mut c, "10.0.0.1", at), None);
    assert!(get(&mut c, "edge.example.net", at).is_some());
    // At +300 s nothing is left to answer: fully expired is NotFound.
    assert!(get(&mut c, "www.example.com", T0 + 300 * SEC - 1).is_some());
    assert_eq!(get(&mut c, "www.example.com", T0 + 300 * SEC), None);
    assert_eq!(get(&mut c, "edge.example.net", T0 + 300 * SEC), None);
    // Still held until swept; purge drops all of it.
    assert_eq!(c.len(), 2);
    assert_eq!(c.purge_expired(T0 + 300 * SEC), 2);
    assert_eq!(c.len(), 0);
    assert_eq!(c.usage().addresses, 0);
    let s = c.stats();
    assert_eq!(
        (s.links_expired, s.names_expired, s.addresses_expired),
        (2, 2, 1)
    );
    assert_eq!(c.purge_expired(T0 + 400 * SEC), 0);
}

#[test]
fn a_record_seen_again_is_refreshed_not_duplicated() {
    let mut c = cache();
    let packet = a_response("r.example", &[rr("r.example", 60, a("10.0.0.2"))]);
    insert(&mut c, &packet, T0);
    let got = insert(&mut c, &packet, T0 + 50 * SEC);
    assert_eq!((got.inserted, got.refreshed), (0, 1));
    assert_eq!(c.usage().links, 1);
    // Alive until 50 + 60 s.
    assert!(get(&mut c, "r.example", T0 + 109 * SEC).is_some());
    assert_eq!(get(&mut c, "r.example", T0 + 110 * SEC), None);
    // A later copy with a smaller TTL (a resolver's countdown) never shortens it.
    let mut c = cache();
    insert(&mut c, &packet, T0);
    let short = a_response("r.example", &[rr("r.example", 5, a("10.0.0.2"))]);
    insert(&mut c, &short, T0 + SEC);
    assert!(get(&mut c, "r.example", T0 + 59 * SEC).is_some());
    assert_eq!(c.stats().records_refreshed, 1);
}

// ----- cache: what is cached -------------------------------------------------------------------

#[test]
fn only_answered_single_question_responses_are_cached() {
    let mut c = cache();
    let answer = rr("q.example", 60, a("10.0.0.3"));
    let build = |flags: u16, questions: &[&str], answers: &[Rr]| {
        let mut b = Builder::new(9, flags);
        for q in questions {
            b.question(q, A);
        }
        for r in answers {
            b.answer(r);
        }
        b.finish()
    };
    let cases = [
        (
            build(QUERY, &["q.example"], std::slice::from_ref(&answer)),
            MessageOutcome::NotAResponse,
        ),
        (
            build(RESPONSE, &["q.example"], &[]),
            MessageOutcome::NoAnswers,
        ),
        (
            build(RESPONSE, &[], std::slice::from_ref(&answer)),
            MessageOutcome::NotOneQuestion,
        ),
        (
            build(
                RESPONSE,
                &["q.example", "q.example"],
                std::slice::from_ref(&answer),
            ),
            MessageOutcome::NotOneQuestion,
        ),
        (
            build(RESPONSE | 2, &["q.example"], std::slice::from_ref(&answer)),
            MessageOutcome::ErrorResponse,
        ),
        (
            build(
                RESPONSE | (5 << 11),
                &["q.example"],
                std::slice::from_ref(&answer),
            ),
            MessageOutcome::NotAStandardQuery,
        ),
    ];
    for (i, (packet, outcome)) in cases.iter().enumerate() {
        assert_eq!(insert(&mut c, packet, T0).outcome, *outcome, "case {i}");
    }
    assert_eq!(c.stats().messages_ignored, cases.len() as u64);
    assert!(c.is_empty());
    // A question of class CH.
    let mut chaos = build(RESPONSE, &["q.example"], std::slice::from_ref(&answer));
    chaos[12 + 11 + 3] = 3; // qclass low byte ("q.example" is 11 bytes in wire form)
    assert_eq!(
        insert(&mut c, &chaos, T0).outcome,
        MessageOutcome::NotInternetClass
    );
    // NXDOMAIN with a CNAME chain: the chain is true and is kept.
    let nx = build(
        RESPONSE | 3,
        &["alias.example"],
        &[rr("alias.example", 60, cname("gone.example"))],
    );
    assert_eq!(insert(&mut c, &nx, T0).outcome, MessageOutcome::Cached);
    assert!(get(&mut c, "alias.example", T0).is_some());
    // A truncated (TC) response still carries whole records.
    let tc = build(
        RESPONSE | 0x0200,
        &["q.example"],
        std::slice::from_ref(&answer),
    );
    assert_eq!(insert(&mut c, &tc, T0).outcome, MessageOutcome::Cached);
    assert_eq!(c.stats().messages_cached, 2);
}

#[test]
fn records_off_the_questions_chain_are_not_cached() {
    let mut c = cache();
    let got = insert(
        &mut c,
        &a_response(
            "www.bank.example",
            &[
                rr("evil.example", 600, a("6.6.6.6")),
                rr("www.bank.example", 60, cname("edge.bank.example")),
                rr("edge.bank.example", 60, a("10.1.1.1")),
                rr("other.bank.example", 60, a("6.6.6.7")),
            ],
        ),
        T0,
    );
    assert_eq!((got.inserted, got.ignored), (2, 2));
    assert_eq!(c.stats().records_out_of_chain, 2);
    assert_eq!(get(&mut c, "evil.example", T0), None);
    assert_eq!(get(&mut c, "6.6.6.6", T0), None);
    assert_eq!(get(&mut c, "6.6.6.7", T0), None);
    assert!(get(&mut c, "10.1.1.1", T0).is_some());
}

#[test]
fn unusable_records_are_ignored_and_counted() {
    let mut c = cache();
    let q = "z.example";
    let mut chaos = rr(q, 60, a("10.0.0.4"));
    chaos.class = 3;
    let got = insert(
        &mut c,
        &a_response(
            q,
            &[
                rr(q, 0, a("10.0.0.5")),                      // TTL 0: nothing to keep
                rr(q, 0x8000_0000, a("10.0.0.6")),            // RFC 2181: means 0
                rr(q, 60, Data::Raw(TXT, b"\x01x".to_vec())), // other type
                chaos,                                        // other class
                rr(q, 60, a("10.0.0.7")),                     // kept
            ],
        ),
        T0,
    );
    assert_eq!((got.inserted, got.ignored), (1, 4));
    // A label holding a '.' byte cannot be told apart from two labels: not kept.
    let mut b = Builder::new(1, RESPONSE);
    b.question(q, A)
        .raw(b"\xC0\x0C\x00\x05\x00\x01\x00\x00\x00\x3C\x00\x07\x03a.b\x01c\x00")
        .count(1, 1);
    let got = insert(&mut c, &b.finish(), T0);
    assert_eq!((got.inserted, got.ignored), (0, 1));
    // Nor a name that is not UTF-8.
    let mut b = Builder::new(1, RESPONSE);
    b.question(q, A)
        .raw(b"\xC0\x0C\x00\x05\x00\x01\x00\x00\x00\x3C\x00\x04\x02\xFF\xFE\x00")
        .count(1, 1);
    let got = insert(&mut c, &b.finish(), T0);
    assert_eq!((got.inserted, got.ignored), (0, 1));
    assert_eq!(c.stats().records_ignored, 6);
}

#[test]
fn malformed_packets_are_rejected_and_counted() {
    let mut c = cache();
    let mut b = Builder::new(1, RESPONSE);
    b.question("x.example", A)
        .raw(&[1, b'a', 0xC0, 27, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4])
        .count(1, 1);
    assert_eq!(
        c.insert_packet(&b.finish(), HOST, T0),
        Err(WireError::PointerLoop)
    );
    assert_eq!(
        c.insert_packet(&[1, 2, 3], HOST, T0 + 1),
        Err(WireError::Truncated)
    );
    assert_eq!(c.stats().messages_rejected, 2);
    let m = c.metrics();
    assert_eq!((m.error_count, m.success_count), (2, 0));
    assert_eq!(m.last_access, T0 + 1);
    assert!(c.is_empty());
}

// ----- cache: answers, metrics, health ----------------------------------------------------

#[test]
fn queries_that_cannot_name_anything_are_invalid() {
    let mut c = cache();
    for q in ["", ".", &"a".repeat(254)] {
        let e = c.get_dns_response(q, T0).unwrap_err();
        assert!(e.is(ErrorKind::InvalidArgument), "{q:?}");
        assert_eq!(e.operation, "get_dns_response");
    }
    // 253 bytes (plus a trailing dot) is a possible name: just not found.
    let longest = format!("{}.", "a".repeat(253));
    assert!(
        c.get_dns_response(&longest, T0)
            .unwrap_err()
            .is(ErrorKind::NotFound)
    );
    let m = c.metrics();
    assert_eq!((m.error_count, m.success_count, m.cache_misses), (3, 1, 1));
}

#[test]
fn metrics_follow_the_counting_rule() {
    let mut c = cache();
    insert(
        &mut c,
        &a_response("m.example", &[rr("m.example", 60, a("10.0.0.8"))]),
        T0,
    );
    get(&mut c, "m.example", T0 + 1);
    get(&mut c, "10.0.0.8", T0 + 2);
    get(&mut c, "missing.example", T0 + 3);
    get(&mut c, "m.example", T0 + 60 * SEC); // expired: a miss
    let _ = c.get_dns_response("", T0 + 4);
    let m = c.metrics();
    assert_eq!(m.item_count, 1);
    assert_eq!(m.cache_hits, 2);
    assert_eq!(m.cache_misses, 2);
    assert_eq!(m.error_count, 1);
    assert_eq!(m.success_count, 1 + 4); // the insert, then four answered lookups
    assert_eq!(m.last_access, T0 + 60 * SEC);
    assert_eq!(c.health(T0).status, HealthStatus::Healthy);
    assert!(c.health(T0).message.is_empty());
    assert_eq!(c.name(), "dns");
}

#[test]
fn answers_are_bounded_and_say_when_cut() {
    let mut c = cache();
    let answers: Vec<Rr> = (0..40)
        .map(|i| rr("many.example", 60, a(&format!("10.2.0.{i}"))))
        .collect();
    insert(&mut c, &a_response("many.example", &answers), T0);
    let v = c.get_dns_response("many.example", T0).unwrap();
    assert_eq!(v.ips().len(), MAX_RESPONSE_IPS);
    assert!(v.truncated);
    assert_eq!(v.ips()[0], ip("10.2.0.0"));
    let owned = v.to_response();
    assert_eq!(owned.query, "many.example");
    assert_eq!(owned.ips.len(), MAX_RESPONSE_IPS);
    assert_eq!(owned.domains, vec!["many.example".to_string()]);
    assert!(owned.truncated);
    assert_eq!(c.stats().responses_truncated, 1);
    let v = c.get_dns_response("10.2.0.39", T0).unwrap();
    assert!(!v.truncated);
}

// ----- cache: bounds and eviction --------------------------------------------------------------

fn small(max_names: usize, max_addresses: usize, max_links: usize) -> DnsCache {
    DnsCache::new(DnsCacheConfig {
        max_names,
        max_addresses,
        max_links,
        name_bytes: max_names * 24,
        hash_seed: 99,
        trusted_answers_per_sec: u32::MAX,
        ..DnsCacheConfig::default()
    })
}

fn host(i: usize) -> String {
    format!("host{i}.example")
}

fn host_packet(i: usize, ttl: u32) -> Vec<u8> {
    let name = host(i);
    a_response(
        &name,
        &[rr(&name, ttl, a(&format!("10.3.{}.{}", i / 250, i % 250)))],
    )
}

#[test]
fn least_recently_used_names_go_first_and_take_their_edges() {
    let mut c = small(4, 16, 16);
    for i in 0..4 {
        insert(&mut c, &host_packet(i, 600), T0 + i as u64);
    }
    // host0 is used again: host1 becomes the least recent.
    assert!(get(&mut c, &host(0), T0 + 10).is_some());
    insert(&mut c, &host_packet(4, 600), T0 + 11);
    assert_eq!(get(&mut c, &host(1), T0 + 12), None);
    // Its address went with it: no dangling reverse entry.
    assert_eq!(get(&mut c, "10.3.0.1", T0 + 12), None);
    for i in [0, 2, 3, 4] {
        assert!(get(&mut c, &host(i), T0 + 12).is_some(), "{i}");
    }
    let s = c.stats();
    assert_eq!(
        (s.names_evicted, s.links_evicted, s.addresses_evicted),
        (1, 1, 1)
    );
    assert_eq!(c.usage().addresses, 4);
    assert_eq!(c.usage().links, 4);
    assert_eq!(c.health(T0).status, HealthStatus::Healthy);
    assert!(!c.health(T0).message.is_empty());
}

#[test]
fn expired_entries_go_before_least_recently_used_ones() {
    let mut c = small(4, 16, 16);
    insert(&mut c, &host_packet(0, 600), T0);
    insert(&mut c, &host_packet(1, 600), T0);
    insert(&mut c, &host_packet(2, 10), T0); // expires at T0 + 10 s
    insert(&mut c, &host_packet(3, 600), T0);
    assert!(get(&mut c, &host(2), T0 + 9 * SEC).is_some()); // most recent now
    insert(&mut c, &host_packet(4, 600), T0 + 10 * SEC);
    // host2 was the most recently used but had expired: it went, host0 (LRU) stayed.
    assert!(get(&mut c, &host(0), T0 + 10 * SEC).is_some());
    assert_eq!(c.stats().names_expired, 1);
    assert_eq!(c.stats().names_evicted, 0);
    assert_eq!(c.len(), 4);
}

#[test]
fn a_chain_evicted_at_its_head_keeps_answering_from_its_tail() {
    let mut c = small(3, 4, 8);
    insert(
        &mut c,
        &a_response(
            "www.example.com",
            &[
                rr("www.example.com", 600, cname("a.example.net")),
                rr("a.example.net", 600, cname("b.cdn.net")),
                rr("b.cdn.net", 600, a("1.2.3.4")),
            ],
        ),
        T0,
    );
    // One more name: the chain's head (least recent) goes, with its link.
    insert(&mut c, &host_packet(7, 600), T0 + 1);
    assert_eq!(get(&mut c, "www.example.com", T0 + 2), None);
    assert_eq!(
        get(&mut c, "1.2.3.4", T0 + 2),
        Some((ips(&["1.2.3.4"]), names(&["b.cdn.net", "a.example.net"])))
    );
    assert_eq!(c.usage().links, 3);
}

#[test]
fn address_and_link_pools_are_bounded_too() {
    // Few addresses: a name with many A records pushes older names out.
    let mut c = small(8, 3, 16);
    insert(&mut c, &host_packet(0, 600), T0);
    let answers: Vec<Rr> = (0..3)
        .map(|i| rr("wide.example", 600, a(&format!("10.4.0.{i}"))))
        .collect();
    let got = insert(&mut c, &a_response("wide.example", &answers), T0 + 1);
    assert_eq!(got.inserted, 3);
    assert_eq!(get(&mut c, &host(0), T0 + 2), None);
    assert_eq!(c.usage().addresses, 3);
    // Few links: same.
    let mut c = small(8, 8, 2);
    insert(&mut c, &host_packet(0, 600), T0);
    let got = insert(&mut c, &a_response("wide.example", &answers), T0 + 1);
    // The owner's own links cannot be evicted while it is being stored: one is dropped.
    assert_eq!((got.inserted, got.dropped), (2, 1));
    assert_eq!(c.stats().records_dropped, 1);
    assert_eq!(c.usage().links, 2);
    assert_eq!(get(&mut c, &host(0), T0 + 2), None);
}

#[test]
fn a_name_longer_than_the_arena_is_dropped_not_fatal() {
    let mut c = DnsCache::new(DnsCacheConfig {
        max_names: 4,
        max_addresses: 4,
        max_links: 4,
        name_bytes: 16,
        hash_seed: 1,
        trusted_answers_per_sec: u32::MAX,
        ..DnsCacheConfig::default()
    });
    let long = "a-rather-long-name.example";
    let got = insert(
        &mut c,
        &a_response(long, &[rr(long, 60, a("10.5.0.1"))]),
        T0,
    );
    assert_eq!((got.inserted, got.dropped), (0, 1));
    assert!(c.is_empty());
    assert_eq!(c.usage().addresses, 0); // the address created for it was not left behind
    insert(&mut c, &host_packet(1, 60), T0);
    assert_eq!(c.len(), 1);
}

#[test]
fn clear_forgets_everything() {
    let mut c = cache();
    insert(&mut c, &host_packet(1, 60), T0);
    insert(&mut c, &host_packet(2, 60), T0);
    c.clear();
    assert!(c.is_empty());
    assert_eq!(c.usage(), Default::default());
    assert_eq!(get(&mut c, &host(1), T0), None);
    insert(&mut c, &host_packet(1, 60), T0);
    assert!(get(&mut c, &host(1), T0).is_some());
}

#[test]
fn memory_is_reserved_once_and_reported() {
    let mut c = DnsCache::new(DnsCacheConfig::default());
    let reserved = c.bytes_reserved();
    let cap = c.config_capacity();
    assert_eq!(
        (cap.names, cap.addresses, cap.links, cap.name_bytes),
        (5_000, 10_000, 20_000, 160_000)
    );
    // The documented budget: under 512 bytes per name slot, everything included.
    assert_eq!(c.bytes_per_name(), reserved / 5_000);
    assert!(c.bytes_per_name() < 512, "{}", c.bytes_per_name());
    eprintln!(
        "dns cache: {} bytes per name, {} in total",
        c.bytes_per_name(),
        reserved
    );
    assert!(reserved > cap.name_bytes + cap.links * 16, "{reserved}");
    for i in 0..6_000 {
        insert(&mut c, &host_packet(i, 60), T0);
    }
    assert_eq!(c.bytes_reserved(), reserved);
}

#[test]
fn driven_far_past_capacity_without_allocating() {
    const NAMES: usize = 32;
    let mut c = small(NAMES, 24, 48);
    let cap = c.config_capacity();
    // Prepared up front: chains, plain names, PTRs, refreshes; 100x the name capacity.
    let mut packets = Vec::new();
    for i in 0..NAMES * 100 {
        let p = match i % 4 {
            0 | 1 => host_packet(i, 600),
            2 => a_response(
                &host(i),
                &[
                    rr(&host(i), 600, cname(&format!("edge{i}.cdn.example"))),
                    rr(
                        &format!("edge{i}.cdn.example"),
                        600,
                        a(&format!("10.6.{}.{}", i / 250, i % 250)),
                    ),
                    rr(
                        &format!("edge{i}.cdn.example"),
                        600,
                        aaaa(&format!("2001:db8::{i:x}")),
                    ),
                ],
            ),
            _ => {
                let arpa = format!("{}.{}.7.10.in-addr.arpa", i % 250, i / 250);
                response(&arpa, PTR, &[rr(&arpa, 600, ptr(&host(i)))])
            }
        };
        packets.push(p);
    }
    let queries: Vec<String> = (0..NAMES * 100).map(host).collect();
    let mut max_seen = (0, 0, 0, 0);
    let (count, ()) = support::count_allocations(|| {
        for (i, p) in packets.iter().enumerate() {
            let now = T0 + i as u64 * SEC;
            let _ = c.insert_packet(p, HOST, now);
            let _ = c.get_dns_response(&queries[i], now);
            let _ = c.get_dns_response(&queries[i / 2], now);
            let u = c.usage();
            max_seen.0 = max_seen.0.max(u.names);
            max_seen.1 = max_seen.1.max(u.addresses);
            max_seen.2 = max_seen.2.max(u.links);
            max_seen.3 = max_seen.3.max(u.name_bytes);
        }
    });
    assert_eq!(count.allocations, 0);
    assert!(max_seen.0 <= cap.names && c.len() <= c.capacity());
    assert!(max_seen.1 <= cap.addresses, "{max_seen:?}");
    assert!(max_seen.2 <= cap.links, "{max_seen:?}");
    assert!(max_seen.3 <= cap.name_bytes, "{max_seen:?}");
    // Kept full: some pool is at its bound (here addresses, the scarcest).
    let u = c.usage();
    assert!(
        u.names == cap.names || u.addresses == cap.addresses || u.links == cap.links,
        "{u:?}"
    );
    let s = c.stats();
    assert!(s.names_evicted > 0 && s.links_evicted > 0 && s.addresses_evicted > 0);
    assert_eq!(s.names_expired, 0);
    // Eviction order: the most recent names survive, the oldest are gone.
    let last = NAMES * 100 - 1;
    let now = T0 + last as u64 * SEC;
    assert!(get(&mut c, &host(last), now).is_some());
    assert_eq!(get(&mut c, &host(0), now), None);
    assert_eq!(get(&mut c, &host(last - NAMES * 2), now), None);
}

#[test]
fn zero_allocation_holds_for_expiry_sweeps_too() {
    let mut c = small(16, 16, 32);
    let packets: Vec<Vec<u8>> = (0..400).map(|i| host_packet(i, 5)).collect();
    let (count, ()) = support::count_allocations(|| {
        for (i, p) in packets.iter().enumerate() {
            let _ = c.insert_packet(p, HOST, T0 + i as u64 * SEC);
        }
    });
    assert_eq!(count.allocations, 0);
    assert!(c.len() <= 16);
    // With a 5 s TTL and one packet a second, space always came from expired entries.
    let s = c.stats();
    assert_eq!(s.names_evicted, 0);
    assert!(s.names_expired > 300, "{s:?}");
}

#[test]
fn ingested_names_are_exactly_the_answers() {
    // A cross-check of the whole pipeline on a random-looking mix: every stored name is
    // answerable and nothing else is.
    let mut c = cache();
    let mut expected = BTreeSet::new();
    for i in 0..20 {
        let name = format!("n{i}.mix.example");
        insert(
            &mut c,
            &a_response(&name, &[rr(&name, 60, a(&format!("10.8.0.{i}")))]),
            T0,
        );
        expected.insert(name);
    }
    for name in &expected {
        assert!(get(&mut c, name, T0).is_some());
    }
    assert_eq!(c.len(), expected.len());
    assert_eq!(get(&mut c, "n20.mix.example", T0), None);
}

#[test]
fn a_chain_continues_past_a_cname_that_is_not_kept() {
    let mut c = cache();
    let got = insert(
        &mut c,
        &a_response(
            "head.example",
            &[
                rr("head.example", 0, cname("tail.example")), // TTL 0: not kept
                rr("tail.example", 60, a("10.0.0.9")),        // still on the chain
            ],
        ),
        T0,
    );
    assert_eq!((got.inserted, got.ignored), (1, 1));
    assert_eq!(c.stats().records_out_of_chain, 0);
    assert_eq!(get(&mut c, "head.example", T0), None);
    assert_eq!(
        get(&mut c, "10.0.0.9", T0),
        Some((ips(&["10.0.0.9"]), names(&["tail.example"])))
    );
}

#[cfg(feature = "serde")]
#[test]
fn owned_answers_config_and_stats_round_trip_through_postcard() {
    let mut c = cache();
    insert(
        &mut c,
        &a_response(
            "www.example.com",
            &[
                rr("www.example.com", 60, cname("edge.example.net")),
                rr("edge.example.net", 60, aaaa("2001:db8::5")),
                rr("edge.example.net", 60, a("10.0.0.5")),
            ],
        ),
        T0,
    );
    let owned = c
        .get_dns_response("WWW.example.com", T0)
        .unwrap()
        .to_response();
    let bytes = postcard::to_allocvec(&owned).unwrap();
    let back: watchpost_core::dns::DnsResponse = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, owned);
    assert_eq!(back.query, "WWW.example.com");
    assert_eq!(back.ips, ips(&["2001:db8::5", "10.0.0.5"]));
    assert_eq!(
        back.domains,
        names(&["www.example.com", "edge.example.net"])
    );
    let config = DnsCacheConfig::default();
    let bytes = postcard::to_allocvec(&config).unwrap();
    assert_eq!(
        postcard::from_bytes::<DnsCacheConfig>(&bytes).unwrap(),
        config
    );
    let stats = c.stats();
    let bytes = postcard::to_allocvec(&stats).unwrap();
    assert_eq!(
        postcard::from_bytes::<watchpost_core::dns::DnsCacheStats>(&bytes).unwrap(),
        stats
    );
}
