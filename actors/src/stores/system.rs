//! The system store: immutable facts about the machine, built once, answered from the published
//! read view.
//!
//! Decision: `get_system_info()` of an unavailable system store answers `StoreUnhealthy`, like
//! every other query of a null store. The reference returns an empty struct without an error,
//! which a detector cannot tell from a machine with empty facts; a caller who wants that
//! behaviour writes `get_system_info().await.unwrap_or_default()`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo, StoreError};

use crate::handle::StoreHandle;
use crate::protocol::{IntoCopies, Protocol, StoreBackend};

/// Immutable system facts (the reference's `SystemInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SystemInfo {
    /// `uname -m`: `x86_64`, `aarch64`.
    pub architecture: String,
    /// `uname -r`.
    pub kernel_release: String,
    /// Host name.
    pub hostname: String,
    /// Boot time, epoch ns (from `/proc/stat` `btime`).
    pub boot_time: EpochNanos,
    /// When watchpost started, epoch ns.
    pub start_time: EpochNanos,
    /// os-release `NAME`.
    pub os_name: String,
    /// os-release `VERSION_ID`.
    pub os_version: String,
    /// os-release `PRETTY_NAME`.
    pub os_pretty_name: String,
    /// watchpost version.
    pub version: String,
    /// Namespace inodes of the init process (`mnt`, `pid`, …).
    pub init_namespaces: BTreeMap<String, u32>,
}

/// A store that takes no updates (its data is fixed at build time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoUpdate {}

/// The system store protocol.
pub struct SystemProtocol;

impl Protocol for SystemProtocol {
    type Update = NoUpdate;
    type Applied = bool;
    type Backend = dyn SystemBackend;

    fn accepted(applied: &bool) -> bool {
        *applied
    }
}

/// What a system-facts store must do to run behind the system store (it takes no updates).
pub trait SystemBackend: Send + Sync + 'static {
    /// The facts (shared, never copied per query). Counts nothing.
    fn system_info(&self) -> Arc<SystemInfo>;
    /// The store itself, to downcast to its concrete type (snapshots, inspection).
    fn as_any(&self) -> &dyn std::any::Any;
    /// The store itself, mutably.
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
    /// Health.
    fn health(&self, now: EpochNanos) -> HealthInfo;
    /// Metrics (the view counts reads).
    fn metrics(&self) -> DataStoreMetrics;
}

impl<T: SystemBackend + ?Sized> StoreBackend<SystemProtocol> for T {
    fn apply_update(&mut self, update: &NoUpdate, _now: EpochNanos) -> bool {
        match *update {}
    }

    fn as_any(&self) -> &dyn std::any::Any {
        SystemBackend::as_any(self)
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        SystemBackend::as_any_mut(self)
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        SystemBackend::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        SystemBackend::metrics(self)
    }
}

impl<T: SystemBackend + Clone> IntoCopies<SystemProtocol> for T {
    fn into_copies(self) -> [Box<dyn SystemBackend>; 2] {
        [Box::new(self.clone()), Box::new(self)]
    }
}

/// Handle to the system store (`registry.system()`).
pub type SystemHandle = StoreHandle<SystemProtocol>;

impl StoreHandle<SystemProtocol> {
    /// The system facts; `StoreUnhealthy` if the store is unavailable (see the module docs).
    pub async fn get_system_info(&self) -> Result<Arc<SystemInfo>, StoreError> {
        self.read_view("get_system_info", |store, reads| {
            reads.hit();
            store.system_info()
        })
    }
}
