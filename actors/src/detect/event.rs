//! What detectors see: one process lifecycle event (fork, exec, exit) with the fields the
//! reference's `Event.Workload.Process` and `Event.Workload.Container` carry.

use serde::{Deserialize, Serialize};
use watchpost_core::EpochNanos;

use crate::stores::process::ProcessRef;

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
    /// Canonical start time, epoch ns (0 if unknown): with `pid`, the exact key detectors look
    /// the process up by (entity IDs may collide).
    #[serde(default)]
    pub start_time: EpochNanos,
    /// Parent process ID.
    pub ppid: u32,
    /// Entity ID of the parent (0 if unknown).
    pub parent_entity_id: u32,
    /// The parent's canonical start time (0 if unknown).
    #[serde(default)]
    pub parent_start_time: EpochNanos,
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

impl Event {
    /// How to look the process up: its exact key when the start time is known, else its entity
    /// ID.
    pub fn process(&self) -> ProcessRef {
        if self.start_time != 0 {
            ProcessRef::Exact {
                pid: self.pid,
                start_time: self.start_time,
            }
        } else {
            ProcessRef::Entity(self.entity_id)
        }
    }

    /// How to look the parent up (`None` if unknown).
    pub fn parent(&self) -> Option<ProcessRef> {
        if self.ppid != 0 && self.parent_start_time != 0 {
            Some(ProcessRef::Exact {
                pid: self.ppid,
                start_time: self.parent_start_time,
            })
        } else {
            (self.parent_entity_id != 0).then_some(ProcessRef::Entity(self.parent_entity_id))
        }
    }
}
