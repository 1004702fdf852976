//! A bounded daemon (issue 9), tried as an operator would: against the real binary, with real
//! signals, real clients and the daemon's real RSS.
//!
//! - settings above their limits are refused by `config --check` and by `run`, by key;
//! - an unknown `socket.group` fails `config --check`;
//! - every catchable signal is handled: SIGHUP reloads and never kills, SIGUSR1/2, SIGALRM and
//!   friends never kill, SIGQUIT and SIGINT stop cleanly and remove the socket;
//! - a panic in the query server restarts it (counted, shown in health);
//! - replies are bounded: an over-long reply is an error with advice, the largest documented
//!   request (4,096 symbol addresses) fits, and 250 clients asking large replies at once keep
//!   the daemon's RSS within a budget, returning after the burst.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use support::{Daemon, connect, eventually, frame, raw_exchange, read_reply, temp_dir, watchpost};

fn write_config(tag: &str, text: &str) -> PathBuf {
    let path = temp_dir(tag).join("watchpost.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn config_check_refuses_the_values_that_crashed_the_daemon_by_key() {
    let cases = [
        ("[process]\ncapacity = 100000000\n", "process.capacity"),
        ("[dns]\nmax_names = 1000000000000\n", "dns.max_names"),
        (
            "[process]\npending_capacity = 9223372036854775807\n",
            "process.pending_capacity",
        ),
        (
            "[intake]\nqueue_batches = 9223372036854775807\n",
            "intake.queue_batches",
        ),
        (
            "[collector]\nkernel_ring_bytes = 2147483648\n",
            "collector.kernel_ring_bytes",
        ),
        (
            "[socket]\nmax_clients = 9223372036854775807\n",
            "socket.max_clients",
        ),
        (
            "[socket]\ngroup = \"no-such-group-watchpost\"\n",
            "socket.group",
        ),
    ];
    for (text, key) in cases {
        let path = write_config("limits", text);
        let out = watchpost(&["config", "--check", path.to_str().unwrap()]);
        assert_eq!(out.code, Some(2), "{text}: {out:?}");
        assert!(out.stderr.contains(key), "{text}: {}", out.stderr);
    }
    // The default passes and prints its memory estimate.
    let path = write_config("limits-ok", "");
    let out = watchpost(&["config", "--check", path.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{out:?}");
    for part in ["process store", "kernel rings", "query replies", "total"] {
        assert!(out.stdout.contains(part), "{}", out.stdout);
    }
}

#[test]
fn run_refuses_a_setting_over_its_limit_before_starting() {
    let dir = temp_dir("run-limit");
    let path = dir.join("watchpost.toml");
    std::fs::write(
        &path,
        format!(
            "[daemon]\ndata_dir = \"{}\"\n[socket]\npath = \"{}\"\nmax_clients = 9223372036854775807\n",
            dir.join("data").display(),
            dir.join("s.sock").display()
        ),
    )
    .unwrap();
    let out = watchpost(&["run", "--config", path.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("socket.max_clients"), "{}", out.stderr);
    assert!(!out.stderr.contains("watchpost ready"), "{}", out.stderr);
    assert!(!dir.join("s.sock").exists());
}

fn answers(daemon: &Daemon) -> bool {
    raw_exchange(&daemon.socket, &frame(br#"{"command":"stores"}"#))
        .is_some_and(|r| r["status"] == "ok")
}

#[test]
fn signals_that_mean_nothing_never_kill_and_sighup_reloads() {
    let mut daemon = Daemon::start("signals", "[collector]\nebpf = \"off\"\n");
    for signal in [
        "USR1", "USR2", "ALRM", "VTALRM", "PROF", "IO", "PWR", "WINCH", "URG", "XCPU", "TTIN",
    ] {
        daemon.signal(signal);
        assert!(
            eventually(Duration::from_secs(30), || answers(&daemon)),
            "SIG{signal} stopped the daemon:\n{}",
            daemon.stderr()
        );
    }
    assert!(
        eventually(Duration::from_secs(30), || daemon
            .stderr()
            .contains("SIGUSR1")),
        "{}",
        daemon.stderr()
    );
    assert!(
        daemon.stderr().contains("signal ignored"),
        "{}",
        daemon.stderr()
    );

    // SIGHUP: the log level is applied live, a socket limit needs a restart; both are said.
    let config = std::fs::read_to_string(daemon.config_path()).unwrap();
    let changed = config.replace("log_level = \"info\"", "log_level = \"debug\"")
        + "\n[socket]\nmax_clients = 4\n";
    // The merged file already has a [socket] table: edit it in place instead.
    let changed = if changed.matches("[socket]").count() > 1 {
        config
            .replace("log_level = \"info\"", "log_level = \"debug\"")
            .replace("[socket]\n", "[socket]\nmax_clients = 4\n")
    } else {
        changed
    };
    std::fs::write(daemon.config_path(), changed).unwrap();
    daemon.signal("HUP");
    assert!(
        eventually(Duration::from_secs(30), || daemon
            .stderr()
            .contains("SIGHUP: configuration reloaded")),
        "{}",
        daemon.stderr()
    );
    let log = daemon.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("SIGHUP: configuration reloaded"))
        .unwrap();
    assert!(line.contains("daemon.log_level"), "{line}");
    assert!(line.contains("socket.max_clients"), "{line}");
    assert!(answers(&daemon));

    // A broken file is refused and the daemon keeps running.
    std::fs::write(daemon.config_path(), "[process]\ncapacity = 0\n").unwrap();
    daemon.signal("HUP");
    assert!(
        eventually(Duration::from_secs(30), || daemon
            .stderr()
            .contains("configuration not reloaded")),
        "{}",
        daemon.stderr()
    );
    assert!(answers(&daemon));
    assert!(daemon.terminate().success());
}

#[test]
fn sigquit_and_sigint_stop_cleanly_and_remove_the_socket() {
    for signal in ["QUIT", "INT"] {
        let mut daemon = Daemon::start("stop", "[collector]\nebpf = \"off\"\n");
        daemon.signal(signal);
        let status = daemon
            .wait_exit(Duration::from_secs(60))
            .unwrap_or_else(|| panic!("SIG{signal} did not stop the daemon"));
        assert!(
            status.success(),
            "SIG{signal}: {status}\n{}",
            daemon.stderr()
        );
        assert!(
            !daemon.socket.exists(),
            "socket left behind after SIG{signal}"
        );
        let log = daemon.stderr();
        assert!(log.contains(&format!("signal=\"SIG{signal}\"")), "{log}");
        assert!(log.contains("query socket closed and removed"), "{log}");
    }
}

#[test]
fn a_panicking_query_server_is_restarted_and_shown_in_health() {
    // The first accepted connection makes the server panic (fault injection); start-up waits
    // until the socket answers, which is after the restart.
    let daemon = Daemon::start_with_env(
        "server-panic",
        "[collector]\nebpf = \"off\"\n",
        &[("WATCHPOST_FAULT", "server-panic")],
    );
    let health = daemon.query_json(&["health"]);
    let entry = health
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["store"] == "daemon")
        .cloned()
        .unwrap();
    assert_eq!(entry["status"], "degraded", "{entry}");
    assert!(
        entry["message"]
            .as_str()
            .unwrap()
            .contains("task restarts: server 1"),
        "{entry}"
    );
    let metrics = daemon.query_json(&["metrics"]);
    assert_eq!(metrics["daemon"]["task_restarts"]["server"], 1, "{metrics}");
    let log = daemon.stderr();
    assert!(log.contains("server panicked"), "{log}");
    assert!(log.contains("restarting it"), "{log}");
}

/// Addresses of real kernel symbols (this test runs as root, so kallsyms shows them).
fn kernel_addresses(n: usize) -> Vec<u64> {
    let text = std::fs::read_to_string("/proc/kallsyms").unwrap();
    let addresses: Vec<u64> = text
        .lines()
        .filter_map(|l| u64::from_str_radix(l.split(' ').next()?, 16).ok())
        .filter(|a| *a != 0)
        .take(n)
        .collect();
    assert_eq!(
        addresses.len(),
        n,
        "kallsyms hides addresses: run as root (or WATCHPOST_SKIP_PRIVILEGED_TESTS=1)"
    );
    addresses
}

fn skip_privileged() -> bool {
    std::env::var_os("WATCHPOST_SKIP_PRIVILEGED_TESTS").is_some()
}

fn symbols_request(addresses: &[u64]) -> Vec<u8> {
    frame(
        serde_json::json!({"command": "symbols", "addresses": addresses})
            .to_string()
            .as_bytes(),
    )
}

#[test]
fn the_largest_documented_batch_fits_and_an_over_long_reply_says_how_to_ask_for_less() {
    let daemon = Daemon::start(
        "replies",
        "[collector]\nebpf = \"off\"\n[socket]\nmax_reply_bytes = 65536\n",
    );
    // 4,096 addresses of 20 digits each: the largest request the documentation promises.
    let largest: Vec<u64> = (0..4_096u64).map(|i| u64::MAX - i).collect();
    let request = symbols_request(&largest);
    assert!(request.len() > 65_536, "the batch is the big one");
    let reply = raw_exchange(&daemon.socket, &request).expect("a reply");
    assert_eq!(reply["status"], "ok", "{reply}");

    if skip_privileged() {
        return;
    }
    let reply =
        raw_exchange(&daemon.socket, &symbols_request(&kernel_addresses(2_000))).expect("a reply");
    assert_eq!(reply["status"], "error", "{reply}");
    assert_eq!(reply["error"]["kind"], "too_large", "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("socket.max_reply_bytes (65536 bytes)"),
        "{message}"
    );
    assert!(message.contains("fewer addresses"), "{message}");
    // The connection's owner can go on asking (smaller) questions.
    assert!(answers(&daemon));
    let metrics = daemon.query_json(&["metrics"]);
    assert_eq!(metrics["daemon"]["replies_too_large"], 1, "{metrics}");
}

#[test]
fn two_hundred_fifty_clients_asking_large_replies_stay_within_a_memory_budget() {
    if skip_privileged() {
        return;
    }
    const CLIENTS: usize = 250;
    let daemon = Daemon::start(
        "reply-burst",
        "[collector]\nebpf = \"off\"\n[socket]\nmax_clients = 256\nread_timeout_ms = 300000\nwrite_timeout_ms = 300000\n",
    );
    let request = symbols_request(&kernel_addresses(4_096));
    // One answer first: its size, and the daemon's RSS once it has built one.
    let reply = raw_exchange(&daemon.socket, &request).expect("a reply");
    assert_eq!(reply["status"], "ok", "{reply}");
    let reply_bytes = serde_json::to_vec(&reply).unwrap().len() as u64;
    assert!(reply_bytes > 100_000, "a large reply: {reply_bytes} bytes");
    let before = daemon.rss_bytes();

    // Every client connects and sends its request at once, each on its own thread reading its
    // reply: 250 large replies are wanted together. Without a bound the daemon held them all
    // (RSS 41 → 508 MB, 460 MB kept after).
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, stop, pid) = (peak.clone(), stop.clone(), daemon.pid());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    && let Some(kb) = status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    peak.fetch_max(kb * 1024, std::sync::atomic::Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let all_sent = std::sync::Arc::new(std::sync::Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (socket, request, all_sent) =
                (daemon.socket.clone(), request.clone(), all_sent.clone());
            std::thread::spawn(move || {
                let mut s = connect(&socket).expect("connects");
                s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
                s.write_all(&request).unwrap();
                all_sent.wait();
                read_reply(&mut s)
            })
        })
        .collect();
    for c in clients {
        let reply = c.join().unwrap();
        assert!(
            reply.as_ref().is_some_and(|r| r["status"] == "ok"),
            "every client gets its answer: {:?}",
            reply.map(|mut r| {
                // The error, not 4,096 symbols.
                r.as_object_mut().map(|o| o.remove("answer"));
                r
            })
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);

    // Two answers in flight (the default), each held about twice (structures and JSON); every
    // waiting client's request (its frame while read, then its parsed addresses); slack for the
    // allocator.
    let per_request = request.len() as u64 + 4_096 * 8;
    let budget = 2 * 2 * reply_bytes + CLIENTS as u64 * per_request + 16 * 1024 * 1024;
    assert!(
        peak.saturating_sub(before) <= budget,
        "RSS grew by {} bytes (before {before}, peak {peak}); budget {budget}",
        peak.saturating_sub(before)
    );
    eprintln!(
        "250 clients, {reply_bytes}-byte replies: RSS before {before}, peak {peak} (+{}), budget +{budget}",
        peak - before
    );
    // Memory returns after the burst.
    assert!(
        eventually(Duration::from_secs(30), || daemon.rss_bytes()
            <= before + 8 * 1024 * 1024),
        "RSS stayed at {} after the burst (before {before})",
        daemon.rss_bytes()
    );
    eprintln!("250 clients: RSS after the burst {}", daemon.rss_bytes());
}

#[test]
fn metrics_report_the_rss_and_reserved_bytes_per_part() {
    let daemon = Daemon::start("memory", "[collector]\nebpf = \"off\"\n");
    let metrics = daemon.query_json(&["metrics"]);
    let memory = &metrics["daemon"]["memory"];
    let rss = memory["rss_bytes"].as_u64().unwrap();
    assert!(rss > 1 << 20, "{memory}");
    let actual = daemon.rss_bytes();
    // Same process, moments apart.
    assert!(rss.abs_diff(actual) < 16 << 20, "{rss} vs {actual}");
    for part in [
        "process store",
        "container store",
        "dns store",
        "symbol store",
        "process intake",
        "query replies",
    ] {
        assert!(
            memory["reserved_bytes"][part].as_u64().is_some(),
            "{part}: {memory}"
        );
    }
    let total: u64 = memory["reserved_bytes"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(memory["budget_bytes"].as_u64().unwrap(), total, "{memory}");
}

#[test]
fn the_scan_limit_is_told_once_and_evictions_are_counted_and_explained() {
    let daemon = Daemon::start(
        "limits-truth",
        "[collector]\nebpf = \"off\"\nmax_tracked_processes = 20\n[process]\ncapacity = 10\n",
    );
    let metrics_now = || daemon.query_json(&["metrics"]);
    assert!(
        eventually(Duration::from_secs(60), || {
            metrics_now()["daemon"]["proc_scans"]
                .as_u64()
                .is_some_and(|n| n >= 5)
        }),
        "rescans do not run"
    );
    let metrics = metrics_now();
    let over = metrics["daemon"]["proc_over_limit"].as_u64().unwrap();
    assert!(
        over > 0,
        "this machine runs more than 20 processes: {metrics}"
    );
    let log = daemon.stderr();
    assert_eq!(
        log.matches("more processes than collector.max_tracked_processes")
            .count(),
        1,
        "said once, not per rescan:\n{log}"
    );
    let health = daemon.query_json(&["health"]);
    let entry = health
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["store"] == "daemon")
        .cloned()
        .unwrap();
    assert!(
        entry["message"]
            .as_str()
            .unwrap()
            .contains("beyond collector.max_tracked_processes are not tracked"),
        "{entry}"
    );

    // The process store (10 records for 20 tracked processes) evicted, and says so.
    let stores = metrics["stores"].as_array().unwrap();
    let process = stores.iter().find(|s| s["store"] == "process").unwrap();
    let counters = &process["counters"];
    assert!(counters["evicted_live"].as_u64().unwrap() > 0, "{counters}");
    assert!(counters["id_collisions"].as_u64().is_some(), "{counters}");
    let dns = stores.iter().find(|s| s["store"] == "dns").unwrap();
    assert!(dns["counters"]["names_evicted"].as_u64().is_some(), "{dns}");

    // A process the start-up scan saw but the full store evicted is explained as evicted.
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let explained = pids.iter().take(20).any(|pid| {
        let out = daemon.query(&["process", "--pid", &pid.to_string()]);
        out.code == Some(1) && out.stderr.contains("was evicted from the process store")
    });
    assert!(explained, "no evicted process was explained as evicted");
}

#[test]
fn ancestry_of_an_unknown_process_is_not_found_at_any_depth() {
    let daemon = Daemon::start("ancestry", "[collector]\nebpf = \"off\"\n");
    for depth in ["0", "-1", "3"] {
        let out = daemon.query(&["ancestry", "4000000001", &format!("--depth={depth}")]);
        assert_eq!(out.code, Some(1), "depth {depth}: {out:?}");
        assert!(out.stderr.contains("no process with entity id"), "{out:?}");
    }
    // A known process with depth 0 is an empty chain, found.
    let me = daemon.query_json(&["process", "--pid", &std::process::id().to_string()]);
    let id = me["entity_id"].as_u64().unwrap().to_string();
    let out = daemon.query(&["ancestry", &id, "--depth=0"]);
    assert_eq!(out.code, Some(0), "{out:?}");
}

#[test]
fn a_dead_detector_engine_stops_the_daemon_with_an_error() {
    let dir = temp_dir("engine-panic");
    let path = dir.join("watchpost.toml");
    std::fs::write(
        &path,
        format!(
            "[daemon]\ndata_dir = \"{}\"\n[socket]\npath = \"{}\"\n[collector]\nebpf = \"off\"\n",
            dir.join("data").display(),
            dir.join("s.sock").display()
        ),
    )
    .unwrap();
    let out = support::bin_command()
        .args(["run", "--config", path.to_str().unwrap()])
        .env("WATCHPOST_FAULT", "engine-panic")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the detector engine task failed for good"),
        "{stderr}"
    );
    assert!(!dir.join("s.sock").exists(), "socket left behind");
}
