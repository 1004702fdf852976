//! Container enrichment: names, images, digests, start times and Kubernetes pods from the
//! container runtimes' own APIs, over their Unix sockets.
//!
//! ```text
//!  docker API sockets ─┐  supervisor per endpoint: probe, events, list, resync ─┐
//!  containerd sockets ─┘        (reconnects with backoff; state → query health)  │ jobs
//!  cgroup discovery (/proc scans) ── EnrichRequests::request (try, counted) ─────┤
//!                                                                                ▼
//!                      bounded queue ─► dispatcher ─► ≤ N workers ─► describe ─► container intake
//! ```
//!
//! - [`settings`]: `[container.runtimes]`, every key bounded.
//! - [`http`], [`docker`]: the Docker Engine API (Docker, podman) with hyper over a Unix socket.
//! - `containerd` (feature `containerd`): containerd's gRPC API.
//! - [`describe`]: one runtime-independent description → a store update (labels, pod, bounds).
//! - [`queue`], [`enricher`], [`supervisor`]: the bounded machinery.
//! - [`status`]: endpoint states and counters for `query health` / `query metrics`.
//! - [`timestamp`]: RFC 3339 start times.
//!
//! Nothing here is on a query's path: queries read the container store, which only ever
//! receives finished updates through its bounded intake. A runtime that hangs, dies or answers
//! garbage costs at most `max_concurrent_requests` calls of `request_timeout_ms` each and a
//! "degraded" line in `query health`.

#[cfg(feature = "containerd")]
pub mod containerd;
pub mod describe;
pub mod docker;
pub mod enricher;
pub mod http;
pub mod queue;
pub mod settings;
pub mod status;
pub mod supervisor;
pub mod timestamp;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;
use watchpost_actors::IntakeSender;
use watchpost_actors::stores::container::ContainerUpdate;
use watchpost_core::cgroup::CgroupContainer;
use watchpost_core::container::Runtime;

use crate::procfs::ProcReader;
use crate::stats::DaemonCounters;
use enricher::Shared;
use queue::{Job, Target};
use settings::RuntimesSection;

/// Where discovery asks for a container to be described. Cheap to clone.
#[derive(Clone)]
pub struct EnrichRequests {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EnrichRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrichRequests")
            .field("pending", &self.shared.queue.pending())
            .finish()
    }
}

impl EnrichRequests {
    /// A cgroup named `found`: describe it unless it already is, is queued, or no runtime that
    /// could run it answers. Never waits; refused when the queue is full (counted).
    pub fn request(&self, found: &CgroupContainer) {
        if matches!(found.runtime, Runtime::Crio | Runtime::Garden) {
            return; // no API for these
        }
        if self.shared.is_described(found.id.as_str(), None) {
            return;
        }
        let job = Job {
            id: found.id.as_str().to_owned(),
            target: Target::Discovered(found.runtime),
            attempt: 0,
        };
        self.shared.queue.try_push(job, self.shared.status());
    }
}

/// Starts the enricher when `container.enrichment` is on (otherwise health says it is off).
pub fn start_if_enabled(
    config: &crate::config::Config,
    intake: IntakeSender<ContainerUpdate>,
    stats: Arc<DaemonCounters>,
    proc: ProcReader,
    shutdown: watch::Receiver<bool>,
) -> Option<Enricher> {
    if !config.container.enrichment {
        tracing::info!("container.enrichment = false: containers are known by ID and runtime only");
        return None;
    }
    Some(Enricher::start(
        config.container.runtimes.clone(),
        config.container.capacity,
        intake,
        stats,
        proc,
        shutdown,
    ))
}

/// The running enricher.
pub struct Enricher {
    /// Discovery's way in.
    pub requests: EnrichRequests,
    tasks: JoinSet<()>,
}

impl Enricher {
    /// Starts a supervisor per configured socket and the dispatcher; everything stops when
    /// `shutdown` turns true.
    pub fn start(
        settings: RuntimesSection,
        container_capacity: usize,
        intake: IntakeSender<ContainerUpdate>,
        stats: Arc<DaemonCounters>,
        proc: ProcReader,
        shutdown: watch::Receiver<bool>,
    ) -> Enricher {
        let (shared, jobs) = Shared::new(settings, intake, stats, proc, container_capacity);
        shared.status().start(
            shared
                .endpoints
                .iter()
                .map(|e| (e.kind, e.socket.clone()))
                .collect(),
        );
        let mut tasks = JoinSet::new();
        for index in 0..shared.endpoints.len() {
            tasks.spawn(supervisor::supervise(
                shared.clone(),
                index,
                shutdown.clone(),
            ));
        }
        tasks.spawn(enricher::dispatch(shared.clone(), jobs, shutdown));
        Enricher {
            requests: EnrichRequests { shared },
            tasks,
        }
    }

    /// Waits for every task to stop (after `shutdown` turned true).
    pub async fn stopped(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}
