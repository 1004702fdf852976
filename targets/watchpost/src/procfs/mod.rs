//! Reading processes from `/proc`: one process's facts, or all of them.
//!
//! Start times go through the core's canonical conversion ([`BootClock`] built from `/proc/stat`
//! `btime` and `CLK_TCK`), so the entity IDs computed here equal Tracee's and the eBPF path's.
//! The line parsers are the core's ([`parse_proc_stat`], [`cgroup_lines`], [`parse_cgroup_path`]) and
//! [`status::parse_status_ids`].
//!
//! Processes exit while they are being read: a file that vanished is [`ProcError::Gone`], the
//! normal case of a race, never a failure of the scan. The root is a parameter so tests can point
//! the reader at a fabricated tree.

pub mod exe;
pub mod status;

use std::io;
use std::path::{Path, PathBuf};

use watchpost_core::EpochNanos;
use watchpost_core::cgroup::{CgroupContainer, cgroup_lines, parse_cgroup_path};
use watchpost_core::entity_id::entity_id;
use watchpost_core::process::ExeFlags;
use watchpost_core::start_time::{BootClock, parse_proc_stat};
use watchpost_core::system_info::parse_boot_time;
use watchpost_core::time::NANOS_PER_SEC;

use status::parse_status_ids;

/// What went wrong reading a process.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The process exited (or its `/proc` entry vanished) while it was read: normal.
    #[error("process {pid} is gone")]
    Gone {
        /// The process.
        pid: u32,
    },
    /// A file could not be read for another reason.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A file's text is not what the kernel writes.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was expected.
        reason: String,
    },
}

impl ProcError {
    /// Whether this is the ordinary race with an exiting process.
    pub fn is_gone(&self) -> bool {
        matches!(self, ProcError::Gone { .. })
    }
}

/// Whether `e` means "that /proc entry no longer exists".
fn vanished(e: &io::Error) -> bool {
    // ESRCH: the task exited between open and read.
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(3)
}

/// The `stat` facts of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStatFacts {
    /// Parent process ID (0 for the init process and kthreadd).
    pub ppid: u32,
    /// `comm`, at most 16 bytes.
    pub comm: String,
    /// State letter (`R`, `S`, `Z`, …).
    pub state: u8,
    /// Canonical start time, epoch ns.
    pub start_time: EpochNanos,
}

/// Everything the daemon takes from `/proc/<pid>/` for one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcProcess {
    /// Process ID.
    pub pid: u32,
    /// Parent process ID.
    pub ppid: u32,
    /// Canonical start time, epoch ns.
    pub start_time: EpochNanos,
    /// `comm`.
    pub comm: String,
    /// State letter.
    pub state: u8,
    /// Real user ID.
    pub uid: u32,
    /// Real group ID.
    pub gid: u32,
    /// `/proc/<pid>/exe` target (without the ` (deleted)` suffix); `None` for kernel threads,
    /// zombies and unreadable links.
    pub exe: Option<String>,
    /// Deleted and memfd, from the same link.
    pub exe_flags: ExeFlags,
    /// The container its cgroup names, if any (a cgroup the kernel marked deleted names none).
    pub container: Option<CgroupContainer>,
    /// Inode number of its network namespace; read only for processes in a container (the
    /// container's namespace is trusted for DNS answers), `None` otherwise or if unreadable.
    pub netns: Option<u32>,
}

impl ProcProcess {
    /// The Tracee-compatible entity ID.
    pub fn entity_id(&self) -> u32 {
        entity_id(self.pid, self.start_time)
    }

    /// Whether the process has exited and waits to be reaped.
    pub fn is_zombie(&self) -> bool {
        self.state == b'Z' || self.state == b'X'
    }
}

/// One pass over `/proc`.
#[derive(Debug, Default)]
pub struct ProcScan {
    /// Processes read, in ascending pid order.
    pub processes: Vec<ProcProcess>,
    /// Processes that exited while being read.
    pub gone: u64,
    /// Processes that could not be read for another reason (logged).
    pub errors: u64,
    /// Processes left out because the scan reached its limit.
    pub over_limit: u64,
    /// The pids of those processes: they are alive, just not read (a diff must never take
    /// them for exited).
    pub skipped: Vec<u32>,
}

/// Reads processes under a `/proc` root with one boot's clock.
#[derive(Debug, Clone)]
pub struct ProcReader {
    root: PathBuf,
    clock: BootClock,
}

impl ProcReader {
    /// The reader of the real `/proc`: `btime` from `/proc/stat`, `CLK_TCK` from the C library.
    pub fn system() -> Result<ProcReader, ProcError> {
        let ticks = rustix::param::clock_ticks_per_second();
        ProcReader::new("/proc", ticks)
    }

    /// A reader of the tree at `root`, with `ticks_per_sec` clock ticks per second.
    pub fn new(root: impl Into<PathBuf>, ticks_per_sec: u64) -> Result<ProcReader, ProcError> {
        let root = root.into();
        let path = root.join("stat");
        let text = std::fs::read_to_string(&path).map_err(|source| ProcError::Io {
            path: path.clone(),
            source,
        })?;
        let btime_ns = parse_boot_time(&text).map_err(|e| ProcError::Malformed {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let clock = BootClock::new(btime_ns / NANOS_PER_SEC, ticks_per_sec).map_err(|e| {
            ProcError::Malformed {
                path,
                reason: e.to_string(),
            }
        })?;
        Ok(ProcReader { root, clock })
    }

    /// The boot's clock constants.
    pub fn clock(&self) -> BootClock {
        self.clock
    }

    /// The root read from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn pid_path(&self, pid: u32, file: &str) -> PathBuf {
        self.root.join(pid.to_string()).join(file)
    }

    fn read(&self, pid: u32, file: &str) -> Result<Vec<u8>, ProcError> {
        let path = self.pid_path(pid, file);
        std::fs::read(&path).map_err(|source| {
            if vanished(&source) {
                ProcError::Gone { pid }
            } else {
                ProcError::Io { path, source }
            }
        })
    }

    /// `ppid`, `comm`, state and canonical start time of `pid`.
    pub fn stat(&self, pid: u32) -> Result<ProcStatFacts, ProcError> {
        let raw = self.read(pid, "stat")?;
        let malformed = |reason: String| ProcError::Malformed {
            path: self.pid_path(pid, "stat"),
            reason,
        };
        // An empty read happens when the task is torn down between open and read.
        if raw.is_empty() {
            return Err(ProcError::Gone { pid });
        }
        let stat = parse_proc_stat(&raw).map_err(|e| malformed(e.to_string()))?;
        let start_time = self
            .clock
            .from_proc_ticks(stat.start_ticks)
            .map_err(|e| malformed(e.to_string()))?;
        Ok(ProcStatFacts {
            ppid: stat.ppid,
            comm: stat.comm.as_str().to_owned(),
            state: stat.state,
            start_time,
        })
    }

    /// The canonical start time of `pid`.
    pub fn start_time(&self, pid: u32) -> Result<EpochNanos, ProcError> {
        self.stat(pid).map(|s| s.start_time)
    }

    /// The entity ID `pid` has now.
    pub fn entity_id(&self, pid: u32) -> Result<u32, ProcError> {
        self.start_time(pid).map(|t| entity_id(pid, t))
    }

    /// Everything about `pid`. `stat` is read first: it fixes the identity (pid, start time)
    /// the other files are attributed to.
    pub fn process(&self, pid: u32) -> Result<ProcProcess, ProcError> {
        let stat = self.stat(pid)?;
        let status_raw = self.read(pid, "status")?;
        let status_text = String::from_utf8_lossy(&status_raw);
        let ids = parse_status_ids(&status_text).map_err(|e| {
            if status_raw.is_empty() {
                ProcError::Gone { pid }
            } else {
                ProcError::Malformed {
                    path: self.pid_path(pid, "status"),
                    reason: e.to_string(),
                }
            }
        })?;
        let (exe, exe_flags) = match exe::read_exe(&self.pid_path(pid, "exe")) {
            Some((path, flags)) => (Some(path), flags),
            None => (None, ExeFlags::NONE),
        };
        let container = match self.read(pid, "cgroup") {
            Ok(raw) => container_of(&String::from_utf8_lossy(&raw)),
            Err(e) if e.is_gone() => return Err(e),
            Err(_) => None,
        };
        let netns = if container.is_some() {
            self.namespace_inode(pid, "net")
        } else {
            None
        };
        Ok(ProcProcess {
            pid,
            ppid: stat.ppid,
            start_time: stat.start_time,
            comm: stat.comm,
            state: stat.state,
            uid: ids.uid,
            gid: ids.gid,
            exe,
            exe_flags,
            container,
            netns,
        })
    }

    /// The inode number of `pid`'s namespace of `kind` (`net`, `mnt`, …), if readable.
    pub fn namespace_inode(&self, pid: u32, kind: &str) -> Option<u32> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(self.pid_path(pid, &format!("ns/{kind}"))).ok()?;
        u32::try_from(meta.ino()).ok()
    }

    /// Process IDs listed under the root now, ascending.
    pub fn pids(&self) -> Result<Vec<u32>, ProcError> {
        let entries = std::fs::read_dir(&self.root).map_err(|source| ProcError::Io {
            path: self.root.clone(),
            source,
        })?;
        let mut pids: Vec<u32> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .filter(|pid| *pid != 0)
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    /// Reads every process, at most `limit` of them (the rest are counted in `over_limit`).
    pub fn scan(&self, limit: usize) -> Result<ProcScan, ProcError> {
        let pids = self.pids()?;
        let mut scan = ProcScan {
            processes: Vec::with_capacity(pids.len().min(limit)),
            ..ProcScan::default()
        };
        for pid in pids {
            if scan.processes.len() >= limit {
                scan.over_limit += 1;
                scan.skipped.push(pid);
                continue;
            }
            match self.process(pid) {
                Ok(p) => scan.processes.push(p),
                Err(e) if e.is_gone() => scan.gone += 1,
                Err(e) => {
                    scan.errors += 1;
                    tracing::debug!(pid, error = %e, "process unreadable");
                }
            }
        }
        Ok(scan)
    }
}

/// The container named by the contents of a `/proc/<pid>/cgroup` file: the unified (v2) line's
/// first, else the first v1 line's. Lines the kernel marked ` (deleted)` are leftovers of a
/// removed container and name none.
pub fn container_of(cgroup_file: &str) -> Option<CgroupContainer> {
    let mut first_v1 = None;
    for line in cgroup_lines(cgroup_file).flatten() {
        if line.deleted {
            continue;
        }
        let Some(found) = parse_cgroup_path(line.path) else {
            continue;
        };
        if line.is_unified() {
            return Some(found);
        }
        first_v1.get_or_insert(found);
    }
    first_v1
}

#[cfg(test)]
mod tests {
    use super::*;
    use watchpost_core::container::Runtime;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// A fabricated /proc with a boot at 1_700_000_000 s.
    fn fake_proc(tag: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("watchpost-procfs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(
            root.join("stat"),
            "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n",
        )
        .unwrap();
        root
    }

    fn add(root: &Path, pid: u32, stat: &str, status: &str, cgroup: &str) {
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("stat"), stat).unwrap();
        std::fs::write(dir.join("status"), status).unwrap();
        std::fs::write(dir.join("cgroup"), cgroup).unwrap();
    }

    fn stat_line(pid: u32, comm: &str, state: char, ppid: u32, ticks: u64) -> String {
        let mut fields = vec![format!("{pid} ({comm}) {state} {ppid}")];
        // fields 5..=21, then 22 = start ticks, then a few more
        fields.extend((5..=21).map(|_| "0".to_owned()));
        fields.push(ticks.to_string());
        fields.push("0 0".to_owned());
        fields.join(" ") + "\n"
    }

    #[test]
    fn reads_a_fabricated_process_with_canonical_start_time() {
        let root = fake_proc("one");
        add(
            &root,
            42,
            &stat_line(42, "my (odd) name", 'S', 7, 12_345),
            "Uid:\t1000\t0\t0\t0\nGid:\t100\t0\t0\t0\n",
            &format!("0::/system.slice/docker-{ID}.scope\n"),
        );
        let reader = ProcReader::new(&root, 100).unwrap();
        let p = reader.process(42).unwrap();
        assert_eq!(p.ppid, 7);
        assert_eq!(p.comm, "my (odd) name");
        // 12_345 ticks at 100 Hz = 123.45 s after the boot.
        assert_eq!(p.start_time, 1_700_000_123_450_000_000);
        assert_eq!(p.entity_id(), entity_id(42, 1_700_000_123_450_000_000));
        assert_eq!((p.uid, p.gid), (1000, 100));
        assert_eq!(p.exe, None);
        let c = p.container.unwrap();
        assert_eq!((c.runtime, c.id.as_str()), (Runtime::Docker, ID));
        assert!(matches!(
            reader.process(43),
            Err(ProcError::Gone { pid: 43 })
        ));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn scan_counts_races_errors_and_the_limit() {
        let root = fake_proc("scan");
        let ok = "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        add(
            &root,
            1,
            &stat_line(1, "init", 'S', 0, 1),
            ok,
            "0::/init.scope\n",
        );
        add(&root, 2, &stat_line(2, "kthreadd", 'S', 0, 1), ok, "0::/\n");
        add(&root, 3, "garbage", ok, "");
        // A pid directory without files: the process exited between readdir and open.
        std::fs::create_dir_all(root.join("4")).unwrap();
        add(&root, 5, &stat_line(5, "late", 'S', 1, 9), ok, "");
        std::fs::create_dir_all(root.join("self")).unwrap();
        let reader = ProcReader::new(&root, 100).unwrap();
        let scan = reader.scan(3).unwrap();
        let pids: Vec<u32> = scan.processes.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [1, 2, 5]);
        assert_eq!((scan.gone, scan.errors, scan.over_limit), (1, 1, 0));
        let scan = reader.scan(1).unwrap();
        assert_eq!(scan.processes.len(), 1);
        assert_eq!(scan.over_limit, 4);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn deleted_cgroups_name_no_container_and_v2_wins() {
        assert_eq!(
            container_of(&format!("0::/system.slice/docker-{ID}.scope (deleted)\n")),
            None
        );
        let other = ID.replace('0', "f");
        let text = format!("4:memory:/docker/{other}\n0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(container_of(&text).unwrap().id.as_str(), ID);
        let text = format!("4:memory:/docker/{other}\n0::/init.scope\n");
        assert_eq!(container_of(&text).unwrap().id.as_str(), other);
        assert_eq!(container_of("0::/user.slice/user-1000.slice\n"), None);
    }

    #[test]
    fn this_process_reads_back_consistently() {
        let reader = ProcReader::system().unwrap();
        let me = std::process::id();
        let p = reader.process(me).unwrap();
        assert_eq!(p.ppid, std::os::unix::process::parent_id());
        assert_eq!(p.uid, rustix::process::getuid().as_raw());
        assert_eq!(
            p.exe.as_deref(),
            std::env::current_exe()
                .ok()
                .and_then(|e| e.to_str().map(str::to_owned))
                .as_deref()
        );
        assert_eq!(reader.entity_id(me).unwrap(), p.entity_id());
        // The start time is not in the future and not before the boot.
        let now = watchpost_actors::clock::now();
        assert!(p.start_time <= now);
        assert!(p.start_time >= reader.clock().btime_secs() * NANOS_PER_SEC);
    }
}
