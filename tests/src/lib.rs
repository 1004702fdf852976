//! Support for the end-to-end tests in `tests/tests/`: a real `watchpost run` in its own
//! directory that can be killed (SIGKILL) and started again on the same data directory, queries
//! over its socket (raw protocol and the CLI), and polling with a deadline (never a sleep that
//! assumes work finished).
//!
//! The binary is the workspace's `target/<profile>/watchpost`, built by the same `cargo test`
//! (the `watchpost` package's own tests need it); a missing binary is a clear failure.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a daemon may take to start (a debug build parses ~120k kallsyms lines).
pub const START_DEADLINE: Duration = Duration::from_secs(90);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The `watchpost` binary next to this test's `deps/` directory.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/");
    let bin = dir.join("watchpost");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p watchpost, or run the whole workspace's tests)",
        bin.display()
    );
    bin
}

/// Whether a test that needs root may run: fails loudly unless `WATCHPOST_SKIP_PRIVILEGED_TESTS=1`.
pub fn privileged_test_may_run(what: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("WATCHPOST_SKIP_PRIVILEGED_TESTS").is_some_and(|v| v == "1") {
        eprintln!("{what}: needs root, skipped (WATCHPOST_SKIP_PRIVILEGED_TESTS=1)");
        return false;
    }
    panic!("{what}: needs root (or set WATCHPOST_SKIP_PRIVILEGED_TESTS=1 to skip)");
}

/// Polls `check` every 20 ms until it holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A test's directory: config, socket, data directory, logs. Removed when dropped.
pub struct Site {
    /// The directory.
    pub dir: PathBuf,
    /// The config file.
    pub config: PathBuf,
    /// The socket.
    pub socket: PathBuf,
    /// The data directory.
    pub data: PathBuf,
    starts: u32,
}

impl Site {
    /// A fresh site whose config is the default with `extra` TOML merged in (eBPF off, a 100 ms
    /// rescan, and a 1 s snapshot period unless `extra` says otherwise).
    pub fn new(tag: &str, extra: &str) -> Site {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wp-restart-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("s.sock");
        let data = dir.join("data");
        let mut config: toml::Table = toml::from_str(&format!(
            "[daemon]\ndata_dir = \"{}\"\n[socket]\npath = \"{}\"\n\
             [collector]\nebpf = \"off\"\nrescan_interval_ms = 100\n\
             [persist]\nsnapshot_interval_ms = 1000\n",
            data.display(),
            socket.display()
        ))
        .unwrap();
        merge(
            &mut config,
            toml::from_str(extra).expect("extra config is TOML"),
        );
        let path = dir.join("watchpost.toml");
        std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
        Site {
            dir,
            config: path,
            socket,
            data,
            starts: 0,
        }
    }

    /// The snapshot file.
    pub fn file(&self) -> PathBuf {
        self.data.join("watchpost.redb")
    }

    /// Starts a daemon on this site (with `env` set) and waits until its socket answers.
    pub fn start(&mut self, env: &[(&str, &str)]) -> Daemon {
        let daemon = self.spawn(env);
        daemon.wait_ready();
        daemon
    }

    /// Starts a daemon without waiting.
    pub fn spawn(&mut self, env: &[(&str, &str)]) -> Daemon {
        self.starts += 1;
        let log = self.dir.join(format!("stderr.{}", self.starts));
        let mut cmd = Command::new(binary());
        cmd.args(["run", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon {
            child: Some(cmd.spawn().expect("daemon spawns")),
            socket: self.socket.clone(),
            log,
        }
    }

    /// Files in the data directory moved aside as bad snapshots.
    pub fn moved_aside(&self) -> Vec<String> {
        std::fs::read_dir(&self.data)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                    .filter(|n| n.starts_with("watchpost.redb.corrupt-"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

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

/// A running daemon. Dropping it sends SIGKILL (tests stop it on purpose otherwise).
pub struct Daemon {
    child: Option<Child>,
    socket: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// What it logged.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits until its socket answers (panics with its log if it exits or takes too long).
    pub fn wait_ready(&self) {
        let ready = eventually(START_DEADLINE, || {
            self.ask(r#"{"command":"stores"}"#)
                .is_some_and(|r| r["status"] == "ok")
        });
        assert!(ready, "daemon not ready in time:\n{}", self.stderr());
    }

    /// Waits for the process to exit (at most `limit`); its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().ok().flatten() {
                return status.code();
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and wait (at most 30 s) for a clean exit; the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        if let Some(child) = &self.child
            && let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        self.wait_exit(Duration::from_secs(30))
    }

    /// One request (JSON text) on a fresh connection; the reply.
    pub fn ask(&self, json: &str) -> Option<serde_json::Value> {
        exchange(&self.socket, json)
    }

    /// One request whose reply must be ok: its answer's data.
    pub fn ok(&self, json: &str) -> serde_json::Value {
        let reply = self
            .ask(json)
            .unwrap_or_else(|| panic!("no reply to {json}:\n{}", self.stderr()));
        assert_eq!(reply["status"], "ok", "{json} -> {reply}");
        reply["answer"]["data"].clone()
    }

    /// `query persistence`.
    pub fn persistence(&self) -> serde_json::Value {
        self.ok(r#"{"command":"persistence"}"#)
    }

    /// The `persist` entry of `query health`.
    pub fn persist_health(&self) -> serde_json::Value {
        let health = self.ok(r#"{"command":"health"}"#);
        health
            .as_array()
            .and_then(|a| a.iter().find(|h| h["store"] == "persist").cloned())
            .expect("a persist health entry")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Writes one request frame on a new connection and reads the reply.
pub fn exchange(socket: &Path, json: &str) -> Option<serde_json::Value> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    let mut frame = (json.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(json.as_bytes());
    stream.write_all(&frame).ok()?;
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

/// A small xorshift generator (tests pick kill moments with it; seeded and printed).
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock unless `WATCHPOST_TEST_SEED` is set; prints the seed.
    pub fn new() -> Rng {
        let seed = std::env::var("WATCHPOST_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("seed {seed} (WATCHPOST_TEST_SEED to repeat)");
        Rng(seed | 1)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

impl Default for Rng {
    fn default() -> Self {
        Rng::new()
    }
}
