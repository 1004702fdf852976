//! What a snapshot keeps of one container: its description, removal time and the write and
//! removal stamps that order the table's lists, as plain serialisable data.
//!
//! The one place to add a field that must survive a restart: add it here, fill it in
//! `ContainerTable::records` and read it in `ContainerTable::restore`
//! (`container/table/snapshot.rs`).

use super::info::ContainerInfo;
use crate::time::EpochNanos;

/// One container as a snapshot holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ContainerRecord {
    /// What is known about the container.
    pub info: ContainerInfo,
    /// When the runtime reported it gone (epoch ns); `None` while live.
    pub removed_at: Option<EpochNanos>,
    /// Write stamp: among live containers the smaller is evicted (and listed) first; among
    /// containers sharing a name the larger answers.
    pub written: u64,
    /// Removal stamp: among removed containers the smaller is evicted first.
    pub removed: u64,
}

impl ContainerRecord {
    /// The order to feed records to `ContainerTable::restore` in so that, when they do not all
    /// fit, the table's own rule drops what it would have dropped first: removed containers
    /// first (oldest removal first), then live ones least recently written first.
    pub const fn restore_order(&self) -> (bool, u64) {
        match self.removed_at {
            Some(_) => (false, self.removed),
            None => (true, self.written),
        }
    }
}
