//! A real `watchpost run` for end-to-end tests: its own temp directory, config, socket and data
//! dir; started and waited for with a deadline; stopped with SIGTERM when dropped. Plus the CLI
//! run as a child process, raw protocol exchanges, /proc facts computed with the core's own
//! functions, and polling with a deadline.

#![allow(dead_code)]

pub mod fake_runtime;
pub mod runtimes;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use watchpost_core::EpochNanos;
use watchpost_core::entity_id::entity_id;
use watchpost_core::start_time::{BootClock, parse_proc_stat};
use watchpost_core::system_info::parse_boot_time;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_watchpost");

/// A command prefix that runs the binary under test, from `WATCHPOST_TEST_RUNNER` (words
/// separated by spaces). `cargo xtask test` sets it to `qemu-aarch64 -L /usr/aarch64-linux-gnu`
/// for the aarch64 run: the tests themselves run under user-mode emulation there, and an
/// emulated process cannot exec another aarch64 binary directly.
pub fn runner() -> Vec<String> {
    std::env::var("WATCHPOST_TEST_RUNNER")
        .map(|r| r.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The program and leading arguments that run the binary under test (see [`runner`]).
pub fn bin_argv() -> Vec<String> {
    let mut argv = runner();
    argv.push(BIN.to_owned());
    argv
}

/// A `Command` for the binary under test (see [`runner`]).
pub fn bin_command() -> Command {
    let argv = bin_argv();
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    command
}

/// A `Command` for this test binary itself (a helper child), through the same runner.
pub fn self_command() -> Command {
    let mut argv = runner();
    argv.push(
        std::env::current_exe()
            .expect("the test binary's path")
            .to_string_lossy()
            .into_owned(),
    );
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    command
}

/// `collector.ebpf` for every [`Daemon::start`], from `WATCHPOST_TEST_EBPF` (`cargo xtask
/// test` sets `off` under emulation, where `bpf()` does not exist); unset: the default.
fn ebpf_mode_override() -> Option<String> {
    std::env::var("WATCHPOST_TEST_EBPF").ok()
}

/// How long a daemon may take to start (a debug build parses ~120k kallsyms lines).
pub const START_DEADLINE: Duration = Duration::from_secs(90);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("wp-e2e-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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

/// What a CLI run printed and returned.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit code (None: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for CliOutput {
    fn from(o: Output) -> Self {
        CliOutput {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs the binary with `args`.
pub fn watchpost(args: &[&str]) -> CliOutput {
    bin_command()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("watchpost runs")
        .into()
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

/// A running daemon.
pub struct Daemon {
    child: Option<Child>,
    /// Its temp directory.
    pub dir: PathBuf,
    /// Its socket.
    pub socket: PathBuf,
}

impl Daemon {
    /// Starts a daemon with a 100 ms rescan and `extra` TOML merged into its config, and waits
    /// until its socket answers.
    pub fn start(tag: &str, extra: &str) -> Daemon {
        Daemon::start_with_env(tag, extra, &[])
    }

    /// [`Daemon::start`] with extra environment variables (fault injection).
    pub fn start_with_env(tag: &str, extra: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = temp_dir(tag);
        let socket = dir.join("s.sock");
        let mut config: toml::Table = toml::from_str(&format!(
            "[daemon]\ndata_dir = \"{}\"\nlog_level = \"info\"\n\
             [socket]\npath = \"{}\"\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n\
             [collector]\nrescan_interval_ms = 100\n",
            dir.join("data").display(),
            socket.display()
        ))
        .unwrap();
        if let Some(mode) = ebpf_mode_override() {
            let mut collector = toml::Table::new();
            collector.insert("ebpf".to_owned(), toml::Value::String(mode));
            let mut over = toml::Table::new();
            over.insert("collector".to_owned(), toml::Value::Table(collector));
            merge(&mut config, over);
        }
        merge(
            &mut config,
            toml::from_str(extra).expect("extra config is TOML"),
        );
        let config = toml::to_string(&config).unwrap();
        let config_path = dir.join("watchpost.toml");
        std::fs::write(&config_path, config).unwrap();
        let child = bin_command()
            .args(["run", "--config"])
            .arg(&config_path)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .expect("daemon spawns");
        let mut daemon = Daemon {
            child: Some(child),
            dir,
            socket,
        };
        let ready = eventually(START_DEADLINE, || {
            if let Some(status) = daemon
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "daemon exited during start-up ({status}):\n{}",
                    daemon.stderr()
                );
            }
            raw_exchange(&daemon.socket, &frame(br#"{"command":"stores"}"#))
                .is_some_and(|reply| reply["status"] == "ok")
        });
        assert!(ready, "daemon not ready in time:\n{}", daemon.stderr());
        daemon
    }

    /// Its configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("watchpost.toml")
    }

    /// Sends `signal` (a name `kill` knows: HUP, USR1, QUIT…).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits (at most `limit`) for the daemon to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its resident set size now, bytes (from `/proc/<pid>/status`).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }

    /// Its process ID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// What it logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// The address its metrics endpoint bound (from its log line).
    pub fn metrics_address(&self) -> Option<String> {
        let log = self.stderr();
        let line = log.lines().find(|l| l.contains("Prometheus metrics at"))?;
        let at = line.find("address=")? + "address=".len();
        Some(line[at..].split_whitespace().next()?.to_owned())
    }

    /// What it printed on stdout (detections) so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout")).unwrap_or_default()
    }

    /// `watchpost query --socket <ours> args…`.
    pub fn query(&self, args: &[&str]) -> CliOutput {
        let mut all = vec!["query", "--socket", self.socket.to_str().unwrap()];
        all.extend_from_slice(args);
        watchpost(&all)
    }

    /// `query args… --json`, which must exit 0; its output parsed.
    pub fn query_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.query(&all);
        assert_eq!(out.code, Some(0), "query {args:?} failed: {out:?}");
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    }

    /// Sends SIGTERM and waits (at most 30 s) for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon still running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "daemon did not stop within 30 s of SIGTERM:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.terminate();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One frame carrying `payload`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// Reads one reply frame from `stream` (None on end of stream or timeout).
pub fn read_reply(stream: &mut UnixStream) -> Option<serde_json::Value> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

/// A connection with a 10 s read timeout.
pub fn connect(socket: &Path) -> Option<UnixStream> {
    let stream = UnixStream::connect(socket).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    Some(stream)
}

/// Writes `bytes` on a new connection and reads one reply.
pub fn raw_exchange(socket: &Path, bytes: &[u8]) -> Option<serde_json::Value> {
    let mut stream = connect(socket)?;
    // A refusing daemon (busy, not allowed) may answer and close before the request is
    // written; its reply is still readable.
    let _ = stream.write_all(bytes);
    read_reply(&mut stream)
}

/// /proc facts computed with the core's own functions (independently of the daemon's reader).
pub struct ProcFacts {
    clock: BootClock,
}

impl ProcFacts {
    /// This boot's clock from `/proc/stat` and `CLK_TCK`.
    pub fn new() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap();
        let btime_ns = parse_boot_time(&stat).unwrap();
        let ticks = rustix::param::clock_ticks_per_second();
        ProcFacts {
            clock: BootClock::new(btime_ns / 1_000_000_000, ticks).unwrap(),
        }
    }

    /// (ppid, canonical start time) of `pid`.
    pub fn stat(&self, pid: u32) -> Option<(u32, EpochNanos)> {
        let raw = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
        let stat = parse_proc_stat(&raw).ok()?;
        Some((
            stat.ppid,
            self.clock.from_proc_ticks(stat.start_ticks).ok()?,
        ))
    }

    /// The entity ID of `pid` now.
    pub fn entity_id(&self, pid: u32) -> Option<u32> {
        self.stat(pid).map(|(_, t)| entity_id(pid, t))
    }

    /// `[(pid, entity id)]` of `pid` and its ancestors, walking `ppid` up to `depth` entries or
    /// until ppid 0.
    pub fn ancestry(&self, pid: u32, depth: usize) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let mut current = pid;
        while out.len() < depth && current != 0 {
            let Some((ppid, start)) = self.stat(current) else {
                break;
            };
            out.push((current, entity_id(current, start)));
            current = ppid;
        }
        out
    }
}

/// Whether a test that needs the kernel's eBPF (and the privileges of
/// [`privileged_test_may_run`]) may run: `WATCHPOST_SKIP_EBPF_TESTS=1` skips it, saying so (the
/// aarch64 run under qemu-user, which has no `bpf()`, sets it; CI runs these natively first).
pub fn ebpf_test_may_run(available: bool, what: &str) -> bool {
    if std::env::var_os("WATCHPOST_SKIP_EBPF_TESTS").is_some_and(|v| v == "1") {
        eprintln!("{what}: needs eBPF, skipped (WATCHPOST_SKIP_EBPF_TESTS=1)");
        return false;
    }
    privileged_test_may_run(available, what)
}

/// Whether a test that needs privileges (root, cgroup v2, `setpriv`) may run. When `available`
/// is false the test fails loudly — CI runs as root and must never skip silently — unless the
/// caller opted out with `WATCHPOST_SKIP_PRIVILEGED_TESTS=1`, in which case it says so and skips.
pub fn privileged_test_may_run(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    if std::env::var_os("WATCHPOST_SKIP_PRIVILEGED_TESTS").is_some_and(|v| v == "1") {
        eprintln!("{what}: not available here, skipped (WATCHPOST_SKIP_PRIVILEGED_TESTS=1)");
        return false;
    }
    panic!("{what}: not available (run as root, or set WATCHPOST_SKIP_PRIVILEGED_TESTS=1 to skip)");
}
