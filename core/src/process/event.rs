//! What the process table is fed: fork, exec and exit events (from eBPF) and scan records (from
//! `/proc`), plus the exact key that identifies one process.
//!
//! Plain data, no features needed: collectors build them on any target. Exe paths are borrowed,
//! so a batch of events costs no copies; the table interns what it keeps.

use crate::entity_id::{EntityId, entity_id};
use crate::process::Comm;
use crate::time::EpochNanos;

/// The exact identity of a process: its pid and its canonical start time (epoch ns, from
/// [`crate::start_time`]). Unlike the 32-bit entity ID, two different processes never share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ProcessKey {
    /// Process ID (thread-group ID) in the initial pid namespace.
    pub pid: u32,
    /// Canonical start time, epoch ns.
    pub start_time: EpochNanos,
}

impl ProcessKey {
    /// The key of `pid` started at `start_time`.
    pub const fn new(pid: u32, start_time: EpochNanos) -> Self {
        ProcessKey { pid, start_time }
    }

    /// The entity ID detectors see for this process.
    pub fn entity_id(&self) -> EntityId {
        entity_id(self.pid, self.start_time)
    }
}

/// A process was created (`sched_process_fork` of a thread-group leader). Thread creation is
/// not a process and must not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ForkEvent<'a> {
    /// The new process.
    pub pid: u32,
    /// The new process's canonical start time.
    pub start_time: EpochNanos,
    /// The parent's pid (0: no parent).
    pub ppid: u32,
    /// The parent's canonical start time (with `ppid`, the parent's exact key).
    pub parent_start_time: EpochNanos,
    /// Real user ID of the new process.
    pub uid: u32,
    /// Real group ID of the new process.
    pub gid: u32,
    /// Name of the new process (inherited from the parent at fork).
    pub comm: Comm,
    /// Executable path if the collector read it; `None` inherits the parent's from the table.
    #[cfg_attr(feature = "serde", serde(borrow))]
    pub exe_path: Option<&'a str>,
}

impl ForkEvent<'_> {
    /// The new process's exact key.
    pub const fn key(&self) -> ProcessKey {
        ProcessKey::new(self.pid, self.start_time)
    }

    /// The parent's exact key.
    pub const fn parent_key(&self) -> ProcessKey {
        ProcessKey::new(self.ppid, self.parent_start_time)
    }
}

/// What is known about the executed file beyond its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ExeFlags {
    /// The file had been unlinked when it was executed (or when `/proc` was read).
    pub deleted: bool,
    /// The file is a memfd (`memfd_create`): no file system path at all ("fileless"). Its path
    /// reads `/memfd:<name>`.
    pub memfd: bool,
    /// The path was too long or too deep to read whole: it holds the components nearest the
    /// file only, behind a leading `…/`.
    pub truncated: bool,
    /// The kernel's path could not be read: the path is the one given to execve instead.
    pub unresolved: bool,
}

impl ExeFlags {
    /// Nothing special.
    pub const NONE: ExeFlags = ExeFlags {
        deleted: false,
        memfd: false,
        truncated: false,
        unresolved: false,
    };

    /// The memfd's name (`memfd_create`'s first argument), if `path` is a memfd's.
    pub fn memfd_name<'p>(&self, path: &'p str) -> Option<&'p str> {
        if !self.memfd {
            return None;
        }
        path.strip_prefix("/memfd:")
    }
}

/// A process replaced its program (`sched_process_exec`). Pid and start time are unchanged by
/// exec (the kernel keeps the leader's), so the key still names the same process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ExecEvent<'a> {
    /// The process.
    pub pid: u32,
    /// Its canonical start time.
    pub start_time: EpochNanos,
    /// Real user ID after the exec.
    pub uid: u32,
    /// Real group ID after the exec.
    pub gid: u32,
    /// New name (the kernel sets it from the executable's basename).
    pub comm: Comm,
    /// Path of the file the kernel executed (resolved from the file itself: symlinks followed,
    /// `..` gone, mount points crossed).
    pub exe_path: &'a str,
    /// The path as given to execve, if known (a symlink's name, a relative path, `/dev/fd/N`).
    #[cfg_attr(feature = "serde", serde(borrow))]
    pub invoked_path: Option<&'a str>,
    /// Deleted, memfd, truncated.
    pub exe_flags: ExeFlags,
}

impl ExecEvent<'_> {
    /// The process's exact key.
    pub const fn key(&self) -> ProcessKey {
        ProcessKey::new(self.pid, self.start_time)
    }
}

/// A process's name changed (`task_rename` of the thread-group leader: `prctl(PR_SET_NAME)`,
/// a write to `/proc/<pid>/comm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RenameEvent {
    /// The process.
    pub pid: u32,
    /// Its canonical start time.
    pub start_time: EpochNanos,
    /// The new name.
    pub comm: Comm,
}

impl RenameEvent {
    /// The process's exact key.
    pub const fn key(&self) -> ProcessKey {
        ProcessKey::new(self.pid, self.start_time)
    }
}

/// A process ended (`sched_process_exit` of the thread-group leader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ExitEvent {
    /// The process.
    pub pid: u32,
    /// Its canonical start time.
    pub start_time: EpochNanos,
    /// When it exited, epoch ns (0 is read as 1 ns: 0 means "still running" in the table).
    pub exit_time: EpochNanos,
}

impl ExitEvent {
    /// The process's exact key.
    pub const fn key(&self) -> ProcessKey {
        ProcessKey::new(self.pid, self.start_time)
    }
}

/// One running process as a `/proc` scan saw it (at start-up, after a restart, or when eBPF is
/// unavailable). A scan can only report the current parent, which may be a reaper the process
/// was re-parented to, so a fork event's parent takes precedence over a scan's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ScanRecord<'a> {
    /// The process.
    pub pid: u32,
    /// Its canonical start time (from `/proc/<pid>/stat` field 22).
    pub start_time: EpochNanos,
    /// Parent pid (0: no parent).
    pub ppid: u32,
    /// The parent's canonical start time (the scanner reads the parent's stat too).
    pub parent_start_time: EpochNanos,
    /// Real user ID (`/proc/<pid>/status` `Uid:` first column).
    pub uid: u32,
    /// Real group ID (`Gid:` first column).
    pub gid: u32,
    /// Name (`/proc/<pid>/stat` field 2).
    pub comm: Comm,
    /// Target of `/proc/<pid>/exe`, if readable (without the ` (deleted)` the kernel appends).
    #[cfg_attr(feature = "serde", serde(borrow))]
    pub exe_path: Option<&'a str>,
    /// Deleted and memfd, as `/proc/<pid>/exe` tells them.
    pub exe_flags: ExeFlags,
}

impl ScanRecord<'_> {
    /// The process's exact key.
    pub const fn key(&self) -> ProcessKey {
        ProcessKey::new(self.pid, self.start_time)
    }

    /// The parent's exact key.
    pub const fn parent_key(&self) -> ProcessKey {
        ProcessKey::new(self.ppid, self.parent_start_time)
    }
}
