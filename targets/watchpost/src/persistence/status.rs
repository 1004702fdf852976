//! What `query persistence`, `query health` (`persist`) and `query metrics` show about the
//! snapshot file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One store's snapshot history in this run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorePersistStatus {
    /// Records restored at start (or at the last rebuild after a crash).
    pub restored: u64,
    /// Records the store's eviction rule or checks dropped while restoring.
    pub restore_dropped: u64,
    /// When its last snapshot was committed, epoch ns (0: none yet in this run).
    pub last_snapshot_at: u64,
    /// How long that snapshot took (copy out + write + commit), µs.
    pub last_duration_us: u64,
    /// Records in the file for this store.
    pub records: u64,
    /// Bytes of keys and values in the file for this store.
    pub bytes: u64,
    /// Records written by the last snapshot.
    pub last_written: u64,
    /// Records deleted by the last snapshot.
    pub last_deleted: u64,
    /// Whether the last snapshot rewrote the whole store.
    pub last_full: bool,
    /// Snapshots committed in this run.
    pub snapshots: u64,
    /// Snapshots that failed in this run.
    pub failures: u64,
}

/// The snapshot file's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistStatus {
    /// Whether snapshots are taken (`persist.enabled` and the file could be opened).
    pub enabled: bool,
    /// The file.
    pub path: String,
    /// Why persistence is degraded (a bad file moved aside, a failed write), if it is.
    pub degraded: Option<String>,
    /// Where a bad file was moved at start.
    pub moved_aside: Option<String>,
    /// Whether the file restored at start was written in this boot.
    pub restored_same_boot: bool,
    /// The file-wide commit sequence restored at start (0: nothing restored).
    pub restored_sequence: u64,
    /// How long opening, verifying and restoring took at start, µs.
    pub restore_us: u64,
    /// Processes marked exited at start because they ended while the daemon was down.
    pub exited_while_down: u64,
    /// The file-wide commit sequence now.
    pub sequence: u64,
    /// The file's size, bytes.
    pub file_bytes: u64,
    /// Compactions run in this run.
    pub compactions: u64,
    /// Failed snapshot writes in this run.
    pub failures: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// Per store.
    pub stores: BTreeMap<String, StorePersistStatus>,
}

impl PersistStatus {
    /// `(status, message)` for `query health`.
    pub fn health(&self) -> (&'static str, String) {
        if let Some(reason) = &self.degraded {
            return ("degraded", reason.clone());
        }
        if !self.enabled {
            return (
                "healthy",
                "persistence is off (persist.enabled = false)".into(),
            );
        }
        (
            "healthy",
            format!("snapshots in {} (sequence {})", self.path, self.sequence),
        )
    }
}
