//! A small test-side `/proc` reader (the daemon has the production one): process records with
//! canonical start times, entity IDs, and container IDs from `/proc/<pid>/cgroup`.

#![allow(dead_code)]

use watchpost_actors::stores::process::ProcessStart;
use watchpost_core::EpochNanos;
use watchpost_core::entity_id::entity_id;
use watchpost_core::start_time::{BootClock, parse_proc_stat};

pub struct ProcReader {
    clock: BootClock,
}

pub struct ProcFacts {
    pub start: ProcessStart,
    pub entity_id: u32,
    pub parent_entity_id: u32,
}

impl ProcReader {
    pub fn new() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
        let btime = stat
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
            .expect("btime");
        // CLK_TCK is 100 on every Linux architecture watchpost targets.
        ProcReader {
            clock: BootClock::new(btime, 100).expect("clock"),
        }
    }

    /// (ppid, comm, canonical start time) of `pid`.
    fn stat(&self, pid: u32) -> Option<(u32, String, EpochNanos)> {
        let raw = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
        let stat = parse_proc_stat(&raw).ok()?;
        let start = self.clock.from_proc_ticks(stat.start_ticks).ok()?;
        Some((stat.ppid, stat.comm.as_str().to_owned(), start))
    }

    pub fn start_time(&self, pid: u32) -> Option<EpochNanos> {
        self.stat(pid).map(|s| s.2)
    }

    pub fn entity_id(&self, pid: u32) -> Option<u32> {
        self.start_time(pid).map(|t| entity_id(pid, t))
    }

    pub fn read(&self, pid: u32) -> Option<ProcFacts> {
        let (ppid, comm, start_time) = self.stat(pid)?;
        let parent_start_time = if ppid == 0 {
            0
        } else {
            self.start_time(ppid).unwrap_or(0)
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let first = |key: &str| -> u32 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let exe_path = std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        Some(ProcFacts {
            entity_id: entity_id(pid, start_time),
            parent_entity_id: if ppid == 0 {
                0
            } else {
                entity_id(ppid, parent_start_time)
            },
            start: ProcessStart {
                pid,
                start_time,
                ppid,
                parent_start_time,
                uid: first("Uid:"),
                gid: first("Gid:"),
                comm,
                exe_path,
                exe_flags: Default::default(),
            },
        })
    }

    /// Every process readable now.
    pub fn scan(&self) -> Vec<ProcessStart> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(f) = self.read(pid) {
                out.push(f.start);
            }
        }
        out
    }

    /// The container ID of `pid` from its cgroup v2 path (`…/docker-<64 hex>.scope`).
    pub fn container_id(&self, pid: u32) -> Option<String> {
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
        path.split('/').find_map(|part| {
            let id = part.strip_prefix("docker-")?.strip_suffix(".scope")?;
            (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_owned())
        })
    }
}

/// Children of `ppid` named `comm`, from `/proc`.
pub fn children_named(ppid: u32, comm: &str) -> Vec<u32> {
    let reader = ProcReader::new();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((p, c, _)) = reader.stat(pid)
            && p == ppid
            && c == comm
        {
            out.push(pid);
        }
    }
    out
}
