//! `watchpost run`: start every store, bootstrap them from `/proc`, keep them current, feed the
//! detectors, answer queries, and stop cleanly on SIGINT, SIGTERM or SIGQUIT (every other
//! signal is handled on purpose: [`signals`]; SIGHUP reloads: [`reload`]).
//!
//! The long-lived tasks run under a [`supervise::Supervisor`]: a task that panics or fails is
//! restarted (counted, shown in health) or, failing too often, stops the daemon with an error.
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
pub mod readiness;
pub mod reload;
pub mod signals;
pub mod stores;
pub mod supervise;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use watchpost_actors::detect::{DetectorEngine, Event};
use watchpost_actors::{Registry, RegistryConfig, clock};

use crate::bootstrap;
use crate::bootstrap::symbols::ModuleWatch;
use crate::collector::kernel::{KernelFeed, KernelOutputs};
use crate::collector::netns_trust::NetnsTrust;
use crate::collector::symbol_reload::{ReloadSignal, SymbolReloader};
use crate::collector::{Collector, CollectorError, CollectorOutputs};
use crate::collector::{ReconcileNudge, RescanSchedule};
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
    /// A fleet part (outbox, metrics endpoint, intel feed) could not start.
    #[error("{0}")]
    Fleet(#[from] crate::fleet::start::FleetError),
    /// Another daemon uses the data directory.
    #[error("{0}")]
    DataDirInUse(watchpost_persist::OpenError),
    /// `collector.ebpf = "required"` and the eBPF collector could not start.
    #[error("collector.ebpf = \"required\" but the eBPF collector could not start: {0}")]
    EbpfRequired(watchpost_ebpf::LoadError),
    /// A supervised task failed too often: the daemon stopped rather than run without it.
    #[error("the {task} task failed for good: {reason}")]
    TaskFailed {
        /// The task.
        task: &'static str,
        /// Its last failure.
        reason: String,
    },
}

/// The eBPF programs loaded and attached as `config.collector.ebpf` asks (`None`: switched off),
/// with how long it took. Loading is the slow part of start-up (BTF, the verifier: ~150 ms), so
/// the daemon starts it on the blocking pool first thing and reads kallsyms, the snapshot file
/// and `/proc` meanwhile; [`start_ebpf`] takes the result where the feed starts. Attached early,
/// the programs' records wait in the rings until the feed reads them.
type EbpfLoad = Option<(
    Result<watchpost_ebpf::Collector, watchpost_ebpf::LoadError>,
    std::time::Duration,
)>;

/// Loads the eBPF programs (blocking; see [`EbpfLoad`]).
fn load_ebpf(config: &Config, stats: &DaemonCounters) -> EbpfLoad {
    let c = &config.collector;
    if c.ebpf == EbpfMode::Off {
        return None;
    }
    let options = watchpost_ebpf::CollectorOptions {
        kernel_ring_bytes: c.kernel_ring_bytes,
        dns_ring_bytes: c.dns_ring_bytes,
        dns_matching: config.dns_matching(),
        // The clock the /proc reader built at start: one clock for both feeds.
        boot_clock: stats.boot_clock.get().copied(),
        ..Default::default()
    };
    let started = Instant::now();
    let loaded = watchpost_ebpf::Collector::load(options);
    Some((loaded, started.elapsed()))
}

/// Starts the eBPF collector from what [`load_ebpf`] gave. `Ok(None)`: poll `/proc` instead
/// (switched off, refused by the kernel, or failed — logged once, and recorded in `stats` so
/// `query health` says "degraded: polling"). Only `required` turns a failure into an error.
fn start_ebpf(
    config: &Config,
    stats: &DaemonCounters,
    load: EbpfLoad,
) -> Result<Option<watchpost_ebpf::CollectorTask>, DaemonError> {
    let c = &config.collector;
    let Some((loaded, took)) = load else {
        tracing::info!("collector.ebpf = \"off\": polling /proc");
        return Ok(None);
    };
    match loaded {
        Ok(collector) => {
            let programs =
                crate::collector::ebpf_programs::EbpfPrograms::from(collector.attachments());
            tracing::info!(
                ms = took.as_millis() as u64,
                module_loads = ?collector.attachments().module_loads,
                attached = ?programs.attached,
                "eBPF collector attached: the kernel feeds the stores"
            );
            if let Some(note) = programs.lacking_note() {
                tracing::warn!("eBPF collector: {note}");
            }
            if let Ok(mut p) = stats.ebpf_programs.lock() {
                *p = programs;
            }
            let max_batch = config.intake.max_batch_len.max(1);
            stats.ebpf_active.store(1, Ordering::Relaxed);
            Ok(Some(collector.spawn(c.reader_queue_batches, max_batch)))
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

/// Runs the daemon until SIGINT, SIGTERM or SIGQUIT (SIGHUP reloads nothing: no file).
pub async fn run(config: Config) -> Result<(), DaemonError> {
    run_with(config, reload::LiveReload::default()).await
}

/// Runs the daemon until SIGINT, SIGTERM or SIGQUIT; SIGHUP reloads as `live` allows.
pub async fn run_with(config: Config, live: reload::LiveReload) -> Result<(), DaemonError> {
    let mut signals = signals::Signals::install().map_err(DaemonError::Signals)?;
    let started_at = clock::now();
    let stats = Arc::new(DaemonCounters::new(started_at));

    prepare_data_dir(&config.daemon.data_dir)?;
    let reader = ProcReader::system()?;
    let _ = stats.boot_clock.set(reader.clock());
    let ebpf_load = {
        let (config, stats) = (config.clone(), stats.clone());
        tokio::task::spawn_blocking(move || load_ebpf(&config, &stats))
    };
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
    let stores = stores::register_all(
        &registry,
        &config,
        system,
        stats.clone(),
        &persistence,
        &reader,
    )
    .await?;

    let engine = detections::start_engine(&registry, &config).await?;
    let (events_tx, events_rx) = mpsc::channel(config.detectors.event_queue);
    let (outputs_tx, outputs_rx) = mpsc::channel(config.detectors.output_queue);
    // The detector engine and the detection dispatcher own their queues' receivers, so they are
    // not restarted: if either dies (panics) the daemon stops with an error instead of running
    // on without detections.
    let (critical_tx, critical_rx) = mpsc::channel::<supervise::Fatal>(2);
    let engine_task = {
        let engine = engine.clone();
        let critical = critical_tx.clone();
        tokio::spawn(async move {
            let run = tokio::spawn(async move {
                #[cfg(feature = "fault-injection")]
                crate::fault::on_engine_start();
                engine.run(events_rx, outputs_tx).await
            });
            if let Err(e) = run.await {
                let reason = format!("ended: {e}");
                let _ = critical
                    .send(supervise::Fatal {
                        task: "detector engine",
                        reason,
                    })
                    .await;
            }
        })
    };
    let fleet = crate::fleet::start::start(crate::fleet::start::FleetInputs {
        config: &config,
        registry: &registry,
        stats: stats.clone(),
        engine: engine.clone(),
        started_at,
        outputs: outputs_rx,
        critical: critical_tx,
    })
    .await?;

    let group = config
        .socket
        .group
        .as_deref()
        .map(resolve_group)
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
        fleet_state: fleet.state.clone(),
        follow: fleet.follow.clone(),
        critical: critical_rx,
        persistence: persistence.clone(),
        ebpf_load,
    };
    let result = serve(&config, parts, &mut signals, &live).await;
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
    fleet.stop(deadline).await;
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
    fleet_state: crate::fleet::FleetState,
    follow: tokio::sync::broadcast::Sender<Arc<str>>,
    /// Reports of the unsupervised tasks (detector engine, detection dispatcher) dying.
    critical: mpsc::Receiver<supervise::Fatal>,
    persistence: Arc<crate::persistence::Persistence>,
    /// The eBPF programs loading since start-up (see [`EbpfLoad`]).
    ebpf_load: tokio::task::JoinHandle<EbpfLoad>,
}

/// Bootstrap, serve, and wait for a signal; returns once the socket is gone and the collectors
/// have stopped.
async fn serve(
    config: &Config,
    parts: Parts,
    signals: &mut signals::Signals,
    live: &reload::LiveReload,
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
        fleet_state,
        follow,
        mut critical,
        persistence,
        ebpf_load,
    } = parts;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // Started before the bootstrap scan, so runtimes are listed while /proc is read.
    let enricher = crate::runtimes::start_if_enabled(
        config,
        stores.containers.clone(),
        stats.clone(),
        reader.clone(),
        shutdown_rx.clone(),
    );
    let outputs = CollectorOutputs {
        processes: stores.processes.clone(),
        process_store: registry.processes(),
        containers: stores.containers.clone(),
        container_store: registry.containers(),
        events: events.clone(),
        enrich: enricher.as_ref().map(|e| e.requests.clone()),
    };
    let netns_trust = Arc::new(NetnsTrust::new());
    let new_collector = {
        let (reader, stats) = (reader.clone(), stats.clone());
        let (limit, wait) = (
            config.collector.max_tracked_processes,
            ms(config.stores.call_timeout_ms),
        );
        let trust = netns_trust.clone();
        move || {
            Collector::new(reader.clone(), outputs.clone(), stats.clone(), limit, wait)
                .with_netns_trust(trust.clone())
        }
    };
    let mut collector = new_collector();
    let started = Instant::now();
    let processes = tokio::select! {
        n = collector.bootstrap() => n?,
        name = signals.stop_requested() => {
            tracing::info!(signal = name, "stopped during start-up");
            let _ = shutdown_tx.send(true);
            return Ok(());
        }
    };
    tracing::info!(
        processes,
        ms = started.elapsed().as_millis() as u64,
        "process tree bootstrapped from /proc"
    );
    // A loader that panicked is a bug: stop with it rather than guess what the kernel holds.
    let load = ebpf_load.await.map_err(|e| DaemonError::TaskFailed {
        task: "eBPF loader",
        reason: e.to_string(),
    })?;
    let kernel = start_ebpf(config, &stats, load)?;
    if let Some(task) = &kernel {
        netns_trust.attach_kernel(task.trusted_namespaces());
    }
    let kernel_feeds = kernel.is_some();
    let schedule = RescanSchedule {
        polling: ms(config.collector.rescan_interval_ms),
        reconcile: ms(config.collector.reconcile_interval_ms),
        kernel_feed: kernel_feeds.then(ReconcileNudge::default),
    };
    let reconcile = schedule.kernel_feed.clone().unwrap_or_default();
    let collector = if kernel_feeds {
        collector.without_detector_events()
    } else {
        collector
    };

    let fleet_state_for_intel = fleet_state.clone();
    let (supervisor, mut fatal) = supervise::Supervisor::new(
        supervise::RestartBudget {
            max_restarts: config.stores.max_restarts,
            window: ms(config.stores.restart_window_ms),
            backoff: std::time::Duration::from_millis(100),
        },
        stats.clone(),
        shutdown_rx.clone(),
    );
    let engine_for_reload = engine.clone();
    let ctx = Arc::new(QueryContext {
        registry: registry.clone(),
        reader,
        host_arch: stores.host_arch,
        stats: stats.clone(),
        engine: Some(engine),
        fleet: Some(fleet_state),
        follow: Some(follow),
        follow_counters: fleet_state_for_intel.follow.clone(),
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
            max_reply_bytes: s.max_reply_bytes,
            max_answers_in_flight: s.max_answers_in_flight,
        },
        ctx,
        stats.clone(),
    );
    let socket_path = s.path.display().to_string();
    let server = Arc::new(server);
    let server_task = {
        let shutdown = shutdown_rx.clone();
        supervisor.spawn("server", move || {
            let run = server.clone().run(shutdown.clone());
            async move {
                run.await;
                supervise::TaskExit::Done
            }
        })
    };
    let collector_task = {
        let shutdown = shutdown_rx.clone();
        let schedule = schedule.clone();
        let mut first = Some(collector);
        supervisor.spawn("collector", move || {
            let first = first.take();
            let fresh = new_collector.clone();
            let shutdown = shutdown.clone();
            let schedule = schedule.clone();
            async move {
                let collector = match first {
                    Some(c) => c,
                    // A restarted collector describes what runs again (no events), then rescans.
                    None => {
                        let mut c = fresh();
                        if kernel_feeds {
                            c = c.without_detector_events();
                        }
                        if let Err(e) = c.bootstrap().await {
                            return supervise::TaskExit::Failed(format!("bootstrap: {e}"));
                        }
                        c
                    }
                };
                collector.run(schedule, shutdown).await;
                supervise::TaskExit::Done
            }
        })
    };
    // One reloader for both signals (kernel module-load events, /proc/modules checks): one
    // module load, one reload. Off: the first symbol table stays.
    let reload_signal = config
        .symbols
        .reload_on_module_change
        .then(|| Arc::new(ReloadSignal::default()));
    let kernel_task = kernel.map(|task| {
        let out = KernelOutputs {
            processes: stores.processes.clone(),
            process_store: registry.processes(),
            dns: stores.dns.clone(),
            symbol_reload: reload_signal.clone(),
            containers: stores.containers.clone(),
            enrich: enricher.as_ref().map(|e| e.requests.clone()),
            events,
        };
        let (stats, apply_wait) = (stats.clone(), ms(config.stores.call_timeout_ms));
        let lost_interval = ms(config.collector.lost_check_interval_ms);
        let cgroup_capacity = config.container.capacity.saturating_mul(8);
        let shutdown = shutdown_rx.clone();
        let config = config.clone();
        let netns_trust = netns_trust.clone();
        let mut first = Some(task);
        supervisor.spawn("kernel feed", move || {
            let first = first.take();
            let (out, stats, shutdown, config, reconcile, netns_trust) = (
                out.clone(),
                stats.clone(),
                shutdown.clone(),
                config.clone(),
                reconcile.clone(),
                netns_trust.clone(),
            );
            async move {
                // A restarted feed loads and attaches the programs again.
                let task = match first {
                    Some(task) => task,
                    None => match start_ebpf(&config, &stats, load_ebpf(&config, &stats)) {
                        // New programs, new maps: they learn the trusted namespaces again.
                        Ok(Some(task)) => {
                            netns_trust.attach_kernel(task.trusted_namespaces());
                            task
                        }
                        Ok(None) => {
                            return supervise::TaskExit::Failed(
                                "the eBPF collector could not be reloaded".to_owned(),
                            );
                        }
                        Err(e) => return supervise::TaskExit::Failed(e.to_string()),
                    },
                };
                let feed = KernelFeed {
                    task,
                    out,
                    stats,
                    apply_wait,
                    cgroups: crate::collector::cgroup_map::CgroupMap::new(cgroup_capacity),
                    reconcile,
                    containers_seen: Default::default(),
                };
                match feed.run(lost_interval, shutdown).await {
                    Ok(()) => supervise::TaskExit::Done,
                    Err(reason) => supervise::TaskExit::Failed(reason),
                }
            }
        })
    });
    let intel_task = crate::fleet::start::start_intel(
        config,
        &fleet_state_for_intel,
        stores.ip_reputation.clone(),
        shutdown_rx.clone(),
    );
    let symbols_task = reload_signal.map(|signal| {
        let (intake, stats) = (stores.symbols.clone(), stats.clone());
        let interval = ms(config.symbols.module_check_interval_ms);
        let shutdown = shutdown_rx.clone();
        // The first run compares against the module list the first table reflects; a restarted
        // reloader cannot know what changed while it was down, so it reloads once.
        let mut first_watch = Some(stores.module_watch);
        supervisor.spawn("symbol reloader", move || {
            let modules = first_watch.take().unwrap_or_else(|| {
                signal.force();
                ModuleWatch::new(stores::PROC_MODULES)
            });
            let reloader = SymbolReloader {
                kallsyms: PathBuf::from(stores::KALLSYMS),
                modules,
                intake: intake.clone(),
                stats: stats.clone(),
                signal: signal.clone(),
            };
            let run = reloader.run(interval, shutdown.clone());
            async move {
                run.await;
                supervise::TaskExit::Done
            }
        })
    });
    // Start-up parsed kallsyms, BTF and all of /proc: give that garbage back before serving.
    tokio::task::spawn_blocking(crate::memory::trim::release_free_memory);
    let persist_task = persistence.enabled().then(|| {
        let (persistence, registry) = (persistence.clone(), registry.clone());
        let interval = ms(config.persist.snapshot_interval_ms);
        let shutdown = shutdown_rx.clone();
        supervisor.spawn("snapshots", move || {
            let run =
                persistence
                    .clone()
                    .run_periodic(registry.clone(), interval, shutdown.clone());
            async move {
                run.await;
                supervise::TaskExit::Done
            }
        })
    });
    let synthetic_task = (config.collector.synthetic_events_per_second > 0).then(|| {
        let intake = stores.processes.clone();
        let rate = config.collector.synthetic_events_per_second;
        let shutdown = shutdown_rx.clone();
        supervisor.spawn("synthetic events", move || {
            let run = crate::collector::synthetic::run(intake.clone(), rate, shutdown.clone());
            async move {
                run.await;
                supervise::TaskExit::Done
            }
        })
    });
    tracing::info!(socket = %socket_path, "watchpost ready");
    readiness::ready(&stats.collection_health().1);

    let mut running = config.clone();
    let outcome = loop {
        let action = tokio::select! {
            action = signals.next() => action,
            Some(f) = fatal.recv() => break Err(DaemonError::TaskFailed {
                task: f.task,
                reason: f.reason,
            }),
            Some(f) = critical.recv() => break Err(DaemonError::TaskFailed {
                task: f.task,
                reason: f.reason,
            }),
        };
        match action {
            signals::SignalAction::Stop(name) => {
                tracing::info!(signal = name, "shutting down");
                readiness::stopping(name);
                break Ok(());
            }
            signals::SignalAction::Reload => {
                match reload::reload(live, &mut running, &registry, &engine_for_reload).await {
                    Ok(done) => tracing::info!(
                        applied = ?done.applied,
                        need_restart = ?done.need_restart,
                        "SIGHUP: configuration reloaded"
                    ),
                    Err(e) => tracing::error!("SIGHUP: configuration not reloaded: {e}"),
                }
            }
            signals::SignalAction::Status => {
                let (status, message) = stats.daemon_health(clock::now());
                tracing::info!(
                    rss_bytes = crate::memory::rss::resident_bytes().unwrap_or(0),
                    requests = stats.requests.load(Ordering::Relaxed),
                    kernel_events = stats.kernel_events.load(Ordering::Relaxed),
                    status,
                    "SIGUSR1: {message}"
                );
            }
            signals::SignalAction::Ignore(name) => {
                tracing::info!(
                    signal = name,
                    "signal ignored: it means nothing to the daemon"
                );
            }
        }
    };
    if let Err(e) = &outcome {
        tracing::error!("stopping: {e}");
    }
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
        if let Some(t) = intel_task {
            let _ = t.await;
        }
        if let Some(t) = persist_task {
            let _ = t.await;
        }
        if let Some(t) = synthetic_task {
            let _ = t.await;
        }
        if let Some(e) = enricher {
            e.stopped().await;
        }
    })
    .await;
    if stopped.is_err() {
        tracing::warn!(
            limit_ms = limit.as_millis() as u64,
            "collectors or the query server did not stop in time"
        );
    }
    outcome
}
