//! Fleet test parts: a real mosquitto broker on a loopback port (started by the test, stopped by
//! PID, restartable on the same port with its persistence file), an MQTT subscriber that keeps a
//! persistent session (so nothing published while it reconnects is lost to it), a daemon that can
//! be killed with SIGKILL and started again on the same data directory, detections produced by
//! real processes (a shell loop under a program named `nginx`), and a Prometheus scrape.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{self, START_DEADLINE, eventually, raw_exchange};

/// A free loopback port (bound then released; the broker binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether the fleet's end-to-end tests may run: root (eBPF sees every short-lived shell) and
/// mosquitto installed. Fails loudly otherwise, unless `WATCHPOST_SKIP_PRIVILEGED_TESTS=1`.
pub fn fleet_tests_may_run() -> bool {
    let root = rustix::process::geteuid().is_root();
    let mosquitto = Path::new("/usr/sbin/mosquitto").exists();
    if !mosquitto && root {
        panic!("mosquitto is not installed (apt-get install mosquitto; .ci/run installs it)");
    }
    support::privileged_test_may_run(root && mosquitto, "fleet tests (root, mosquitto)")
}

/// [`fleet_tests_may_run`] for tests whose detections come from short-lived shells, which only
/// the kernel's exec events see (a `/proc` scan misses them): skipped with
/// `WATCHPOST_SKIP_EBPF_TESTS=1`, like every eBPF test.
pub fn fleet_detection_tests_may_run() -> bool {
    if std::env::var_os("WATCHPOST_SKIP_EBPF_TESTS").is_some_and(|v| v == "1") {
        eprintln!("fleet detection test: needs eBPF, skipped (WATCHPOST_SKIP_EBPF_TESTS=1)");
        return false;
    }
    fleet_tests_may_run()
}

/// A mosquitto process on `127.0.0.1:<port>`.
pub struct Broker {
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Broker {
    /// Starts mosquitto on a free port, persistence in `dir`.
    pub fn start(dir: &Path) -> Broker {
        let mut b = Broker {
            port: free_port(),
            dir: dir.to_path_buf(),
            child: None,
        };
        b.restart();
        b
    }

    /// A broker on `port` (not started).
    pub fn on_port(dir: &Path, port: u16) -> Broker {
        Broker {
            port,
            dir: dir.to_path_buf(),
            child: None,
        }
    }

    /// (Re)starts it on the same port and persistence file, and waits until it accepts.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        std::fs::create_dir_all(&self.dir).unwrap();
        let conf = self.dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "user root\nlistener {} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {}/\nmax_queued_messages 0\nmax_inflight_messages 0\n\
                 log_dest file {}/mosquitto.log\n",
                self.port,
                self.dir.display(),
                self.dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        let port = self.port;
        let up = eventually(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "mosquitto did not listen on {port}");
    }

    /// Starts mosquitto with the configuration `conf` (written to `dir`), and waits until
    /// `wait_port` accepts connections.
    pub fn with_config(dir: &Path, conf: &str, wait_port: u16) -> Broker {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("mosquitto.conf");
        std::fs::write(&path, format!("user root\n{conf}")).unwrap();
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        let up = eventually(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", wait_port)).is_ok()
        });
        assert!(up, "mosquitto did not listen on {wait_port}");
        Broker {
            port: wait_port,
            dir: dir.to_path_buf(),
            child: Some(child),
        }
    }

    /// Stops it with SIGTERM (it saves its persistence file) and waits for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "-TERM");
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "-KILL");
            let _ = child.wait();
        }
    }
}

/// `kill <how> <pid>`.
pub fn signal(pid: u32, how: &str) {
    let _ = Command::new("kill").args([how, &pid.to_string()]).status();
}

/// (topic, payload) pairs shared with the subscriber's thread.
pub type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// Messages received on a topic filter, in arrival order, by a subscriber with a persistent
/// session (QoS 1) that reconnects by itself.
pub struct Subscriber {
    /// (topic, payload) in arrival order.
    pub messages: Received,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Subscriber {
    /// Subscribes to `filter` on `port` and waits for the subscription to be acknowledged.
    pub fn start(port: u16, filter: &str, client_id: &str) -> Subscriber {
        use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options.set_clean_session(false);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_max_packet_size(64 << 20, 64 << 20);
        let (client, mut connection) = Client::new(options, 64);
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let subscribed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (m, s, sub) = (messages.clone(), stop.clone(), subscribed.clone());
        let filter = filter.to_owned();
        let thread = std::thread::spawn(move || {
            for event in connection.iter() {
                if s.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        if !ack.session_present {
                            let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        sub.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        m.lock()
                            .unwrap()
                            .push((p.topic.clone(), p.payload.to_vec()));
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        let ok = eventually(Duration::from_secs(20), || {
            subscribed.load(std::sync::atomic::Ordering::Relaxed)
        });
        assert!(ok, "subscription to port {port} not acknowledged");
        Subscriber {
            messages,
            stop,
            thread: Some(thread),
        }
    }

    /// Payloads received on `topic`, parsed as JSON.
    pub fn json_on(&self, topic: &str) -> Vec<serde_json::Value> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, p)| serde_json::from_slice(p).expect("a JSON payload"))
            .collect()
    }

    /// Raw payloads on `topic`.
    pub fn raw_on(&self, topic: &str) -> Vec<Vec<u8>> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, p)| p.clone())
            .collect()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // The thread ends at its next event (a keep-alive at the latest); do not wait for it.
        drop(self.thread.take());
    }
}

/// A daemon on a fixed directory (config, socket, data dir) that can be SIGKILLed and restarted.
pub struct FleetDaemon {
    /// Its directory.
    pub dir: PathBuf,
    /// Its socket.
    pub socket: PathBuf,
    config: PathBuf,
    child: Option<Child>,
    runs: u32,
}

impl FleetDaemon {
    /// Writes the configuration (`extra` TOML appended to the test basics) and starts it.
    pub fn start(dir: &Path, extra: &str) -> FleetDaemon {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("s.sock");
        let config = dir.join("watchpost.toml");
        let mut table: toml::Table = toml::from_str(&format!(
            "[daemon]\ndata_dir = \"{}\"\n[socket]\npath = \"{}\"\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n",
            dir.join("data").display(),
            socket.display()
        ))
        .unwrap();
        merge(
            &mut table,
            toml::from_str(extra).expect("extra config is TOML"),
        );
        std::fs::write(&config, toml::to_string(&table).unwrap()).unwrap();
        let mut d = FleetDaemon {
            dir: dir.to_path_buf(),
            socket,
            config,
            child: None,
            runs: 0,
        };
        d.restart();
        d
    }

    /// Starts it again on the same configuration and data directory; waits for its socket.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "daemon already running");
        self.runs += 1;
        let child = support::bin_command()
            .args(["run", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(self.dir.join(format!("stdout.{}", self.runs))).unwrap())
            .stderr(std::fs::File::create(self.dir.join(format!("stderr.{}", self.runs))).unwrap())
            .spawn()
            .expect("daemon spawns");
        self.child = Some(child);
        let ready = eventually(START_DEADLINE, || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "daemon exited during start-up ({status}):\n{}",
                    self.stderr()
                );
            }
            raw_exchange(&self.socket, &support::frame(br#"{"command":"stores"}"#))
                .is_some_and(|reply| reply["status"] == "ok")
        });
        assert!(ready, "daemon not ready in time:\n{}", self.stderr());
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The current run's log.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("stderr.{}", self.runs))).unwrap_or_default()
    }

    /// The current run's stdout.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("stdout.{}", self.runs))).unwrap_or_default()
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "-KILL");
            let _ = child.wait();
        }
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "-TERM");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(status.success(), "daemon exit {status}:\n{}", self.stderr());
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("daemon did not stop:\n{}", self.stderr());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The metrics endpoint of the current run.
    pub fn metrics_address(&self) -> String {
        let mut found = None;
        eventually(Duration::from_secs(10), || {
            found = metrics_address_in(&self.stderr());
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no metrics address logged:\n{}", self.stderr()))
    }

    /// One scrape of the current run, parsed.
    pub fn scrape(&self) -> Scrape {
        scrape(&self.metrics_address())
    }

    /// `watchpost query --socket <ours> args… --json`, parsed (must exit 0).
    pub fn query_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["query", "--socket", self.socket.to_str().unwrap()];
        all.extend_from_slice(args);
        all.push("--json");
        let out = support::watchpost(&all);
        assert_eq!(out.code, Some(0), "query {args:?}: {out:?}");
        serde_json::from_str(out.stdout.trim()).unwrap()
    }
}

impl Drop for FleetDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "-TERM");
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Merges table `extra` into `base`, key by key.
fn merge(base: &mut toml::Table, extra: toml::Table) {
    for (key, value) in extra {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(e)) => merge(b, e),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The metrics address from a daemon's log (text or JSON lines).
pub fn metrics_address_in(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains("Prometheus metrics at"))?;
    if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        return v["fields"]["address"].as_str().map(str::to_owned);
    }
    let at = line.find("address=")? + "address=".len();
    Some(line[at..].split_whitespace().next()?.to_owned())
}

/// A parsed scrape: `name{labels}` → value.
pub struct Scrape {
    /// Every sample.
    pub samples: Vec<prometheus_parse::Sample>,
    /// The raw text.
    pub text: String,
}

impl Scrape {
    /// The value of `name` whose labels include all of `labels` (0 if absent).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).unwrap_or(0.0)
    }

    /// The value, if the series exists.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    }
}

/// GETs `http://<address>/metrics` with a real HTTP client and parses it with a Prometheus text
/// parser.
pub fn scrape(address: &str) -> Scrape {
    let mut response = ureq::get(&format!("http://{address}/metrics"))
        .call()
        .unwrap_or_else(|e| panic!("scraping {address}: {e}"));
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.body_mut().read_to_string().unwrap();
    assert!(
        text.trim_end().ends_with("# EOF"),
        "not OpenMetrics text:\n{text}"
    );
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("exposition parses");
    Scrape {
        samples: parsed.samples,
        text,
    }
}

/// A program named `nginx` (a copy of /bin/sh) in `dir` that runs `count` shells, one after
/// the other: each is a `shell_from_service` detection. Returns its pid once it has exited.
pub fn shells_under_nginx(dir: &Path, count: u32) -> u32 {
    let nginx = dir.join("nginx");
    if !nginx.exists() {
        std::fs::copy("/bin/sh", &nginx).unwrap();
    }
    let script = format!("i=0; while [ $i -lt {count} ]; do /bin/sh -c :; i=$((i+1)); done");
    let mut child = Command::new(&nginx)
        .args(["-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .expect("nginx spawns");
    let pid = child.id();
    let status = child.wait().unwrap();
    assert!(status.success());
    pid
}

/// The detections among `records` whose shell ran under one of `services` (pids of our nginx).
pub fn ours<'a>(records: &'a [serde_json::Value], services: &[u32]) -> Vec<&'a serde_json::Value> {
    records
        .iter()
        .filter(|r| {
            r["detector"] == "shell_from_service"
                && r["data"]["service_pid"]
                    .as_u64()
                    .is_some_and(|p| services.contains(&(p as u32)))
        })
        .collect()
}

/// The sequence number in a record id (`<boot>-<start>-<seq>`).
pub fn sequence(record: &serde_json::Value) -> u64 {
    record["id"]
        .as_str()
        .and_then(|id| id.rsplit('-').next())
        .and_then(|s| s.parse().ok())
        .expect("a record id ending in a sequence number")
}

/// Records deduplicated by id, first arrival kept; and how many duplicates there were.
pub fn dedupe(records: &[serde_json::Value]) -> (Vec<serde_json::Value>, usize) {
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    let mut duplicates = 0;
    for r in records {
        let id = r["id"].as_str().unwrap_or("").to_owned();
        if seen.insert(id, ()).is_some() {
            duplicates += 1;
        } else {
            out.push(r.clone());
        }
    }
    (out, duplicates)
}

/// The JSON Schema validator for detection records, from the file shipped in the repository.
pub fn record_validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/detection-v1.schema.json"),
    )
    .unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema file is a valid JSON Schema")
}

/// Asserts every record validates.
pub fn assert_valid(validator: &jsonschema::Validator, records: &[serde_json::Value]) {
    for r in records {
        let errors: Vec<String> = validator.iter_errors(r).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "record does not match the schema: {errors:?}\n{r}"
        );
    }
}
