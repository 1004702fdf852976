//! Detections and containers from real processes seen by a real daemon's `/proc` rescans:
//! - a shell started under a program named `nginx` is reported by `shell_from_service` as one
//!   JSON line on the daemon's stdout;
//! - a process moved into a real cgroup v2 directory named like a Docker scope is discovered as
//!   a container (listed, found by prefix, then removed when its last process exits), and its
//!   program, run from a temp directory, is reported by `tmp_exec_in_container`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{Daemon, eventually, temp_dir};

/// Children killed and reaped, the cgroup and directory removed, on every exit path.
#[derive(Default)]
struct Cleanup {
    children: Vec<Child>,
    cgroup: Option<PathBuf>,
    dir: Option<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(cg) = &self.cgroup {
            // Empty once its processes are reaped; the kernel may need a moment to notice.
            eventually(Duration::from_secs(30), || {
                std::fs::remove_dir(cg).is_ok() || !cg.exists()
            });
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Spawns `program args`, retrying while another test thread's fork still holds the freshly
/// copied binary open for writing ("text file busy").
fn spawn(program: &Path, args: &[&str]) -> Child {
    let mut tries = 0;
    loop {
        match Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
        {
            Ok(child) => return child,
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 3_000 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("spawning {}: {e}", program.display()),
        }
    }
}

/// The detections printed so far, parsed.
fn detections(daemon: &Daemon) -> Vec<serde_json::Value> {
    daemon
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not a JSON line: {l}")))
        .collect()
}

#[test]
fn shell_under_a_service_is_reported_as_a_json_line() {
    let daemon = Daemon::start("shell", "");
    let mut cleanup = Cleanup::default();
    let dir = temp_dir("nginx");
    cleanup.dir = Some(dir.clone());
    let service = dir.join("nginx");
    std::fs::copy("/bin/sh", &service).unwrap();
    // `nginx` runs a shell that stays alive (the `; :` keeps it from exec'ing sleep).
    let nginx = spawn(&service, &["-c", "/bin/sh -c 'sleep 60; :'; :"]);
    let nginx_pid = nginx.id();
    cleanup.children.push(nginx);

    let reported = eventually(Duration::from_secs(20), || {
        detections(&daemon).iter().any(|d| {
            d["detector"] == "shell_from_service"
                && d["data"]["service"] == "nginx"
                && d["data"]["service_pid"] == nginx_pid
        })
    });
    assert!(
        reported,
        "no detection; stdout:\n{}\nstderr:\n{}",
        daemon.stdout(),
        daemon.stderr()
    );
    let all = detections(&daemon);
    let found = all
        .iter()
        .find(|d| d["detector"] == "shell_from_service")
        .unwrap();
    assert_eq!(found["severity"], "high");
    // The reported process is the shell: its parent is nginx, per /proc.
    let shell_pid = found["process"]["pid"].as_u64().unwrap() as u32;
    let facts = support::ProcFacts::new();
    assert_eq!(facts.stat(shell_pid).map(|(ppid, _)| ppid), Some(nginx_pid));
    assert_eq!(
        found["process"]["entity_id"],
        facts.entity_id(shell_pid).unwrap()
    );
    // Enriched from the stores: the ancestry summary starts with the shell, then nginx.
    assert_eq!(found["process"]["ancestry"][0]["pid"], shell_pid);
    assert_eq!(found["process"]["ancestry"][1]["pid"], nginx_pid);
    assert_eq!(found["schema"], "watchpost.detection.v1");
    // Only JSON lines on stdout; logs went to stderr.
    assert!(daemon.stderr().contains("watchpost ready"));
}

/// The cgroup v2 mount point, from /proc/mounts.
fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, path, kind) = (fields.next()?, fields.next()?, fields.next()?);
        (kind == "cgroup2").then(|| PathBuf::from(path))
    })
}

#[test]
fn container_from_a_real_cgroup_and_tmp_exec_inside_it() {
    let root = cgroup2_root().filter(|_| rustix::process::geteuid().is_root());
    if !support::privileged_test_may_run(
        root.is_some(),
        "container checks (root and a cgroup2 mount)",
    ) {
        return;
    }
    let Some(root) = root else { return };
    let daemon = Daemon::start("container", "");
    let mut cleanup = Cleanup::default();
    let dir = temp_dir("payload");
    cleanup.dir = Some(dir.clone());

    let stamp = format!("{:016x}", watchpost_actors::clock::now());
    let container_id = stamp.repeat(4);
    let cgroup = root.join(format!("docker-{container_id}.scope"));
    std::fs::create_dir(&cgroup).expect("creating a cgroup (root needed)");
    cleanup.cgroup = Some(cgroup.clone());

    // A shell moves itself into the cgroup, then runs a program copied into the temp dir.
    let payload = dir.join("payload");
    std::fs::copy("/bin/sleep", &payload).unwrap();
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec {} 60",
        cgroup.display(),
        payload.display()
    );
    let inside = spawn(Path::new("/bin/sh"), &["-c", &script]);
    let inside_pid = inside.id();
    cleanup.children.push(inside);

    let prefix = &container_id[..12];
    let listed = eventually(Duration::from_secs(20), || {
        daemon.query(&["container", prefix]).code == Some(0)
    });
    assert!(listed, "container never discovered:\n{}", daemon.stderr());
    let c = daemon.query_json(&["container", prefix]);
    assert_eq!(c["id"], container_id.as_str());
    assert_eq!(c["runtime"], "docker");
    let list = daemon.query_json(&["containers", "--runtime", "docker"]);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == container_id.as_str()),
        "{list}"
    );

    // Its program runs from /tmp: reported, with the container's ID.
    let reported = eventually(Duration::from_secs(20), || {
        detections(&daemon).iter().any(|d| {
            d["detector"] == "tmp_exec_in_container"
                && d["process"]["pid"] == inside_pid
                && d["container"]["id"] == container_id.as_str()
        })
    });
    assert!(
        reported,
        "no detection; stdout:\n{}\nstderr:\n{}",
        daemon.stdout(),
        daemon.stderr()
    );

    // The last process leaves: the container is no longer listed, but still found (grace).
    for child in &mut cleanup.children {
        let _ = child.kill();
        let _ = child.wait();
    }
    cleanup.children.clear();
    let unlisted = eventually(Duration::from_secs(20), || {
        let list = daemon.query_json(&["containers"]);
        !list
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == container_id.as_str())
    });
    assert!(
        unlisted,
        "container still listed after its last process exited"
    );
    assert_eq!(daemon.query(&["container", &container_id]).code, Some(0));
}
