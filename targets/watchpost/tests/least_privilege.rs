//! The daemon as an unprivileged user holding exactly the capabilities the service unit grants
//! (`packaging/watchpost.service`, `AmbientCapabilities=`), started the way `setpriv` can: it
//! must load eBPF (process events and the DNS capture, which needs CAP_NET_ADMIN), read
//! kallsyms addresses, see other users' executables, and answer like a root daemon does.
//!
//! Needs root (to switch user and grant capabilities) and `setpriv`; fails loudly otherwise
//! unless `WATCHPOST_SKIP_EBPF_TESTS=1`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{Daemon, eventually};

/// The unit the Debian package installs.
const UNIT: &str = include_str!("../packaging/watchpost.service");
/// A uid and gid no account uses here (nothing is owned by it).
const UID: &str = "64123";

fn may_run() -> bool {
    if std::env::var_os("WATCHPOST_SKIP_EBPF_TESTS").is_some_and(|v| v == "1") {
        eprintln!("least-privilege test skipped (WATCHPOST_SKIP_EBPF_TESTS=1)");
        return false;
    }
    assert!(
        rustix::process::geteuid().is_root(),
        "the least-privilege test needs root (or set WATCHPOST_SKIP_EBPF_TESTS=1)"
    );
    true
}

/// `AmbientCapabilities=` of the unit, as setpriv spells them (`+bpf,+perfmon,…`).
fn unit_capabilities() -> String {
    let caps: Vec<String> = UNIT
        .lines()
        .filter_map(|l| l.trim().strip_prefix("AmbientCapabilities="))
        .flat_map(str::split_whitespace)
        .map(|c| {
            let name = c
                .strip_prefix("CAP_")
                .expect("capability names start with CAP_");
            format!("+{}", name.to_ascii_lowercase())
        })
        .collect();
    assert!(!caps.is_empty(), "the unit grants no capabilities");
    caps.join(",")
}

/// A daemon run as `UID` with only the unit's capabilities (ambient, inheritable and bounding
/// sets), no new privileges, `collector.ebpf = "required"`.
struct CappedDaemon {
    child: Child,
    dir: std::path::PathBuf,
    socket: std::path::PathBuf,
    config: std::path::PathBuf,
}

impl CappedDaemon {
    fn start() -> CappedDaemon {
        let dir = support::temp_dir("least-privilege");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let socket = dir.join("s.sock");
        let config = dir.join("watchpost.toml");
        std::fs::write(
            &config,
            format!(
                "[daemon]\ndata_dir = \"{}\"\n[socket]\npath = \"{}\"\n\
                 daemon_user = \"{UID}\"\n[collector]\nebpf = \"required\"\n",
                dir.join("data").display(),
                socket.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        let caps = unit_capabilities();
        let child = Command::new("setpriv")
            .args([
                &format!("--reuid={UID}"),
                &format!("--regid={UID}"),
                "--clear-groups",
                &format!("--inh-caps=-all,{caps}"),
                &format!("--ambient-caps=-all,{caps}"),
                &format!("--bounding-set=-all,{caps}"),
                "--no-new-privs",
            ])
            .args(support::bin_argv())
            .args(["run", "--config", config.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .expect("setpriv runs");
        let mut daemon = CappedDaemon {
            child,
            dir,
            socket,
            config,
        };
        let ready = eventually(support::START_DEADLINE, || {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("capped daemon exited ({status}):\n{}", daemon.stderr());
            }
            daemon.query(&["stores"]).code == Some(0)
        });
        assert!(ready, "capped daemon never answered:\n{}", daemon.stderr());
        daemon
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// Queried as root (root may always query), trusting the daemon's uid as its
    /// `socket.daemon_user` (the packaged configuration names the unit's user the same way).
    fn query(&self, args: &[&str]) -> support::CliOutput {
        let mut all = vec![
            "query",
            "--config",
            self.config.to_str().unwrap(),
            "--socket",
            self.socket.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        support::watchpost(&all)
    }

    fn query_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.query(&all);
        assert_eq!(
            out.code,
            Some(0),
            "query {args:?}: {out:?}\n{}",
            self.stderr()
        );
        serde_json::from_str(out.stdout.trim()).unwrap()
    }
}

impl Drop for CappedDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn daemon_health(health: &serde_json::Value) -> serde_json::Value {
    health
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["store"] == "daemon")
        .unwrap_or_else(|| panic!("no daemon entry: {health}"))
        .clone()
}

/// A few kernel symbol addresses from the real kallsyms (read as root).
fn kallsyms_addresses() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/kallsyms").unwrap();
    let wanted = ["_stext", "schedule", "do_sys_openat2", "bpf_prog_load"];
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (addr, _kind, name) = (f.next()?, f.next()?, f.next()?);
            (wanted.contains(&name) && f.next().is_none()).then(|| format!("0x{addr}"))
        })
        .collect()
}

#[test]
fn the_units_capabilities_answer_like_root() {
    if !may_run() {
        return;
    }
    // Started before either daemon: only a /proc scan describes it, and its exe link belongs to
    // root (reading it as another user takes CAP_SYS_PTRACE).
    let mut before = Command::new("/bin/sleep").arg("120").spawn().unwrap();
    let root = Daemon::start("lp-root", "[collector]\nebpf = \"required\"\n");
    let capped = CappedDaemon::start();

    let status = std::fs::read_to_string(format!("/proc/{}/status", capped.child.id())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.contains(UID), "{uid_line}");
    assert!(
        capped.stderr().contains("eBPF collector attached"),
        "{}",
        capped.stderr()
    );
    let health = daemon_health(&capped.query_json(&["health"]));
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["message"], "collecting with eBPF");

    // Kernel symbols: the same answers as root (CAP_SYSLOG shows the addresses).
    let addresses = kallsyms_addresses();
    assert!(
        addresses.len() >= 2,
        "kallsyms lacks the expected symbols: {addresses:?}"
    );
    for address in &addresses {
        let mine = capped.query_json(&["symbol", address]);
        assert_eq!(
            mine,
            root.query_json(&["symbol", address]),
            "symbol {address}"
        );
        assert!(!mine.as_array().unwrap().is_empty(), "{address}: {mine}");
    }

    // A root process from the bootstrap scan: same record, executable included.
    let pid = before.id().to_string();
    let mine = capped.query_json(&["process", "--pid", &pid]);
    assert_eq!(mine, root.query_json(&["process", "--pid", &pid]));
    // Resolved from /proc/<pid>/exe (merged /usr: /bin/sleep is /usr/bin/sleep).
    assert!(
        mine["exe"].as_str().unwrap().ends_with("bin/sleep"),
        "{mine}"
    );

    // A process started now reaches both through the kernel feed.
    let mut after = Command::new("/bin/sleep").arg("120").spawn().unwrap();
    let pid = after.id().to_string();
    let seen = eventually(Duration::from_secs(20), || {
        capped.query(&["process", "--pid", &pid]).code == Some(0)
            && root.query(&["process", "--pid", &pid]).code == Some(0)
    });
    assert!(seen, "{}", capped.stderr());
    assert_eq!(
        capped.query_json(&["process", "--pid", &pid]),
        root.query_json(&["process", "--pid", &pid])
    );

    // The system facts agree but for the daemon's own start time.
    let mut mine = capped.query_json(&["system"]);
    let mut theirs = root.query_json(&["system"]);
    mine["start_time"] = serde_json::Value::Null;
    theirs["start_time"] = serde_json::Value::Null;
    assert_eq!(mine, theirs);

    let _ = before.kill();
    let _ = before.wait();
    let _ = after.kill();
    let _ = after.wait();
}
