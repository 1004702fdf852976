//! The syscall store: syscall numbers and names of the running architecture, answered from the
//! published read view.

use watchpost_core::error::store_names;
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo, StoreError};

use crate::handle::StoreHandle;
use crate::protocol::{IntoCopies, Protocol, StoreBackend};
use crate::stores::system::NoUpdate;
use crate::view::Reads;

/// The syscall store protocol.
pub struct SyscallProtocol;

impl Protocol for SyscallProtocol {
    type Update = NoUpdate;
    type Applied = bool;
    type Backend = dyn SyscallBackend;

    fn accepted(applied: &bool) -> bool {
        *applied
    }
}

/// What a syscall table must do to run behind the syscall store (read-only lookups; it takes
/// no updates).
pub trait SyscallBackend: Send + Sync + 'static {
    /// Name of `id`, if it is a syscall of this architecture. Counts nothing.
    fn syscall_name(&self, id: i32) -> Option<&'static str>;
    /// Number of `name`, if it is a syscall of this architecture.
    fn syscall_id(&self, name: &str) -> Option<i32>;
    /// The store itself, to downcast to its concrete type (snapshots, inspection).
    fn as_any(&self) -> &dyn std::any::Any;
    /// The store itself, mutably.
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
    /// Health.
    fn health(&self, now: EpochNanos) -> HealthInfo;
    /// Metrics (the view counts reads).
    fn metrics(&self) -> DataStoreMetrics;
}

impl<T: SyscallBackend + ?Sized> StoreBackend<SyscallProtocol> for T {
    fn apply_update(&mut self, update: &NoUpdate, _now: EpochNanos) -> bool {
        match *update {}
    }

    fn as_any(&self) -> &dyn std::any::Any {
        SyscallBackend::as_any(self)
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        SyscallBackend::as_any_mut(self)
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        SyscallBackend::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        SyscallBackend::metrics(self)
    }
}

impl<T: SyscallBackend + Clone> IntoCopies<SyscallProtocol> for T {
    fn into_copies(self) -> [Box<dyn SyscallBackend>; 2] {
        [Box::new(self.clone()), Box::new(self)]
    }
}

/// Handle to the syscall store (`registry.syscalls()`).
pub type SyscallHandle = StoreHandle<SyscallProtocol>;

fn name_of(
    store: &dyn SyscallBackend,
    reads: &mut Reads<'_>,
    id: i32,
) -> Result<String, StoreError> {
    let found = store.syscall_name(id);
    reads.lookup(found.is_some());
    found.map(str::to_owned).ok_or(StoreError::not_found(
        store_names::SYSCALL,
        "get_syscall_name",
    ))
}

/// Queries answer from the store's published copy in the caller's task.
impl StoreHandle<SyscallProtocol> {
    /// The name of syscall number `id` on this architecture.
    pub async fn get_syscall_name(&self, id: i32) -> Result<String, StoreError> {
        self.read_view("get_syscall_name", |store, reads| name_of(store, reads, id))?
    }

    /// Names of many syscall numbers, in order.
    pub async fn get_syscall_names(
        &self,
        ids: &[i32],
    ) -> Result<Vec<Result<String, StoreError>>, StoreError> {
        self.read_view("get_syscall_names", |store, reads| {
            ids.iter().map(|&id| name_of(store, reads, id)).collect()
        })
    }

    /// The number of syscall `name` on this architecture.
    pub async fn get_syscall_id(&self, name: &str) -> Result<i32, StoreError> {
        self.read_view("get_syscall_id", |store, reads| {
            let found = store.syscall_id(name);
            reads.lookup(found.is_some());
            found.ok_or(StoreError::not_found(
                store_names::SYSCALL,
                "get_syscall_id",
            ))
        })?
    }
}
