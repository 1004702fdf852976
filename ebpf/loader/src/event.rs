//! Typed kernel events, decoded from the ring-buffer records, with canonical times, and their
//! conversions into the core's process-table events.

use std::net::{IpAddr, SocketAddr};

use watchpost_core::entity_id::{EntityId, entity_id};
use watchpost_core::process::{
    Comm, ExeFlags, ExecEvent, ExitEvent, ForkEvent, ProcessKey, RenameEvent,
};
use watchpost_core::time::EpochNanos;

/// Who a process event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessIdentity {
    /// Process ID (thread-group ID), initial pid namespace.
    pub pid: u32,
    /// The kernel task the event fired on (equals `pid` for the group leader).
    pub tid: u32,
    /// Parent process ID (`real_parent`'s thread group; 0 if none).
    pub ppid: u32,
    /// Real user ID.
    pub uid: u32,
    /// Real group ID.
    pub gid: u32,
    /// Canonical start time (epoch ns; see [`watchpost_core::start_time`]).
    pub start_time: EpochNanos,
    /// The parent's canonical start time.
    pub parent_start_time: EpochNanos,
    /// The raw `start_boottime` of the group leader, ns since boot (before flooring).
    pub start_boottime_ns: u64,
    /// Name (`comm`).
    pub comm: Comm,
    /// A kernel thread (`PF_KTHREAD`).
    pub kernel_thread: bool,
    /// cgroup v2 ID the event fired in (see `TaskRecord::cgroup_id`: the process's own for exec
    /// and exit, the parent's for fork).
    pub cgroup_id: u64,
}

impl ProcessIdentity {
    /// The exact key of the process in the core's process table.
    pub fn key(&self) -> ProcessKey {
        ProcessKey::new(self.pid, self.start_time)
    }

    /// The parent's exact key.
    pub fn parent_key(&self) -> ProcessKey {
        ProcessKey::new(self.ppid, self.parent_start_time)
    }

    /// The Tracee-compatible entity ID of the process.
    pub fn entity_id(&self) -> EntityId {
        entity_id(self.pid, self.start_time)
    }
}

/// A process was created (never a thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessFork {
    /// When, epoch ns.
    pub time: EpochNanos,
    /// The new process.
    pub process: ProcessIdentity,
    /// The thread that called fork/clone (a thread of process `process.ppid`).
    pub parent_tid: u32,
}

/// A process executed a new program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessExec {
    /// When, epoch ns.
    pub time: EpochNanos,
    /// The process after the exec (new name, new credentials).
    pub process: ProcessIdentity,
    /// The thread that called exec (it became the leader).
    pub old_tid: u32,
    /// The path given to execve (may be relative, a symlink, `/dev/fd/N`; invalid UTF-8
    /// replaced by U+FFFD); empty if the kernel string could not be read.
    pub filename: String,
    /// The kernel's name was longer than the capture buffer and was cut.
    pub filename_truncated: bool,
    /// The path of the file the kernel executed, from its dentries (symlinks followed, `..`
    /// gone, mounts crossed; `/memfd:<name>` for a memfd); behind `…/` when cut short. Empty
    /// when not resolved.
    pub exe: String,
    /// Deleted, memfd, truncated, unresolved.
    pub exe_flags: ExeFlags,
}

impl ProcessExec {
    /// The executed file's path, or the execve path when it was not resolved.
    pub fn exe_path(&self) -> &str {
        if self.exe.is_empty() {
            &self.filename
        } else {
            &self.exe
        }
    }
}

/// A process's name changed (`task_rename` of its leader: `prctl(PR_SET_NAME)`, a write to
/// `/proc/<pid>/comm`, or an exec — which the exec record follows with the same name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRename {
    /// When, epoch ns.
    pub time: EpochNanos,
    /// Process ID.
    pub pid: u32,
    /// Canonical start time of the process.
    pub start_time: EpochNanos,
    /// The new name.
    pub comm: Comm,
}

impl ProcessRename {
    /// As the core's process-table event.
    pub fn to_core(&self) -> RenameEvent {
        RenameEvent {
            pid: self.pid,
            start_time: self.start_time,
            comm: self.comm,
        }
    }
}

/// A process ended: its last thread exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessExit {
    /// When, epoch ns.
    pub time: EpochNanos,
    /// The process (`tid` is its last thread).
    pub process: ProcessIdentity,
    /// Exit status in wait(2) encoding (`code << 8 | signal`).
    pub exit_code: u32,
}

/// A kernel module was loaded: `/proc/kallsyms` changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleLoad {
    /// When, epoch ns.
    pub time: EpochNanos,
    /// The module's name.
    pub name: String,
}

/// A DNS answer delivered to a local socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// When the packet was received, epoch ns.
    pub time: EpochNanos,
    /// The DNS server (source of the packet).
    pub server: SocketAddr,
    /// The local client (destination).
    pub client: SocketAddr,
    /// cgroup v2 ID of the receiving socket (the cgroup directory's inode number).
    pub cgroup_id: u64,
    /// Owner of the receiving socket.
    pub socket_uid: u32,
    /// Length of the DNS message on the wire.
    pub wire_len: u32,
    /// Inode number of the receiving socket's network namespace (0 when query matching is
    /// off): the answer is a fact about that namespace only.
    pub netns: u32,
    /// The namespace was trusted (the host's, or a known container's) when the answer came.
    pub trusted_netns: bool,
    /// The answer matched an outstanding query of that namespace (always, with matching on).
    pub matched: bool,
    /// The DNS message (all of it unless [`DnsAnswer::is_truncated`]).
    pub message: Vec<u8>,
}

impl DnsAnswer {
    /// The message was longer than the capture buffer and was cut.
    pub fn is_truncated(&self) -> bool {
        self.message.len() < self.wire_len as usize
    }

    /// The DNS query ID (first two bytes), if captured.
    pub fn query_id(&self) -> Option<u16> {
        let bytes = self.message.get(..2)?;
        Some(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    /// The server's address.
    pub fn server_ip(&self) -> IpAddr {
        self.server.ip()
    }
}

/// Whether a cgroup appeared or went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupOp {
    /// `cgroup_mkdir`.
    Created,
    /// `cgroup_rmdir`.
    Removed,
    /// `cgroup_notify_populated(1)`: a first process entered it or a descendant.
    Populated,
    /// `cgroup_notify_populated(0)`: its last process left (and its descendants').
    Emptied,
}

/// A cgroup v2 directory was created, removed, populated or emptied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupChange {
    /// When, epoch ns.
    pub time: EpochNanos,
    /// Created or removed.
    pub op: CgroupOp,
    /// The cgroup's ID (its directory's inode number; what exec/exit events carry).
    pub cgroup_id: u64,
    /// Its path from the hierarchy root (invalid UTF-8 replaced by U+FFFD); empty if unread.
    pub path: String,
    /// The path was longer than the capture buffer and was cut.
    pub path_truncated: bool,
}

/// Why kernel symbols should be re-read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SymbolReloadCause {
    /// A module was loaded (seen by the `module_load` program).
    ModuleLoaded(ModuleLoad),
    /// Somebody asked through a [`crate::SymbolReloadTrigger`] (e.g. on a kernel without
    /// module support, or on an operator's request).
    Requested,
}

/// One decoded event from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    /// A process was created.
    Fork(ProcessFork),
    /// A process executed a program.
    Exec(ProcessExec),
    /// A process's name changed.
    Rename(ProcessRename),
    /// A process ended.
    Exit(ProcessExit),
    /// `/proc/kallsyms` should be re-read.
    SymbolReload(SymbolReloadCause),
    /// A DNS answer was received.
    DnsAnswer(DnsAnswer),
    /// A cgroup v2 directory was created or removed.
    Cgroup(CgroupChange),
}

impl ProcessFork {
    /// As the core's process-table event. The path is not known at fork (`None`: the table
    /// inherits the parent's).
    pub fn to_core(&self) -> ForkEvent<'static> {
        let p = &self.process;
        ForkEvent {
            pid: p.pid,
            start_time: p.start_time,
            ppid: p.ppid,
            parent_start_time: p.parent_start_time,
            uid: p.uid,
            gid: p.gid,
            comm: p.comm,
            exe_path: None,
        }
    }
}

impl ProcessExec {
    /// As the core's process-table event, borrowing the paths.
    pub fn to_core(&self) -> ExecEvent<'_> {
        let p = &self.process;
        let mut exe_flags = self.exe_flags;
        exe_flags.unresolved |= self.exe.is_empty();
        ExecEvent {
            pid: p.pid,
            start_time: p.start_time,
            uid: p.uid,
            gid: p.gid,
            comm: p.comm,
            exe_path: self.exe_path(),
            invoked_path: (!self.filename.is_empty()).then_some(self.filename.as_str()),
            exe_flags,
        }
    }
}

impl ProcessExit {
    /// As the core's process-table event.
    pub fn to_core(&self) -> ExitEvent {
        ExitEvent {
            pid: self.process.pid,
            start_time: self.process.start_time,
            exit_time: self.time,
        }
    }
}
