//! Starting the fleet parts beside the daemon — the detection dispatcher and its sinks, the MQTT
//! publisher, the intel feed, the metrics endpoint — and stopping them in the right order: the
//! dispatcher drains the detector outputs first (so every detection reaches the outbox), then the
//! publisher gets its last acknowledgements, says `offline` and disconnects.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use watchpost_actors::Registry;
use watchpost_actors::detect::{DetectorEngine, DetectorOutput};
use watchpost_core::EpochNanos;

use crate::config::Config;
use crate::fleet::FleetState;
use crate::fleet::identity::HostIdentity;
use crate::fleet::intel::{IntelCounters, IntelFeed};
use crate::fleet::metrics::{self, MetricsSources};
use crate::fleet::record::RecordMaker;
use crate::persistence::reputation::ReputationWriter;
use crate::sinks::file::FileSink;
use crate::sinks::mqtt::{ConnectionCounters, MqttPublisher};
use crate::sinks::outbox::{Outbox, OutboxError};
use crate::sinks::{Dispatcher, SinkCounters};
use crate::stats::DaemonCounters;

/// The outbox's file name in the data directory.
pub const OUTBOX_FILE: &str = "outbox.redb";

/// Why the fleet parts could not start.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The outbox could not be opened.
    #[error("{0}")]
    Outbox(#[from] OutboxError),
    /// The metrics address could not be bound.
    #[error("metrics.listen {address}: {source}")]
    MetricsListen {
        /// The address.
        address: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// What the daemon's start hands over.
pub struct FleetInputs<'a> {
    /// The configuration.
    pub config: &'a Config,
    /// The stores.
    pub registry: &'a Registry,
    /// The daemon's counters.
    pub stats: Arc<DaemonCounters>,
    /// The detector engine.
    pub engine: DetectorEngine,
    /// When the daemon started.
    pub started_at: EpochNanos,
    /// The detector engine's outputs.
    pub outputs: mpsc::Receiver<DetectorOutput>,
    /// Where the dispatcher's death is reported (it owns `outputs`, so it is not restarted: the
    /// daemon stops instead of running on without detections).
    pub critical: mpsc::Sender<crate::daemon::supervise::Fatal>,
}

/// The running fleet parts.
pub struct FleetRunning {
    /// Counters and outbox, for health and metrics.
    pub state: FleetState,
    /// Socket followers subscribe here.
    pub follow: broadcast::Sender<Arc<str>>,
    /// The metrics endpoint's address, when on.
    pub metrics_address: Option<std::net::SocketAddr>,
    dispatcher: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for FleetRunning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetRunning")
            .field("metrics_address", &self.metrics_address)
            .finish()
    }
}

/// Starts every fleet part the configuration turns on.
pub async fn start(inputs: FleetInputs<'_>) -> Result<FleetRunning, FleetError> {
    let FleetInputs {
        config,
        registry,
        stats,
        engine,
        started_at,
        outputs,
        critical,
    } = inputs;
    let host = HostIdentity::read(Path::new("/proc"));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut state = FleetState {
        sinks: Arc::new(SinkCounters::default()),
        ..FleetState::default()
    };
    let mut tasks = Vec::new();

    let sinks = &config.sinks;
    let outbox = if sinks.mqtt.enabled {
        let path = config.daemon.data_dir.join(OUTBOX_FILE);
        let limit = sinks.mqtt.outbox_max_records;
        let outbox = tokio::task::spawn_blocking(move || Outbox::open(&path, limit))
            .await
            .map_err(|e| OutboxError::Storage {
                operation: "open",
                message: e.to_string(),
            })??;
        let outbox = Arc::new(outbox);
        let waiting = outbox.stats().records;
        tracing::info!(waiting, "MQTT outbox open");
        let counters = Arc::new(ConnectionCounters::default());
        let publisher = MqttPublisher {
            outbox: outbox.clone(),
            broker: config.mqtt.clone(),
            sink: sinks.mqtt.clone(),
            host: host.clone(),
            counters: counters.clone(),
        };
        tasks.push(tokio::spawn(publisher.run(shutdown_rx.clone())));
        state.mqtt = Some(counters);
        state.outbox = Some(outbox.clone());
        Some(outbox)
    } else {
        None
    };

    if config.intel.enabled {
        // The feed itself starts with the collectors ([`start_intel`]); its counters exist
        // from now on for health and metrics.
        state.intel = Some(Arc::new(IntelCounters::default()));
        state.intel_connection = Some(Arc::new(ConnectionCounters::default()));
    }

    let (follow, _) = broadcast::channel(config.follow.buffer_records.max(1));
    let dispatcher = Dispatcher {
        maker: RecordMaker::new(&host, started_at, registry.clone()),
        stdout: sinks.stdout.enabled,
        file: sinks
            .file
            .enabled
            .then(|| FileSink::new(&sinks.file.path, sinks.file.max_bytes, sinks.file.keep)),
        outbox,
        follow: follow.clone(),
        counters: state.sinks.clone(),
        stats: stats.clone(),
    };
    let dispatcher = tokio::spawn(async move {
        if let Err(e) = tokio::spawn(dispatcher.run(outputs)).await {
            let _ = critical
                .send(crate::daemon::supervise::Fatal {
                    task: "detection dispatcher",
                    reason: format!("ended: {e}"),
                })
                .await;
        }
    });

    let mut metrics_address = None;
    if config.metrics.enabled {
        let address = config.metrics.listen;
        // A busy port must not stop detection: the daemon runs on without the endpoint, says so
        // once, and `query health` shows `metrics` degraded.
        let listener = match TcpListener::bind(address).await {
            Ok(l) => l,
            Err(source) => {
                let e = FleetError::MetricsListen {
                    address: address.to_string(),
                    source,
                };
                tracing::error!("no Prometheus endpoint: {e}");
                if let Ok(mut m) = state.metrics_error.lock() {
                    *m = Some(e.to_string());
                }
                return Ok(FleetRunning {
                    state,
                    follow,
                    metrics_address,
                    dispatcher,
                    shutdown,
                    tasks,
                });
            }
        };
        let bound = listener.local_addr().ok();
        metrics_address = bound;
        tracing::info!(address = %bound.map_or(address, |a| a), "Prometheus metrics at /metrics");
        let sources = Arc::new(MetricsSources {
            registry: registry.clone(),
            stats,
            engine,
            fleet: state.clone(),
            capacities: vec![
                ("container", config.container.capacity as u64),
                ("dns", config.dns.max_names as u64),
                ("ip_reputation", config.ip_reputation.max_entries as u64),
            ],
        });
        tasks.push(tokio::spawn(metrics::serve(listener, sources, shutdown_rx)));
    }
    Ok(FleetRunning {
        state,
        follow,
        metrics_address,
        dispatcher,
        shutdown,
        tasks,
    })
}

/// Starts the intel feed (when `[intel]` is on) with the store's owner handle; it stops when
/// `shutdown` turns true.
pub fn start_intel(
    config: &Config,
    state: &FleetState,
    store: Option<Arc<ReputationWriter>>,
    shutdown: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    let (Some(counters), Some(connection)) = (&state.intel, &state.intel_connection) else {
        return None;
    };
    let Some(store) = store else {
        tracing::error!(
            "intel.enabled = true but ip_reputation.enabled = false: the intel feed has no store"
        );
        return None;
    };
    let feed = IntelFeed {
        broker: config.mqtt.clone(),
        intel: config.intel.clone(),
        host: HostIdentity::read(Path::new("/proc")),
        store,
        counters: counters.clone(),
        connection: connection.clone(),
    };
    Some(tokio::spawn(feed.run(shutdown)))
}

impl FleetRunning {
    /// Waits for the dispatcher (it ends once the detector engine's output senders are gone),
    /// then stops the rest; nothing waits past `deadline`.
    pub async fn stop(self, deadline: Instant) {
        let left = || deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left(), self.dispatcher).await.is_err() {
            tracing::warn!("detections still queued at shutdown were not dispatched");
        }
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            if tokio::time::timeout(left(), task).await.is_err() {
                tracing::warn!("a fleet task did not stop in time");
            }
        }
    }
}
