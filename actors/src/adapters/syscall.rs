//! The core [`SyscallStore`] as a [`SyscallBackend`] (its answers are already `'static`).

use watchpost_core::syscall::SyscallStore;
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo};

use crate::stores::syscall::SyscallBackend;

impl SyscallBackend for SyscallStore {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn syscall_name(&self, id: i32) -> Option<&'static str> {
        self.table().name(id)
    }

    fn syscall_id(&self, name: &str) -> Option<i32> {
        self.table().number(name)
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        SyscallStore::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        SyscallStore::metrics(self)
    }
}
