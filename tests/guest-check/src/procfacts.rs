//! What `/proc` says about a process, computed with the core's own functions (independently of
//! the daemon): its parent, canonical start time and entity ID. The kernel feed must agree with
//! it on every kernel — a start-time offset read wrongly on one kernel shows up here.

use watchpost_core::EpochNanos;
use watchpost_core::entity_id::entity_id;
use watchpost_core::start_time::{BootClock, parse_proc_stat};
use watchpost_core::system_info::parse_boot_time;

/// One process as `/proc` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcEntry {
    /// Process ID.
    pub pid: u32,
    /// Parent process ID.
    pub ppid: u32,
    /// Canonical start time.
    pub start_time: EpochNanos,
    /// Entity ID of (pid, start time).
    pub entity_id: u32,
}

/// This boot's clock.
pub struct ProcFacts {
    clock: BootClock,
}

impl ProcFacts {
    /// From `/proc/stat` and `CLK_TCK`.
    pub fn new() -> Result<ProcFacts, String> {
        let stat = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
        let btime = parse_boot_time(&stat).map_err(|e| format!("/proc/stat btime: {e}"))?;
        let ticks = rustix::param::clock_ticks_per_second();
        let clock =
            BootClock::new(btime / 1_000_000_000, ticks).map_err(|e| format!("boot clock: {e}"))?;
        Ok(ProcFacts { clock })
    }

    /// `pid` now (also while it is a zombie), or `None` once it is gone.
    pub fn entry(&self, pid: u32) -> Option<ProcEntry> {
        let raw = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
        let stat = parse_proc_stat(&raw).ok()?;
        let start_time = self.clock.from_proc_ticks(stat.start_ticks).ok()?;
        Some(ProcEntry {
            pid,
            ppid: stat.ppid,
            start_time,
            entity_id: entity_id(pid, start_time),
        })
    }

    /// `pid` and its ancestors up to and including `stop_at` (or pid 1).
    pub fn ancestry(&self, pid: u32, stop_at: u32) -> Vec<ProcEntry> {
        let mut out = Vec::new();
        let mut current = pid;
        while let Some(entry) = self.entry(current) {
            out.push(entry);
            if current == stop_at || entry.ppid == 0 || out.len() > 64 {
                break;
            }
            current = entry.ppid;
        }
        out
    }
}
