//! DNS answers only for queries that were asked, against the real kernel (root; set
//! `WATCHPOST_SKIP_EBPF_TESTS=1` to skip on purpose): plain UDP sockets play client and server
//! on loopback addresses with port 53, so every packet is chosen exactly.
//!
//! - an answer with no query is refused and counted as unmatched;
//! - a query's answer goes on once, with the host's network namespace, trusted and matched;
//! - replies from another server address, with another transaction ID, with another question, to
//!   another client socket, a second copy of the good one, and one after the timeout are refused;
//! - an answer longer than the 4 KiB capture goes on cut, and is counted as oversized.
//!
//! Other engineers' programs and DNS traffic run on this kernel too: names and transaction IDs
//! are unique to this run, counters are compared as "grew by at least", and the marker of the
//! end is our own last good answer.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use watchpost_ebpf::{Collector, CollectorOptions, DnsAnswer, DnsMatchingOptions, KernelEvent};

const SKIP_VAR: &str = "WATCHPOST_SKIP_EBPF_TESTS";
/// The collector's query timeout in this test: short, so the late answer can be tested.
const TIMEOUT: Duration = Duration::from_secs(2);

fn name_wire(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A standard query for `name` A.
fn query(txid: u16, name: &str) -> Vec<u8> {
    let mut out = txid.to_be_bytes().to_vec();
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend(name_wire(name));
    out.extend_from_slice(&[0, 1, 0, 1]);
    out
}

/// A response to `name` A with one answer `ip`, TTL 300.
fn answer(txid: u16, name: &str, ip: Ipv4Addr) -> Vec<u8> {
    let mut out = txid.to_be_bytes().to_vec();
    out.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    out.extend(name_wire(name));
    out.extend_from_slice(&[0, 1, 0, 1]);
    out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4]);
    out.extend_from_slice(&ip.octets());
    out
}

/// Whether `address`:53 is bound (from /proc/net/udp).
fn port_53_in_use(address: Ipv4Addr) -> bool {
    let hex = format!("{:08X}:0035", u32::from_ne_bytes(address.octets()));
    std::fs::read_to_string("/proc/net/udp")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(hex.as_str()))
}

/// Two sockets bound to free loopback addresses on port 53.
fn two_servers() -> (UdpSocket, UdpSocket) {
    let mut bound = (120..200u8)
        .map(|last| Ipv4Addr::new(127, 0, 53, last))
        .filter(|a| !port_53_in_use(*a))
        .filter_map(|a| UdpSocket::bind(SocketAddr::new(IpAddr::V4(a), 53)).ok());
    (bound.next().unwrap(), bound.next().unwrap())
}

#[derive(Default)]
struct Log {
    answers: Mutex<Vec<DnsAnswer>>,
    grew: Condvar,
}

impl Log {
    fn wait_for(&self, txid: u16) -> Vec<DnsAnswer> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut answers = self.answers.lock().unwrap();
        loop {
            if answers.iter().any(|a| a.query_id() == Some(txid)) {
                return answers.clone();
            }
            let now = Instant::now();
            assert!(now < deadline, "answer {txid} never delivered");
            answers = self.grew.wait_timeout(answers, deadline - now).unwrap().0;
        }
    }
}

fn exchange(client: &UdpSocket, server: &UdpSocket, to: SocketAddr, packet: &[u8]) {
    server.send_to(packet, to).unwrap();
    let mut buf = [0u8; 512];
    // Delivered to the socket: the ingress program has run by now.
    client.recv(&mut buf).unwrap();
}

#[test]
fn only_answers_to_outstanding_queries_go_on() {
    if std::env::var_os(SKIP_VAR).is_some_and(|v| v == "1") {
        eprintln!("skipped on purpose ({SKIP_VAR}=1)");
        return;
    }
    let collector = Collector::load(CollectorOptions {
        process_events: false,
        module_loads: false,
        dns_matching: DnsMatchingOptions {
            query_timeout: TIMEOUT,
            ..DnsMatchingOptions::default()
        },
        ..CollectorOptions::default()
    })
    .unwrap_or_else(|e| panic!("the kernel refused the collector (run as root): {e}"));
    assert!(collector.attachments().dns_queries_matched);
    let counters = collector.dns_counter_reader();
    let host = collector.trusted_namespaces().host();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let log = Arc::new(Log::default());
    let mut task = {
        let _guard = runtime.enter();
        collector.spawn(64, 1024)
    };
    let pump = Arc::clone(&log);
    runtime.spawn(async move {
        while let Some(batch) = task.recv().await {
            let mut answers = pump.answers.lock().unwrap();
            answers.extend(batch.into_iter().filter_map(|e| match e {
                KernelEvent::DnsAnswer(a) => Some(a),
                _ => None,
            }));
            pump.grew.notify_all();
        }
    });

    let (server, other_server) = two_servers();
    let server_addr = server.local_addr().unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let client2 = UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&client, &client2] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    let to_client = client.local_addr().unwrap();
    let tag = std::process::id();
    // Transaction IDs unique to this run.
    let base = (tag as u16).wrapping_mul(7);
    let ids: Vec<u16> = (0..8).map(|i| base.wrapping_add(i)).collect();
    let ip = Ipv4Addr::new(192, 0, 2, 53);
    let before = counters.read().unwrap();

    // 1. An answer nobody asked for.
    let forged = format!("forged-{tag}.watchpost.test");
    exchange(&client, &server, to_client, &answer(ids[0], &forged, ip));

    // 2. A query and its answer.
    let good = format!("good-{tag}.watchpost.test");
    client.send_to(&query(ids[1], &good), server_addr).unwrap();
    let mut buf = [0u8; 512];
    server.recv(&mut buf).unwrap();
    exchange(&client, &server, to_client, &answer(ids[1], &good, ip));

    // 3. A query answered wrongly in every way first, then rightly, then again.
    let asked = format!("asked-{tag}.watchpost.test");
    client.send_to(&query(ids[2], &asked), server_addr).unwrap();
    server.recv(&mut buf).unwrap();
    exchange(
        &client,
        &other_server,
        to_client,
        &answer(ids[2], &asked, ip),
    );
    exchange(&client, &server, to_client, &answer(ids[3], &asked, ip));
    let other_name = format!("other-{tag}.watchpost.test");
    exchange(
        &client,
        &server,
        to_client,
        &answer(ids[2], &other_name, ip),
    );
    exchange(
        &client2,
        &server,
        client2.local_addr().unwrap(),
        &answer(ids[2], &asked, ip),
    );
    exchange(&client, &server, to_client, &answer(ids[2], &asked, ip));
    exchange(&client, &server, to_client, &answer(ids[2], &asked, ip));

    // 4. An answer after the timeout.
    let late = format!("late-{tag}.watchpost.test");
    client.send_to(&query(ids[4], &late), server_addr).unwrap();
    server.recv(&mut buf).unwrap();
    std::thread::sleep(TIMEOUT + Duration::from_millis(500));
    exchange(&client, &server, to_client, &answer(ids[4], &late, ip));

    // 5. An answer of 5,000 bytes (padding after its record): passed on cut, counted.
    let big = format!("big-{tag}.watchpost.test");
    client.send_to(&query(ids[6], &big), server_addr).unwrap();
    server.recv(&mut buf).unwrap();
    let mut oversized = answer(ids[6], &big, ip);
    oversized.resize(5_000, 0);
    server.send_to(&oversized, to_client).unwrap();
    let mut big_buf = [0u8; 8192];
    client.recv(&mut big_buf).unwrap();

    // 6. The marker: a good answer after everything else.
    let marker = format!("marker-{tag}.watchpost.test");
    client
        .send_to(&query(ids[5], &marker), server_addr)
        .unwrap();
    server.recv(&mut buf).unwrap();
    exchange(&client, &server, to_client, &answer(ids[5], &marker, ip));

    let answers = log.wait_for(ids[5]);
    let after = counters.read().unwrap();
    let ours: Vec<&DnsAnswer> = answers
        .iter()
        .filter(|a| a.query_id().is_some_and(|id| ids.contains(&id)))
        .filter(|a| {
            a.server.ip() == server_addr.ip()
                || a.server.ip() == other_server.local_addr().unwrap().ip()
        })
        .collect();
    let delivered: Vec<u16> = ours.iter().filter_map(|a| a.query_id()).collect();
    assert_eq!(delivered, [ids[1], ids[2], ids[6], ids[5]], "{ours:#?}");
    let cut = ours.iter().find(|a| a.query_id() == Some(ids[6])).unwrap();
    assert!(cut.is_truncated());
    assert_eq!((cut.wire_len, cut.message.len()), (5_000, 4_096));
    assert!(after.answers_oversized > before.answers_oversized);
    for a in &ours {
        assert_eq!(a.netns, host, "{a:?}");
        assert!(a.trusted_netns && a.matched, "{a:?}");
        assert_eq!(a.server, server_addr);
        assert_eq!(a.client, to_client);
    }
    let distinct: HashSet<u16> = delivered.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        delivered.len(),
        "one query admits one answer"
    );
    // Refused: the forged one, four wrong replies, the duplicate (unmatched), the late one.
    assert!(
        after.answers_unmatched >= before.answers_unmatched + 6,
        "{before:?} → {after:?}"
    );
    assert!(
        after.answers_late > before.answers_late,
        "{before:?} → {after:?}"
    );
    assert!(after.answers_matched >= before.answers_matched + 4);
    assert!(after.queries_tracked >= before.queries_tracked + 4);
    runtime.shutdown_timeout(Duration::from_secs(5));
}
