//! Fleet throughput against a real local broker (mosquitto on a loopback port, started here):
//! - detections/s through the outbox to the broker (append in batches of 256 as the dispatcher
//!   does, publish QoS 1, delete after PUBACK), and the same records published straight with
//!   rumqttc (no outbox) as the baseline of this run;
//! - outbox bytes per detection (file size / records held);
//! - delivery latency (append → arrival at a subscriber) at 1,000 detections/s with the broker up;
//! - reputation entries applied per second from one MQTT full-set message, and the parse alone
//!   as the baseline.
//!
//! Run: `cargo bench -p watchpost --bench fleet [-- --records N]` (needs /usr/sbin/mosquitto).
//! A custom harness, not criterion: the quantities are rates and latency percentiles over a
//! sustained run through a broker, each with a baseline measured in the same run.

use std::collections::HashSet;
use std::net::TcpListener;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::watch;
use watchpost::config::Config;
use watchpost::config::fleet::{IntelSection, MqttSection, MqttSinkSection};
use watchpost::fleet::identity::HostIdentity;
use watchpost::fleet::intel::{IntelCounters, IntelFeed, parse_message};
use watchpost::persistence::Persistence;
use watchpost::persistence::reputation::ReputationWriter;
use watchpost::sinks::mqtt::{ConnectionCounters, MqttPublisher};
use watchpost::sinks::outbox::Outbox;
use watchpost_actors::adapters::ip_reputation::ip_reputation_factory;
use watchpost_actors::{Registry, RegistryConfig, StoreOptions};
use watchpost_core::ip_reputation::IpReputationConfig;
use watchpost_persist::BootIdentity;

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_broker(dir: &std::path::Path) -> (Broker, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n"),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto (apt-get install mosquitto)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Broker(child), port)
}

/// A detection-sized record carrying its creation time (ns since `epoch`).
fn record(n: u64, epoch: Instant) -> Vec<u8> {
    let sent = epoch.elapsed().as_nanos() as u64;
    format!(
        r#"{{"schema":"watchpost.detection.v1","id":"4bd6126a-6ec9-4edd-9248-e12534b4029b-18a0b3c4d5e6f708-{n}","time":"2026-12-06T01:00:00.000000000Z","time_ns":{sent},"host":{{"name":"gateway-0042","boot_id":"4bd6126a-6ec9-4edd-9248-e12534b4029b"}},"detector":"shell_from_service","severity":"high","description":"shell sh spawned under network-facing service nginx","process":{{"entity_id":3141592653,"pid":41234,"exe":"/usr/bin/dash","uid":33,"ancestry":[{{"entity_id":3141592653,"pid":41234,"name":"sh","exe":"/usr/bin/dash"}},{{"entity_id":2718281828,"pid":1200,"name":"nginx","exe":"/usr/sbin/nginx"}},{{"entity_id":1,"pid":1,"name":"systemd","exe":"/usr/lib/systemd/systemd"}}]}},"data":{{"service":"nginx","service_pid":1200,"shell":"sh","service_level":1}}}}"#
    )
    .into_bytes()
}

/// A subscriber that records (arrival time, creation time) of every message on `topic`.
async fn subscriber(
    port: u16,
    topic: &str,
    epoch: Instant,
) -> (Arc<Mutex<Vec<(u64, u64)>>>, tokio::task::JoinHandle<()>) {
    let mut options = MqttOptions::new("bench-sub", "127.0.0.1", port);
    options.set_max_packet_size(64 << 20, 64 << 20);
    options.set_inflight(1024);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let mut ready = Some(ready_tx);
    let task = tokio::spawn(async move {
        let _keep = client;
        while let Ok(event) = eventloop.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let now = epoch.elapsed().as_nanos() as u64;
                    let sent = serde_json::from_slice::<serde_json::Value>(&p.payload)
                        .ok()
                        .and_then(|v| v["time_ns"].as_u64())
                        .unwrap_or(0);
                    sink.lock().unwrap().push((now, sent));
                }
                _ => {}
            }
        }
    });
    let _ = ready_rx.await;
    (seen, task)
}

async fn wait_for(seen: &Mutex<Vec<(u64, u64)>>, n: usize) {
    while seen.lock().unwrap().len() < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let records: u64 = args
        .iter()
        .position(|a| a == "--records")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(50_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(records));
    ExitCode::SUCCESS
}

async fn run(records: u64) {
    let dir = std::env::temp_dir().join(format!("wp-bench-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (_broker, port) = start_broker(&dir);
    let epoch = Instant::now();
    let host = HostIdentity {
        host_name: "bench".to_owned(),
        boot_id: "b".to_owned(),
    };
    let sink = MqttSinkSection {
        enabled: true,
        ..MqttSinkSection::default()
    };
    let broker = MqttSection {
        port,
        ..MqttSection::default()
    };
    let topic = "watchpost/bench/detections";

    // Baseline: the same records published straight with rumqttc, QoS 1, same in-flight window.
    let (seen, sub) = subscriber(port, "baseline/detections", epoch).await;
    let mut options = MqttOptions::new("bench-raw", "127.0.0.1", port);
    options.set_inflight(sink.inflight);
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let driver = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let started = Instant::now();
    for n in 0..records {
        client
            .publish(
                "baseline/detections",
                QoS::AtLeastOnce,
                false,
                record(n, epoch),
            )
            .await
            .unwrap();
    }
    wait_for(&seen, records as usize).await;
    let raw_rate = records as f64 / started.elapsed().as_secs_f64();
    driver.abort();
    sub.abort();

    // Through the outbox.
    let outbox = Arc::new(Outbox::open(&dir.join("outbox.redb"), 1_000_000).unwrap());
    let (seen, sub) = subscriber(port, topic, epoch).await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let publisher = tokio::spawn(
        MqttPublisher {
            outbox: outbox.clone(),
            broker: broker.clone(),
            sink: sink.clone(),
            host: host.clone(),
            counters: Arc::new(ConnectionCounters::default()),
        }
        .run(stop_rx),
    );
    let started = Instant::now();
    let mut n = 0;
    while n < records {
        let batch: Vec<Vec<u8>> = (n..(n + 256).min(records))
            .map(|i| record(i, epoch))
            .collect();
        n += batch.len() as u64;
        let o = outbox.clone();
        tokio::task::spawn_blocking(move || o.append(&batch).unwrap())
            .await
            .unwrap();
    }
    let appended = started.elapsed();
    wait_for(&seen, records as usize).await;
    let outbox_rate = records as f64 / started.elapsed().as_secs_f64();
    let unique: HashSet<u64> = seen.lock().unwrap().iter().map(|(_, s)| *s).collect();
    println!(
        "detections through the outbox to mosquitto: {outbox_rate:.0}/s ({records} records, appended in {:.2} s, {} duplicates); \
         raw rumqttc QoS 1 without the outbox: {raw_rate:.0}/s; ratio {:.2}",
        appended.as_secs_f64(),
        records as usize - unique.len().min(records as usize),
        outbox_rate / raw_rate
    );
    while outbox.stats().records > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Latency at 1,000/s with the broker up.
    seen.lock().unwrap().clear();
    let samples = 5_000u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    for i in 0..samples {
        tick.tick().await;
        let one = vec![record(records + i, epoch)];
        let o = outbox.clone();
        tokio::task::spawn_blocking(move || o.append(&one).unwrap())
            .await
            .unwrap();
    }
    wait_for(&seen, samples as usize).await;
    let mut latency: Vec<u64> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(arrived, sent)| arrived.saturating_sub(*sent))
        .collect();
    latency.sort_unstable();
    println!(
        "delivery latency at 1,000 detections/s (append -> subscriber): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&latency, 0.5) as f64 / 1e6,
        percentile(&latency, 0.99) as f64 / 1e6,
        latency.last().copied().unwrap_or(0) as f64 / 1e6
    );
    let _ = stop_tx.send(true);
    let _ = publisher.await;
    sub.abort();
    drop(outbox);

    // Bytes per detection: a fresh outbox holding `records` records.
    let path = dir.join("size.redb");
    let held = Outbox::open(&path, 1_000_000).unwrap();
    let mut n = 0;
    let mut payload_bytes = 0u64;
    while n < records {
        let batch: Vec<Vec<u8>> = (n..(n + 256).min(records))
            .map(|i| record(i, epoch))
            .collect();
        payload_bytes += batch.iter().map(|r| r.len() as u64).sum::<u64>();
        n += batch.len() as u64;
        held.append(&batch).unwrap();
    }
    let file = held.stats().file_bytes;
    println!(
        "outbox size: {:.0} bytes per detection on disk ({} records, {:.1} MiB file; records average {:.0} bytes of JSON)",
        file as f64 / records as f64,
        records,
        file as f64 / (1 << 20) as f64,
        payload_bytes as f64 / records as f64
    );
    drop(held);

    // Reputation entries applied per second from one MQTT full-set message.
    let entries = 100_000u32;
    let message = serde_json::to_vec(&serde_json::json!({
        "format": "watchpost.intel.v1", "source": "bench-feed", "kind": "full",
        "entries": (0..entries).map(|n| serde_json::json!({
            "ip": format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff),
            "status": "deny", "severity": 5, "tags": ["botnet"],
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    let intel = IntelSection {
        enabled: true,
        max_message_bytes: 64 << 20,
        max_entries: entries as usize,
        ..IntelSection::default()
    };
    let parse_started = Instant::now();
    parse_message(&message, "bench-feed", &intel, 0).unwrap();
    let parse_rate = f64::from(entries) / parse_started.elapsed().as_secs_f64();
    let registry = Registry::start(RegistryConfig {
        call_timeout: Duration::from_secs(30),
    })
    .await
    .unwrap();
    let store = registry
        .register_writable_store(
            "ip_reputation",
            ip_reputation_factory(IpReputationConfig::new(200_000), Vec::new()),
            StoreOptions::default(),
        )
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(30));
    // The daemon's write path: every applied message is written through to a real snapshot file
    // (the default durability: fsync before the next message).
    let data_dir =
        std::env::temp_dir().join(format!("watchpost-bench-intel-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir).unwrap();
    let mut config = Config::embedded();
    config.daemon.data_dir = data_dir.clone();
    let boot = BootIdentity {
        boot_id: "bench".to_owned(),
        btime: 0,
    };
    let persistence = Persistence::open(&config, boot).unwrap();
    let counters = Arc::new(IntelCounters::default());
    let connection = Arc::new(ConnectionCounters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let feed = tokio::spawn(
        IntelFeed {
            broker: broker.clone(),
            intel,
            host,
            store: Arc::new(ReputationWriter::new(store, persistence)),
            counters: counters.clone(),
            connection: connection.clone(),
        }
        .run(stop_rx),
    );
    while connection
        .connections
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // the SUBACK
    let mut options = MqttOptions::new("bench-intel-pub", "127.0.0.1", port);
    options.set_max_packet_size(64 << 20, 64 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 4);
    let driver = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let started = Instant::now();
    client
        .publish(
            "watchpost/intel/bench-feed",
            QoS::AtLeastOnce,
            false,
            message.clone(),
        )
        .await
        .unwrap();
    while counters.applied.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        assert_eq!(
            counters.rejected_total(),
            0,
            "the bench message was rejected"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let apply_rate = f64::from(entries) / started.elapsed().as_secs_f64();
    println!(
        "reputation entries applied from MQTT: {apply_rate:.0}/s (one full set of {entries}, {:.1} MiB of JSON); \
         parse and check alone: {parse_rate:.0}/s; ratio {:.2}",
        message.len() as f64 / (1 << 20) as f64,
        apply_rate / parse_rate
    );
    driver.abort();
    let _ = stop_tx.send(true);
    let _ = feed.await;
    registry.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
