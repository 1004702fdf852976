//! Real container runtimes for the enrichment tests: podman (with its Docker-compatible API
//! service) and containerd, each started by PID in a temp directory with its own configuration,
//! and a busybox image built locally (no registry is reachable here). Recipe and pitfalls:
//! `../shared/notes/container-runtimes.md`.
//!
//! A [`Fixture`] owns everything it makes. Dropping it — also when the test panics — removes
//! every container it started, stops the services by PID, kills what outlived them (conmon,
//! shims, the containers' own processes, found by PID in their cgroups or by the fixture's
//! unique directory in their command line, never by name), removes the cgroups and the files the
//! runtimes wrote outside the temp directory that did not exist before, then the temp directory.
//!
//! Fixtures are serialised across processes with a lock file: runtimes share `/run/runc`, the
//! libpod lock segment and the cgroup parents.
//!
//! A test that needs the runtimes calls [`Fixture::start`]; when they cannot be installed or
//! started it FAILS, unless `WATCHPOST_SKIP_RUNTIME_TESTS=1` is set (then [`Fixture::start`]
//! returns `None` and says so).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{eventually, temp_dir};

/// The opt-out variable.
pub const SKIP_VAR: &str = "WATCHPOST_SKIP_RUNTIME_TESTS";

/// The image every container runs (built locally by the fixture).
pub const IMAGE: &str = "localhost/localimage:1";

/// The containerd namespace Kubernetes (CRI) uses; the fixture's containerd containers live there.
pub const K8S_NAMESPACE: &str = "k8s.io";

/// Packages the fixture installs when a tool is missing (Debian names).
const PACKAGES: &[&str] = &["podman", "runc", "containerd", "busybox-static", "curl"];

/// Longest any one runtime command may take before the fixture gives up on it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Paths outside the temp directory the runtimes write to; each is removed at the end if the
/// fixture created it.
pub const OUTSIDE_PATHS: &[&str] = &[
    "/dev/shm/libpod_lock",
    "/run/mount",
    "/run/runc",
    "/run/containers",
    "/run/containerd",
    "/var/lib/containers",
];

/// cgroup parents the runtimes create; removed at the end (deepest first, only when empty) if
/// they did not exist before.
const CGROUP_PARENTS: &[&str] = &["libpod_parent", "kubepods"];

/// Why a fixture could not start.
#[derive(Debug)]
pub struct FixtureError(pub String);

impl std::fmt::Display for FixtureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(message: impl Into<String>) -> FixtureError {
    FixtureError(message.into())
}

/// Whether the opt-out variable is set.
pub fn skipped() -> bool {
    std::env::var_os(SKIP_VAR).is_some_and(|v| v == "1")
}

/// Runs `command` with a deadline; a command still running then is killed.
pub fn run_with_timeout(command: &mut Command, limit: Duration) -> Result<Output, FixtureError> {
    let what = format!("{command:?}");
    let dir = temp_dir("cmd");
    let out_path = dir.join("out");
    let err_path = dir.join("err");
    let result = (|| {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(File::create(&out_path).map_err(|e| err(e.to_string()))?)
            .stderr(File::create(&err_path).map_err(|e| err(e.to_string()))?)
            .spawn()
            .map_err(|e| err(format!("{what}: {e}")))?;
        let deadline = Instant::now() + limit;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(err(format!("{what}: still running after {limit:?}")));
                }
                Err(e) => return Err(err(format!("{what}: {e}"))),
            }
        };
        Ok(Output {
            status,
            stdout: std::fs::read(&out_path).unwrap_or_default(),
            stderr: std::fs::read(&err_path).unwrap_or_default(),
        })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Runs `command`, which must succeed; its stdout, trimmed.
fn check(command: &mut Command) -> Result<String, FixtureError> {
    let what = format!("{command:?}");
    let out = run_with_timeout(command, COMMAND_TIMEOUT)?;
    if !out.status.success() {
        return Err(err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn have(tool: &str) -> bool {
    ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"]
        .iter()
        .any(|dir| Path::new(dir).join(tool).exists())
}

/// Installs the runtime packages when a tool is missing (idempotent).
fn ensure_packages() -> Result<(), FixtureError> {
    let tools = ["podman", "runc", "containerd", "ctr", "busybox", "curl"];
    if tools.iter().all(|t| have(t)) {
        return Ok(());
    }
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y"])
        .args(PACKAGES)
        .env("DEBIAN_FRONTEND", "noninteractive");
    if check(&mut install).is_err() {
        // A stale package index is the usual reason; refresh it once and retry.
        check(Command::new("apt-get").arg("update"))?;
        check(&mut install)?;
    }
    match tools.iter().find(|t| !have(t)) {
        Some(t) => Err(err(format!(
            "{t} still missing after installing {PACKAGES:?}"
        ))),
        None => Ok(()),
    }
}

/// 64 random lowercase hex digits (a container ID, as CRI makes them).
pub fn random_hex64() -> String {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("/dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random dashed UUID (a pod UID).
pub fn random_uuid() -> String {
    let h = random_hex64();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Every cgroup hierarchy mounted under `/sys/fs/cgroup` (v1 controllers and the unified one),
/// or the root itself on a pure v2 host.
fn cgroup_hierarchies() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.procs").exists() {
        return vec![root.to_path_buf()];
    }
    std::fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("cgroup.procs").exists())
                .collect()
        })
        .unwrap_or_default()
}

/// A started service, stopped by PID on drop.
struct Service {
    name: &'static str,
    child: Child,
}

impl Service {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after `grace`; always reaped.
    fn stop(&mut self, grace: Duration) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("fixture: {} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL now (a runtime dying mid-query).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A container the fixture started.
#[derive(Debug, Clone)]
struct Started {
    runtime: &'static str,
    namespace: String,
    id: String,
}

/// Real podman and containerd; see the module docs.
pub struct Fixture {
    /// The fixture's temp directory (configs, storage, sockets, logs).
    pub dir: PathBuf,
    /// The image's manifest digest as podman reports it (`sha256:…`).
    pub podman_image_digest: String,
    /// The image's manifest digest as containerd reports it (`sha256:…`).
    pub containerd_image_digest: String,
    podman: Option<Service>,
    containerd: Option<Service>,
    started: Vec<Started>,
    /// Outside paths that existed before the fixture started (left alone at the end).
    preexisting: Vec<PathBuf>,
    /// cgroup directories that existed before (left alone at the end).
    preexisting_cgroups: Vec<PathBuf>,
    /// Held for the fixture's lifetime: one fixture at a time on this machine.
    _lock: File,
}

impl Fixture {
    /// Installs what is missing, builds the image, starts podman's API service and containerd.
    /// `None` only with `WATCHPOST_SKIP_RUNTIME_TESTS=1`; otherwise a failure panics.
    pub fn start(tag: &str) -> Option<Fixture> {
        if skipped() {
            eprintln!("container runtime tests skipped ({SKIP_VAR}=1)");
            return None;
        }
        assert!(
            rustix::process::geteuid().is_root(),
            "container runtime tests need root (or set {SKIP_VAR}=1 to skip them)"
        );
        match Fixture::try_start(tag) {
            Ok(f) => Some(f),
            Err(e) => panic!(
                "could not start the container runtimes: {e}\n(set {SKIP_VAR}=1 to skip these tests)"
            ),
        }
    }

    fn try_start(tag: &str) -> Result<Fixture, FixtureError> {
        let lock = File::create("/run/lock/watchpost-runtime-tests.lock")
            .or_else(|_| File::create(std::env::temp_dir().join("watchpost-runtime-tests.lock")))
            .map_err(|e| err(format!("lock file: {e}")))?;
        lock.lock().map_err(|e| err(format!("locking: {e}")))?;
        ensure_packages()?;
        let dir = temp_dir(&format!("rt-{tag}"));
        let preexisting = OUTSIDE_PATHS
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .collect();
        let preexisting_cgroups = cgroup_hierarchies()
            .iter()
            .flat_map(|h| CGROUP_PARENTS.iter().map(move |p| h.join(p)))
            .filter(|p| p.exists())
            .collect();
        let mut fixture = Fixture {
            dir,
            podman_image_digest: String::new(),
            containerd_image_digest: String::new(),
            podman: None,
            containerd: None,
            started: Vec::new(),
            preexisting,
            preexisting_cgroups,
            _lock: lock,
        };
        // From here on, Drop cleans up whatever fails half-way.
        fixture.write_configs()?;
        let archive = fixture.build_image()?;
        fixture.start_podman_service()?;
        fixture.start_containerd()?;
        check(
            fixture
                .ctr(K8S_NAMESPACE)
                .args(["images", "import"])
                .arg(&archive),
        )?;
        let listing = check(fixture.ctr(K8S_NAMESPACE).args(["images", "ls"]))?;
        fixture.containerd_image_digest = listing
            .lines()
            .find(|l| l.starts_with(IMAGE))
            .and_then(|l| l.split_whitespace().find(|w| w.starts_with("sha256:")))
            .ok_or_else(|| err(format!("imported image not listed by ctr: {listing}")))?
            .to_owned();
        Ok(fixture)
    }

    fn write_configs(&self) -> Result<(), FixtureError> {
        let d = self.dir.display();
        let write = |name: &str, text: String| {
            std::fs::write(self.dir.join(name), text).map_err(|e| err(format!("{name}: {e}")))
        };
        write(
            "storage.conf",
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{d}/graph\"\nrunroot = \"{d}/run\"\n"
            ),
        )?;
        // cgroupfs (no systemd here), runc (crun refuses this host's hybrid cgroups), no
        // network, ulimits root can set without CAP_SYS_RESOURCE, events in a file.
        write(
            "containers.conf",
            format!(
                "[containers]\nnetns = \"none\"\n\
                 default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
                 events_logfile_path = \"{d}/events.log\"\ntmp_dir = \"{d}/tmp\"\n\
                 runtime = \"runc\"\n\
                 [network]\nnetwork_config_dir = \"{d}/net\"\n"
            ),
        )?;
        write(
            "containerd.toml",
            format!(
                "version = 2\nroot = \"{d}/ctrd/root\"\nstate = \"{d}/ctrd/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\naddress = \"{d}/containerd.sock\"\n\
                 [ttrpc]\naddress = \"{d}/containerd.sock.ttrpc\"\n"
            ),
        )
    }

    /// A busybox rootfs imported into podman, saved as an OCI archive, and loaded back so both
    /// runtimes hold the same manifest. Returns the archive.
    fn build_image(&mut self) -> Result<PathBuf, FixtureError> {
        let rootfs = self.dir.join("rootfs");
        let bin = rootfs.join("bin");
        std::fs::create_dir_all(&bin).map_err(|e| err(e.to_string()))?;
        std::fs::create_dir_all(rootfs.join("etc")).map_err(|e| err(e.to_string()))?;
        std::fs::create_dir_all(rootfs.join("tmp")).map_err(|e| err(e.to_string()))?;
        std::fs::copy("/bin/busybox", bin.join("busybox")).map_err(|e| err(e.to_string()))?;
        let applets = check(Command::new("/bin/busybox").arg("--list"))?;
        for applet in applets.lines().filter(|a| !a.is_empty() && *a != "busybox") {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
            .map_err(|e| err(e.to_string()))?;
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").map_err(|e| err(e.to_string()))?;
        let tar = self.dir.join("rootfs.tar");
        check(
            Command::new("tar")
                .args([
                    "--sort=name",
                    "--mtime=@0",
                    "--owner=0",
                    "--group=0",
                    "--numeric-owner",
                    "-C",
                ])
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
        )?;
        let archive = self.dir.join("image-oci.tar");
        check(
            self.podman()
                .args(["import", "--change", "CMD [\"/bin/sh\"]"])
                .arg(&tar)
                .arg(IMAGE),
        )?;
        check(
            self.podman()
                .args(["save", "--format", "oci-archive", "-o"])
                .arg(&archive)
                .arg(IMAGE),
        )?;
        check(self.podman().args(["rmi", "-f", IMAGE]))?;
        check(self.podman().args(["load", "-i"]).arg(&archive))?;
        self.podman_image_digest =
            check(
                self.podman()
                    .args(["image", "inspect", "--format", "{{.Digest}}", IMAGE]),
            )?;
        let _ = std::fs::remove_dir_all(&rootfs);
        Ok(archive)
    }

    fn start_podman_service(&mut self) -> Result<(), FixtureError> {
        let socket = self.podman_socket();
        let log =
            File::create(self.dir.join("podman-service.log")).map_err(|e| err(e.to_string()))?;
        let child = self
            .podman()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| err(e.to_string()))?)
            .stderr(log)
            .spawn()
            .map_err(|e| err(format!("podman system service: {e}")))?;
        self.podman = Some(Service {
            name: "podman system service",
            child,
        });
        let ready = eventually(Duration::from_secs(30), || {
            socket.exists()
                && run_with_timeout(
                    Command::new("curl")
                        .args(["-sf", "--max-time", "2", "--unix-socket"])
                        .arg(&socket)
                        .arg("http://d/_ping"),
                    Duration::from_secs(5),
                )
                .is_ok_and(|o| o.status.success())
        });
        if !ready {
            return Err(err(format!(
                "podman's API service did not answer /_ping: {}",
                std::fs::read_to_string(self.dir.join("podman-service.log")).unwrap_or_default()
            )));
        }
        Ok(())
    }

    fn start_containerd(&mut self) -> Result<(), FixtureError> {
        let log = File::create(self.dir.join("containerd.log")).map_err(|e| err(e.to_string()))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.dir.join("containerd.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| err(e.to_string()))?)
            .stderr(log)
            .spawn()
            .map_err(|e| err(format!("containerd: {e}")))?;
        self.containerd = Some(Service {
            name: "containerd",
            child,
        });
        let ready = eventually(Duration::from_secs(30), || {
            self.containerd_socket().exists()
                && run_with_timeout(
                    self.ctr(K8S_NAMESPACE).arg("version"),
                    Duration::from_secs(5),
                )
                .is_ok_and(|o| o.status.success())
        });
        if !ready {
            return Err(err(format!(
                "containerd did not answer: {}",
                std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// The podman CLI, on the fixture's storage and configuration.
    pub fn podman(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"));
        c
    }

    /// `ctr -n namespace`, talking to the fixture's containerd.
    pub fn ctr(&self, namespace: &str) -> Command {
        let mut c = Command::new("ctr");
        c.env("CONTAINERD_ADDRESS", self.containerd_socket())
            .args(["-n", namespace]);
        c
    }

    /// podman's Docker-compatible API socket.
    pub fn podman_socket(&self) -> PathBuf {
        self.dir.join("podman.sock")
    }

    /// containerd's gRPC socket.
    pub fn containerd_socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// PID of podman's API service (None once stopped).
    pub fn podman_service_pid(&self) -> Option<u32> {
        self.podman.as_ref().map(Service::pid)
    }

    /// `podman run -d --name NAME [--label k=v]… IMAGE sleep 100000`; the full container ID.
    pub fn podman_run(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Result<String, FixtureError> {
        let mut c = self.podman();
        c.args(["run", "-d", "--name", name]);
        for (k, v) in labels {
            c.args(["--label", &format!("{k}={v}")]);
        }
        c.args([IMAGE, "sleep", "100000"]);
        let id = check(&mut c)?;
        if id.len() != 64 {
            return Err(err(format!("podman run printed {id:?}, not an ID")));
        }
        self.started.push(Started {
            runtime: "podman",
            namespace: String::new(),
            id: id.clone(),
        });
        Ok(id)
    }

    /// `podman rm -f -t 0 ID` (a PID 1 `sleep` ignores SIGTERM: no 10 s stop timeout).
    pub fn podman_rm(&self, id: &str) -> Result<(), FixtureError> {
        check(self.podman().args(["rm", "-f", "-t", "0", id])).map(drop)
    }

    /// `podman exec ID args…`, which must succeed; its stdout.
    pub fn podman_exec(&self, id: &str, args: &[&str]) -> Result<String, FixtureError> {
        check(self.podman().args(["exec", id]).args(args))
    }

    /// A Kubernetes-style containerd container (`ctr -n k8s.io run`) with a kubepods cgroup path
    /// and the CRI labels: `/kubepods/besteffort/pod<pod_uid>/<id>`. Returns its ID.
    pub fn ctr_run_k8s(
        &mut self,
        pod_uid: &str,
        labels: &[(&str, &str)],
    ) -> Result<String, FixtureError> {
        let id = random_hex64();
        let mut c = self.ctr(K8S_NAMESPACE);
        c.args(["run", "-d", "--cgroup"])
            .arg(format!("/kubepods/besteffort/pod{pod_uid}/{id}"));
        for (k, v) in labels {
            c.args(["--label", &format!("{k}={v}")]);
        }
        c.args([IMAGE, &id, "sleep", "100000"]);
        self.started.push(Started {
            runtime: "containerd",
            namespace: K8S_NAMESPACE.to_owned(),
            id: id.clone(),
        });
        check(&mut c)?;
        Ok(id)
    }

    /// Kills podman's API service with SIGKILL (the runtime dies mid-query).
    pub fn kill_podman_service(&mut self) {
        if let Some(mut s) = self.podman.take() {
            s.kill();
        }
    }

    /// Starts podman's API service again after [`Fixture::kill_podman_service`].
    pub fn restart_podman_service(&mut self) -> Result<(), FixtureError> {
        let _ = std::fs::remove_file(self.podman_socket());
        self.start_podman_service()
    }

    /// Kills containerd with SIGKILL.
    pub fn kill_containerd(&mut self) {
        if let Some(mut s) = self.containerd.take() {
            s.kill();
        }
    }

    /// The cgroup directories of container `id` in every hierarchy (existing or not).
    fn cgroup_dirs_of(&self, started: &Started) -> Vec<PathBuf> {
        let relative = if started.runtime == "podman" {
            vec![format!("libpod_parent/libpod-{}", started.id)]
        } else {
            // The kubepods path given to ctr; find it under every hierarchy.
            let mut found = Vec::new();
            for h in cgroup_hierarchies() {
                let pods = h.join("kubepods/besteffort");
                if let Ok(entries) = std::fs::read_dir(&pods) {
                    for e in entries.flatten() {
                        let candidate = e.path().join(&started.id);
                        if candidate.exists() {
                            found.push(candidate);
                        }
                    }
                }
            }
            return found;
        };
        cgroup_hierarchies()
            .iter()
            .flat_map(|h| relative.iter().map(move |r| h.join(r)))
            .collect()
    }

    fn cleanup(&mut self) {
        let started = std::mem::take(&mut self.started);
        let cgroups: Vec<PathBuf> = started
            .iter()
            .flat_map(|s| self.cgroup_dirs_of(s))
            .collect();
        // 1. Containers, through their runtimes while those still answer.
        for s in started.iter().filter(|s| s.runtime == "containerd") {
            if self.containerd.is_some() {
                let ns = &s.namespace;
                let _ = run_with_timeout(
                    self.ctr(ns).args(["tasks", "kill", "-s", "SIGKILL", &s.id]),
                    Duration::from_secs(10),
                );
                let _ = run_with_timeout(
                    self.ctr(ns).args(["tasks", "delete", "-f", &s.id]),
                    Duration::from_secs(10),
                );
                let _ = run_with_timeout(
                    self.ctr(ns).args(["containers", "delete", &s.id]),
                    Duration::from_secs(10),
                );
            }
        }
        if started.iter().any(|s| s.runtime == "podman") {
            let _ = run_with_timeout(
                self.podman().args(["rm", "-f", "-t", "0", "--all"]),
                Duration::from_secs(30),
            );
        }
        // 2. Services, by PID.
        if let Some(mut s) = self.podman.take() {
            s.stop(Duration::from_secs(5));
        }
        if let Some(mut s) = self.containerd.take() {
            s.stop(Duration::from_secs(5));
        }
        // 3. What outlived them: processes in our containers' cgroups, and conmon/shims whose
        //    command line names our directory. Killed by PID.
        for cg in &cgroups {
            if let Ok(procs) = std::fs::read_to_string(cg.join("cgroup.procs")) {
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    kill_pid(pid);
                }
            }
        }
        // conmon starts `podman container cleanup` when a container dies, possibly after the
        // services stopped: keep killing until nothing of ours has run for a while, so nothing
        // recreates the files removed below.
        let mut quiet_checks = 0;
        let deadline = Instant::now() + Duration::from_secs(15);
        while quiet_checks < 5 && Instant::now() < deadline {
            let ours = pids_mentioning(&self.dir);
            if ours.is_empty() {
                quiet_checks += 1;
            } else {
                quiet_checks = 0;
                ours.into_iter().for_each(kill_pid);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // 4. cgroups: the containers' own, then parents the runtimes created (only if empty).
        for cg in &cgroups {
            remove_cgroup_tree(cg);
        }
        for h in cgroup_hierarchies() {
            for parent in CGROUP_PARENTS {
                let p = h.join(parent);
                if p.exists() && !self.preexisting_cgroups.contains(&p) {
                    remove_cgroup_tree(&p);
                }
            }
        }
        // 5. Mounts left under the temp directory (a runtime killed before unmounting), then
        //    files written outside it (`umount` itself may write /run/mount).
        unmount_under(&self.dir);
        for s in &started {
            let _ = std::fs::remove_dir_all(Path::new("/run/runc").join(&s.id));
            let _ = std::fs::remove_dir_all(
                Path::new("/run/containerd/runc")
                    .join(&s.namespace)
                    .join(&s.id),
            );
        }
        for path in OUTSIDE_PATHS.iter().map(Path::new) {
            if path.exists() && !self.preexisting.iter().any(|p| p == path) {
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(path)
                } else {
                    std::fs::remove_file(path)
                };
                if let Err(e) = removed {
                    eprintln!("fixture: could not remove {}: {e}", path.display());
                }
            }
        }
        // 6. The temp directory.
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("fixture: could not remove {}: {e}", self.dir.display());
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn kill_pid(pid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// PIDs of processes whose command line contains `dir` (the fixture's own conmon, shims and
/// services; the directory name is unique to the fixture).
pub fn pids_mentioning(dir: &Path) -> Vec<i32> {
    let needle = dir.as_os_str().as_encoded_bytes();
    let own = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == own {
            continue;
        }
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            out.push(pid);
        }
    }
    out
}

/// Removes a cgroup directory and its sub-cgroups, deepest first, retrying for a few seconds
/// while killed processes are still being reaped (a cgroup with members cannot be removed).
fn remove_cgroup_tree(dir: &Path) {
    if !dir.exists() {
        return;
    }
    let gone = eventually(Duration::from_secs(10), || {
        let mut dirs = Vec::new();
        collect_dirs(dir, &mut dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let _ = std::fs::remove_dir(&d);
        }
        !dir.exists()
    });
    if !gone {
        eprintln!("fixture: cgroup {} could not be removed", dir.display());
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

/// Unmounts whatever is still mounted under `dir` (overlay and shm mounts of containers whose
/// runtime died), deepest first.
fn unmount_under(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let prefix = dir.display().to_string();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = run_with_timeout(
            Command::new("umount").args(["-l", p]),
            Duration::from_secs(10),
        );
    }
}
