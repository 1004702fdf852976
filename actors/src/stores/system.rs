//! The system store as an actor: immutable facts about the machine, built once.
//!
//! Decision: `get_system_info()` of an unavailable system store answers `StoreUnhealthy`, like
//! every other query of a null store. The reference returns an empty struct without an error,
//! which a detector cannot tell from a machine with empty facts; a caller who wants that
//! behaviour writes `get_system_info().await.unwrap_or_default()`.

use std::collections::BTreeMap;
use std::sync::Arc;

use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo, StoreError};

use crate::handle::StoreHandle;
use crate::protocol::{Protocol, StoreBackend, answer};

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

/// Queries to the system store.
pub enum SystemQuery {
    /// The facts.
    GetSystemInfo(RpcReplyPort<Arc<SystemInfo>>),
}

/// The system store protocol.
pub struct SystemProtocol;

impl Protocol for SystemProtocol {
    type Query = SystemQuery;
    type Update = NoUpdate;
}

/// What a system-facts store must do to run behind the system store actor.
pub trait SystemBackend: Send + 'static {
    /// The facts (shared, never copied per query).
    fn get_system_info(&mut self, now: EpochNanos) -> Arc<SystemInfo>;
    /// Health.
    fn health(&self, now: EpochNanos) -> HealthInfo;
    /// Metrics.
    fn metrics(&self) -> DataStoreMetrics;
}

impl<T: SystemBackend> StoreBackend<SystemProtocol> for T {
    fn handle_query(&mut self, query: SystemQuery, now: EpochNanos) {
        match query {
            SystemQuery::GetSystemInfo(reply) => answer(reply, self.get_system_info(now)),
        }
    }

    fn apply_update(&mut self, update: NoUpdate, _now: EpochNanos) -> bool {
        match update {}
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        SystemBackend::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        SystemBackend::metrics(self)
    }
}

/// Handle to the system store (`registry.system()`).
pub type SystemHandle = StoreHandle<SystemProtocol>;

impl StoreHandle<SystemProtocol> {
    /// The system facts; `StoreUnhealthy` if the store is unavailable (see the module docs).
    pub async fn get_system_info(&self) -> Result<Arc<SystemInfo>, StoreError> {
        self.call("get_system_info", SystemQuery::GetSystemInfo)
            .await
    }
}
