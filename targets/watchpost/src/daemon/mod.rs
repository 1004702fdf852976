//! `watchpost run`: start every store, bootstrap them from `/proc`, keep them current, feed the
//! detectors, answer queries, and stop cleanly on SIGINT or SIGTERM.
//!
//! Start order: signal handlers first (a signal during start-up still ends in a clean stop), the
//! data directory, the registry and stores, the detector engine, the socket (bound early so a
//! second daemon fails fast, but served only after the bootstrap scan, so the socket answering
//! means the process tree is loaded), then the rescans.
//!
//! Stop order: stop accepting and remove the socket, stop the collectors, let the detectors
//! finish the events already queued and print their detections, stop the stores. Every step is
//! bounded by `daemon.shutdown_timeout_ms`.

pub mod detections;
pub mod stores;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, watch};
use watchpost_actors::detect::{DetectorEngine, Event};
use watchpost_actors::{Registry, RegistryConfig, clock};

use crate::bootstrap;
use crate::collector::kernel::{KernelFeed, KernelOutputs};
use crate::collector::symbol_reload::{ReloadSignal, SymbolReloader};
use crate::collector::{Collector, CollectorError, CollectorOutputs};
use crate::config::{Config, EbpfMode, ms};
use crate::procfs::{ProcError, ProcReader};
use crate::server::access::{AccessPolicy, GroupError, resolve_group};
use crate::server::handler::QueryContext;
use crate::server::listener::{self, SocketError};
use crate::server::{QueryServer, ServerLimits};
use crate::stats::DaemonCounters;

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Signal handlers could not be installed.
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    /// The data directory could not be prepared.
    #[error("preparing the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// `/proc` is unusable.
    #[error("{0}")]
    Proc(#[from] ProcError),
    /// The system facts could not be read.
    #[error("{0}")]
    System(#[from] bootstrap::system::SystemInfoError),
    /// The registry did not start.
    #[error("{0}")]
    Registry(#[from] watchpost_actors::registry::StartError),
    /// A store did not register.
    #[error("registering a store: {0}")]
    Registration(#[from] watchpost_actors::RegistrationError),
    /// The detectors did not start.
    #[error("{0}")]
    Detector(#[from] watchpost_actors::detect::DetectorError),
    /// The configured socket group is unknown.
    #[error("socket.group: {0}")]
    Group(#[from] GroupError),
    /// The socket could not be set up.
    #[error("{0}")]
    Socket(#[from] SocketError),
    /// The bootstrap scan failed.
    #[error("bootstrap: {0}")]
    Collector(#[from] CollectorError),
    /// Another daemon uses the data directory.
    #[error("{0}")]
    DataDirInUse(watchpost_persist::OpenError),
    /// `collector.ebpf = "required"` and the eBPF collector could not start.
    #[error("collector.ebpf = \"required\" but the eBPF collector could not start: {0}")]
    EbpfRequired(watchpost_ebpf::LoadError),
}

/// Starts the eBPF collector as `config.collector.ebpf` asks. `Ok(None)`: poll `/proc` instead
/// (switched off, refused by the kernel, or failed — logged once, and recorded in `stats` so
/// `query health` says "degraded: polling"). Only `required` turns a failure into an error.
fn start_ebpf(
    config: &Config,
    stats: &DaemonCounters,
) -> Result<Option<watchpost_ebpf::CollectorTask>, DaemonError> {
    let c = &config.collector;
    if c.ebpf == EbpfMode::Off {
        tracing::info!("collector.ebpf = \"off\": polling /proc");
        return Ok(None);
    }
    let options = watchpost_ebpf::CollectorOptions {
        kernel_ring_bytes: c.kernel_ring_bytes,
        dns_ring_bytes: c.dns_ring_bytes,
        ..Default::default()
    };
    let started = Instant::now();
    match watchpost_ebpf::Collector::load(options) {
        Ok(collector) => {
            tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                module_loads = ?collector.attachments().module_loads,
                "eBPF collector attached: the kernel feeds the stores"
            );
            let max_batch = config.intake.max_batch_len.max(1);
            stats.ebpf_active.store(1, Ordering::Relaxed);
            Ok(Some(
                collector.spawn(config.intake.queue_batches, max_batch),
            ))
        }
        Err(e) if c.ebpf == EbpfMode::Required => Err(DaemonError::EbpfRequired(e)),
        Err(e) => {
            let reason = if e.is_refusal() {
                format!("the kernel refused eBPF: {e}")
            } else {
                format!("the eBPF collector failed to load: {e}")
            };
            tracing::warn!(
                "{reason}; falling back to polling /proc every {} ms",
                c.rescan_interval_ms
            );
            if let Ok(mut d) = stats.degraded.lock() {
                *d = Some(reason);
            }
            Ok(None)
        }
    }
}

/// Creates `dir` (mode 0700) if it does not exist.
fn prepare_data_dir(dir: &Path) -> Result<(), DaemonError> {
    let error = |source| DaemonError::DataDir {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(error)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(error)?;
    } else if !dir.is_dir() {
        return Err(error(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "exists and is not a directory",
        )));
    }
    Ok(())
}

/// Runs the daemon until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), DaemonError> {
    let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let started_at = clock::now();
    let stats = Arc::new(DaemonCounters::new(started_at));

    prepare_data_dir(&config.daemon.data_dir)?;
    let reader = ProcReader::system()?;
    let system = bootstrap::system::collect(Path::new("/proc"), started_at)?;
    tracing::info!(
        arch = system.architecture.as_str(),
        kernel = system.kernel_release.as_str(),
        os = system.os_pretty_name.as_str(),
        "system facts collected"
    );

    let persistence = {
        let (copy, boot) = (config.clone(), crate::persistence::boot_identity(&system));
        tokio::task::spawn_blocking(move || crate::persistence::Persistence::open(&copy, boot))
            .await
            .map_err(|e| DaemonError::DataDir {
                path: config.daemon.data_dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })?
            .map_err(DaemonError::DataDirInUse)?
    };

    let registry = Registry::start(RegistryConfig {
        call_timeout: ms(config.stores.call_timeout_ms),
    })
    .await?;
    let stores = stores::register_all(&registry, &config, system, &persistence, &reader).await?;

    let engine = detections::start_engine(&registry, &config).await?;
    let (events_tx, events_rx) = mpsc::channel(config.detectors.event_queue);
    let (outputs_tx, outputs_rx) = mpsc::channel(config.detectors.output_queue);
    let engine_task = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.run(events_rx, outputs_tx).await })
    };
    let printer_task = tokio::spawn(detections::print_detections(outputs_rx, stats.clone()));

    let group = config
        .socket
        .group
        .as_deref()
        .map(|g| resolve_group(g, Path::new("/etc/group")))
        .transpose()?;
    let socket = listener::bind(&config.socket.path, group)?;
    let socket_identity = socket.identity();

    let parts = Parts {
        registry: registry.clone(),
        stores,
        engine,
        events: events_tx,
        reader,
        socket,
        group,
        stats,
        persistence: persistence.clone(),
    };
    let result = serve(&config, parts, &mut sigterm, &mut sigint).await;
    // The server removes its socket when it stops; if it never ran (an error or a signal during
    // the bootstrap), the file is removed here. A no-op when already gone.
    let (path, dev, ino) = socket_identity;
    listener::remove_if_same(&path, dev, ino);

    let deadline = Instant::now() + ms(config.daemon.shutdown_timeout_ms);
    let left = || deadline.saturating_duration_since(Instant::now());
    // The collectors have stopped: the last snapshot holds everything they delivered.
    if persistence.enabled() {
        match tokio::time::timeout(left(), persistence.snapshot_all(&registry)).await {
            Ok(Ok(sequence)) => tracing::info!(sequence, "final snapshot written"),
            Ok(Err(e)) => tracing::warn!("final snapshot: {e}"),
            Err(_) => tracing::warn!("final snapshot did not finish within shutdown_timeout_ms"),
        }
    }
    if tokio::time::timeout(left(), engine_task).await.is_err() {
        tracing::warn!("detectors did not finish in time");
    }
    if tokio::time::timeout(left(), printer_task).await.is_err() {
        tracing::warn!("detections still queued at shutdown were not printed");
    }
    if tokio::time::timeout(left(), registry.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("stores did not stop in time");
    }
    result
}

/// What the serving phase takes over from the start-up.
struct Parts {
    registry: Registry,
    stores: stores::RegisteredStores,
    engine: DetectorEngine,
    events: mpsc::Sender<Event>,
    reader: ProcReader,
    socket: listener::BoundSocket,
    group: Option<u32>,
    stats: Arc<DaemonCounters>,
    persistence: Arc<crate::persistence::Persistence>,
}

/// Bootstrap, serve, and wait for a signal; returns once the socket is gone and the collectors
/// have stopped.
async fn serve(
    config: &Config,
    parts: Parts,
    sigterm: &mut Signal,
    sigint: &mut Signal,
) -> Result<(), DaemonError> {
    let Parts {
        registry,
        stores,
        engine,
        events,
        reader,
        socket,
        group,
        stats,
        persistence,
    } = parts;
    let outputs = CollectorOutputs {
        processes: stores.processes.clone(),
        process_store: registry.processes(),
        containers: stores.containers.clone(),
        container_store: registry.containers(),
        events: events.clone(),
    };
    let mut collector = Collector::new(
        reader.clone(),
        outputs,
        stats.clone(),
        config.collector.max_tracked_processes,
        ms(config.stores.call_timeout_ms),
    );
    let started = Instant::now();
    let processes = tokio::select! {
        n = collector.bootstrap() => n?,
        _ = sigterm.recv() => return Ok(()),
        _ = sigint.recv() => return Ok(()),
    };
    tracing::info!(
        processes,
        ms = started.elapsed().as_millis() as u64,
        "process tree bootstrapped from /proc"
    );
    let kernel = start_ebpf(config, &stats)?;
    let (collector, rescan_interval) = if kernel.is_some() {
        (
            collector.without_detector_events(),
            config.collector.reconcile_interval_ms,
        )
    } else {
        (collector, config.collector.rescan_interval_ms)
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let ctx = Arc::new(QueryContext {
        registry: registry.clone(),
        reader,
        host_arch: stores.host_arch,
        stats: stats.clone(),
        engine: Some(engine),
        persistence: Some(persistence.clone()),
        reputation: stores.ip_reputation.clone(),
    });
    let s = &config.socket;
    let server = QueryServer::new(
        socket,
        AccessPolicy {
            owner_uid: rustix::process::geteuid().as_raw(),
            group,
        },
        ServerLimits {
            max_clients: s.max_clients,
            max_request_bytes: s.max_request_bytes,
            read_timeout: ms(s.read_timeout_ms),
            write_timeout: ms(s.write_timeout_ms),
        },
        ctx,
        stats.clone(),
    );
    let socket_path = s.path.display().to_string();
    let server_task = tokio::spawn(server.run(shutdown_rx.clone()));
    let collector_task = tokio::spawn(collector.run(ms(rescan_interval), shutdown_rx.clone()));
    // One reloader for both signals (kernel module-load events, /proc/modules checks): one
    // module load, one reload. Off: the first symbol table stays.
    let reload_signal = config
        .symbols
        .reload_on_module_change
        .then(|| Arc::new(ReloadSignal::default()));
    let kernel_task = kernel.map(|task| {
        let feed = KernelFeed {
            task,
            out: KernelOutputs {
                processes: stores.processes.clone(),
                process_store: registry.processes(),
                dns: stores.dns.clone(),
                symbol_reload: reload_signal.clone(),
                events,
            },
            stats: stats.clone(),
            apply_wait: ms(config.stores.call_timeout_ms),
        };
        tokio::spawn(feed.run(
            ms(config.collector.lost_check_interval_ms),
            shutdown_rx.clone(),
        ))
    });
    let symbols_task = reload_signal.map(|signal| {
        let reloader = SymbolReloader {
            kallsyms: PathBuf::from(stores::KALLSYMS),
            modules: stores.module_watch,
            intake: stores.symbols.clone(),
            stats: stats.clone(),
            signal,
        };
        tokio::spawn(reloader.run(
            ms(config.symbols.module_check_interval_ms),
            shutdown_rx.clone(),
        ))
    });
    let persist_task = persistence.enabled().then(|| {
        tokio::spawn(persistence.clone().run_periodic(
            registry.clone(),
            ms(config.persist.snapshot_interval_ms),
            shutdown_rx.clone(),
        ))
    });
    let synthetic_task = (config.collector.synthetic_events_per_second > 0).then(|| {
        tokio::spawn(crate::collector::synthetic::run(
            stores.processes.clone(),
            config.collector.synthetic_events_per_second,
            shutdown_rx.clone(),
        ))
    });
    tracing::info!(socket = %socket_path, "watchpost ready");

    let signal_name = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
    };
    tracing::info!(signal = signal_name, "shutting down");
    let _ = shutdown_tx.send(true);
    let limit = ms(config.daemon.shutdown_timeout_ms);
    let stopped = tokio::time::timeout(limit, async {
        let _ = server_task.await;
        let _ = collector_task.await;
        if let Some(t) = kernel_task {
            let _ = t.await;
        }
        if let Some(t) = symbols_task {
            let _ = t.await;
        }
        if let Some(t) = persist_task {
            let _ = t.await;
        }
        if let Some(t) = synthetic_task {
            let _ = t.await;
        }
    })
    .await;
    if stopped.is_err() {
        tracing::warn!(
            limit_ms = limit.as_millis() as u64,
            "collectors or the query server did not stop in time"
        );
    }
    Ok(())
}
