//! The process store as an actor: owned reply types, the updates collectors send, the query
//! messages, the backend trait a process table implements, and the handle's methods
//! (`registry.processes().get_process(id)`).

use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};
use watchpost_core::process::ProcessTableStats;
use watchpost_core::{DataStoreMetrics, EpochNanos, ErrorKind, HealthInfo, StoreError};

use crate::handle::StoreHandle;
use crate::protocol::{Protocol, StoreBackend, answer};

/// One process, owned (the reference's `ProcessInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Entity ID (Tracee-compatible hash of pid and start time): the lookup key.
    pub entity_id: u32,
    /// OS process ID (display only).
    pub pid: u32,
    /// OS parent process ID (display only).
    pub ppid: u32,
    /// Binary name (`comm`, at most 16 bytes).
    pub name: String,
    /// Executable path; empty if unknown.
    pub exe: String,
    /// Start time, epoch ns.
    pub start_time: EpochNanos,
    /// Real user ID.
    pub uid: u32,
    /// Real group ID.
    pub gid: u32,
    /// Exit time, epoch ns; `None` while running.
    pub exit_time: Option<EpochNanos>,
    /// The process exited while the daemon was down (found gone when a restored tree was
    /// reconciled with `/proc`): `exit_time` is when that was noticed, not when it happened.
    #[serde(default)]
    pub exit_time_unknown: bool,
}

/// A process as a fork event or a `/proc` scan reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStart {
    /// Process ID.
    pub pid: u32,
    /// Canonical start time, epoch ns.
    pub start_time: EpochNanos,
    /// Parent process ID (0: none).
    pub ppid: u32,
    /// The parent's canonical start time.
    pub parent_start_time: EpochNanos,
    /// Real user ID.
    pub uid: u32,
    /// Real group ID.
    pub gid: u32,
    /// Name (`comm`).
    pub comm: String,
    /// Executable path, if known (a fork without one inherits the parent's).
    pub exe_path: Option<String>,
}

/// A process replaced its program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessExec {
    /// Process ID.
    pub pid: u32,
    /// Canonical start time, epoch ns (unchanged by exec).
    pub start_time: EpochNanos,
    /// Real user ID after the exec.
    pub uid: u32,
    /// Real group ID after the exec.
    pub gid: u32,
    /// New name.
    pub comm: String,
    /// New executable path.
    pub exe_path: String,
}

/// A process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessExit {
    /// Process ID.
    pub pid: u32,
    /// Canonical start time, epoch ns.
    pub start_time: EpochNanos,
    /// Exit time, epoch ns.
    pub exit_time: EpochNanos,
}

/// What collectors feed the process store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcessUpdate {
    /// `sched_process_fork` of a new process.
    Fork(ProcessStart),
    /// A running process found by a `/proc` scan.
    Scan(ProcessStart),
    /// `sched_process_exec`.
    Exec(ProcessExec),
    /// `sched_process_exit` of a thread-group leader.
    Exit(ProcessExit),
}

/// Queries to the process store.
pub enum ProcessQuery {
    /// One process by entity ID.
    GetProcess {
        /// Entity ID.
        entity_id: u32,
        /// Answer.
        reply: RpcReplyPort<Result<ProcessInfo, StoreError>>,
    },
    /// Many processes by entity ID, one answer each, in order.
    GetProcesses {
        /// Entity IDs.
        entity_ids: Vec<u32>,
        /// Answers.
        reply: RpcReplyPort<Vec<Result<ProcessInfo, StoreError>>>,
    },
    /// Children of a process.
    GetChildProcesses {
        /// Entity ID of the parent.
        entity_id: u32,
        /// Answer.
        reply: RpcReplyPort<Result<Vec<ProcessInfo>, StoreError>>,
    },
    /// `[self, parent, grandparent, …]`, at most `max_depth` long.
    GetAncestry {
        /// Entity ID.
        entity_id: u32,
        /// Most entries.
        max_depth: i32,
        /// Answer.
        reply: RpcReplyPort<Result<Vec<ProcessInfo>, StoreError>>,
    },
    /// The table's own counters and capacity (evictions by reason, collisions, gauges).
    GetStats {
        /// Answer: the counters and the capacity in records.
        reply: RpcReplyPort<Result<(ProcessTableStats, usize), StoreError>>,
    },
}

/// The process store protocol.
pub struct ProcessProtocol;

impl Protocol for ProcessProtocol {
    type Query = ProcessQuery;
    type Update = ProcessUpdate;
}

/// What a process table must do to run behind the process store actor. Implemented for the core
/// `ProcessTable` in [`crate::adapters`]; another implementation (a restored snapshot, a test
/// table) plugs in the same way.
pub trait ProcessBackend: Send + 'static {
    /// One process; `NotFound` if absent.
    fn get_process(&mut self, entity_id: u32, now: EpochNanos) -> Result<ProcessInfo, StoreError>;
    /// Children (empty if none or unknown).
    fn get_child_processes(
        &mut self,
        entity_id: u32,
        now: EpochNanos,
    ) -> Result<Vec<ProcessInfo>, StoreError>;
    /// Ancestry (empty for `max_depth <= 0` or an unknown process).
    fn get_ancestry(
        &mut self,
        entity_id: u32,
        max_depth: i32,
        now: EpochNanos,
    ) -> Result<Vec<ProcessInfo>, StoreError>;
    /// Applies one update; `false` if refused.
    fn apply(&mut self, update: ProcessUpdate, now: EpochNanos) -> bool;
    /// The table's own counters and its capacity; `None` (answered `NotImplemented`) if it
    /// keeps none.
    fn stats(&self) -> Option<(ProcessTableStats, usize)> {
        None
    }
    /// Health.
    fn health(&self, now: EpochNanos) -> HealthInfo;
    /// Metrics.
    fn metrics(&self) -> DataStoreMetrics;
}

impl<T: ProcessBackend> StoreBackend<ProcessProtocol> for T {
    fn handle_query(&mut self, query: ProcessQuery, now: EpochNanos) {
        match query {
            ProcessQuery::GetProcess { entity_id, reply } => {
                answer(reply, self.get_process(entity_id, now))
            }
            ProcessQuery::GetProcesses { entity_ids, reply } => {
                let answers = entity_ids
                    .into_iter()
                    .map(|id| self.get_process(id, now))
                    .collect();
                answer(reply, answers)
            }
            ProcessQuery::GetChildProcesses { entity_id, reply } => {
                answer(reply, self.get_child_processes(entity_id, now))
            }
            ProcessQuery::GetAncestry {
                entity_id,
                max_depth,
                reply,
            } => answer(reply, self.get_ancestry(entity_id, max_depth, now)),
            ProcessQuery::GetStats { reply } => answer(
                reply,
                self.stats().ok_or(StoreError::new(
                    watchpost_core::error::store_names::PROCESS,
                    "get_stats",
                    ErrorKind::NotImplemented,
                )),
            ),
        }
    }

    fn apply_update(&mut self, update: ProcessUpdate, now: EpochNanos) -> bool {
        self.apply(update, now)
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        ProcessBackend::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        ProcessBackend::metrics(self)
    }
}

/// Handle to the process store (`registry.processes()`).
pub type ProcessHandle = StoreHandle<ProcessProtocol>;

impl StoreHandle<ProcessProtocol> {
    /// The process with `entity_id`; `NotFound` if the store does not hold it.
    pub async fn get_process(&self, entity_id: u32) -> Result<ProcessInfo, StoreError> {
        self.ask("get_process", |reply| ProcessQuery::GetProcess {
            entity_id,
            reply,
        })
        .await
    }

    /// Many processes in one message, one answer per ID in order (the hot-path batch).
    pub async fn get_processes(
        &self,
        entity_ids: &[u32],
    ) -> Result<Vec<Result<ProcessInfo, StoreError>>, StoreError> {
        let entity_ids = entity_ids.to_vec();
        self.call("get_processes", |reply| ProcessQuery::GetProcesses {
            entity_ids,
            reply,
        })
        .await
    }

    /// The children of `entity_id` (empty if none or unknown).
    pub async fn get_child_processes(
        &self,
        entity_id: u32,
    ) -> Result<Vec<ProcessInfo>, StoreError> {
        self.ask("get_child_processes", |reply| {
            ProcessQuery::GetChildProcesses { entity_id, reply }
        })
        .await
    }

    /// The table's counters (evictions by reason, collisions) and capacity; `NotImplemented`
    /// for a backend that keeps none. Not counted as a request in the metrics.
    pub async fn process_stats(&self) -> Result<(ProcessTableStats, usize), StoreError> {
        self.ask("get_stats", |reply| ProcessQuery::GetStats { reply })
            .await
    }

    /// `[self, parent, …]` up to `max_depth` entries (empty for `max_depth <= 0` or unknown).
    pub async fn get_ancestry(
        &self,
        entity_id: u32,
        max_depth: i32,
    ) -> Result<Vec<ProcessInfo>, StoreError> {
        self.ask("get_ancestry", |reply| ProcessQuery::GetAncestry {
            entity_id,
            max_depth,
            reply,
        })
        .await
    }
}
