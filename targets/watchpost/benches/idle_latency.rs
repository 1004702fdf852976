//! What the daemon costs when nothing happens, and how soon a kernel event is answerable.
//!
//! For the real binary (`CARGO_BIN_EXE_watchpost`, or `--binary PATH`, e.g. the shipped
//! `target/dist/x86_64/watchpost`), as root:
//! 1. **Idle, eBPF**: a daemon on the default configuration (eBPF, default intervals) is left
//!    alone for `--idle-seconds` (default 60) after a settle period; its CPU time is read from
//!    `/proc/<pid>/stat` (utime + stime, clock ticks) and its threads' `schedstat` (ns), and its
//!    wake-ups as the context switches of all its threads.
//! 2. **Latency at 10 events/s**: 300 real processes, one every 100 ms; for each, the time
//!    from just before `spawn` until `process --pid` answers over the socket (polled every
//!    0.25 ms), i.e. fork + exec in the kernel → ring buffer → reader → store → answerable.
//! 3. **Latency at 100k records/s**: the same, while another thread injects fork records into
//!    the daemon's own fork program with `BPF_PROG_TEST_RUN` at 100k/s (paced per millisecond),
//!    so the ring buffer carries that load; afterwards the daemon's `kernel events` must have
//!    grown by at least the injected count and `kernel events lost` must be 0.
//! 4. **Idle, polling**: a daemon with `collector.ebpf = "off"`, measured like 1.
//!
//! This machine is shared, and eBPF sees every process on it: the idle windows count the
//! kernel events the daemon read meanwhile, and a second window with 50 extra execs/s gives the
//! cost per event, so the cost at 0 events/s can be read off the line through both.
//!
//! A custom harness, not criterion: the quantities are CPU over a minute and a latency
//! distribution under load. Run: `cargo bench -p watchpost --bench idle_latency
//! [-- --idle-seconds 60] [--binary PATH]`.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn exchange(socket: &Path, request: &str) -> Option<serde_json::Value> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut frame = (request.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(request.as_bytes());
    stream.write_all(&frame).ok()?;
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

fn ok(reply: &Option<serde_json::Value>) -> bool {
    reply.as_ref().is_some_and(|r| r["status"] == "ok")
}

fn start(binary: &Path, tag: &str, extra: &str) -> Daemon {
    let dir = std::env::temp_dir().join(format!("wp-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("s.sock");
    let config = dir.join("watchpost.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\ndata_dir = \"{}\"\n[socket]\npath = \"{}\"\n{extra}",
            dir.join("data").display(),
            socket.display()
        ),
    )
    .unwrap();
    let child = Command::new(binary)
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .expect("the daemon starts");
    let daemon = Daemon { child, dir, socket };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok(&exchange(&daemon.socket, r#"{"command":"stores"}"#)) {
        assert!(
            Instant::now() < deadline,
            "daemon not ready: {}",
            stderr(&daemon)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon
}

fn stderr(daemon: &Daemon) -> String {
    std::fs::read_to_string(daemon.dir.join("stderr")).unwrap_or_default()
}

fn daemon_counter(daemon: &Daemon, name: &str) -> u64 {
    let reply = exchange(&daemon.socket, r#"{"command":"metrics"}"#).expect("metrics");
    reply["answer"]["data"]["daemon"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no daemon counter {name}: {reply}"))
}

/// CPU time of a process: ticks from `/proc/<pid>/stat` and ns from its threads' schedstat;
/// and its threads' context switches.
#[derive(Clone, Copy)]
struct Usage {
    ticks: u64,
    schedstat_ns: u64,
    switches: u64,
    at: Instant,
}

fn usage(pid: u32) -> Usage {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the line (utime, stime) are 11 and 12 after the command.
    let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let (mut schedstat_ns, mut switches) = (0, 0);
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let path = task.path();
        if let Ok(s) = std::fs::read_to_string(path.join("schedstat")) {
            schedstat_ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(s) = std::fs::read_to_string(path.join("status")) {
            for line in s.lines() {
                if let Some(v) = line
                    .strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                {
                    switches += v.trim().parse::<u64>().unwrap_or(0);
                }
            }
        }
    }
    Usage {
        ticks,
        schedstat_ns,
        switches,
        at: Instant::now(),
    }
}

/// One measured window: CPU ticks, seconds, kernel events the daemon read meanwhile.
struct Window {
    ticks: u64,
    seconds: f64,
    events: u64,
}

impl Window {
    fn percent(&self) -> f64 {
        self.ticks as f64 / USER_HZ / self.seconds * 100.0
    }
}

/// `/proc` reports CPU time in clock ticks of 1/100 s (USER_HZ).
const USER_HZ: f64 = 100.0;

fn idle(daemon: &Daemon, label: &str, seconds: u64) -> Window {
    // Let start-up work (bootstrap, first reconcile, allocator) settle first.
    std::thread::sleep(Duration::from_secs(5));
    let pid = daemon.child.id();
    let events_before = daemon_counter(daemon, "kernel_events");
    let before = usage(pid);
    std::thread::sleep(Duration::from_secs(seconds));
    let after = usage(pid);
    let events = daemon_counter(daemon, "kernel_events") - events_before;
    let elapsed = after.at.duration_since(before.at).as_secs_f64();
    let window = Window {
        ticks: after.ticks - before.ticks,
        seconds: elapsed,
        events,
    };
    let ns = after.schedstat_ns.saturating_sub(before.schedstat_ns);
    println!(
        "{label}: {} ticks in {elapsed:.1} s = {:.3} % of a core (/proc/<pid>/stat; \
         live threads' schedstat {:.1} ms); {:.2} wake-ups/s ({} context switches); \
         {events} kernel events read meanwhile ({:.1}/s)",
        window.ticks,
        window.percent(),
        ns as f64 / 1e6,
        (after.switches - before.switches) as f64 / elapsed,
        after.switches - before.switches,
        events as f64 / elapsed
    );
    window
}

/// Starts `/bin/true` `rate` times per second until `stop` (extra kernel events for the
/// idle-cost regression).
fn exec_load(rate: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let interval = Duration::from_secs(1) / rate;
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            next += interval;
            let _ = Command::new("/bin/true").status();
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
        }
    })
}

/// The daemon's cost with no kernel event at all, from two windows with different event
/// rates (this machine is shared: its other work always makes some events): a straight line
/// through (events/s, % of a core), read at 0 events/s.
fn idle_without_events(quiet: &Window, loaded: &Window) {
    let rate = |w: &Window| w.events as f64 / w.seconds;
    let slope = (loaded.percent() - quiet.percent()) / (rate(loaded) - rate(quiet));
    let at_zero = quiet.percent() - slope * rate(quiet);
    // A negative intercept means the cost without events is below what the tick resolution
    // and the noise of the two windows can show.
    println!(
        "idle, eBPF, extrapolated to 0 kernel events/s: {:.3} % of a core \
         ({:.5} % per event/s; from {:.1} and {:.1} events/s)",
        at_zero,
        slope,
        rate(quiet),
        rate(loaded)
    );
}

/// Event-to-answerable latencies of `count` processes started `interval` apart.
fn latencies(daemon: &Daemon, count: usize, interval: Duration) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(count);
    let mut children: Vec<Child> = Vec::new();
    let mut next = Instant::now();
    for _ in 0..count {
        while Instant::now() < next {
            std::thread::sleep(next - Instant::now());
        }
        next += interval;
        let started = Instant::now();
        let child = Command::new("/bin/sleep")
            .arg("2")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let request = format!(r#"{{"command":"process_by_pid","pid":{}}}"#, child.id());
        let deadline = started + Duration::from_secs(10);
        loop {
            if ok(&exchange(&daemon.socket, &request)) {
                samples.push(started.elapsed());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "process {} never became answerable",
                child.id()
            );
            std::thread::sleep(Duration::from_micros(250));
        }
        children.push(child);
        children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
    }
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    samples
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    println!(
        "latency, {label}: {} events: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3
    );
}

// --- BPF_PROG_TEST_RUN on the daemon's fork program ---

const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_TEST_RUN: libc::c_long = 10;

fn bpf(cmd: libc::c_long, attr: &mut [u8]) -> libc::c_long {
    // SAFETY: `attr` is a zero-initialised `union bpf_attr` of the length passed, filled for
    // `cmd`; the kernel reads and writes only within that length.
    unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) }
}

/// The program IDs the daemon holds, from its fds' fdinfo.
fn program_ids(pid: u32) -> Vec<u32> {
    let mut ids = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .flatten()
    {
        if let Ok(info) = std::fs::read_to_string(fd.path()) {
            for line in info.lines() {
                if let Some(id) = line.strip_prefix("prog_id:")
                    && let Ok(id) = id.trim().parse()
                {
                    ids.push(id);
                }
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// An fd of the daemon's program whose name starts with `name` (names are cut at 15 bytes).
fn program_fd(pid: u32, name: &str) -> OwnedFd {
    for id in program_ids(pid) {
        let mut attr = [0u8; 16];
        attr[..4].copy_from_slice(&id.to_ne_bytes());
        let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr);
        if fd < 0 {
            continue;
        }
        // SAFETY: the kernel just returned this fd to us; nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let mut info = [0u8; 256];
        let mut attr = [0u8; 16];
        attr[..4].copy_from_slice(&(fd.as_raw_fd() as u32).to_ne_bytes());
        attr[4..8].copy_from_slice(&(info.len() as u32).to_ne_bytes());
        attr[8..16].copy_from_slice(&(info.as_mut_ptr() as u64).to_ne_bytes());
        if bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) != 0 {
            continue;
        }
        // `struct bpf_prog_info.name` is at offset 64, 16 bytes.
        let raw = &info[64..80];
        let len = raw.iter().position(|b| *b == 0).unwrap_or(16);
        let prog_name = String::from_utf8_lossy(&raw[..len]);
        if name.starts_with(prog_name.as_ref()) && !prog_name.is_empty() {
            return fd;
        }
    }
    panic!("the daemon ({pid}) holds no program named {name}");
}

/// Runs `prog` once with two null raw-tracepoint arguments (one zeroed fork record).
fn test_run(prog: &OwnedFd) {
    let args = [0u64; 2];
    let mut attr = [0u8; 80];
    attr[..4].copy_from_slice(&(prog.as_raw_fd() as u32).to_ne_bytes());
    // ctx_size_in at 40, ctx_in at 48 (`bpf_attr.test`).
    attr[40..44].copy_from_slice(&(size_of_val(&args) as u32).to_ne_bytes());
    attr[48..56].copy_from_slice(&(args.as_ptr() as u64).to_ne_bytes());
    let rc = bpf(BPF_PROG_TEST_RUN, &mut attr);
    assert_eq!(
        rc,
        0,
        "BPF_PROG_TEST_RUN: {}",
        std::io::Error::last_os_error()
    );
}

/// Injects `rate` fork records per second into the daemon's fork program until `stop`.
fn inject(
    pid: u32,
    rate: u64,
    stop: Arc<AtomicBool>,
    injected: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    let prog = program_fd(pid, "sched_process_fork");
    std::thread::spawn(move || {
        let per_ms = rate / 1000;
        let started = Instant::now();
        let mut tick = 0u64;
        while !stop.load(Ordering::Relaxed) {
            tick += 1;
            let due = started + Duration::from_millis(tick);
            for _ in 0..per_ms {
                test_run(&prog);
            }
            injected.fetch_add(per_ms, Ordering::Relaxed);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test` runs bench targets without --bench: nothing to measure then.
        return ExitCode::SUCCESS;
    }
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let idle_seconds: u64 = value("--idle-seconds").map_or(60, |v| v.parse().unwrap());
    // `--only idle` or `--only latency` runs one half.
    let only = value("--only");
    let run_idle = only.as_deref() != Some("latency");
    let run_latency = only.as_deref() != Some("idle");
    let binary = value("--binary")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_watchpost")));
    assert!(
        rustix::process::geteuid().is_root(),
        "run as root: the daemon loads eBPF"
    );
    println!("binary: {}", binary.display());

    {
        let daemon = start(&binary, "ebpf", "");
        assert!(
            stderr(&daemon).contains("eBPF collector attached"),
            "eBPF did not load:\n{}",
            stderr(&daemon)
        );
        if run_idle {
            let quiet = idle(&daemon, "idle, eBPF (default configuration)", idle_seconds);
            let stop = Arc::new(AtomicBool::new(false));
            let load = exec_load(50, stop.clone());
            let loaded = idle(&daemon, "eBPF, plus 50 execs/s", idle_seconds);
            stop.store(true, Ordering::Relaxed);
            load.join().unwrap();
            idle_without_events(&quiet, &loaded);
        }
        if run_latency {
            report(
                "10 events/s",
                latencies(&daemon, 300, Duration::from_millis(100)),
            );

            let lost_before = daemon_counter(&daemon, "kernel_events_lost");
            let events_before = daemon_counter(&daemon, "kernel_events");
            let stop = Arc::new(AtomicBool::new(false));
            let injected = Arc::new(AtomicU64::new(0));
            let injector = inject(daemon.child.id(), 100_000, stop.clone(), injected.clone());
            std::thread::sleep(Duration::from_secs(1));
            let started = Instant::now();
            let samples = latencies(&daemon, 300, Duration::from_millis(100));
            stop.store(true, Ordering::Relaxed);
            injector.join().unwrap();
            let injected = injected.load(Ordering::Relaxed);
            let rate = injected as f64 / (started.elapsed().as_secs_f64() + 1.0);
            report(
                &format!("10 events/s while injecting {rate:.0} records/s"),
                samples,
            );
            // Wait until the daemon has read everything injected.
            let deadline = Instant::now() + Duration::from_secs(30);
            while daemon_counter(&daemon, "kernel_events") < events_before + injected
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            let read = daemon_counter(&daemon, "kernel_events") - events_before;
            let lost = daemon_counter(&daemon, "kernel_events_lost") - lost_before;
            println!("injected {injected} records: daemon read {read} kernel events, {lost} lost");
            assert_eq!(lost, 0, "the kernel lost records");
            assert!(read >= injected, "read {read} < injected {injected}");
        }
    }
    if run_idle {
        let daemon = start(&binary, "polling", "[collector]\nebpf = \"off\"\n");
        idle(
            &daemon,
            "idle, polling /proc (collector.ebpf = \"off\")",
            idle_seconds,
        );
    }
    ExitCode::SUCCESS
}
