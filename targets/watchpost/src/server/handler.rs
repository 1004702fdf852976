//! Answering one decoded request from the stores, through the same registry and handles the
//! detectors use (so every query shows up in the stores' metrics).
//!
//! Two answers need more than a store: `process --pid` reads the pid's canonical start time from
//! `/proc` and asks the store for that exact process (pid + start time: never another process
//! whose 32-bit entity ID collides); and `syscall --arch` for an architecture other than the
//! running one answers from the core's static table of that architecture (the syscall store
//! serves the running one).

use std::collections::HashSet;
use std::sync::Arc;

use watchpost_actors::detect::{DetectorEngine, EngineStats};
use watchpost_actors::stores::container::{ContainerFilter, ContainerInfo};
use watchpost_actors::stores::process::ProcessInfo;
use watchpost_actors::{ErrorKind, Registry, StoreError};
use watchpost_core::entity_id::entity_id;
use watchpost_core::syscall::Arch;

use crate::procfs::ProcReader;
use crate::stats::DaemonCounters;
use crate::wire::request::parse_arch;
use crate::wire::response::{
    MemoryReport, MetricsReport, ProcessAnswer, StoreHealth, StoreMetricsReport, StoreSummary,
    SymbolAddress, SymbolBatchEntry, SyscallAnswer,
};
use crate::wire::{Answer, ErrorCode, ErrorReply, Request, Response};

/// What a query may read.
#[derive(Debug, Clone)]
pub struct QueryContext {
    /// The stores.
    pub registry: Registry,
    /// `/proc`, for `process --pid`.
    pub reader: ProcReader,
    /// The architecture the syscall store serves (the running one), if it has a table.
    pub host_arch: Option<Arch>,
    /// The daemon's counters.
    pub stats: Arc<DaemonCounters>,
    /// The detector engine, for its counters.
    pub engine: Option<DetectorEngine>,
    /// The fleet parts, for their health.
    pub fleet: Option<crate::fleet::FleetState>,
    /// Detection records for `events --follow`.
    pub follow: Option<tokio::sync::broadcast::Sender<Arc<str>>>,
    /// Counters of the follow streams.
    pub follow_counters: Arc<crate::server::follow::FollowCounters>,
    /// The snapshot file (`persistence`, `snapshot`, the `persist` health entry).
    pub persistence: Option<Arc<crate::persistence::Persistence>>,
    /// The IP reputation write path (`reputation …`).
    pub reputation: Option<Arc<crate::persistence::reputation::ReputationWriter>>,
}

/// Adds the runtimes' state to the container store's health entry: a healthy store whose
/// runtimes fail is reported degraded, with why (`degraded: containerd unreachable (…)`).
fn with_enrichment(entry: &mut StoreHealth, (status, message): (&'static str, String)) {
    if status != "healthy" && entry.status == "healthy" {
        entry.status = status.to_owned();
    }
    entry.message = if entry.message.is_empty() {
        message
    } else {
        format!("{}; {message}", entry.message)
    };
}

/// Why a request has no answer: a reply already worded, or a store error still to be explained
/// (an unavailable store's health says why).
#[derive(Debug)]
enum Failure {
    Reply(ErrorReply),
    Store(StoreError),
}

type Answered = Result<Answer, Failure>;

fn reply(kind: ErrorCode, message: impl Into<String>) -> Failure {
    Failure::Reply(ErrorReply {
        kind,
        message: message.into(),
    })
}

/// The failure for store error `e`; a `NotFound` says `not_found` instead of the generic text.
fn store_error(e: StoreError, not_found: impl FnOnce() -> String) -> Failure {
    if e.is(ErrorKind::NotFound) {
        reply(ErrorCode::NotFound, not_found())
    } else {
        Failure::Store(e)
    }
}

impl QueryContext {
    /// The reply to `request` (already validated).
    pub async fn answer(&self, request: Request) -> Response {
        match self.dispatch(request).await {
            Ok(answer) => Response::Ok { answer },
            Err(Failure::Reply(error)) => Response::Error { error },
            Err(Failure::Store(e)) => Response::Error {
                error: self.explain(e).await,
            },
        }
    }

    /// Words a store error for people: why the store is unavailable, what a valid argument is.
    async fn explain(&self, e: StoreError) -> ErrorReply {
        let message = match e.kind {
            ErrorKind::StoreUnhealthy => match self.registry.health(e.store).await {
                Ok(h) if !h.message.is_empty() => {
                    format!("the {} store is unavailable: {}", e.store, h.message)
                }
                Ok(_) => format!("the {} store is unavailable: {e}", e.store),
                Err(_) => format!("the {} store is not running in this daemon", e.store),
            },
            ErrorKind::InvalidArgument => match e.operation {
                "get_container" => format!(
                    "{e}: give a full container ID or a unique prefix of at least 12 characters"
                ),
                "get_container_by_name" => format!("{e}: names are 1 to 128 bytes"),
                _ => e.to_string(),
            },
            _ => e.to_string(),
        };
        ErrorReply {
            kind: e.kind.into(),
            message,
        }
    }

    async fn store_names(&self, only: Option<String>) -> Result<Vec<String>, Failure> {
        let all = self
            .registry
            .list()
            .await
            .map_err(|e| store_error(e, String::new))?;
        match only {
            None => Ok(all),
            Some(name) if all.contains(&name) => Ok(vec![name]),
            Some(name) => Err(reply(
                ErrorCode::NotFound,
                format!("no store named {name:?} (stores: {})", all.join(", ")),
            )),
        }
    }

    async fn dispatch(&self, request: Request) -> Answered {
        let r = &self.registry;
        match request {
            Request::Stores {} => {
                let mut out = Vec::new();
                for name in self.store_names(None).await? {
                    let metadata = r
                        .metadata(&name)
                        .await
                        .map_err(|e| store_error(e, || format!("store {name} vanished")))?;
                    let health = r
                        .health(&name)
                        .await
                        .map(|h| h.status.as_str().to_owned())
                        .unwrap_or_else(|_| "unknown".to_owned());
                    out.push(StoreSummary { metadata, health });
                }
                Ok(Answer::Stores(out))
            }
            Request::Health { store } => {
                let mut out = Vec::new();
                if store.is_none() {
                    let (status, message) =
                        self.stats.daemon_health(watchpost_actors::clock::now());
                    out.push(StoreHealth {
                        store: "daemon".to_owned(),
                        status: status.to_owned(),
                        message,
                        last_check: watchpost_actors::clock::now(),
                    });
                    for (name, status, message) in self.fleet.iter().flat_map(|f| f.health()) {
                        out.push(StoreHealth {
                            store: name.to_owned(),
                            status: status.to_owned(),
                            message,
                            last_check: watchpost_actors::clock::now(),
                        });
                    }
                    if let Some(p) = &self.persistence {
                        let (status, message) = p.status().health();
                        out.push(StoreHealth {
                            store: "persist".to_owned(),
                            status: status.to_owned(),
                            message,
                            last_check: watchpost_actors::clock::now(),
                        });
                    }
                }
                for name in self.store_names(store).await? {
                    let h = r
                        .health(&name)
                        .await
                        .map_err(|e| store_error(e, || format!("store {name} vanished")))?;
                    let mut entry = StoreHealth {
                        store: name,
                        status: h.status.as_str().to_owned(),
                        message: h.message.as_str().to_owned(),
                        last_check: h.last_check,
                    };
                    if entry.store == watchpost_core::error::store_names::CONTAINER {
                        with_enrichment(&mut entry, self.stats.enrichment.health());
                    }
                    out.push(entry);
                }
                Ok(Answer::Health(out))
            }
            Request::Metrics { store } => {
                let all = store.is_none();
                let mut stores = Vec::new();
                for name in self.store_names(store).await? {
                    let gone = || format!("store {name} vanished");
                    let metrics = r.metrics(&name).await.map_err(|e| store_error(e, gone))?;
                    let supervision = r
                        .supervision(&name)
                        .await
                        .map_err(|e| store_error(e, gone))?;
                    let counters = self.store_counters(&name).await;
                    stores.push(StoreMetricsReport {
                        store: name,
                        metrics,
                        supervision,
                        counters,
                    });
                }
                let daemon = if all {
                    let engine = self
                        .engine
                        .as_ref()
                        .map_or(EngineStats::default(), DetectorEngine::stats);
                    let mut daemon = self.stats.snapshot(engine);
                    // A /proc read: on the blocking pool, not on a runtime thread.
                    let rss = tokio::task::spawn_blocking(crate::memory::rss::resident_bytes)
                        .await
                        .ok()
                        .flatten()
                        .unwrap_or(0);
                    daemon.memory = Some(MemoryReport {
                        rss_bytes: rss,
                        reserved_bytes: self.stats.memory.parts(),
                        budget_bytes: self.stats.memory.budget(),
                    });
                    if let Ok(dns) = r.dns().dns_stats().await {
                        daemon.dns_messages_rate_limited = dns.messages_rate_limited;
                        daemon.dns_messages_no_namespace_slot = dns.messages_no_namespace_slot;
                    }
                    Some(Box::new(daemon))
                } else {
                    None
                };
                let persist = all
                    .then(|| {
                        self.persistence
                            .as_ref()
                            .map(|p| Box::new(crate::persistence::metrics_lines(&p.status())))
                    })
                    .flatten();
                Ok(Answer::Metrics(MetricsReport {
                    stores,
                    daemon,
                    persist,
                }))
            }
            Request::Snapshot {}
            | Request::Persistence {}
            | Request::ReputationWrite { .. }
            | Request::ReputationDelete { .. }
            | Request::ReputationClear { .. }
            | Request::Reputation { .. } => crate::server::persist_commands::answer(self, request)
                .await
                .map_err(Failure::Reply),
            Request::System {} => {
                let info = r
                    .system()
                    .get_system_info()
                    .await
                    .map_err(|e| store_error(e, String::new))?;
                Ok(Answer::System((*info).clone()))
            }
            Request::Process { entity_id } => {
                let info = r.processes().get_process(entity_id).await.map_err(|e| {
                    store_error(e, || format!("no process with entity id {entity_id}"))
                })?;
                Ok(Answer::Process(self.with_container(info).await))
            }
            Request::ProcessByPid { pid } => self.process_by_pid(pid).await,
            Request::Ancestry { entity_id, depth } => {
                let chain = r
                    .processes()
                    .get_ancestry(entity_id, depth)
                    .await
                    .map_err(|e| store_error(e, String::new))?;
                // The contract answers an unknown process with an empty chain, and so it does
                // any process for depth <= 0; the CLI needs to tell an unknown process (exit
                // code 1) from a known one, so an empty chain is checked against the store.
                if chain.is_empty() {
                    r.processes().get_process(entity_id).await.map_err(|e| {
                        store_error(e, || format!("no process with entity id {entity_id}"))
                    })?;
                }
                Ok(Answer::Processes(chain))
            }
            Request::Children { entity_id } => {
                // Children of an unknown process are an empty list too; ask for the parent first.
                let processes = r.processes();
                processes.get_process(entity_id).await.map_err(|e| {
                    store_error(e, || format!("no process with entity id {entity_id}"))
                })?;
                processes
                    .get_child_processes(entity_id)
                    .await
                    .map(Answer::Processes)
                    .map_err(|e| store_error(e, String::new))
            }
            Request::SyscallByName { name, arch } => {
                let arch = self.arch(arch.as_deref())?;
                let id = if Some(arch) == self.host_arch {
                    r.syscalls().get_syscall_id(&name).await.map_err(|e| {
                        store_error(e, || {
                            format!("no syscall named {name} on {}", arch.machine())
                        })
                    })?
                } else {
                    arch.syscalls().number(&name).ok_or_else(|| {
                        reply(
                            ErrorCode::NotFound,
                            format!("no syscall named {name} on {}", arch.machine()),
                        )
                    })?
                };
                Ok(Answer::Syscall(SyscallAnswer {
                    arch: arch.machine().to_owned(),
                    id,
                    name,
                }))
            }
            Request::SyscallById { id, arch } => {
                let arch = self.arch(arch.as_deref())?;
                let not_found = || format!("no syscall number {id} on {}", arch.machine());
                let name = if Some(arch) == self.host_arch {
                    r.syscalls()
                        .get_syscall_name(id)
                        .await
                        .map_err(|e| store_error(e, not_found))?
                } else {
                    arch.syscalls()
                        .name(id)
                        .map(str::to_owned)
                        .ok_or_else(|| reply(ErrorCode::NotFound, not_found()))?
                };
                Ok(Answer::Syscall(SyscallAnswer {
                    arch: arch.machine().to_owned(),
                    id,
                    name,
                }))
            }
            Request::SymbolByAddress { address } => r
                .kernel_symbols()
                .resolve_symbol_by_address(address)
                .await
                .map(Answer::Symbols)
                .map_err(|e| store_error(e, || format!("no kernel symbol at {address:#x}"))),
            Request::SymbolByName { name } => r
                .kernel_symbols()
                .get_symbol_address(&name)
                .await
                .map(|address| {
                    Answer::SymbolAddress(SymbolAddress {
                        name: name.clone(),
                        address,
                    })
                })
                .map_err(|e| store_error(e, || format!("no kernel symbol named {name}"))),
            Request::Symbols { addresses } => {
                let mut found = r
                    .kernel_symbols()
                    .resolve_symbols_batch(&addresses)
                    .await
                    .map_err(|e| store_error(e, String::new))?;
                let mut seen = HashSet::new();
                let entries = addresses
                    .iter()
                    .filter(|a| seen.insert(**a))
                    .filter_map(|a| {
                        found.remove(a).map(|symbols| SymbolBatchEntry {
                            address: *a,
                            symbols,
                        })
                    })
                    .collect();
                Ok(Answer::SymbolBatch(entries))
            }
            Request::Dns { query, netns } => {
                let dns = r.dns();
                let answer = match netns {
                    Some(netns) => dns.get_dns_response_in(&query, netns).await,
                    None => dns.get_dns_response(&query).await,
                };
                answer.map(Answer::Dns).map_err(|e| {
                    store_error(e, || match netns {
                        Some(netns) => {
                            format!(
                                "no DNS answer observed for {query} in network namespace {netns}"
                            )
                        }
                        None => format!(
                            "no DNS answer observed for {query} in the host's or a known \
                             container's network namespace"
                        ),
                    })
                })
            }
            Request::Container { id } => r
                .containers()
                .get_container(&id)
                .await
                .map(Answer::Container)
                .map_err(|e| store_error(e, || format!("no container with id {id}"))),
            Request::ContainerByName { name } => r
                .containers()
                .get_container_by_name(&name)
                .await
                .map(Answer::Container)
                .map_err(|e| store_error(e, || format!("no container named {name}"))),
            Request::Containers {
                name,
                image,
                runtime,
            } => r
                .containers()
                .list_containers(ContainerFilter {
                    name,
                    image,
                    runtime,
                })
                .await
                .map(Answer::Containers)
                .map_err(|e| store_error(e, String::new)),
            Request::Events {} => Err(reply(
                ErrorCode::BadRequest,
                "events are streamed on their own connection",
            )),
        }
    }

    /// The store's own counters as name → value (empty for a store that keeps none).
    async fn store_counters(&self, name: &str) -> std::collections::BTreeMap<String, u64> {
        fn flat<T: serde::Serialize>(stats: T) -> std::collections::BTreeMap<String, u64> {
            match serde_json::to_value(stats) {
                Ok(serde_json::Value::Object(map)) => map
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v.as_u64()?)))
                    .collect(),
                _ => Default::default(),
            }
        }
        let r = &self.registry;
        match name {
            "process" => r.processes().process_stats().await.map(|(s, _)| flat(s)),
            "dns" => r.dns().dns_stats().await.map(flat),
            "container" => r.containers().container_stats().await.map(flat),
            _ => return Default::default(),
        }
        .unwrap_or_default()
    }

    fn arch(&self, asked: Option<&str>) -> Result<Arch, Failure> {
        match asked {
            Some(name) => parse_arch(name).map_err(|e| reply(ErrorCode::BadRequest, e.to_string())),
            None => self.host_arch.ok_or_else(|| {
                reply(
                    ErrorCode::BadRequest,
                    "this machine's architecture has no syscall table: give --arch",
                )
            }),
        }
    }

    async fn process_by_pid(&self, pid: u32) -> Answered {
        // A /proc read: on the blocking pool, not on a runtime thread.
        let reader = self.reader.clone();
        let read = tokio::task::spawn_blocking(move || reader.start_time(pid))
            .await
            .map_err(|e| reply(ErrorCode::Internal, format!("reading /proc/{pid}: {e}")))?;
        let start_time = match read {
            Ok(t) => t,
            Err(e) if e.is_gone() => {
                return Err(reply(
                    ErrorCode::NotFound,
                    format!("no process with pid {pid}"),
                ));
            }
            Err(e) => return Err(reply(ErrorCode::Internal, e.to_string())),
        };
        let id = entity_id(pid, start_time);
        // By exact key: a 32-bit entity-ID collision never hides the process asked for.
        let found = self
            .registry
            .processes()
            .get_process_exact(pid, start_time)
            .await;
        let info = match found {
            Ok(info) => info,
            Err(e) if e.is(ErrorKind::NotFound) => {
                return Err(reply(
                    ErrorCode::NotFound,
                    self.why_absent(pid, id, start_time).await,
                ));
            }
            Err(e) => return Err(Failure::Store(e)),
        };
        Ok(Answer::Process(self.with_container(info).await))
    }

    /// `info` with its container, while the process runs (the same pid with the same start
    /// time) in one: from `/proc/<pid>/cgroup`, described by the container store when it knows
    /// the container.
    async fn with_container(&self, info: ProcessInfo) -> ProcessAnswer {
        let found = if info.exit_time.is_none() {
            // /proc reads: on the blocking pool, not on a runtime thread.
            let (reader, pid, start_time) = (self.reader.clone(), info.pid, info.start_time);
            tokio::task::spawn_blocking(move || {
                if !reader.start_time(pid).is_ok_and(|t| t == start_time) {
                    return None;
                }
                std::fs::read_to_string(reader.root().join(format!("{pid}/cgroup")))
                    .ok()
                    .and_then(|cgroup| crate::procfs::container_of(&cgroup))
            })
            .await
            .ok()
            .flatten()
        } else {
            None
        };
        let container = match found {
            None => None,
            Some(found) => Some(
                match self
                    .registry
                    .containers()
                    .get_container(found.id.as_str())
                    .await
                {
                    Ok(c) => c,
                    Err(_) => ContainerInfo {
                        id: found.id.as_str().to_owned(),
                        runtime: found.runtime.as_str().to_owned(),
                        ..ContainerInfo::default()
                    },
                },
            ),
        };
        ProcessAnswer {
            process: info,
            container: container.map(Box::new),
        }
    }

    /// Why a running process is not in the store, as far as the daemon can know: a process
    /// older than the daemon was seen by the start-up scan, so its absence means the store
    /// evicted it (full) or the scan limit left it out; a younger one may simply not be seen
    /// yet.
    async fn why_absent(&self, pid: u32, id: u32, start_time: u64) -> String {
        use std::sync::atomic::Ordering;
        let started_at = self.stats.started_at.load(Ordering::Relaxed);
        let over_limit = self.stats.proc_over_limit.load(Ordering::Relaxed);
        let evicted_live = self
            .registry
            .processes()
            .process_stats()
            .await
            .map_or(0, |(s, _)| s.evicted_live);
        if start_time < started_at && evicted_live > 0 {
            format!(
                "pid {pid} (entity id {id}) was evicted from the process store: it is full and \
                 has evicted {evicted_live} running processes (raise process.capacity)"
            )
        } else if start_time < started_at && over_limit > 0 {
            format!(
                "pid {pid} (entity id {id}) is not tracked: {over_limit} processes are beyond \
                 collector.max_tracked_processes"
            )
        } else {
            format!(
                "pid {pid} (entity id {id}) is not in the process store yet (not seen yet); it \
                 is added by the next kernel event or /proc rescan"
            )
        }
    }
}
