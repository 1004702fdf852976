//! The core [`SyscallStore`] as a [`SyscallBackend`] (its answers are already `'static`).

use watchpost_core::syscall::SyscallStore;
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo, StoreError};

use crate::stores::syscall::SyscallBackend;

impl SyscallBackend for SyscallStore {
    fn get_syscall_name(&mut self, id: i32, now: EpochNanos) -> Result<&'static str, StoreError> {
        SyscallStore::get_syscall_name(self, id, now)
    }

    fn get_syscall_id(&mut self, name: &str, now: EpochNanos) -> Result<i32, StoreError> {
        SyscallStore::get_syscall_id(self, name, now)
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        SyscallStore::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        SyscallStore::metrics(self)
    }
}
