//! What DNS query matching costs, before vs after, in one run.
//!
//! For each offered rate the collector is loaded twice in turn — matching off (every answer
//! from port 53 goes on, as before matching existed) and on (the egress program records
//! queries, the ingress program looks each answer up) — and real DNS exchanges run over
//! loopback: two client threads send queries (unique IDs and names) at the offered rate to a
//! server socket on 127.0.53.x:53 and wait for each answer. Reported per run:
//! - exchanges/s achieved, answer records/s the reader saw, and records lost (ring buffer full)
//!   or refused (answers matching no query): the run fails if any of ours is neither seen nor
//!   counted;
//! - what the programs themselves cost per exchange: run time over run count from the kernel's
//!   BPF statistics (`BPF_ENABLE_STATS`, on only while the bench runs), ingress plus egress.
//!   The machine is shared, so the summary takes each mode's fastest run (least disturbed).
//!
//!
//! First, the programs alone: `BPF_PROG_TEST_RUN` runs them on crafted packets, one run per
//! call, and the kernel reports each run's duration — off: the ingress program on an answer;
//! on: the egress program on its query, then the ingress program on the answer (matched, so a
//! record goes to the reader either way). Means over 20,000 exchanges, per mode, three rounds.
//!
//! Run (root): `cargo bench -p watchpost-ebpf --bench dns_matching [-- --seconds 3]`.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use watchpost_ebpf::{Collector, CollectorOptions, DnsMatchingOptions, KernelEvent};
use watchpost_ebpf_common::program_name;

fn name_wire(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

fn query(txid: u16, name: &str) -> Vec<u8> {
    let mut out = txid.to_be_bytes().to_vec();
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend(name_wire(name));
    out.extend_from_slice(&[0, 1, 0, 1]);
    out
}

/// The answer to a query: its header and question echoed, one A record.
fn answer_to(q: &[u8]) -> Vec<u8> {
    let mut out = q.to_vec();
    out[2] = 0x81;
    out[3] = 0x80;
    out[7] = 1;
    out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1]);
    out
}

fn free_server() -> UdpSocket {
    (10..250u8)
        .map(|last| Ipv4Addr::new(127, 0, 53, last))
        .find_map(|a| UdpSocket::bind(SocketAddr::from((a, 53))).ok())
        .expect("a free 127.0.53.x:53 (run as root)")
}

/// `union bpf_attr` as `BPF_PROG_TEST_RUN` reads it (the `test` member), zero-padded.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    padding: u32,
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// Runs the skb program `prog` once on `frame` (Ethernet header first); the run's duration, ns.
fn test_run(prog: &OwnedFd, frame: &[u8]) -> u32 {
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_in: frame.as_ptr() as u64,
        data_size_in: frame.len() as u32,
        repeat: 1,
        ..TestRunAttr::default()
    };
    // SAFETY: `attr` is a valid, fully initialised `bpf_attr.test` of the size passed; the
    // packet it points to lives until the call returns, and no output buffer is given.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            size_of::<TestRunAttr>(),
        )
    };
    assert_eq!(
        rc,
        0,
        "BPF_PROG_TEST_RUN: {}",
        std::io::Error::last_os_error()
    );
    attr.duration
}

/// An Ethernet + IPv4 + UDP frame carrying `payload` from `src` to `dst`.
fn frame(src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 12];
    out.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    out.extend_from_slice(&[0x45, 0]);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    out.extend_from_slice(&src.0);
    out.extend_from_slice(&dst.0);
    out.extend_from_slice(&src.1.to_be_bytes());
    out.extend_from_slice(&dst.1.to_be_bytes());
    out.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    out
}

fn program_fd(collector: &Collector, name: &str) -> Option<OwnedFd> {
    Some(
        collector
            .ebpf()
            .program(name)?
            .fd()
            .ok()?
            .as_fd()
            .try_clone_to_owned()
            .unwrap(),
    )
}

/// Mean program time per exchange, ns, over `exchanges` injected exchanges (egress, ingress);
/// and records lost.
fn program_cost(matching: bool, exchanges: u32) -> (f64, f64, u64) {
    let collector = Collector::load(CollectorOptions {
        process_events: false,
        module_loads: false,
        dns_matching: DnsMatchingOptions {
            require_query: matching,
            ..DnsMatchingOptions::default()
        },
        ..CollectorOptions::default()
    })
    .expect("load the collector (run as root)");
    let ingress = program_fd(&collector, program_name::DNS_INGRESS).unwrap();
    let egress = matching.then(|| program_fd(&collector, program_name::DNS_EGRESS).unwrap());
    let lost = collector.lost_event_counter();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let mut collector = collector;
            runtime.block_on(async {
                while !stop.load(Ordering::Relaxed) {
                    let _ =
                        tokio::time::timeout(Duration::from_millis(20), collector.next_batch(4096))
                            .await;
                }
            });
        })
    };
    let client = ([127, 0, 0, 1], 40_000);
    let server = ([127, 0, 53, 9], 53);
    let (mut out, mut inn): (u64, u64) = (0, 0);
    for i in 0..exchanges {
        let q = query(i as u16, &format!("n{i}.cost.bench.test"));
        if let Some(egress) = &egress {
            out += u64::from(test_run(egress, &frame(client, server, &q)));
        }
        inn += u64::from(test_run(&ingress, &frame(server, client, &answer_to(&q))));
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    (
        out as f64 / f64::from(exchanges),
        inn as f64 / f64::from(exchanges),
        lost.read().unwrap().dns_answer,
    )
}

struct Outcome {
    exchanges: u64,
    seen: u64,
    lost: u64,
    refused: u64,
    seconds: f64,
    /// Program run time per exchange, ns (ingress + egress).
    ns_per_exchange: f64,
}

fn program_stats(collector: &Collector, name: &str) -> (Duration, u64) {
    match collector.ebpf().program(name).map(|p| p.info()) {
        Some(Ok(info)) => (info.run_time(), info.run_count()),
        _ => (Duration::ZERO, 0),
    }
}

fn measure(matching: bool, clients: usize, offered: f64, seconds: f64) -> Outcome {
    let collector = Collector::load(CollectorOptions {
        process_events: false,
        module_loads: false,
        dns_matching: DnsMatchingOptions {
            require_query: matching,
            ..DnsMatchingOptions::default()
        },
        ..CollectorOptions::default()
    })
    .expect("load the collector (run as root)");
    let lost_counter = collector.lost_event_counter();
    let dns_counters = collector.dns_counter_reader();
    let before_refused = dns_counters.read().unwrap();
    let stats_before: Vec<(Duration, u64)> = [program_name::DNS_INGRESS, program_name::DNS_EGRESS]
        .iter()
        .map(|p| program_stats(&collector, p))
        .collect();

    let server = Arc::new(free_server());
    let server_ip = server.local_addr().unwrap().ip();
    server
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicU64::new(0));

    // The reader: one tokio task on its own thread, counting answers from our server.
    let (reader, collector_back) = {
        let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let mut collector = collector;
            runtime.block_on(async {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(batch) =
                        tokio::time::timeout(Duration::from_millis(50), collector.next_batch(4096))
                            .await
                    else {
                        continue;
                    };
                    let ours = batch
                        .unwrap()
                        .iter()
                        .filter(|e| {
                            matches!(e, KernelEvent::DnsAnswer(a) if a.server.ip() == server_ip)
                        })
                        .count();
                    seen.fetch_add(ours as u64, Ordering::Relaxed);
                }
            });
            let _ = tx.send(collector);
        });
        (handle, rx)
    };

    // The server answers everything it receives.
    let server_thread = {
        let (server, stop) = (Arc::clone(&server), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = server.recv_from(&mut buf) {
                    let _ = server.send_to(&answer_to(&buf[..n]), from);
                }
            }
        })
    };

    let started = Instant::now();
    let server_addr = server.local_addr().unwrap();
    let exchanges: u64 = (0..clients)
        .map(|c| {
            std::thread::spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                socket
                    .set_read_timeout(Some(Duration::from_secs(1)))
                    .unwrap();
                let begin = Instant::now();
                let deadline = begin + Duration::from_secs_f64(seconds);
                let interval = Duration::from_secs_f64(clients as f64 / offered);
                let mut done = 0u64;
                let mut buf = [0u8; 512];
                while Instant::now() < deadline {
                    // Offered load: the next query is due `done` intervals after the start.
                    let due = begin + interval.mul_f64(done as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let name = format!("c{c}-{done}.bench.test");
                    socket
                        .send_to(&query(done as u16, &name), server_addr)
                        .unwrap();
                    if socket.recv(&mut buf).is_ok() {
                        done += 1;
                    }
                }
                done
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    let elapsed = started.elapsed().as_secs_f64();
    // Let the reader drain, then stop everything.
    let mut last = u64::MAX;
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        let now = seen.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    server_thread.join().unwrap();
    let collector = collector_back.recv().unwrap();
    let stats_after: Vec<(Duration, u64)> = [program_name::DNS_INGRESS, program_name::DNS_EGRESS]
        .iter()
        .map(|p| program_stats(&collector, p))
        .collect();
    let program_ns: f64 = stats_before
        .iter()
        .zip(&stats_after)
        .map(|(b, a)| (a.0.saturating_sub(b.0)).as_nanos() as f64)
        .sum();
    let after_refused = dns_counters.read().unwrap();
    Outcome {
        exchanges,
        seen: seen.load(Ordering::Relaxed),
        lost: lost_counter.read().unwrap().dns_answer,
        refused: after_refused.refused() - before_refused.refused(),
        seconds: elapsed,
        ns_per_exchange: program_ns / exchanges.max(1) as f64,
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test` runs bench targets without --bench: nothing to measure then.
        return ExitCode::SUCCESS;
    }
    let seconds: f64 = args
        .iter()
        .position(|a| a == "--seconds")
        .map(|i| args[i + 1].parse().unwrap())
        .unwrap_or(3.0);
    // Program run times are only counted while statistics are on (until this fd closes).
    let _stats =
        aya::sys::enable_stats(aya::sys::Stats::RunTime).expect("BPF_ENABLE_STATS (run as root)");
    println!("programs alone (BPF_PROG_TEST_RUN), ns per exchange:");
    let mut alone = [f64::INFINITY, f64::INFINITY];
    for round in 0..3 {
        for matching in [false, true] {
            let (egress, ingress, lost) = program_cost(matching, 20_000);
            let ns = egress + ingress;
            println!(
                "  round {round} matching {:<3} {ns:>7.0} ns (egress {egress:.0}, ingress \
                 {ingress:.0}; records lost {lost})",
                if matching { "on" } else { "off" }
            );
            let slot = &mut alone[usize::from(matching)];
            *slot = slot.min(ns);
        }
    }
    println!(
        "  fastest: off {:.0} ns, on {:.0} ns: {:.2}×\n",
        alone[0],
        alone[1],
        alone[1] / alone[0]
    );
    println!(
        "{:<10} {:>9} {:>13} {:>11} {:>6} {:>8} {:>16}",
        "matching", "offered/s", "exchanges/s", "records/s", "lost", "refused", "program ns/exch"
    );
    if args.iter().any(|a| a == "--programs-only") {
        return ExitCode::SUCCESS;
    }
    let mut costs = [Vec::new(), Vec::new()];
    let clients = 2;
    for offered in [10_000.0, 30_000.0, 60_000.0, 1e9] {
        for round in 0..2 {
            for matching in [false, true] {
                let o = measure(matching, clients, offered, seconds);
                println!(
                    "{:<10} {:>9} {:>13.0} {:>11.0} {:>6} {:>8} {:>16.0}",
                    if matching { "on" } else { "off" },
                    if offered >= 1e9 {
                        "max".to_owned()
                    } else {
                        format!("{offered:.0}")
                    },
                    o.exchanges as f64 / o.seconds,
                    o.seen as f64 / o.seconds,
                    o.lost,
                    o.refused,
                    o.ns_per_exchange
                );
                assert!(
                    o.seen + o.lost + o.refused >= o.exchanges,
                    "{} exchanges but {} seen, {} lost, {} refused",
                    o.exchanges,
                    o.seen,
                    o.lost,
                    o.refused
                );
                costs[usize::from(matching)].push(o.ns_per_exchange);
                let _ = round;
            }
        }
    }
    let fastest = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (off, on) = (fastest(&costs[0]), fastest(&costs[1]));
    println!(
        "program time per exchange, fastest run: off {off:.0} ns, on {on:.0} ns: {:.2}×",
        on / off
    );
    ExitCode::SUCCESS
}
