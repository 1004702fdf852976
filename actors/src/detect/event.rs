//! What detectors see: one process lifecycle event (fork, exec, exit) with the fields the
//! reference's `Event.Workload.Process` and `Event.Workload.Container` carry.

use serde::{Deserialize, Serialize};
use watchpost_core::EpochNanos;

/// Which lifecycle step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new process.
    Fork,
    /// A process replaced its program.
    Exec,
    /// A process ended.
    Exit,
}

/// One process event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Which step.
    pub kind: EventKind,
    /// Entity ID of the process (the store key).
    pub entity_id: u32,
    /// Process ID.
    pub pid: u32,
    /// Parent process ID.
    pub ppid: u32,
    /// Entity ID of the parent (0 if unknown).
    pub parent_entity_id: u32,
    /// Path of the executed file (after the exec, for `Exec`): the file the kernel ran, symlinks
    /// followed.
    pub exe: String,
    /// The path as given to execve, when the collector knows it (a symlink's name, a relative
    /// path); empty otherwise.
    #[serde(default)]
    pub invoked: String,
    /// Name (`comm`).
    pub comm: String,
    /// Real user ID.
    pub uid: u32,
    /// Real group ID.
    pub gid: u32,
    /// Full container ID, if the process runs in a container.
    pub container_id: Option<String>,
    /// When it happened, epoch ns.
    pub time: EpochNanos,
}
