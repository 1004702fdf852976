//! Prometheus exposition: every store's items, capacity, evictions by reason, hits, misses,
//! errors, health and restarts; the kernel feed; intake overflow; each detector's evaluations,
//! timeouts and outputs; the sinks, the outbox, MQTT and the intel feed; the daemon's own RSS
//! and CPU time. Encoded by `prometheus-client` (OpenMetrics text) from values gathered at
//! scrape time, and served at `GET /metrics` by a deliberately small HTTP/1.1 responder
//! ([`serve`]): one request per connection, bounded head, bounded connections, timeouts.
//!
//! Names: `watchpost_` prefix, base units (`_bytes`, `_seconds`), counters end in `_total`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry as PromRegistry, Unit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use watchpost_actors::Registry;
use watchpost_actors::detect::DetectorEngine;
use watchpost_core::HealthStatus;

use crate::fleet::FleetState;
use crate::stats::DaemonCounters;

type Labels = Vec<(String, String)>;

/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 4;
/// Largest request head read.
pub const MAX_REQUEST_BYTES: usize = 8192;
/// Longest wait for a request head, and for the reply to be written.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a scrape reads.
#[derive(Debug, Clone)]
pub struct MetricsSources {
    /// The stores.
    pub registry: Registry,
    /// The daemon's counters.
    pub stats: Arc<DaemonCounters>,
    /// The detector engine.
    pub engine: DetectorEngine,
    /// Sinks, outbox, MQTT, intel.
    pub fleet: FleetState,
    /// Configured capacities of stores that do not report one (`store` → records).
    pub capacities: Vec<(&'static str, u64)>,
}

/// Builds one scrape's families.
struct Scrape {
    registry: PromRegistry,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Scrape {
    fn counter(&mut self, name: &str, help: &str, rows: Vec<(Labels, u64)>) {
        let family = Family::<Labels, Counter>::default();
        for (l, v) in rows {
            family.get_or_create(&l).inc_by(v);
        }
        self.registry.register(name, help, family);
    }

    fn gauge(&mut self, name: &str, help: &str, rows: Vec<(Labels, i64)>) {
        let family = Family::<Labels, Gauge>::default();
        for (l, v) in rows {
            family.get_or_create(&l).set(v);
        }
        self.registry.register(name, help, family);
    }

    fn gauge_unit(&mut self, name: &str, help: &str, unit: Unit, value: i64) {
        let g = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
        g.set(value);
        self.registry.register_with_unit(name, help, unit, g);
    }
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Resident set size (bytes) and CPU time (user + system, seconds) of this process.
pub fn own_usage() -> (u64, f64) {
    let page = rustix::param::page_size() as u64;
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page);
    let ticks = rustix::param::clock_ticks_per_second().max(1) as f64;
    let cpu = std::fs::read("/proc/self/stat")
        .ok()
        .and_then(|raw| {
            watchpost_core::start_time::parse_proc_stat(&raw)
                .ok()
                .map(|_| raw)
        })
        .and_then(|raw| {
            // Fields after the command's closing parenthesis: utime and stime are the 12th and
            // 13th of them (14th and 15th of the line).
            let text = String::from_utf8_lossy(&raw).into_owned();
            let rest = text.rsplit_once(')')?.1.to_owned();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) as f64 / ticks)
        })
        .unwrap_or(0.0);
    (rss, cpu)
}

impl MetricsSources {
    /// The exposition text now.
    pub async fn render(&self) -> String {
        let mut s = Scrape {
            registry: PromRegistry::default(),
        };
        self.stores(&mut s).await;
        self.daemon(&mut s);
        self.fleet(&mut s);
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &s.registry) {
            tracing::error!("encoding metrics: {e}");
        }
        out
    }

    async fn stores(&self, s: &mut Scrape) {
        let names = self.registry.list().await.unwrap_or_default();
        let mut items = Vec::new();
        let mut capacity = Vec::new();
        let mut requests = Vec::new();
        let mut hits = Vec::new();
        let mut misses = Vec::new();
        let mut errors = Vec::new();
        let mut health = Vec::new();
        let mut restarts = Vec::new();
        let mut overflow = Vec::new();
        let mut intake_dropped = Vec::new();
        let mut intake_applied = Vec::new();
        let mut unavailable = Vec::new();
        let mut timed_out = Vec::new();
        let mut evictions = Vec::new();
        let mut collisions = Vec::new();
        for name in &names {
            let store = labels(&[("store", name)]);
            if let Ok(m) = self.registry.metrics(name).await {
                items.push((store.clone(), m.item_count));
                requests.push((store.clone(), m.success_count + m.error_count));
                hits.push((store.clone(), m.cache_hits));
                misses.push((store.clone(), m.cache_misses));
                errors.push((store.clone(), m.error_count));
            }
            let status = self
                .registry
                .health(name)
                .await
                .map_or(HealthStatus::Unknown, |h| h.status);
            for candidate in [
                HealthStatus::Healthy,
                HealthStatus::Unhealthy,
                HealthStatus::Unknown,
            ] {
                health.push((
                    labels(&[("store", name), ("status", candidate.as_str())]),
                    i64::from(candidate == status),
                ));
            }
            if let Ok(sup) = self.registry.supervision(name).await {
                restarts.push((store.clone(), sup.restarts));
                overflow.push((store.clone(), sup.intake_overflow_updates));
                intake_dropped.push((store.clone(), sup.intake_dropped_updates));
                intake_applied.push((store.clone(), sup.intake_applied_updates));
                unavailable.push((store.clone(), sup.unavailable_calls));
                timed_out.push((store.clone(), sup.timed_out_calls));
            }
            let evict = |reason: &str, v: u64| (labels(&[("store", name), ("reason", reason)]), v);
            match name.as_str() {
                "process" => {
                    if let Ok((st, cap)) = self.registry.processes().process_stats().await {
                        capacity.push((store.clone(), signed(cap as u64)));
                        evictions.push(evict("expired", st.evicted_expired));
                        evictions.push(evict("exited", st.evicted_exited));
                        evictions.push(evict("exited_pinned", st.evicted_exited_pinned));
                        evictions.push(evict("live", st.evicted_live));
                        collisions.push((store.clone(), st.id_collisions));
                    }
                }
                "container" => {
                    if let Ok(st) = self.registry.containers().container_stats().await {
                        evictions.push(evict("expired", st.expired_purged));
                        evictions.push(evict("removed", st.evicted_removed));
                        evictions.push(evict("live", st.evicted_live));
                    }
                }
                "dns" => {
                    if let Ok(st) = self.registry.dns().dns_stats().await {
                        evictions.push(evict("expired", st.names_expired));
                        evictions.push(evict("least_recent", st.names_evicted));
                    }
                }
                _ => {}
            }
            if let Some((_, cap)) = self.capacities.iter().find(|(n, _)| *n == name.as_str()) {
                capacity.push((store.clone(), signed(*cap)));
            }
        }
        s.gauge("watchpost_store_items", "Items a store holds.", items);
        s.gauge(
            "watchpost_store_capacity",
            "Items a store can hold (fixed at start).",
            capacity,
        );
        s.counter(
            "watchpost_store_requests",
            "Requests a store answered or refused.",
            requests,
        );
        s.counter(
            "watchpost_store_hits",
            "Lookups that found their entity.",
            hits,
        );
        s.counter(
            "watchpost_store_misses",
            "Lookups answered not found.",
            misses,
        );
        s.counter("watchpost_store_errors", "Requests that failed.", errors);
        s.gauge(
            "watchpost_store_health",
            "1 for the store's current health status, 0 for the others.",
            health,
        );
        s.counter(
            "watchpost_store_restarts",
            "Rebuilds of a store after a panic.",
            restarts,
        );
        s.counter(
            "watchpost_store_evictions",
            "Entries removed to make room or because they expired, by reason.",
            evictions,
        );
        s.counter(
            "watchpost_store_id_collisions",
            "Inserted processes whose entity id another process already had.",
            collisions,
        );
        s.counter(
            "watchpost_intake_overflow_updates",
            "Updates refused because a store's intake queue was full.",
            overflow,
        );
        s.counter(
            "watchpost_intake_dropped_updates",
            "Updates accepted but lost (the store crashed or went away).",
            intake_dropped,
        );
        s.counter(
            "watchpost_intake_applied_updates",
            "Updates applied through a store's intake.",
            intake_applied,
        );
        s.counter(
            "watchpost_store_unavailable_calls",
            "Calls answered unavailable because the store was down.",
            unavailable,
        );
        s.counter(
            "watchpost_store_timed_out_calls",
            "Calls that timed out.",
            timed_out,
        );
    }

    fn daemon(&self, s: &mut Scrape) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let st = &self.stats;
        s.counter(
            "watchpost_kernel_events",
            "Records read from the eBPF ring buffers.",
            vec![(vec![], get(&st.kernel_events))],
        );
        s.counter(
            "watchpost_kernel_events_lost",
            "Records the kernel dropped because a ring buffer was full.",
            vec![(vec![], get(&st.kernel_events_lost))],
        );
        s.gauge(
            "watchpost_ebpf_active",
            "1 while the eBPF collector feeds the stores.",
            vec![(vec![], signed(get(&st.ebpf_active)))],
        );
        s.counter(
            "watchpost_detector_events_dropped",
            "Events refused because the detectors' queue was full.",
            vec![(vec![], get(&st.events_dropped))],
        );
        s.counter(
            "watchpost_detections",
            "Detections reported by the detectors.",
            vec![(vec![], get(&st.detections))],
        );
        let mut evaluations = Vec::new();
        let mut outputs = Vec::new();
        let mut timeouts = Vec::new();
        let mut failures = Vec::new();
        for (name, d) in self.engine.stats_by_detector() {
            let l = labels(&[("detector", name)]);
            evaluations.push((l.clone(), d.evaluations));
            outputs.push((l.clone(), d.outputs));
            timeouts.push((l.clone(), d.timeouts));
            failures.push((l, d.errors));
        }
        s.counter(
            "watchpost_detector_evaluations",
            "Events a detector judged.",
            evaluations,
        );
        s.counter(
            "watchpost_detector_outputs",
            "Findings a detector reported.",
            outputs,
        );
        s.counter(
            "watchpost_detector_timeouts",
            "Detector calls that ran out of time.",
            timeouts,
        );
        s.counter(
            "watchpost_detector_errors",
            "Detector calls that failed.",
            failures,
        );
        s.counter(
            "watchpost_socket_requests",
            "Query socket requests answered.",
            vec![(vec![], get(&st.requests))],
        );
        let (rss, cpu) = own_usage();
        s.gauge_unit(
            "watchpost_process_resident_memory",
            "Resident memory of the daemon.",
            Unit::Bytes,
            signed(rss),
        );
        let c = Counter::<f64, AtomicU64>::default();
        c.inc_by(cpu);
        s.registry.register_with_unit(
            "watchpost_process_cpu",
            "CPU time of the daemon, user and system.",
            Unit::Seconds,
            c,
        );
    }

    fn fleet(&self, s: &mut Scrape) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let f = &self.fleet;
        let k = &f.sinks;
        s.counter(
            "watchpost_sink_records",
            "Detection records written, by sink.",
            vec![
                (labels(&[("sink", "stdout")]), get(&k.stdout_records)),
                (labels(&[("sink", "file")]), get(&k.file_records)),
            ],
        );
        s.counter(
            "watchpost_sink_errors",
            "Detection records a sink failed to take, by sink.",
            vec![
                (labels(&[("sink", "file")]), get(&k.file_errors)),
                (labels(&[("sink", "mqtt_outbox")]), get(&k.outbox_errors)),
            ],
        );
        s.counter(
            "watchpost_sink_file_rotations",
            "Detection file rotations.",
            vec![(vec![], get(&k.file_rotations))],
        );
        if let Some(outbox) = &f.outbox {
            let o = outbox.stats();
            s.gauge(
                "watchpost_outbox_records",
                "Detections waiting in the MQTT outbox.",
                vec![(vec![], signed(o.records))],
            );
            s.gauge(
                "watchpost_outbox_capacity_records",
                "Detections the MQTT outbox holds at most.",
                vec![(vec![], signed(o.max_records))],
            );
            s.counter(
                "watchpost_outbox_appended",
                "Detections committed to the outbox.",
                vec![(vec![], o.appended)],
            );
            s.counter(
                "watchpost_outbox_acknowledged",
                "Detections removed from the outbox after the broker's PUBACK.",
                vec![(vec![], o.acknowledged)],
            );
            s.counter(
                "watchpost_outbox_dropped",
                "Oldest detections dropped because the outbox was full (ever, persisted).",
                vec![(vec![], o.dropped)],
            );
            s.gauge_unit(
                "watchpost_outbox_file",
                "Size of the outbox file.",
                Unit::Bytes,
                signed(o.file_bytes),
            );
        }
        let mut connected = Vec::new();
        let mut connections = Vec::new();
        let mut conn_errors = Vec::new();
        for (client, counters) in [("detections", &f.mqtt), ("intel", &f.intel_connection)] {
            if let Some(c) = counters {
                let l = labels(&[("client", client)]);
                connected.push((l.clone(), signed(get(&c.connected))));
                connections.push((l.clone(), get(&c.connections)));
                conn_errors.push((l, get(&c.connection_errors)));
            }
        }
        if !connected.is_empty() {
            s.gauge(
                "watchpost_mqtt_connected",
                "1 while connected to the broker.",
                connected,
            );
            s.counter(
                "watchpost_mqtt_connections",
                "Successful broker connections.",
                connections,
            );
            s.counter(
                "watchpost_mqtt_connection_errors",
                "Failed connection attempts and lost sessions.",
                conn_errors,
            );
        }
        if let Some(c) = &f.mqtt {
            s.counter(
                "watchpost_mqtt_published",
                "Detections published (re-sends included).",
                vec![(vec![], get(&c.published))],
            );
            s.counter(
                "watchpost_mqtt_acknowledged",
                "PUBACKs received for detections.",
                vec![(vec![], get(&c.acknowledged))],
            );
        }
        s.gauge(
            "watchpost_follow_streams",
            "Clients following detections on the query socket.",
            vec![(vec![], signed(get(&f.follow.followers)))],
        );
        s.counter(
            "watchpost_follow_skipped",
            "Detections followers skipped because they read too slowly.",
            vec![(vec![], get(&f.follow.skipped))],
        );
        s.counter(
            "watchpost_follow_dropped",
            "Followers disconnected because they stopped reading.",
            vec![(vec![], get(&f.follow.dropped))],
        );
        if let Some(i) = &f.intel {
            s.counter(
                "watchpost_intel_messages",
                "Intel messages applied or rejected, by outcome and reason.",
                i.messages_by_outcome()
                    .into_iter()
                    .map(|(outcome, reason, v)| {
                        (labels(&[("outcome", outcome), ("reason", reason)]), v)
                    })
                    .collect(),
            );
            s.counter(
                "watchpost_intel_entries_applied",
                "Reputation entries written by intel messages.",
                vec![(vec![], get(&i.entries_applied))],
            );
        }
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    sources: Arc<MetricsSources>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        if *shutdown.borrow() {
            break;
        }
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => continue,
        };
        let (stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a metrics connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Waiting for a slot here leaves further clients in the kernel's backlog.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let sources = sources.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(IO_TIMEOUT * 2, answer(stream, &sources)).await;
            drop(permit);
        });
    }
}

/// Reads one request head and answers it; the connection is closed after.
async fn answer(mut stream: TcpStream, sources: &MetricsSources) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let complete = tokio::time::timeout(IO_TIMEOUT, async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            head.extend_from_slice(buf.get(..n).unwrap_or(&[]));
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(true);
            }
            if head.len() > MAX_REQUEST_BYTES {
                return Ok(false);
            }
        }
    })
    .await;
    let (status, content_type, body) = match complete {
        Ok(Ok(true)) => {
            let line = head.split(|b| *b == b'\r').next().unwrap_or(&[]);
            let mut parts = line.split(|b| *b == b' ');
            match (parts.next(), parts.next()) {
                (Some(b"GET"), Some(b"/metrics")) => {
                    ("200 OK", CONTENT_TYPE, sources.render().await)
                }
                (Some(b"GET"), Some(_)) => (
                    "404 Not Found",
                    "text/plain; charset=utf-8",
                    "metrics are at /metrics\n".to_owned(),
                ),
                _ => (
                    "405 Method Not Allowed",
                    "text/plain; charset=utf-8",
                    "only GET\n".to_owned(),
                ),
            }
        }
        _ => (
            "400 Bad Request",
            "text/plain; charset=utf-8",
            "incomplete or oversized request\n".to_owned(),
        ),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tokio::time::timeout(IO_TIMEOUT, stream.write_all(reply.as_bytes()))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let _ = stream.shutdown().await;
    Ok(())
}
