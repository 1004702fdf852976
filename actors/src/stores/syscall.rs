//! The syscall store as an actor: syscall numbers and names of the running architecture.

use ractor::RpcReplyPort;
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo, StoreError};

use crate::handle::StoreHandle;
use crate::protocol::{Protocol, StoreBackend, answer};
use crate::stores::system::NoUpdate;

/// Queries to the syscall store.
pub enum SyscallQuery {
    /// Name of a syscall number.
    GetSyscallName {
        /// Syscall number.
        id: i32,
        /// Answer.
        reply: RpcReplyPort<Result<String, StoreError>>,
    },
    /// Names of many syscall numbers, in order.
    GetSyscallNames {
        /// Syscall numbers.
        ids: Vec<i32>,
        /// Answers.
        reply: RpcReplyPort<Vec<Result<String, StoreError>>>,
    },
    /// Number of a syscall name.
    GetSyscallId {
        /// Syscall name.
        name: String,
        /// Answer.
        reply: RpcReplyPort<Result<i32, StoreError>>,
    },
}

/// The syscall store protocol.
pub struct SyscallProtocol;

impl Protocol for SyscallProtocol {
    type Query = SyscallQuery;
    type Update = NoUpdate;
}

/// What a syscall table must do to run behind the syscall store actor.
pub trait SyscallBackend: Send + 'static {
    /// Name of `id`; `NotFound` if it is not a syscall of this architecture.
    fn get_syscall_name(&mut self, id: i32, now: EpochNanos) -> Result<&'static str, StoreError>;
    /// Number of `name`; `NotFound` if it is not a syscall of this architecture.
    fn get_syscall_id(&mut self, name: &str, now: EpochNanos) -> Result<i32, StoreError>;
    /// Health.
    fn health(&self, now: EpochNanos) -> HealthInfo;
    /// Metrics.
    fn metrics(&self) -> DataStoreMetrics;
}

impl<T: SyscallBackend> StoreBackend<SyscallProtocol> for T {
    fn handle_query(&mut self, query: SyscallQuery, now: EpochNanos) {
        match query {
            SyscallQuery::GetSyscallName { id, reply } => {
                answer(reply, self.get_syscall_name(id, now).map(str::to_owned))
            }
            SyscallQuery::GetSyscallNames { ids, reply } => {
                let answers = ids
                    .into_iter()
                    .map(|id| self.get_syscall_name(id, now).map(str::to_owned))
                    .collect();
                answer(reply, answers)
            }
            SyscallQuery::GetSyscallId { name, reply } => {
                answer(reply, self.get_syscall_id(&name, now))
            }
        }
    }

    fn apply_update(&mut self, update: NoUpdate, _now: EpochNanos) -> bool {
        match update {}
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        SyscallBackend::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        SyscallBackend::metrics(self)
    }
}

/// Handle to the syscall store (`registry.syscalls()`).
pub type SyscallHandle = StoreHandle<SyscallProtocol>;

impl StoreHandle<SyscallProtocol> {
    /// The name of syscall number `id` on this architecture.
    pub async fn get_syscall_name(&self, id: i32) -> Result<String, StoreError> {
        self.ask("get_syscall_name", |reply| SyscallQuery::GetSyscallName {
            id,
            reply,
        })
        .await
    }

    /// Names of many syscall numbers in one message, in order.
    pub async fn get_syscall_names(
        &self,
        ids: &[i32],
    ) -> Result<Vec<Result<String, StoreError>>, StoreError> {
        let ids = ids.to_vec();
        self.call("get_syscall_names", |reply| SyscallQuery::GetSyscallNames {
            ids,
            reply,
        })
        .await
    }

    /// The number of syscall `name` on this architecture.
    pub async fn get_syscall_id(&self, name: &str) -> Result<i32, StoreError> {
        let name = name.to_owned();
        self.ask("get_syscall_id", |reply| SyscallQuery::GetSyscallId {
            name,
            reply,
        })
        .await
    }
}
