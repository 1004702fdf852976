//! What the enricher knows about each runtime endpoint and what it has done, shared between its
//! tasks and the query socket: `query health` words the endpoints' states into the container
//! store's entry (`degraded: containerd unreachable (…)`), `query metrics` shows the counters.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// The kind of API an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// Docker Engine API (Docker, or podman's `system service`).
    DockerApi,
    /// containerd gRPC.
    Containerd,
}

impl EndpointKind {
    /// How people call it before the engine is known.
    pub const fn label(self) -> &'static str {
        match self {
            EndpointKind::DockerApi => "docker API",
            EndpointKind::Containerd => "containerd",
        }
    }
}

/// Where an endpoint stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum EndpointState {
    /// Not checked yet.
    Starting,
    /// A default socket that does not exist: that runtime is not installed (not a fault).
    Absent,
    /// Answering.
    Up,
    /// Configured or once seen, and failing now: why.
    Down(String),
}

/// One endpoint as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointReport {
    /// API kind.
    pub kind: EndpointKind,
    /// Socket path.
    pub socket: PathBuf,
    /// Engine name and version once known (`podman 4.3.1`, `docker 27.3.1`, `containerd 1.6.20`).
    pub engine: String,
    /// State.
    #[serde(flatten)]
    pub state: EndpointState,
}

impl EndpointReport {
    fn name(&self) -> String {
        if self.engine.is_empty() {
            self.kind.label().to_owned()
        } else {
            self.engine
                .split_whitespace()
                .next()
                .unwrap_or(self.kind.label())
                .to_owned()
        }
    }
}

/// Counters of the enricher; all monotonic.
#[derive(Debug, Default)]
pub struct EnrichmentCounters {
    /// API calls made (event streams count once per connection).
    pub requests: AtomicU64,
    /// API calls that failed (unreachable, refused, timed out, garbage, too large).
    pub failures: AtomicU64,
    /// ... of which timed out.
    pub timeouts: AtomicU64,
    /// ... of which answered something that is not the API (not HTTP/gRPC, bad JSON, bad IDs).
    pub garbage: AtomicU64,
    /// ... of which answered more than `max_response_bytes` / `max_event_bytes` (cut off unread).
    pub too_large: AtomicU64,
    /// Containers described to the store.
    pub enriched: AtomicU64,
    /// Removals reported to the store (runtime events, resyncs, stopped containers).
    pub removed: AtomicU64,
    /// Containers no runtime knew (after retries).
    pub not_found: AtomicU64,
    /// Requests refused because the queue was full (the next resync catches them up).
    pub queue_overflow: AtomicU64,
    /// Requests for a container already queued or already described (nothing to do).
    pub coalesced: AtomicU64,
    /// Runtime events read.
    pub events: AtomicU64,
    /// Fields cut to the store's bounds (names, images, pod fields) or dropped as malformed.
    pub fields_cut: AtomicU64,
    /// Labels ignored beyond the per-container label bounds.
    pub labels_cut: AtomicU64,
    /// Reconnections after an endpoint failed.
    pub reconnects: AtomicU64,
}

/// Counters as `query metrics` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrichmentStats {
    /// Whether enrichment is on.
    pub enabled: bool,
    /// See [`EnrichmentCounters`].
    pub requests: u64,
    /// See [`EnrichmentCounters`].
    pub failures: u64,
    /// See [`EnrichmentCounters`].
    pub timeouts: u64,
    /// See [`EnrichmentCounters`].
    pub garbage: u64,
    /// See [`EnrichmentCounters`].
    pub too_large: u64,
    /// See [`EnrichmentCounters`].
    pub enriched: u64,
    /// See [`EnrichmentCounters`].
    pub removed: u64,
    /// See [`EnrichmentCounters`].
    pub not_found: u64,
    /// See [`EnrichmentCounters`].
    pub queue_overflow: u64,
    /// See [`EnrichmentCounters`].
    pub coalesced: u64,
    /// See [`EnrichmentCounters`].
    pub events: u64,
    /// See [`EnrichmentCounters`].
    pub fields_cut: u64,
    /// See [`EnrichmentCounters`].
    pub labels_cut: u64,
    /// See [`EnrichmentCounters`].
    pub reconnects: u64,
    /// Containers waiting or being described now.
    pub pending: u64,
    /// Every endpoint.
    pub endpoints: Vec<EndpointReport>,
}

/// The enricher's shared state; see the module docs.
#[derive(Debug, Default)]
pub struct EnrichmentStatus {
    enabled: AtomicBool,
    endpoints: Mutex<Vec<EndpointReport>>,
    /// Containers pending (queued, being described, or waiting to retry).
    pub pending: AtomicU64,
    /// The counters.
    pub counters: EnrichmentCounters,
}

/// Adds 1 to `counter`.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl EnrichmentStatus {
    /// Enrichment is on, with these endpoints (all `Starting`).
    pub fn start(&self, endpoints: Vec<(EndpointKind, PathBuf)>) {
        self.enabled.store(true, Ordering::Relaxed);
        if let Ok(mut e) = self.endpoints.lock() {
            *e = endpoints
                .into_iter()
                .map(|(kind, socket)| EndpointReport {
                    kind,
                    socket,
                    engine: String::new(),
                    state: EndpointState::Starting,
                })
                .collect();
        }
    }

    /// Whether enrichment is on.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Records endpoint `index`'s state (and its engine, when given).
    pub fn set(&self, index: usize, state: EndpointState, engine: Option<String>) {
        if let Ok(mut e) = self.endpoints.lock()
            && let Some(report) = e.get_mut(index)
        {
            if report.state != state {
                match &state {
                    EndpointState::Down(reason) => tracing::warn!(
                        socket = %report.socket.display(),
                        "{} unreachable: {reason}",
                        report.name()
                    ),
                    EndpointState::Up => tracing::info!(
                        socket = %report.socket.display(),
                        engine = engine.as_deref().unwrap_or(&report.engine),
                        "container runtime answering: enriching containers from it"
                    ),
                    _ => {}
                }
            }
            report.state = state;
            if let Some(engine) = engine {
                report.engine = engine;
            }
        }
    }

    /// Endpoint `index`'s state.
    pub fn state(&self, index: usize) -> Option<EndpointState> {
        self.endpoints
            .lock()
            .ok()
            .and_then(|e| e.get(index).map(|r| r.state.clone()))
    }

    /// `(status, message)` for the container store's entry in `query health`: `degraded` when
    /// an endpoint that exists (or was configured) fails, `healthy` otherwise.
    pub fn health(&self) -> (&'static str, String) {
        if !self.enabled() {
            return (
                "healthy",
                "enrichment off (container.enrichment = false): containers are known by ID and \
                 runtime only"
                    .to_owned(),
            );
        }
        let endpoints = self.endpoints.lock().map(|e| e.clone()).unwrap_or_default();
        let mut down = Vec::new();
        let mut up = Vec::new();
        for e in &endpoints {
            match &e.state {
                EndpointState::Down(reason) => down.push(format!(
                    "{} unreachable ({}: {reason})",
                    e.name(),
                    e.socket.display()
                )),
                EndpointState::Up => {
                    up.push(format!("{} ({})", e.engine, e.socket.display()));
                }
                EndpointState::Starting | EndpointState::Absent => {}
            }
        }
        let up_text = if up.is_empty() {
            String::new()
        } else {
            format!("enriching from {}", up.join(", "))
        };
        if !down.is_empty() {
            let mut message = format!("degraded: {}", down.join("; "));
            if !up_text.is_empty() {
                message.push_str("; ");
                message.push_str(&up_text);
            }
            return ("degraded", message);
        }
        if up.is_empty() {
            let checked: Vec<String> = endpoints
                .iter()
                .map(|e| e.socket.display().to_string())
                .collect();
            let starting = endpoints.iter().any(|e| e.state == EndpointState::Starting);
            let what = if starting {
                "enrichment starting"
            } else {
                "no container runtime socket found"
            };
            return (
                "healthy",
                format!(
                    "{what} (checked: {}); containers are known by ID and runtime only",
                    checked.join(", ")
                ),
            );
        }
        ("healthy", up_text)
    }

    /// The counters and endpoints now.
    pub fn snapshot(&self) -> EnrichmentStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EnrichmentStats {
            enabled: self.enabled(),
            requests: get(&c.requests),
            failures: get(&c.failures),
            timeouts: get(&c.timeouts),
            garbage: get(&c.garbage),
            too_large: get(&c.too_large),
            enriched: get(&c.enriched),
            removed: get(&c.removed),
            not_found: get(&c.not_found),
            queue_overflow: get(&c.queue_overflow),
            coalesced: get(&c.coalesced),
            events: get(&c.events),
            fields_cut: get(&c.fields_cut),
            labels_cut: get(&c.labels_cut),
            reconnects: get(&c.reconnects),
            pending: get(&self.pending),
            endpoints: self.endpoints.lock().map(|e| e.clone()).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_words_each_situation() {
        let s = EnrichmentStatus::default();
        assert!(s.health().1.starts_with("enrichment off"));
        s.start(vec![
            (
                EndpointKind::DockerApi,
                PathBuf::from("/run/podman/podman.sock"),
            ),
            (EndpointKind::Containerd, PathBuf::from("/c.sock")),
        ]);
        s.set(0, EndpointState::Absent, None);
        s.set(1, EndpointState::Absent, None);
        let (status, message) = s.health();
        assert_eq!(status, "healthy");
        assert!(
            message.starts_with("no container runtime socket found"),
            "{message}"
        );
        s.set(0, EndpointState::Up, Some("podman 4.3.1".into()));
        s.set(
            1,
            EndpointState::Down("connection refused".into()),
            Some("containerd 1.6.20".into()),
        );
        let (status, message) = s.health();
        assert_eq!(status, "degraded");
        assert_eq!(
            message,
            "degraded: containerd unreachable (/c.sock: connection refused); enriching from \
             podman 4.3.1 (/run/podman/podman.sock)"
        );
        s.set(1, EndpointState::Up, None);
        assert_eq!(s.health().0, "healthy");
    }
}
