//! The enricher's shared state and its workers: jobs from the queue are described by the
//! runtime that knows the container, at most `max_concurrent_requests` at a time, and the
//! answers go to the container store through its bounded intake.
//!
//! A container that no answering runtime knows is asked again twice (after 250 ms and 1 s: a
//! cgroup can be seen a moment before the runtime records its container), then given up and
//! counted. A failing endpoint is not retried per container: its supervisor reconnects with
//! backoff and lists everything again.
//!
//! A runtime event saying a container is gone may overtake the answer describing it; the answer
//! then carries the removal too, so a dead container is never listed as live again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use watchpost_actors::IntakeSender;
use watchpost_actors::stores::container::ContainerUpdate;
use watchpost_core::container::Runtime;

use crate::procfs::ProcReader;
use crate::runtimes::describe::{Description, DigestCache};
use crate::runtimes::docker::DockerApi;
use crate::runtimes::http::ApiError;
use crate::runtimes::queue::{Job, JobQueue, Target};
use crate::runtimes::settings::RuntimesSection;
use crate::runtimes::status::{EndpointKind, EnrichmentStatus, bump};
use crate::stats::DaemonCounters;

#[cfg(feature = "containerd")]
use crate::runtimes::containerd::ContainerdApi;

/// Delays before asking again about a container no runtime knew.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(250), Duration::from_secs(1)];

/// Images whose digests are remembered.
const DIGEST_CACHE_IMAGES: usize = 256;

/// How long a "gone" event is remembered to catch answers it overtook.
const GONE_MEMORY: Duration = Duration::from_secs(60);

/// A connected client of one endpoint.
#[derive(Debug, Clone)]
pub enum Client {
    /// Docker Engine API.
    Docker(DockerApi),
    /// containerd.
    #[cfg(feature = "containerd")]
    Containerd(ContainerdApi),
}

/// One configured socket.
#[derive(Debug)]
pub struct Endpoint {
    /// API kind.
    pub kind: EndpointKind,
    /// Socket path.
    pub socket: PathBuf,
    /// A default path: absent means "not installed", not a fault.
    pub optional: bool,
    /// Set while the endpoint answers.
    pub client: RwLock<Option<Client>>,
}

impl Endpoint {
    fn client(&self) -> Option<Client> {
        self.client.read().ok().and_then(|c| c.clone())
    }

    /// Whether this endpoint can run containers of `runtime` (as a cgroup path named it).
    fn may_run(&self, runtime: Runtime, client: &Client) -> bool {
        match (client, runtime) {
            (_, Runtime::Unknown) => true,
            (Client::Docker(api), r) => api.runtime() == r,
            #[cfg(feature = "containerd")]
            (Client::Containerd(_), r) => r == Runtime::Containerd,
        }
    }
}

/// What the enricher's tasks share.
pub struct Shared {
    /// Settings.
    pub settings: RuntimesSection,
    /// The container store's intake.
    pub intake: IntakeSender<ContainerUpdate>,
    /// The daemon's counters (`stats.enrichment` is ours).
    pub stats: Arc<DaemonCounters>,
    /// `/proc`, for containerd tasks' start times.
    pub proc: ProcReader,
    /// Every endpoint, in configuration order.
    pub endpoints: Vec<Endpoint>,
    /// The queue.
    pub queue: JobQueue,
    /// Container ID → endpoint that described it (live containers only), at most `capacity`.
    described: Mutex<HashMap<String, usize>>,
    capacity: usize,
    /// Container ID → when a runtime said it is gone (see the module docs).
    gone: Mutex<HashMap<String, Instant>>,
    permits: Arc<Semaphore>,
    digests: DigestCache,
}

impl Shared {
    /// The shared state; `capacity` bounds the IDs remembered (the container store's capacity).
    pub fn new(
        settings: RuntimesSection,
        intake: IntakeSender<ContainerUpdate>,
        stats: Arc<DaemonCounters>,
        proc: ProcReader,
        capacity: usize,
    ) -> (Arc<Shared>, mpsc::Receiver<Job>) {
        let endpoints = settings
            .docker_sockets
            .iter()
            .map(|s| (EndpointKind::DockerApi, s))
            .chain(
                settings
                    .containerd_sockets
                    .iter()
                    .map(|s| (EndpointKind::Containerd, s)),
            )
            .map(|(kind, socket)| Endpoint {
                kind,
                socket: socket.clone(),
                optional: crate::runtimes::settings::is_default_socket(socket),
                client: RwLock::new(None),
            })
            .collect();
        let (queue, rx) = JobQueue::new(settings.queue);
        let permits = Arc::new(Semaphore::new(settings.max_concurrent_requests.max(1)));
        (
            Arc::new(Shared {
                settings,
                intake,
                stats,
                proc,
                endpoints,
                queue,
                described: Mutex::new(HashMap::new()),
                capacity: capacity.max(1),
                gone: Mutex::new(HashMap::new()),
                permits,
                digests: DigestCache::new(DIGEST_CACHE_IMAGES),
            }),
            rx,
        )
    }

    /// The enricher's status.
    pub fn status(&self) -> &EnrichmentStatus {
        &self.stats.enrichment
    }

    /// Counts one API operation's outcome (a socket that does not exist is no call at all).
    pub fn count<T>(&self, result: &Result<T, ApiError>) {
        let c = &self.status().counters;
        if matches!(result, Err(ApiError::Absent)) {
            return;
        }
        bump(&c.requests);
        match result {
            Ok(_) | Err(ApiError::NotFound) => {}
            Err(e) => {
                bump(&c.failures);
                match e {
                    ApiError::Timeout(_) => bump(&c.timeouts),
                    ApiError::TooLarge(_) => bump(&c.too_large),
                    ApiError::Garbage(_) | ApiError::Protocol(_) => bump(&c.garbage),
                    _ => {}
                }
            }
        }
    }

    /// Whether container `id` was described by endpoint `index` (any endpoint when `None`).
    pub fn is_described(&self, id: &str, index: Option<usize>) -> bool {
        self.described
            .lock()
            .ok()
            .and_then(|d| d.get(id).copied())
            .is_some_and(|by| index.is_none_or(|i| i == by))
    }

    /// IDs endpoint `index` described that are not in `listed`: gone since.
    pub fn described_but_not(&self, index: usize, listed: &[String]) -> Vec<String> {
        let listed: std::collections::HashSet<&String> = listed.iter().collect();
        let Ok(d) = self.described.lock() else {
            return Vec::new();
        };
        d.iter()
            .filter(|(id, by)| **by == index && !listed.contains(id))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// A runtime said container `id` is gone at `at` (epoch ns; 0: now).
    pub async fn gone(&self, id: String, at: u64) {
        if let Ok(mut d) = self.described.lock() {
            d.remove(&id);
        }
        if let Ok(mut g) = self.gone.lock() {
            if g.len() >= self.settings.queue.saturating_mul(2) {
                let now = Instant::now();
                g.retain(|_, t| now.duration_since(*t) < GONE_MEMORY);
                if g.len() >= self.settings.queue.saturating_mul(2) {
                    g.clear();
                }
            }
            g.insert(id.clone(), Instant::now());
        }
        bump(&self.status().counters.removed);
        let _ = self
            .intake
            .submit(vec![ContainerUpdate::Remove { id, removed_at: at }])
            .await;
    }

    fn gone_since(&self, id: &str, since: Instant) -> bool {
        self.gone
            .lock()
            .ok()
            .and_then(|g| g.get(id).copied())
            .is_some_and(|t| t >= since)
    }

    /// Sends what `d` says to the store (with a removal if its processes are gone).
    async fn publish(&self, d: Description, index: usize, started: Instant) {
        let status = self.status();
        let Some(enrichment) = d.to_enrichment(&status.counters) else {
            return;
        };
        let id = d.id.clone();
        let mut batch = vec![ContainerUpdate::Enrich(enrichment)];
        let live = d.running && !self.gone_since(&id, started);
        if live {
            if let Ok(mut described) = self.described.lock()
                && (described.len() < self.capacity || described.contains_key(&id))
            {
                described.insert(id.clone(), index);
            }
        } else {
            if let Ok(mut described) = self.described.lock() {
                described.remove(&id);
            }
            batch.push(ContainerUpdate::Remove { id, removed_at: 0 });
            bump(&status.counters.removed);
        }
        bump(&status.counters.enriched);
        let _ = self.intake.submit(batch).await;
    }

    /// Asks endpoint `index` about `id`.
    async fn describe_at(
        &self,
        client: &Client,
        id: &str,
        namespace: Option<&str>,
    ) -> Result<Description, ApiError> {
        let result = match client {
            Client::Docker(api) => api.describe(id, &self.digests).await,
            #[cfg(feature = "containerd")]
            Client::Containerd(api) => {
                let digests = &self.digests;
                match namespace {
                    Some(ns) => api.describe(ns, id, digests, &self.proc).await,
                    None => {
                        // Discovered by a cgroup: look in every namespace.
                        let namespaces = api.namespaces().await;
                        self.count(&namespaces);
                        let mut found = Err(ApiError::NotFound);
                        for ns in namespaces? {
                            found = api.describe(&ns, id, digests, &self.proc).await;
                            if !matches!(found, Err(ApiError::NotFound)) {
                                break;
                            }
                        }
                        found
                    }
                }
            }
        };
        #[cfg(not(feature = "containerd"))]
        let _ = namespace;
        self.count(&result);
        result
    }

    /// Runs one job (holding a concurrency permit); `Some(job)` to retry later.
    async fn run(&self, mut job: Job) -> Option<Job> {
        let started = Instant::now();
        let candidates: Vec<(usize, Client, Option<String>)> = match &job.target {
            Target::Endpoint { index, namespace } => self
                .endpoints
                .get(*index)
                .and_then(Endpoint::client)
                .map(|c| (*index, c, namespace.clone()))
                .into_iter()
                .collect(),
            Target::Discovered(runtime) => {
                if self.is_described(&job.id, None) {
                    bump(&self.status().counters.coalesced);
                    return None;
                }
                self.endpoints
                    .iter()
                    .enumerate()
                    .filter_map(|(i, e)| e.client().map(|c| (i, c)))
                    .filter(|(i, c)| self.endpoints[*i].may_run(*runtime, c))
                    .map(|(i, c)| (i, c, None))
                    .collect()
            }
        };
        if candidates.is_empty() {
            return None;
        }
        let mut unknown = true;
        for (index, client, namespace) in candidates {
            match self
                .describe_at(&client, &job.id, namespace.as_deref())
                .await
            {
                Ok(d) => {
                    self.publish(d, index, started).await;
                    return None;
                }
                Err(ApiError::NotFound) => {}
                Err(e) => {
                    unknown = false;
                    tracing::debug!(id = %job.id, "describing a container failed: {e}");
                }
            }
        }
        if unknown && usize::from(job.attempt) < RETRY_DELAYS.len() {
            job.attempt += 1;
            return Some(job);
        }
        if unknown {
            bump(&self.status().counters.not_found);
        }
        None
    }
}

/// Takes jobs off the queue and runs them, `max_concurrent_requests` at a time, until shutdown.
pub async fn dispatch(
    shared: Arc<Shared>,
    mut jobs: mpsc::Receiver<Job>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut running = JoinSet::new();
    loop {
        let job = tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => job,
                None => break,
            },
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
                continue;
            }
        };
        let permit = tokio::select! {
            p = shared.permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        let s = shared.clone();
        running.spawn(async move {
            let retry = s.run(job.clone()).await;
            drop(permit);
            match retry {
                Some(retry) => {
                    let delay = RETRY_DELAYS
                        [usize::from(retry.attempt.saturating_sub(1)).min(RETRY_DELAYS.len() - 1)];
                    tokio::time::sleep(delay).await;
                    s.queue.requeue(retry, s.status()).await;
                }
                None => s.queue.release(&job.id, s.status()),
            }
        });
        while running.try_join_next().is_some() {}
    }
    running.shutdown().await;
}
