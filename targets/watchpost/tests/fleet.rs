//! The fleet end to end, with a real mosquitto broker, real processes and real kills:
//! - Prometheus: a scrape with a real HTTP client parses, every store has its series, values
//!   move when the daemon works;
//! - MQTT out: 10,000 detections published while the broker is stopped and restarted twice
//!   arrive at least once, in order (deduplicated by record id), each valid against the schema;
//! - kill -9 with 1,000 detections in the outbox, restart: all delivered;
//! - outbox full: the oldest are dropped and counted, the daemon keeps running, memory is flat.

mod fleet_support;
mod support;

use std::time::Duration;

use fleet_support::{
    Broker, FleetDaemon, Subscriber, assert_valid, dedupe, fleet_detection_tests_may_run, ours,
    record_validator, scrape, sequence, shells_under_nginx,
};
use support::{Daemon, eventually, temp_dir};

/// Every daemon sees every process on the machine: the tests that make detections run one at a
/// time, so one test's shells do not load another's daemon.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Topic filter of every host's detections.
const DETECTIONS: &str = "watchpost/+/detections";

/// The detections topic of this machine's daemon.
fn detections_topic() -> String {
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let level: String = host
        .chars()
        .map(|c| if matches!(c, '/' | '+' | '#') { '_' } else { c })
        .collect();
    format!("watchpost/{level}/detections")
}

/// Runs `total` shells under nginx in chunks of `chunk`, waiting after each chunk until the
/// daemon has dispatched at least as many detections as were produced so far (so the bounded
/// event queue never overflows); `between(done)` runs after each chunk. Returns nginx pids.
fn produce(
    daemon: &FleetDaemon,
    dir: &std::path::Path,
    total: u32,
    chunk: u32,
    mut between: impl FnMut(u32),
) -> Vec<u32> {
    let start = daemon.scrape().value("watchpost_detections_total", &[]);
    let mut pids = Vec::new();
    let mut done = 0;
    while done < total {
        let n = chunk.min(total - done);
        pids.push(shells_under_nginx(dir, n));
        done += n;
        let caught_up = eventually(Duration::from_secs(60), || {
            daemon.scrape().value("watchpost_detections_total", &[]) >= start + f64::from(done)
        });
        assert!(
            caught_up,
            "the daemon did not dispatch {done} detections:\n{}",
            daemon.stderr()
        );
        between(done);
    }
    let dropped = daemon
        .scrape()
        .value("watchpost_detector_events_dropped_total", &[]);
    if dropped > 0.0 {
        eprintln!("{dropped} events were dropped before the detectors (machine overloaded?)");
    }
    pids
}

#[test]
fn prometheus_scrape_parses_every_store_has_its_series_and_values_move() {
    let _serial = serial();
    let daemon = Daemon::start("metrics", "");
    let mut address = None;
    eventually(Duration::from_secs(10), || {
        address = daemon.metrics_address();
        address.is_some()
    });
    let address = address.expect("the daemon logs its metrics address");
    let before = scrape(&address);
    let stores = daemon.query_json(&["stores"]);
    let names: Vec<String> = stores
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.len() >= 6, "{names:?}");
    for name in &names {
        let store = [("store", name.as_str())];
        for series in [
            "watchpost_store_items",
            "watchpost_store_hits_total",
            "watchpost_store_misses_total",
            "watchpost_store_errors_total",
            "watchpost_store_requests_total",
            "watchpost_store_restarts_total",
        ] {
            assert!(
                before.find(series, &store).is_some(),
                "{series} missing for store {name}:\n{}",
                before.text
            );
        }
        let statuses: f64 = ["healthy", "unhealthy", "unknown"]
            .iter()
            .map(|s| before.value("watchpost_store_health", &[("store", name), ("status", s)]))
            .sum();
        assert_eq!(
            statuses, 1.0,
            "exactly one health status per store ({name})"
        );
    }
    for (store, reason) in [
        ("process", "live"),
        ("process", "expired"),
        ("dns", "least_recent"),
    ] {
        assert!(
            before
                .find(
                    "watchpost_store_evictions_total",
                    &[("store", store), ("reason", reason)]
                )
                .is_some(),
            "evictions of {store} by {reason}"
        );
    }
    assert!(before.value("watchpost_store_capacity", &[("store", "process")]) >= 1.0);
    assert!(before.value("watchpost_process_resident_memory_bytes", &[]) > 1e6);
    assert!(
        before
            .find("watchpost_process_cpu_seconds_total", &[])
            .is_some()
    );
    for detector in ["shell_from_service", "tmp_exec_in_container"] {
        for series in [
            "watchpost_detector_evaluations_total",
            "watchpost_detector_outputs_total",
            "watchpost_detector_timeouts_total",
        ] {
            assert!(
                before.find(series, &[("detector", detector)]).is_some(),
                "{series} {detector}"
            );
        }
    }
    assert!(before.find("watchpost_kernel_events_total", &[]).is_some());
    assert!(
        before
            .find("watchpost_kernel_events_lost_total", &[])
            .is_some()
    );
    assert!(
        before
            .find(
                "watchpost_intake_overflow_updates_total",
                &[("store", "process")]
            )
            .is_some()
    );

    // Work: process lookups (hits and misses) and new processes to judge.
    let me = std::process::id().to_string();
    for _ in 0..5 {
        assert_eq!(daemon.query(&["process", "--pid", &me]).code, Some(0));
        assert_eq!(daemon.query(&["process", "4294967295"]).code, Some(1));
    }
    for _ in 0..20 {
        let _ = std::process::Command::new("/bin/true").status();
    }
    let moved = eventually(Duration::from_secs(30), || {
        let after = scrape(&address);
        let up = |name: &str, labels: &[(&str, &str)]| {
            after.value(name, labels) > before.value(name, labels)
        };
        up("watchpost_store_hits_total", &[("store", "process")])
            && up("watchpost_store_misses_total", &[("store", "process")])
            && up(
                "watchpost_detector_evaluations_total",
                &[("detector", "shell_from_service")],
            )
            && up("watchpost_socket_requests_total", &[])
    });
    assert!(moved, "counters did not move:\n{}", scrape(&address).text);

    // Anything but GET /metrics is refused; the endpoint keeps serving.
    let other = ureq::get(&format!("http://{address}/")).call();
    assert!(
        matches!(other, Err(ureq::Error::StatusCode(404))),
        "{other:?}"
    );
    assert!(
        scrape(&address)
            .find("watchpost_store_items", &[])
            .is_some()
    );
}

#[test]
fn ten_thousand_detections_arrive_through_two_broker_restarts_in_order() {
    let _serial = serial();
    if !fleet_detection_tests_may_run() {
        return;
    }
    let dir = temp_dir("mqtt10k");
    let mut broker = Broker::start(&dir.join("broker"));
    let subscriber = Subscriber::start(broker.port, DETECTIONS, "wp-test-10k");
    let daemon = FleetDaemon::start(
        &dir.join("daemon"),
        &format!(
            "[sinks.stdout]\nenabled = false\n[sinks.mqtt]\nenabled = true\n\
             [mqtt]\nport = {}\nreconnect_max_ms = 500\n",
            broker.port
        ),
    );
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut outages = 0;
    let pids = produce(&daemon, &work, 10_000, 500, |done| {
        // Down after 3,000 and 7,000, back up 2,000 detections later.
        if done == 3_000 || done == 7_000 {
            broker.stop();
            outages += 1;
        }
        if done == 5_000 || done == 9_000 {
            let waiting = daemon.scrape().value("watchpost_outbox_records", &[]);
            assert!(
                waiting >= 1_000.0,
                "detections should wait in the outbox: {waiting}"
            );
            broker.restart();
        }
    });
    assert_eq!(outages, 2);
    let topic = detections_topic();
    let arrived = eventually(Duration::from_secs(120), || {
        let all = subscriber.json_on(&topic);
        let (unique, _) = dedupe(&all);
        ours(&unique, &pids).len() >= 10_000
    });
    let all = subscriber.json_on(&topic);
    let (unique, duplicates) = dedupe(&all);
    let mine = ours(&unique, &pids);
    assert!(
        arrived,
        "{} of 10,000 arrived ({} messages):\n{}",
        mine.len(),
        all.len(),
        daemon.stderr()
    );
    assert_eq!(mine.len(), 10_000);
    // In order: the record ids' sequence numbers grow in arrival order (first arrivals).
    let sequences: Vec<u64> = unique.iter().map(sequence).collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "out of order");
    eprintln!(
        "10,000 detections through 2 broker outages: {} messages, {duplicates} duplicates (at-least-once)",
        all.len()
    );
    assert_valid(&record_validator(), &unique);
    let m = daemon.scrape();
    assert!(
        m.value(
            "watchpost_mqtt_connections_total",
            &[("client", "detections")]
        ) >= 3.0
    );
    let drained = eventually(Duration::from_secs(30), || {
        daemon.scrape().value("watchpost_outbox_records", &[]) == 0.0
    });
    assert!(drained, "acknowledged records stay in the outbox");
    // The status topic says online (retained).
    let status = topic.replace("/detections", "/status");
    let late = Subscriber::start(broker.port, &status, "wp-test-10k-status");
    assert!(eventually(Duration::from_secs(10), || {
        late.raw_on(&status).last().is_some_and(|p| p == b"online")
    }));
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kill9_with_a_thousand_in_the_outbox_then_restart_delivers_them_all() {
    let _serial = serial();
    if !fleet_detection_tests_may_run() {
        return;
    }
    let dir = temp_dir("mqttkill");
    // The broker's port is chosen but nothing listens there yet.
    let mut broker = Broker::on_port(&dir.join("broker"), fleet_support::free_port());
    let mut daemon = FleetDaemon::start(
        &dir.join("daemon"),
        &format!(
            "[sinks.mqtt]\nenabled = true\n[mqtt]\nport = {}\nreconnect_max_ms = 500\n",
            broker.port
        ),
    );
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let pids = produce(&daemon, &work, 1_000, 250, |_| {});
    // Stdout gets a record only after its batch is committed to the outbox: once all 1,000 are
    // there, all 1,000 are durable.
    let committed = eventually(Duration::from_secs(60), || {
        let lines: Vec<serde_json::Value> = daemon
            .stdout()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        ours(&lines, &pids).len() >= 1_000
    });
    assert!(committed, "the 1,000 detections were not all dispatched");
    let held = daemon.scrape().value("watchpost_outbox_records", &[]);
    assert!(held >= 1_000.0, "outbox holds {held}");
    let health = daemon.query_json(&["health"]);
    let mqtt = health
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["store"] == "mqtt")
        .expect("an mqtt health entry")
        .clone();
    assert_eq!(mqtt["status"], "degraded", "{mqtt}");
    daemon.kill9();

    broker.restart();
    let subscriber = Subscriber::start(broker.port, DETECTIONS, "wp-test-kill");
    daemon.restart();
    let topic = detections_topic();
    let arrived = eventually(Duration::from_secs(60), || {
        let (unique, _) = dedupe(&subscriber.json_on(&topic));
        ours(&unique, &pids).len() >= 1_000
    });
    let (unique, duplicates) = dedupe(&subscriber.json_on(&topic));
    assert!(
        arrived,
        "{} of 1,000 delivered after kill -9:\n{}",
        ours(&unique, &pids).len(),
        daemon.stderr()
    );
    let sequences: Vec<u64> = ours(&unique, &pids).iter().map(|r| sequence(r)).collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "out of order");
    eprintln!("kill -9 with {held} waiting: all delivered after restart, {duplicates} duplicates");
    assert_valid(&record_validator(), &unique);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Resident memory of `pid`, bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn a_full_outbox_drops_the_oldest_counts_them_and_memory_stays_flat() {
    let _serial = serial();
    if !fleet_detection_tests_may_run() {
        return;
    }
    let dir = temp_dir("mqttfull");
    let mut broker = Broker::on_port(&dir.join("broker"), fleet_support::free_port());
    let daemon = FleetDaemon::start(
        &dir.join("daemon"),
        &format!(
            "[sinks.stdout]\nenabled = false\n[sinks.mqtt]\nenabled = true\noutbox_max_records = 200\n\
             [mqtt]\nport = {}\nreconnect_max_ms = 500\n",
            broker.port
        ),
    );
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut pids = produce(&daemon, &work, 1_000, 250, |_| {});
    let full = daemon.scrape();
    assert_eq!(full.value("watchpost_outbox_records", &[]), 200.0);
    assert!(full.value("watchpost_outbox_dropped_total", &[]) >= 800.0);
    let rss_full = rss(daemon.pid());
    let file_full = full.value("watchpost_outbox_file_bytes", &[]);
    // Twice as many more while full: dropped and counted, memory and file flat.
    pids.extend(produce(&daemon, &work, 2_000, 250, |_| {}));
    let after = daemon.scrape();
    assert_eq!(after.value("watchpost_outbox_records", &[]), 200.0);
    assert!(after.value("watchpost_outbox_dropped_total", &[]) >= 2_800.0);
    let rss_after = rss(daemon.pid());
    let file_after = after.value("watchpost_outbox_file_bytes", &[]);
    eprintln!(
        "outbox full: RSS {rss_full} -> {rss_after} bytes, file {file_full} -> {file_after} bytes"
    );
    assert!(
        rss_after < rss_full + (8 << 20),
        "RSS grew {rss_full} -> {rss_after}"
    );
    assert!(
        file_after <= file_full.max(1.0) * 2.0 + 1_048_576.0,
        "file grew"
    );
    let health = daemon.query_json(&["health"]);
    let mqtt = health
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["store"] == "mqtt")
        .unwrap()
        .clone();
    assert!(
        mqtt["message"].as_str().unwrap().contains("dropped"),
        "{mqtt}"
    );

    // The broker comes: the newest 200 arrive, the dropped never do.
    broker.restart();
    let subscriber = Subscriber::start(broker.port, DETECTIONS, "wp-test-full");
    let topic = detections_topic();
    let delivered = eventually(Duration::from_secs(60), || {
        daemon.scrape().value("watchpost_outbox_records", &[]) == 0.0
    });
    assert!(delivered);
    // The retained-free subscriber joined after the publisher may have started: only check
    // what did arrive is ours and in order, and at most the 200 kept.
    let (unique, _) = dedupe(&subscriber.json_on(&topic));
    let mine = ours(&unique, &pids);
    assert!(
        mine.len() <= 200,
        "{} delivered, more than the outbox held",
        mine.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A record with every optional part (a container with its pod, a null uid) validates, and the
/// schema refuses what it must (a missing id, an unknown field, a bad severity, a time that is
/// not RFC 3339).
#[test]
fn the_schema_file_accepts_full_records_and_refuses_bad_ones() {
    use watchpost::fleet::record::{
        AncestorPart, ContainerPart, DetectionRecord, HostPart, PodPart, ProcessPart, SCHEMA_V1,
        rfc3339,
    };
    use watchpost_actors::detect::{OutputValue, Severity};
    let record = DetectionRecord {
        schema: SCHEMA_V1.to_owned(),
        id: "4bd6126a-6ec9-4edd-9248-e12534b4029b-18a0b3c4d5e6f708-17".to_owned(),
        time: rfc3339(1_796_518_472_060_465_580),
        time_ns: 1_796_518_472_060_465_580,
        host: HostPart {
            name: "gw-1".to_owned(),
            boot_id: "4bd6126a-6ec9-4edd-9248-e12534b4029b".to_owned(),
        },
        detector: "tmp_exec_in_container".to_owned(),
        severity: Severity::Medium,
        description: "a program ran from /tmp in a container".to_owned(),
        process: ProcessPart {
            entity_id: 7,
            pid: 42,
            exe: "/tmp/x".to_owned(),
            uid: None,
            ancestry: vec![AncestorPart {
                entity_id: 7,
                pid: 42,
                name: "x".to_owned(),
                exe: "/tmp/x".to_owned(),
            }],
        },
        container: Some(ContainerPart {
            id: "a".repeat(64),
            name: "web".to_owned(),
            image: "nginx:1".to_owned(),
            image_digest: format!("sha256:{}", "b".repeat(64)),
            runtime: "containerd".to_owned(),
            pod: Some(PodPart {
                name: "web-0".to_owned(),
                namespace: "default".to_owned(),
                uid: "u".to_owned(),
            }),
        }),
        data: [
            ("flag".to_owned(), OutputValue::Flag(true)),
            ("list".to_owned(), OutputValue::List(vec!["a".to_owned()])),
            ("n".to_owned(), OutputValue::Number(3)),
        ]
        .into_iter()
        .collect(),
    };
    let validator = record_validator();
    let value = serde_json::to_value(&record).unwrap();
    assert_valid(&validator, std::slice::from_ref(&value));
    assert_eq!(
        serde_json::from_value::<DetectionRecord>(value.clone()).unwrap(),
        record
    );
    let mut bad = value.clone();
    bad.as_object_mut().unwrap().remove("id");
    assert!(!validator.is_valid(&bad));
    let mut bad = value.clone();
    bad["surprise"] = serde_json::json!(1);
    assert!(!validator.is_valid(&bad));
    let mut bad = value.clone();
    bad["severity"] = serde_json::json!("dire");
    assert!(!validator.is_valid(&bad));
    let mut bad = value;
    bad["time"] = serde_json::json!("yesterday");
    assert!(!validator.is_valid(&bad));
}

/// Runs a command that must succeed.
fn sh(dir: &std::path::Path, program: &str, args: &[&str]) {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// TLS with a CA the test makes, a user and password, and the last will: detections arrive over
/// TLS; a wrong password is refused and shown in health; a `kill -9` makes the broker publish
/// the retained `offline` status.
#[test]
fn tls_credentials_and_the_last_will() {
    let _serial = serial();
    if !fleet_detection_tests_may_run() {
        return;
    }
    let dir = temp_dir("mqtttls");
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    sh(
        &pki,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=watchpost-test-ca",
        ],
    );
    sh(
        &pki,
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        pki.join("ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    sh(
        &pki,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    sh(
        &pki,
        "mosquitto_passwd",
        &["-b", "-c", "passwords", "gateway", "s3cret"],
    );
    let plain = fleet_support::free_port();
    let tls = fleet_support::free_port();
    let p = pki.display();
    let _broker = Broker::with_config(
        &dir.join("broker"),
        &format!(
            "per_listener_settings true\n\
             listener {plain} 127.0.0.1\nallow_anonymous true\n\
             listener {tls} 127.0.0.1\ncafile {p}/ca.pem\ncertfile {p}/server.pem\nkeyfile {p}/server.key\n\
             allow_anonymous false\npassword_file {p}/passwords\n"
        ),
        tls,
    );
    let subscriber = Subscriber::start(plain, "watchpost/#", "wp-test-tls");
    let mqtt = |password: &str| {
        format!(
            "[sinks.stdout]\nenabled = false\n[sinks.mqtt]\nenabled = true\n\
             [mqtt]\nhost = \"localhost\"\nport = {tls}\ntls = true\nca_file = \"{p}/ca.pem\"\n\
             username = \"gateway\"\npassword = \"{password}\"\nkeep_alive_secs = 5\nreconnect_max_ms = 500\n"
        )
    };
    // A wrong password: refused, said in health, nothing lost (it waits in the outbox).
    let mut refused = FleetDaemon::start(&dir.join("refused"), &mqtt("wrong"));
    let said = eventually(Duration::from_secs(30), || {
        let health = refused.query_json(&["health"]);
        health.as_array().unwrap().iter().any(|h| {
            h["store"] == "mqtt"
                && h["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("unreachable"))
        })
    });
    assert!(said, "{}", refused.query_json(&["health"]));
    refused.terminate();

    let mut daemon = FleetDaemon::start(&dir.join("daemon"), &mqtt("s3cret"));
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let pids = produce(&daemon, &work, 100, 100, |_| {});
    let topic = detections_topic();
    let arrived = eventually(Duration::from_secs(60), || {
        let (unique, _) = dedupe(&subscriber.json_on(&topic));
        ours(&unique, &pids).len() >= 100
    });
    assert!(
        arrived,
        "detections over TLS did not arrive:\n{}",
        daemon.stderr()
    );
    let status = topic.replace("/detections", "/status");
    assert!(eventually(Duration::from_secs(10), || {
        subscriber
            .raw_on(&status)
            .last()
            .is_some_and(|s| s == b"online")
    }));
    daemon.kill9();
    let offline = eventually(Duration::from_secs(30), || {
        subscriber
            .raw_on(&status)
            .last()
            .is_some_and(|s| s == b"offline")
    });
    assert!(offline, "the last will did not mark the gateway offline");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A metrics port already taken does not stop the daemon: it runs, says why in health.
#[test]
fn a_busy_metrics_port_degrades_health_but_the_daemon_runs() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let daemon = Daemon::start(
        "metricsbusy",
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let health = daemon.query_json(&["health"]);
    let metrics = health
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["store"] == "metrics")
        .unwrap_or_else(|| panic!("no metrics entry: {health}"))
        .clone();
    assert_eq!(metrics["status"], "degraded");
    assert!(
        metrics["message"]
            .as_str()
            .unwrap()
            .contains(&port.to_string()),
        "{metrics}"
    );
}
