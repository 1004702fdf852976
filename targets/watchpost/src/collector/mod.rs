//! Keeping the stores current from `/proc` until the eBPF collector replaces it: a bootstrap
//! scan, then a rescan every `collector.rescan_interval_ms` whose differences ([`tracker`]) go
//! to the process and container stores through their bounded intakes, and as events to the
//! detectors. While the kernel feeds the stores, scans only reconcile, rarely
//! (`collector.reconcile_interval_ms`), and earlier when the kernel feed asks
//! ([`ReconcileNudge`]). Also the kernel symbol reload on module changes ([`symbol_reload`]).
//!
//! Ordering: a detector judging an exec asks the process store for the ancestry, so the store
//! must hold the new records first. The collector is the only producer of the process intake,
//! so it knows how many updates it submitted; before it hands events to the detectors it waits
//! (bounded by the call timeout) until the intake reports that many applied, rejected or
//! dropped.
//!
//! A store that restarted after a crash comes back empty; the collector notices the restart
//! count change and sends the whole last scan again.

pub mod cgroup_map;
pub mod ebpf_programs;
pub mod kernel;
pub mod netns_trust;
pub mod symbol_reload;
pub mod synthetic;
pub mod tracker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use watchpost_actors::IntakeSender;
use watchpost_actors::detect::Event;
use watchpost_actors::stores::container::{ContainerHandle, ContainerUpdate};
use watchpost_actors::stores::process::{ProcessHandle, ProcessUpdate};

use crate::procfs::{ProcError, ProcReader, ProcScan};
use crate::stats::{DaemonCounters, add, bump};
use tracker::{Changes, ProcessTracker};

/// Why the collector stopped.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// `/proc` itself could not be listed.
    #[error("scanning /proc: {0}")]
    Scan(#[from] ProcError),
    /// A store's intake closed (the registry shut down).
    #[error("the {0} store's intake is closed")]
    IntakeClosed(&'static str),
    /// The blocking scan task failed.
    #[error("the /proc scan task failed: {0}")]
    Task(String),
}

/// Where the collector sends what it finds.
#[derive(Debug, Clone)]
pub struct CollectorOutputs {
    /// The process store's intake.
    pub processes: IntakeSender<ProcessUpdate>,
    /// The process store (restart count, nothing else).
    pub process_store: ProcessHandle,
    /// The container store's intake.
    pub containers: IntakeSender<ContainerUpdate>,
    /// The container store (restart count).
    pub container_store: ContainerHandle,
    /// The detectors' event queue.
    pub events: mpsc::Sender<Event>,
    /// Container enrichment: every container a scan discovers is described by its runtime.
    pub enrich: Option<crate::runtimes::EnrichRequests>,
}

/// The `/proc` collector.
#[derive(Debug)]
pub struct Collector {
    reader: ProcReader,
    tracker: ProcessTracker,
    out: CollectorOutputs,
    stats: Arc<DaemonCounters>,
    limit: usize,
    /// How long to wait for the process store to apply a batch before sending its events.
    apply_wait: Duration,
    /// Whether rescans hand events to the detectors (not while the kernel feed does).
    send_events: bool,
    process_restarts: u64,
    container_restarts: u64,
    /// Where the containers' network namespaces go after each scan (trusted for DNS).
    netns_trust: Option<Arc<netns_trust::NetnsTrust>>,
}

impl Collector {
    /// A collector reading with `reader`, tracking at most `limit` processes.
    pub fn new(
        reader: ProcReader,
        out: CollectorOutputs,
        stats: Arc<DaemonCounters>,
        limit: usize,
        apply_wait: Duration,
    ) -> Self {
        let process_restarts = out.process_store.supervision().restarts;
        let container_restarts = out.container_store.supervision().restarts;
        Collector {
            reader,
            tracker: ProcessTracker::new(),
            out,
            stats,
            limit,
            apply_wait,
            send_events: true,
            process_restarts,
            container_restarts,
            netns_trust: None,
        }
    }

    /// After each scan, the containers' network namespaces go to `trust`.
    pub fn with_netns_trust(mut self, trust: Arc<netns_trust::NetnsTrust>) -> Self {
        self.netns_trust = Some(trust);
        self
    }

    fn publish_container_namespaces(&self) {
        if let Some(trust) = &self.netns_trust {
            trust.set_containers(self.tracker.container_namespaces());
        }
    }

    /// Rescans only reconcile the stores; the detectors get their events from elsewhere (the
    /// kernel feed).
    pub fn without_detector_events(mut self) -> Self {
        self.send_events = false;
        self
    }

    async fn scan(&self) -> Result<ProcScan, CollectorError> {
        let reader = self.reader.clone();
        let limit = self.limit;
        let scan = tokio::task::spawn_blocking(move || reader.scan(limit))
            .await
            .map_err(|e| CollectorError::Task(e.to_string()))??;
        bump(&self.stats.proc_scans);
        add(&self.stats.proc_read_races, scan.gone);
        add(&self.stats.proc_read_errors, scan.errors);
        // A gauge (the last scan's count), shown in health; logged once when it starts, not on
        // every rescan.
        let before = self
            .stats
            .proc_over_limit
            .swap(scan.over_limit, std::sync::atomic::Ordering::Relaxed);
        if scan.over_limit > 0 && before == 0 {
            tracing::warn!(
                over_limit = scan.over_limit,
                limit = self.limit,
                "more processes than collector.max_tracked_processes: the rest are not tracked \
                 (query health shows how many)"
            );
        }
        Ok(scan)
    }

    /// The first scan: describes every running process and container to the stores and waits
    /// until the process store applied them. Returns the number of processes.
    pub async fn bootstrap(&mut self) -> Result<usize, CollectorError> {
        let scan = self.scan().await?;
        let changes = self.tracker.describe(&scan);
        self.publish_container_namespaces();
        let count = changes.processes.len();
        self.submit(changes).await?;
        wait_applied(&self.out.process_store, &self.stats, self.apply_wait).await;
        Ok(count)
    }

    /// One rescan: sends the differences, then the events.
    pub async fn rescan(&mut self) -> Result<(), CollectorError> {
        let scan = self.scan().await?;
        let now = watchpost_actors::clock::now();
        let mut changes = self.tracker.diff(&scan, now);
        self.publish_container_namespaces();
        add(&self.stats.processes_appeared, changes.appeared);
        add(&self.stats.processes_exec, changes.execs);
        add(&self.stats.processes_exited, changes.exited);

        // A store that restarted lost everything: describe the whole scan again.
        let process_restarts = self.out.process_store.supervision().restarts;
        let container_restarts = self.out.container_store.supervision().restarts;
        if process_restarts != self.process_restarts
            || container_restarts != self.container_restarts
        {
            let resync = self.tracker.resync();
            if process_restarts != self.process_restarts {
                tracing::info!("process store restarted: sending the whole process tree again");
                self.process_restarts = process_restarts;
                changes.processes = resync.processes;
            }
            if container_restarts != self.container_restarts {
                tracing::info!("container store restarted: sending every container again");
                self.container_restarts = container_restarts;
                changes.containers = resync.containers;
            }
        }

        let events = std::mem::take(&mut changes.events);
        self.submit(changes).await?;
        if self.send_events && !events.is_empty() {
            wait_applied(&self.out.process_store, &self.stats, self.apply_wait).await;
            for event in events {
                if self.out.events.try_send(event).is_err() {
                    bump(&self.stats.events_dropped);
                }
            }
        }
        Ok(())
    }

    async fn submit(&mut self, changes: Changes) -> Result<(), CollectorError> {
        let Changes {
            processes,
            containers,
            ..
        } = changes;
        let max = self.out.processes.max_batch_len().max(1);
        let mut processes = processes.into_iter().peekable();
        while processes.peek().is_some() {
            let batch: Vec<ProcessUpdate> = processes.by_ref().take(max).collect();
            let n = batch.len() as u64;
            self.out
                .processes
                .submit(batch)
                .await
                .map_err(|_| CollectorError::IntakeClosed("process"))?;
            add(&self.stats.process_updates_submitted, n);
        }
        if let Some(enrich) = &self.out.enrich {
            for update in &containers {
                if let ContainerUpdate::Observe(found) = update {
                    enrich.request(found);
                }
            }
        }
        let max = self.out.containers.max_batch_len().max(1);
        let mut containers = containers.into_iter().peekable();
        while containers.peek().is_some() {
            let batch: Vec<ContainerUpdate> = containers.by_ref().take(max).collect();
            self.out
                .containers
                .submit(batch)
                .await
                .map_err(|_| CollectorError::IntakeClosed("container"))?;
        }
        Ok(())
    }

    /// Rescans on `schedule` until `shutdown` turns true. A failed scan is logged and retried
    /// at the next turn; a closed intake ends the loop.
    ///
    /// With a kernel feed (`schedule.kernel_feed`) that is running (`stats.ebpf_active`), scans
    /// only reconcile, every `schedule.reconcile`, without detector events, and a
    /// [`ReconcileNudge`] brings the next one forward (never closer than `schedule.polling` to
    /// the previous scan). While the feed is down (its reader stopped; the supervisor reloads
    /// it), the collector polls every `schedule.polling`, with detector events.
    pub async fn run(mut self, schedule: RescanSchedule, mut shutdown: watch::Receiver<bool>) {
        let nudge = schedule.kernel_feed.clone();
        let feed_running = |stats: &DaemonCounters| {
            nudge.is_some() && stats.ebpf_active.load(std::sync::atomic::Ordering::Relaxed) != 0
        };
        let interval = |running: bool| {
            if running {
                schedule.reconcile
            } else {
                schedule.polling
            }
        };
        // The bootstrap scan just ran.
        let mut last_scan = Instant::now();
        let mut next_scan = last_scan + interval(feed_running(&self.stats));
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next_scan.into()) => {}
                () = ReconcileNudge::notified(nudge.as_ref()) => {
                    next_scan = next_scan.min(last_scan + schedule.polling);
                    continue;
                }
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            let running = feed_running(&self.stats);
            if nudge.is_some() && self.send_events == running {
                if running {
                    tracing::info!("the kernel feed runs again: /proc scans only reconcile");
                } else {
                    tracing::warn!(
                        interval_ms = schedule.polling.as_millis() as u64,
                        "no kernel feed: polling /proc until it is back"
                    );
                }
                self.send_events = !running;
            }
            let step = tokio::select! {
                r = self.rescan() => r,
                _ = shutdown.changed() => return,
            };
            last_scan = Instant::now();
            next_scan = last_scan + interval(feed_running(&self.stats));
            match step {
                Ok(()) => {}
                Err(e @ CollectorError::IntakeClosed(_)) => {
                    tracing::info!("collector stops: {e}");
                    return;
                }
                Err(e) => tracing::warn!("rescan failed: {e}"),
            }
        }
    }
}

/// When the `/proc` collector rescans.
#[derive(Debug, Clone)]
pub struct RescanSchedule {
    /// Between scans while polling (no kernel feed): `collector.rescan_interval_ms`. Also the
    /// shortest gap between two scans when nudged.
    pub polling: Duration,
    /// Between reconciliation scans while the kernel feed is healthy:
    /// `collector.reconcile_interval_ms`.
    pub reconcile: Duration,
    /// The kernel feed's nudge, if the daemon started with one.
    pub kernel_feed: Option<ReconcileNudge>,
}

/// Lets the kernel feed ask the `/proc` collector for an early scan: when the kernel dropped
/// events (a scan recovers the processes), or when the feed stops (the collector polls until
/// it is back). Cheap to clone; several nudges before the scan make one.
#[derive(Debug, Clone, Default)]
pub struct ReconcileNudge(Arc<tokio::sync::Notify>);

impl ReconcileNudge {
    /// Asks for a scan soon.
    pub fn nudge(&self) {
        self.0.notify_one();
    }

    async fn notified(nudge: Option<&ReconcileNudge>) {
        match nudge {
            Some(n) => n.0.notified().await,
            None => std::future::pending().await,
        }
    }
}

/// Waits until the process store has dealt with every update the daemon submitted (or `wait`
/// ends). The collectors are the intake's only producers and count what they submit in
/// `stats.process_updates_submitted`. Woken by the intake's progress, never polling.
pub async fn wait_applied(store: &ProcessHandle, stats: &DaemonCounters, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Registered before the counters are read, so progress in between is not missed.
        let progressed = store.intake_progress();
        let s = store.supervision();
        let done = s
            .intake_applied_updates
            .saturating_add(s.intake_rejected_updates)
            .saturating_add(s.intake_dropped_updates);
        let submitted = stats
            .process_updates_submitted
            .load(std::sync::atomic::Ordering::Relaxed);
        if done >= submitted {
            return;
        }
        tokio::select! {
            () = progressed => {}
            () = tokio::time::sleep_until(deadline) => {
                tracing::debug!(
                    submitted,
                    done,
                    "process store still applying; sending events anyway"
                );
                return;
            }
        }
    }
}
