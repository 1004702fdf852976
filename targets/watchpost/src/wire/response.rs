//! What the daemon answers: `{"status":"ok","answer":{"type":…,"data":…}}` or
//! `{"status":"error","error":{"kind":…,"message":…}}`. The `data` of an answer is what
//! `watchpost query --json` prints.

use serde::{Deserialize, Serialize};
use watchpost_actors::stores::container::ContainerInfo;
use watchpost_actors::stores::dns::DnsResponse;
use watchpost_actors::stores::process::ProcessInfo;
use watchpost_actors::stores::symbols::SymbolInfo;
use watchpost_actors::stores::system::SystemInfo;
use watchpost_actors::{DataStoreMetrics, ErrorKind, StoreError, StoreMetadata, SupervisionStats};
use watchpost_core::EpochNanos;

/// One reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Response {
    /// The answer.
    Ok {
        /// What was asked for.
        answer: Answer,
    },
    /// Why there is no answer.
    Error {
        /// The error.
        error: ErrorReply,
    },
}

impl Response {
    /// An error reply of `kind` saying `message`.
    pub fn error(kind: ErrorCode, message: impl Into<String>) -> Response {
        Response::Error {
            error: ErrorReply {
                kind,
                message: message.into(),
            },
        }
    }
}

/// What went wrong, for machines (the exit code follows from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not in the store.
    NotFound,
    /// The store is not available (not registered, crashed, restarting, timed out).
    StoreUnhealthy,
    /// The store does not do that.
    NotImplemented,
    /// The store refused the argument (ambiguous prefix, malformed ID…).
    InvalidArgument,
    /// The request is not a valid request (garbage, unknown command, bad field).
    BadRequest,
    /// The request frame is larger than the daemon accepts.
    TooLarge,
    /// The request did not arrive in time.
    Timeout,
    /// Too many clients at once.
    Busy,
    /// Not allowed to query (peer credentials).
    PermissionDenied,
    /// The daemon failed.
    Internal,
}

impl From<ErrorKind> for ErrorCode {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::NotFound => ErrorCode::NotFound,
            ErrorKind::StoreUnhealthy => ErrorCode::StoreUnhealthy,
            ErrorKind::NotImplemented => ErrorCode::NotImplemented,
            ErrorKind::InvalidArgument => ErrorCode::InvalidArgument,
        }
    }
}

/// An error with its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// The kind.
    pub kind: ErrorCode,
    /// One line for people.
    pub message: String,
}

impl From<StoreError> for ErrorReply {
    fn from(e: StoreError) -> Self {
        ErrorReply {
            kind: e.kind.into(),
            message: e.to_string(),
        }
    }
}

/// A registered store and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreSummary {
    /// The registry's metadata.
    #[serde(flatten)]
    pub metadata: StoreMetadata,
    /// `healthy`, `unhealthy` or `unknown`.
    pub health: String,
}

/// A store's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreHealth {
    /// The store.
    pub store: String,
    /// `healthy`, `unhealthy` or `unknown`.
    pub status: String,
    /// Empty when healthy without remark.
    pub message: String,
    /// When it was checked, epoch ns.
    pub last_check: EpochNanos,
}

/// A store's metrics and supervision counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreMetricsReport {
    /// The store.
    pub store: String,
    /// The reference's metrics.
    pub metrics: DataStoreMetrics,
    /// Restarts, intake and handle-side counters.
    pub supervision: SupervisionStats,
    /// The store's own counters, where it keeps them: evictions by reason, ID collisions,
    /// overflows (process, DNS and container stores).
    #[serde(default)]
    pub counters: std::collections::BTreeMap<String, u64>,
}

/// The daemon's own counters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DaemonStats {
    /// When the daemon started, epoch ns.
    pub started_at: EpochNanos,
    /// `/proc` scans done (bootstrap included).
    pub proc_scans: u64,
    /// Processes found by rescans (not at bootstrap).
    pub processes_appeared: u64,
    /// Execs found by rescans (same process, new program).
    pub processes_exec: u64,
    /// Processes that vanished between rescans.
    pub processes_exited: u64,
    /// Processes that exited while being read (races; normal).
    pub proc_read_races: u64,
    /// Processes that could not be read for another reason.
    pub proc_read_errors: u64,
    /// Processes the last scan left out (over `collector.max_tracked_processes`).
    pub proc_over_limit: u64,
    /// Events the detectors' queue refused (full).
    pub events_dropped: u64,
    /// Kernel symbol reloads after a module change.
    pub symbol_reloads: u64,
    /// Events judged by the detectors.
    pub events_judged: u64,
    /// Detections printed.
    pub detections: u64,
    /// Detector calls that failed or timed out.
    pub detector_failures: u64,
    /// Query connections accepted.
    pub connections: u64,
    /// Connections refused: peer not allowed.
    pub connections_denied: u64,
    /// Connections refused: too many clients.
    pub connections_busy: u64,
    /// Requests answered.
    pub requests: u64,
    /// Requests refused as malformed, oversize or late.
    pub bad_requests: u64,
    /// The eBPF collector feeds the stores.
    #[serde(default)]
    pub ebpf_active: bool,
    /// Kernel events read from the eBPF ring buffers.
    #[serde(default)]
    pub kernel_events: u64,
    /// Process-store updates submitted from kernel events (applied/rejected by the store:
    /// see the process store's intake counters).
    #[serde(default)]
    pub kernel_process_updates: u64,
    /// DNS answers submitted to the DNS store from kernel events.
    #[serde(default)]
    pub kernel_dns_answers: u64,
    /// Records the kernel dropped because a ring buffer was full.
    #[serde(default)]
    pub kernel_events_lost: u64,
    /// What the kernel did with DNS queries and answers (refusals by reason).
    #[serde(default)]
    pub kernel_dns: KernelDnsCounters,
    /// DNS answer messages the store refused: their namespace was over its rate.
    #[serde(default)]
    pub dns_messages_rate_limited: u64,
    /// DNS answer messages the store refused: no namespace slot free.
    #[serde(default)]
    pub dns_messages_no_namespace_slot: u64,
    /// eBPF programs attached, by attach point (empty while polling).
    #[serde(default)]
    pub ebpf_attached: Vec<String>,
    /// Attach points this kernel lacks, each with what the daemon does instead.
    #[serde(default)]
    pub ebpf_unavailable: Vec<String>,
    /// Checks of `/proc/modules` for a changed module list (each reload follows one).
    #[serde(default)]
    pub module_checks: u64,
    /// Module loads the kernel reported (eBPF); each should cause exactly one symbol reload.
    #[serde(default)]
    pub kernel_module_loads: u64,
    /// Exec events whose container came from their cgroup ID (no `/proc` read).
    #[serde(default)]
    pub kernel_container_lookups: u64,
    /// Exec events whose container had to be read from `/proc/<pid>/cgroup` (the cgroup map
    /// could not tell: not attached, incomplete, or no cgroup ID).
    #[serde(default)]
    pub kernel_container_proc_reads: u64,
    /// Container enrichment from the runtimes' APIs: counters and endpoints.
    #[serde(default)]
    pub container_enrichment: Box<crate::runtimes::status::EnrichmentStats>,
    /// Restarts of the daemon's supervised tasks (server, collector, kernel feed, …), by task.
    #[serde(default)]
    pub task_restarts: std::collections::BTreeMap<String, u64>,
    /// Kernel-feed batches lost to intake errors (the feed went on).
    #[serde(default)]
    pub kernel_feed_errors: u64,
    /// Replies refused for being longer than `socket.max_reply_bytes`.
    #[serde(default)]
    pub replies_too_large: u64,
    /// Where the daemon's memory goes.
    #[serde(default)]
    pub memory: Option<MemoryReport>,
}

/// The daemon's memory: what each part reserved, and what the process holds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemoryReport {
    /// Resident set size of the daemon process, bytes (`/proc/self/statm`).
    pub rss_bytes: u64,
    /// Bytes each store and part reserved or may hold at most, by part.
    pub reserved_bytes: std::collections::BTreeMap<String, u64>,
    /// The configured budget: the estimate `watchpost config --check` prints.
    pub budget_bytes: u64,
}

/// The kernel's DNS verdicts, summed over CPUs: only answers to outstanding queries of the same
/// network namespace go on; every refusal is counted by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelDnsCounters {
    /// Outgoing queries recorded as outstanding.
    pub queries_tracked: u64,
    /// Answers that matched a query and went on.
    pub answers_matched: u64,
    /// Refused: matched no outstanding query (forged, replayed, or the query was forgotten).
    pub answers_unmatched: u64,
    /// Refused: came after the query timeout.
    pub answers_late: u64,
    /// Refused: no readable question.
    pub answers_malformed: u64,
    /// Refused: into an untrusted namespace beyond the rate.
    pub answers_rate_limited: u64,
    /// Refused: the receiving socket's namespace could not be read.
    pub answers_no_namespace: u64,
    /// Passed on cut: longer than the capture size.
    pub answers_oversized: u64,
}

impl From<&watchpost_ebpf::DnsCounters> for KernelDnsCounters {
    fn from(c: &watchpost_ebpf::DnsCounters) -> Self {
        KernelDnsCounters {
            queries_tracked: c.queries_tracked,
            answers_matched: c.answers_matched,
            answers_unmatched: c.answers_unmatched,
            answers_late: c.answers_late,
            answers_malformed: c.answers_malformed,
            answers_rate_limited: c.answers_rate_limited,
            answers_no_namespace: c.answers_no_namespace,
            answers_oversized: c.answers_oversized,
        }
    }
}

/// Metrics of the stores (and, when all were asked for, the daemon's counters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsReport {
    /// Per store.
    pub stores: Vec<StoreMetricsReport>,
    /// The daemon's counters (absent when one store was asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<Box<DaemonStats>>,
    /// The snapshot file's figures, `persist.<store>.<figure>` (absent when one store was asked
    /// for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist: Option<Box<std::collections::BTreeMap<String, u64>>>,
}

/// A syscall lookup's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallAnswer {
    /// Architecture answered for.
    pub arch: String,
    /// Number.
    pub id: i32,
    /// Name.
    pub name: String,
}

/// A symbol name's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolAddress {
    /// Name asked for.
    pub name: String,
    /// Its address.
    pub address: u64,
}

/// One resolved address of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolBatchEntry {
    /// The address.
    pub address: u64,
    /// Every symbol there.
    pub symbols: Vec<SymbolInfo>,
}

/// One process, with the container it runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessAnswer {
    /// The process store's record.
    #[serde(flatten)]
    pub process: ProcessInfo,
    /// Its container, while it runs in one: read from `/proc/<pid>/cgroup` at query time and
    /// described by the container store (ID and runtime only when the store does not know it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Box<ContainerInfo>>,
}

/// An answer, typed by what was asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Answer {
    /// `stores`
    Stores(Vec<StoreSummary>),
    /// `health`
    Health(Vec<StoreHealth>),
    /// `metrics`
    Metrics(MetricsReport),
    /// `system`
    System(SystemInfo),
    /// `process`, `process --pid`
    Process(ProcessAnswer),
    /// `ancestry`, `children`
    Processes(Vec<ProcessInfo>),
    /// `syscall`
    Syscall(SyscallAnswer),
    /// `symbol 0x…`
    Symbols(Vec<SymbolInfo>),
    /// `symbol name`
    SymbolAddress(SymbolAddress),
    /// `symbols 0x… 0x…`: found addresses in request order (duplicates once).
    SymbolBatch(Vec<SymbolBatchEntry>),
    /// `dns`
    Dns(DnsResponse),
    /// `container`
    Container(ContainerInfo),
    /// `containers`
    Containers(Vec<ContainerInfo>),
    /// `events --follow`: one detection record (schema `watchpost.detection.v1`).
    Detection(serde_json::Value),
    /// `events --follow`: records this follower missed because it read too slowly.
    Skipped(u64),
    /// `persistence`, `snapshot`
    Persistence(Box<crate::persistence::PersistStatus>),
    /// `reputation IP`
    Reputation(super::reputation::ReputationAnswer),
    /// `reputation write|delete|clear`
    ReputationWritten(super::reputation::ReputationWritten),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let ok = Response::Ok {
            answer: Answer::Syscall(SyscallAnswer {
                arch: "x86_64".into(),
                id: 59,
                name: "execve".into(),
            }),
        };
        let text = serde_json::to_string(&ok).unwrap();
        assert_eq!(
            text,
            r#"{"status":"ok","answer":{"type":"syscall","data":{"arch":"x86_64","id":59,"name":"execve"}}}"#
        );
        assert_eq!(serde_json::from_str::<Response>(&text).unwrap(), ok);
        let err = Response::error(ErrorCode::NotFound, "no such process");
        let text = serde_json::to_string(&err).unwrap();
        assert_eq!(
            text,
            r#"{"status":"error","error":{"kind":"not_found","message":"no such process"}}"#
        );
    }

    #[test]
    fn store_errors_keep_their_kind() {
        let e: ErrorReply = StoreError::not_found("process", "get_process").into();
        assert_eq!(e.kind, ErrorCode::NotFound);
        assert!(e.message.contains("get_process"));
    }
}
