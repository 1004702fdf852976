//! Threat intelligence in, and the socket's detection stream, end to end:
//! - a retained full set of 10,000 entries and 100 updates from a real broker: the store answers
//!   them; malformed, oversized, wrong-severity and wrong-source messages are rejected whole and
//!   counted; a second publisher's `clear` touches only its own source;
//! - `watchpost query events --follow` streams records that validate against the schema; a
//!   follower that stops reading is cut off, never buffered for.

mod fleet_support;
mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::Duration;

use fleet_support::{
    Broker, FleetDaemon, assert_valid, fleet_detection_tests_may_run, fleet_tests_may_run,
    record_validator, shells_under_nginx,
};
use support::{eventually, temp_dir};

/// Publishes one QoS 1 message and waits for its PUBACK.
fn publish(port: u16, topic: &str, payload: Vec<u8>, retain: bool) {
    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
    let mut options = MqttOptions::new(
        format!("wp-test-pub-{}", std::process::id()),
        "127.0.0.1",
        port,
    );
    options.set_max_packet_size(16 << 20, 16 << 20);
    let (client, mut connection) = Client::new(options, 4);
    client
        .publish(topic, QoS::AtLeastOnce, retain, payload)
        .unwrap();
    for event in connection.iter() {
        match event {
            Ok(Event::Incoming(Packet::PubAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("publishing to {port}: {e}"),
        }
    }
    let _ = client.disconnect();
    for event in connection.iter() {
        if event.is_err() {
            break;
        }
    }
}

fn entry(ip: &str, status: &str, severity: i64) -> serde_json::Value {
    serde_json::json!({"ip": ip, "status": status, "severity": severity, "tags": ["botnet"]})
}

fn message(
    source: &str,
    kind: &str,
    entries: Vec<serde_json::Value>,
    remove: Vec<String>,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "format": "watchpost.intel.v1", "source": source, "kind": kind,
        "entries": entries, "remove": remove,
    }))
    .unwrap()
}

fn ip(n: u32) -> String {
    format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
}

#[test]
fn intel_full_set_updates_rejections_and_a_second_source() {
    if !fleet_tests_may_run() {
        return;
    }
    let dir = temp_dir("intel");
    let broker = Broker::start(&dir.join("broker"));
    // The full set is retained before the daemon exists: it gets it when it subscribes.
    let full: Vec<serde_json::Value> = (0..10_000).map(|n| entry(&ip(n), "deny", 5)).collect();
    publish(
        broker.port,
        "watchpost/intel/feed-a",
        message("feed-a", "full", full, vec![]),
        true,
    );

    let daemon = FleetDaemon::start(
        &dir.join("daemon"),
        &format!(
            "[daemon]\nlog_format = \"json\"\n\
             [intel]\nenabled = true\nmax_message_bytes = 2097152\n\
             [mqtt]\nport = {}\nreconnect_max_ms = 500\n",
            broker.port
        ),
    );
    let items = |d: &FleetDaemon| {
        d.scrape()
            .value("watchpost_store_items", &[("store", "ip_reputation")])
    };
    assert!(
        eventually(Duration::from_secs(60), || items(&daemon) == 10_000.0),
        "the retained set was not applied:\n{}",
        daemon.stderr()
    );
    let v = daemon.query_json(&["reputation", "10.0.39.15"]);
    assert_eq!(v["status"], "deny", "{v}");
    assert_eq!(v["source"], "feed-a");

    // 100 updates: each raises one address to suspicious/9 and forgets another.
    for n in 0..100u32 {
        let update = message(
            "feed-a",
            "update",
            vec![entry(&ip(n), "suspicious", 9)],
            vec![ip(5_000 + n)],
        );
        publish(broker.port, "watchpost/intel/feed-a", update, false);
    }
    let applied = |d: &FleetDaemon| {
        d.scrape()
            .value("watchpost_intel_messages_total", &[("outcome", "applied")])
    };
    assert!(eventually(Duration::from_secs(60), || applied(&daemon) >= 101.0));
    assert_eq!(items(&daemon), 9_900.0);
    let v = daemon.query_json(&["reputation", &ip(42)]);
    assert_eq!(
        (v["status"].as_str(), v["severity"].as_u64()),
        (Some("suspicious"), Some(9))
    );
    let gone = support::watchpost(&[
        "query",
        "--socket",
        daemon.socket.to_str().unwrap(),
        "reputation",
        &ip(5_042),
    ]);
    assert_eq!(gone.code, Some(1), "{gone:?}");

    // Bad messages: rejected whole, counted by reason, nothing applied.
    let topic = "watchpost/intel/feed-a";
    publish(broker.port, topic, b"{not json".to_vec(), false);
    let mut big: Vec<serde_json::Value> = (0..40_000)
        .map(|n| entry(&ip(100_000 + n), "deny", 1))
        .collect();
    big.truncate(40_000);
    let oversized = message("feed-a", "update", big, vec![]);
    assert!(
        oversized.len() > 2_097_152 && oversized.len() < 4_194_304,
        "{}",
        oversized.len()
    );
    publish(broker.port, topic, oversized, false);
    publish(
        broker.port,
        topic,
        message(
            "feed-a",
            "update",
            vec![
                entry("192.0.2.1", "deny", 1),
                entry("192.0.2.2", "deny", 11),
            ],
            vec![],
        ),
        false,
    );
    publish(
        broker.port,
        "watchpost/intel/feed-b",
        message("feed-a", "clear", vec![], vec![]),
        false,
    );
    let rejected = |d: &FleetDaemon, reason: &str| {
        d.scrape().value(
            "watchpost_intel_messages_total",
            &[("outcome", "rejected"), ("reason", reason)],
        )
    };
    assert!(eventually(Duration::from_secs(30), || {
        rejected(&daemon, "malformed") == 1.0
            && rejected(&daemon, "oversized") == 1.0
            && rejected(&daemon, "severity") == 1.0
            && rejected(&daemon, "source") == 1.0
    }));
    assert_eq!(
        items(&daemon),
        9_900.0,
        "a rejected message changed the store"
    );
    let half = support::watchpost(&[
        "query",
        "--socket",
        daemon.socket.to_str().unwrap(),
        "reputation",
        "192.0.2.1",
    ]);
    assert_eq!(half.code, Some(1), "half of a rejected message was applied");

    // A second publisher: its set, then its clear, which leaves feed-a alone.
    let b: Vec<serde_json::Value> = (0..10).map(|n| entry(&ip(n), "allow", 3)).collect();
    publish(
        broker.port,
        "watchpost/intel/feed-b",
        message("feed-b", "full", b, vec![]),
        true,
    );
    assert!(eventually(Duration::from_secs(30), || items(&daemon) == 9_910.0));
    publish(
        broker.port,
        "watchpost/intel/feed-b",
        message("feed-b", "clear", vec![], vec![]),
        true,
    );
    assert!(eventually(Duration::from_secs(30), || items(&daemon) == 9_900.0));
    let v = daemon.query_json(&["reputation", &ip(7)]);
    assert_eq!(v["source"], "feed-a", "{v}");
    // daemon.log_format = "json": every log line is one JSON object.
    let log = daemon.stderr();
    assert!(log.lines().count() > 5);
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{e}: not a JSON log line: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    let health = daemon.query_json(&["health"]);
    let intel = health
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["store"] == "intel")
        .unwrap()
        .clone();
    assert_eq!(intel["status"], "healthy", "{intel}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn events_follow_streams_valid_records_and_a_stalled_follower_is_cut_off() {
    if !fleet_detection_tests_may_run() {
        return;
    }
    let dir = temp_dir("follow");
    let daemon = FleetDaemon::start(
        &dir.join("daemon"),
        "[sinks.stdout]\nenabled = false\n[follow]\nbuffer_records = 4096\n[socket]\nwrite_timeout_ms = 1000\n",
    );
    // The ring holds more than the 3,000 records below, so the reading follower never skips
    // whatever the machine's load; the stalled one is cut off by the write timeout.
    // A follower that never reads.
    let mut stalled = std::os::unix::net::UnixStream::connect(&daemon.socket).unwrap();
    std::io::Write::write_all(&mut stalled, &support::frame(br#"{"command":"events"}"#)).unwrap();
    // A reading follower: the CLI.
    let mut follower = support::bin_command()
        .args([
            "query",
            "--socket",
            daemon.socket.to_str().unwrap(),
            "events",
            "--follow",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(20), || {
        daemon.scrape().value("watchpost_follow_streams", &[]) == 2.0
    }));
    // Read as it comes (a reader that stops would be cut off too).
    let stdout = follower.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let nginx = shells_under_nginx(&work, 3_000);
    let mut records = Vec::new();
    while records.len() < 3_000 {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the follow stream ended or stalled");
        let record: serde_json::Value = serde_json::from_str(&line).unwrap();
        if record["data"]["service_pid"] == nginx {
            records.push(record);
        }
    }
    assert_valid(&record_validator(), &records);
    let _ = follower.kill();
    let _ = follower.wait();
    // The stalled one was disconnected (its socket buffer filled, the write timed out).
    assert!(
        eventually(Duration::from_secs(30), || {
            daemon.scrape().value("watchpost_follow_dropped_total", &[]) >= 1.0
        }),
        "{}",
        daemon.scrape().text
    );
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let read = stalled.read_to_end(&mut rest);
    assert!(
        read.is_ok(),
        "the daemon closed the stalled follower: {read:?}"
    );
    // The daemon still answers.
    let stores = daemon.query_json(&["stores"]);
    assert!(stores.as_array().is_some_and(|s| s.len() >= 6), "{stores}");
    let _ = std::fs::remove_dir_all(&dir);
}
