//! The core [`SystemStore`] as a [`SystemBackend`]: the bounded core record is converted to the
//! owned [`SystemInfo`] once, at construction, and shared by every reply.

use std::sync::Arc;

use watchpost_core::system_info::{self as core_system, SystemStore};
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo};

use crate::stores::system::{SystemBackend, SystemInfo};

/// The owned copy of a core system record.
pub fn to_owned_info(info: &core_system::SystemInfo) -> SystemInfo {
    SystemInfo {
        architecture: info.architecture.as_str().to_owned(),
        kernel_release: info.kernel_release.as_str().to_owned(),
        hostname: info.hostname.as_str().to_owned(),
        boot_time: info.boot_time,
        start_time: info.watchpost_start_time,
        os_name: info.os_name.as_str().to_owned(),
        os_version: info.os_version.as_str().to_owned(),
        os_pretty_name: info.os_pretty_name.as_str().to_owned(),
        version: info.watchpost_version.as_str().to_owned(),
        init_namespaces: info
            .init_namespaces
            .iter()
            .map(|(kind, inode)| (kind.file_name().to_owned(), inode))
            .collect(),
    }
}

/// The core system store plus its owned answer.
#[derive(Debug, Clone)]
pub struct SystemFacts {
    store: SystemStore,
    owned: Arc<SystemInfo>,
}

impl SystemFacts {
    /// Serves `info` (never changes afterwards).
    pub fn new(info: core_system::SystemInfo) -> Self {
        let owned = Arc::new(to_owned_info(&info));
        SystemFacts {
            store: SystemStore::new(info),
            owned,
        }
    }
}

impl SystemBackend for SystemFacts {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn system_info(&self) -> Arc<SystemInfo> {
        self.owned.clone()
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        self.store.health(now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        self.store.metrics()
    }
}
