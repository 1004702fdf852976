//! The daemon with its eBPF collector against the real kernel (root): short-lived processes
//! reach the process store though `/proc` is (almost) never rescanned, entity IDs agree with
//! `/proc`, DNS answers seen by the kernel are answered by `query dns`, and an unprivileged
//! daemon falls back to polling and says "degraded: polling". The kernel refusing a root daemon
//! FAILS these tests unless `WATCHPOST_SKIP_EBPF_TESTS=1`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{Daemon, ProcFacts, eventually};

/// eBPF required, `/proc` rescanned once an hour: what the stores learn comes from the kernel.
const KERNEL_ONLY: &str = "[collector]\nebpf = \"required\"\nrescan_interval_ms = 3600000\n\
                           reconcile_interval_ms = 3600000\n";

fn may_run() -> bool {
    if std::env::var_os("WATCHPOST_SKIP_EBPF_TESTS").is_some_and(|v| v == "1") {
        eprintln!("eBPF daemon tests skipped (WATCHPOST_SKIP_EBPF_TESTS=1)");
        return false;
    }
    assert!(
        rustix::process::geteuid().is_root(),
        "eBPF daemon tests need root (or set WATCHPOST_SKIP_EBPF_TESTS=1)"
    );
    true
}

fn daemon_counter(daemon: &Daemon, name: &str) -> u64 {
    let m = daemon.query_json(&["metrics"]);
    m["daemon"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no daemon.{name} in {m}"))
}

#[test]
fn a_burst_of_short_lived_processes_reaches_the_store() {
    if !may_run() {
        return;
    }
    let daemon = Daemon::start("ebpf-burst", KERNEL_ONLY);
    assert!(daemon.stderr().contains("eBPF collector attached"));
    let before = daemon_counter(&daemon, "kernel_process_updates");
    let status = Command::new("/bin/sh")
        .args([
            "-c",
            "i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    // Each /bin/true is a fork, an exec and an exit.
    let seen = eventually(Duration::from_secs(20), || {
        daemon_counter(&daemon, "kernel_process_updates") >= before + 600
    });
    assert!(
        seen,
        "kernel updates: {}",
        daemon_counter(&daemon, "kernel_process_updates")
    );
    assert_eq!(
        daemon_counter(&daemon, "proc_scans"),
        1,
        "only the bootstrap scan ran"
    );

    // One short-lived process, identified from /proc while it is a zombie, then reaped: the
    // store knows it (with its exit) though no rescan ever saw it.
    let facts = ProcFacts::new();
    let mut child = Command::new("/bin/true").spawn().unwrap();
    let pid = child.id();
    let zombie = eventually(Duration::from_secs(30), || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
    });
    assert!(zombie);
    let id = facts.entity_id(pid).unwrap().to_string();
    child.wait().unwrap();
    let known = eventually(Duration::from_secs(30), || {
        let out = daemon.query(&["process", &id, "--json"]);
        out.code == Some(0) && {
            let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            // The file the kernel ran (`/bin` may be a link to `/usr/bin`), and the path given.
            v["exe"] == canonical("/bin/true")
                && v["invoked_path"] == "/bin/true"
                && !v["exit_time"].is_null()
        }
    });
    assert!(known, "{:?}", daemon.query(&["process", &id, "--json"]));

    // A live process: same entity ID as /proc computes.
    let mut sleeper = Command::new("/bin/sleep").arg("30").spawn().unwrap();
    let pid = sleeper.id().to_string();
    // The fork can reach the store before the exec: wait for the exec, not only the process.
    let exec_seen = eventually(Duration::from_secs(10), || {
        let out = daemon.query(&["process", "--pid", &pid, "--json"]);
        out.code == Some(0)
            && serde_json::from_str::<serde_json::Value>(&out.stdout)
                .is_ok_and(|v| v["invoked_path"] == "/bin/sleep")
    });
    assert!(
        exec_seen,
        "{:?}",
        daemon.query(&["process", "--pid", &pid, "--json"])
    );
    let info = daemon.query_json(&["process", "--pid", &pid]);
    assert_eq!(info["entity_id"], facts.entity_id(sleeper.id()).unwrap());
    assert_eq!(info["exe"], canonical("/bin/sleep").as_str());
    assert_eq!(info["invoked_path"], "/bin/sleep");
    let _ = sleeper.kill();
    let _ = sleeper.wait();

    let health = daemon.query_json(&["health"]);
    let entry = health
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["store"] == "daemon")
        .unwrap_or_else(|| panic!("no daemon entry: {health}"));
    assert_eq!(entry["status"], "healthy", "{entry}");
    assert_eq!(entry["message"], "collecting with eBPF");
    // This kernel (6.18, built without modules) has every other attach point: all attached,
    // none reported missing (no modules is nothing lacking).
    let metrics = daemon.query_json(&["metrics"]);
    let attached = metrics["daemon"]["ebpf_attached"].to_string();
    for program in [
        "sched_process_exec",
        "cgroup_mkdir",
        "cgroup_rmdir",
        "cgroup_notify_populated",
    ] {
        assert!(attached.contains(program), "{program} in {attached}");
    }
    assert_eq!(
        metrics["daemon"]["ebpf_unavailable"],
        serde_json::json!([]),
        "{metrics}"
    );
}

/// dnsmasq on a loopback address, stopped (by PID) on drop.
struct DnsServer(Child);

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dns_answers_are_cached_both_ways() {
    if !may_run() {
        return;
    }
    let daemon = Daemon::start("ebpf-dns", KERNEL_ONLY);
    let address = "127.0.0.78";
    let _server = DnsServer(
        Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--bind-interfaces",
                &format!("--listen-address={address}"),
                "--port=53",
                "--no-resolv",
                "--no-hosts",
                "--user=root",
                "--local-ttl=300",
                "--host-record=web.watchpost.test,192.0.2.41",
                "--cname=alias.watchpost.test,web.watchpost.test",
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("dnsmasq (apt-get install dnsmasq)"),
    );
    let answered = eventually(Duration::from_secs(10), || {
        Command::new("dig")
            .args([
                &format!("@{address}"),
                "+tries=1",
                "+time=1",
                "alias.watchpost.test",
                "A",
            ])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("192.0.2.41"))
    });
    assert!(answered, "dnsmasq never answered");
    let cached = eventually(Duration::from_secs(10), || {
        daemon.query(&["dns", "alias.watchpost.test"]).code == Some(0)
    });
    assert!(cached, "{}", daemon.stderr());
    let forward = daemon.query(&["dns", "alias.watchpost.test"]);
    assert!(forward.stdout.contains("192.0.2.41"), "{}", forward.stdout);
    let reverse = daemon.query(&["dns", "192.0.2.41"]);
    assert_eq!(reverse.code, Some(0), "{reverse:?}");
    assert!(
        reverse.stdout.contains("watchpost.test"),
        "{}",
        reverse.stdout
    );
    assert!(daemon_counter(&daemon, "kernel_dns_answers") >= 1);
}

#[test]
fn unprivileged_daemon_polls_and_says_so() {
    if !may_run() {
        return;
    }
    // The daemon runs as nobody: its directory must be writable by it, and the test queries as
    // nobody too (the socket accepts its owner).
    let dir = support::temp_dir("ebpf-unpriv");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let socket = dir.join("s.sock");
    let config = dir.join("watchpost.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\ndata_dir = \"{}\"\n[socket]\npath = \"{}\"\n[collector]\nebpf = \"auto\"\n",
            dir.join("data").display(),
            socket.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let as_nobody = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(support::BIN)
        .args(args);
        c
    };
    let mut child = as_nobody(&["run", "--config", config.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .expect("setpriv runs");
    let sock = socket.to_str().unwrap().to_owned();
    let health = || {
        as_nobody(&["query", "--socket", &sock, "health", "--json"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let answered = eventually(Duration::from_secs(30), || health().is_some());
    let report = health();
    let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(answered, "unprivileged daemon never answered:\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&report.unwrap()).unwrap();
    let entry = report
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["store"] == "daemon")
        .unwrap_or_else(|| panic!("no daemon entry: {report}"))
        .clone();
    assert_eq!(entry["status"], "degraded", "{entry}");
    let message = entry["message"].as_str().unwrap();
    assert!(message.starts_with("degraded: polling"), "{message}");
    // One warning line says why and that it polls.
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("falling back to polling /proc"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `path` with every symlink resolved, as the kernel reports an executed file.
fn canonical(path: &str) -> String {
    std::fs::canonicalize(path)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}
