//! Feeding the stores from the kernel: the eBPF collector's batches become process-store
//! updates (fork, exec, exit), DNS-store packets (answers delivered to local sockets), a signal
//! to the symbol reloader (a module was loaded; [`super::symbol_reload`] reloads once per
//! change), and exec/exit events for the detectors — through the same
//! bounded intakes the `/proc` collector uses. The kernel's lost-record counters are read every
//! `collector.lost_check_interval_ms` into the daemon's counters (shown by `query metrics`,
//! and as a warning by `query health`).
//!
//! Races with the `/proc` scans are settled by the process table: a fork for a process a scan
//! already described merges into it (nothing duplicated) and corrects the scan's parent; a scan
//! never changes a parent. The rescan that keeps running as a slow reconciliation only sends
//! store updates, no detector events (the kernel already delivered them).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use watchpost_actors::detect::{Event, EventKind};
use watchpost_actors::stores::dns::DnsPacket;
use watchpost_actors::stores::process::{
    ProcessExec, ProcessExit, ProcessHandle, ProcessStart, ProcessUpdate,
};
use watchpost_actors::{IntakeError, IntakeSender};
use watchpost_core::entity_id::entity_id;
use watchpost_ebpf::{CollectorTask, KernelEvent, ProcessIdentity, SymbolReloadCause};

use crate::collector::symbol_reload::ReloadSignal;
use crate::collector::wait_applied;
use crate::procfs::container_of;
use crate::stats::{DaemonCounters, add, bump};

/// Where the kernel feed sends what it reads.
#[derive(Debug, Clone)]
pub struct KernelOutputs {
    /// The process store's intake.
    pub processes: IntakeSender<ProcessUpdate>,
    /// The process store (applied counts, to order detector events after their updates).
    pub process_store: ProcessHandle,
    /// The DNS store's intake.
    pub dns: IntakeSender<DnsPacket>,
    /// The symbol reloader, told of module loads (`None`: reloads are switched off).
    pub symbol_reload: Option<Arc<ReloadSignal>>,
    /// The detectors' event queue.
    pub events: mpsc::Sender<Event>,
}

/// The running eBPF collector and where its events go.
pub struct KernelFeed {
    /// The collector's reader task.
    pub task: CollectorTask,
    /// Destinations.
    pub out: KernelOutputs,
    /// The daemon's counters.
    pub stats: Arc<DaemonCounters>,
    /// How long detector events wait for their process updates to be applied.
    pub apply_wait: Duration,
}

fn parent_entity(p: &ProcessIdentity) -> u32 {
    if p.ppid == 0 || p.parent_start_time == 0 {
        0
    } else {
        entity_id(p.ppid, p.parent_start_time)
    }
}

fn detector_event(kind: EventKind, p: &ProcessIdentity, exe: String, time: u64) -> Event {
    Event {
        kind,
        entity_id: p.entity_id(),
        pid: p.pid,
        ppid: p.ppid,
        parent_entity_id: parent_entity(p),
        exe,
        comm: p.comm.as_str().to_owned(),
        uid: p.uid,
        gid: p.gid,
        container_id: None,
        time,
    }
}

/// The container a running process belongs to, from its `/proc/<pid>/cgroup` (one small read
/// per exec, on the blocking pool; `None` if it already exited or runs in no container). The kernel event carries
/// only the cgroup ID, and detectors judge execs by the container's ID.
fn container_of_pid(pid: u32) -> Option<String> {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    container_of(&cgroup).map(|c| c.id.as_str().to_owned())
}

/// One batch sorted by destination.
#[derive(Default)]
struct Sorted {
    processes: Vec<ProcessUpdate>,
    dns: Vec<DnsPacket>,
    events: Vec<Event>,
    module_loads: u64,
    reload_requested: bool,
}

fn sort(batch: Vec<KernelEvent>) -> Sorted {
    let mut s = Sorted::default();
    for event in batch {
        match event {
            KernelEvent::Fork(f) => {
                let e = f.to_core();
                s.processes.push(ProcessUpdate::Fork(ProcessStart {
                    pid: e.pid,
                    start_time: e.start_time,
                    ppid: e.ppid,
                    parent_start_time: e.parent_start_time,
                    uid: e.uid,
                    gid: e.gid,
                    comm: e.comm.as_str().to_owned(),
                    exe_path: None,
                }));
            }
            KernelEvent::Exec(x) => {
                let e = x.to_core();
                s.processes.push(ProcessUpdate::Exec(ProcessExec {
                    pid: e.pid,
                    start_time: e.start_time,
                    uid: e.uid,
                    gid: e.gid,
                    comm: e.comm.as_str().to_owned(),
                    exe_path: e.exe_path.to_owned(),
                }));
                let mut event =
                    detector_event(EventKind::Exec, &x.process, x.filename.clone(), x.time);
                event.container_id = container_of_pid(x.process.pid);
                s.events.push(event);
            }
            KernelEvent::Exit(x) => {
                let e = x.to_core();
                s.processes.push(ProcessUpdate::Exit(ProcessExit {
                    pid: e.pid,
                    start_time: e.start_time,
                    exit_time: e.exit_time,
                }));
                s.events.push(detector_event(
                    EventKind::Exit,
                    &x.process,
                    String::new(),
                    x.time,
                ));
            }
            KernelEvent::SymbolReload(SymbolReloadCause::ModuleLoaded(_)) => s.module_loads += 1,
            KernelEvent::SymbolReload(SymbolReloadCause::Requested) => s.reload_requested = true,
            KernelEvent::DnsAnswer(a) => s.dns.push(DnsPacket {
                payload: a.message,
                observed_at: a.time,
            }),
        }
    }
    s
}

impl KernelFeed {
    /// Applies batches until `shutdown` turns true or a store's intake closes, reading the
    /// lost-record counters every `lost_interval`. Stops the reader (detaching the programs).
    /// `Err` when the eBPF reader stopped by itself: the daemon's supervisor reloads it.
    pub async fn run(
        mut self,
        lost_interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), String> {
        let mut ticker = tokio::time::interval(lost_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failure = None;
        loop {
            tokio::select! {
                batch = self.task.recv() => match batch {
                    Some(batch) => {
                        if !self.apply(batch).await {
                            break;
                        }
                    }
                    None => {
                        self.stats.ebpf_active.store(0, Ordering::Relaxed);
                        failure = Some("the eBPF reader stopped".to_owned());
                        break;
                    }
                },
                _ = ticker.tick() => self.check_lost(),
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
        self.check_lost();
        if let Err(e) = self.task.stop().await {
            tracing::warn!("stopping the eBPF reader: {e}");
            failure = failure.map(|f| format!("{f}: {e}"));
        }
        failure.map_or(Ok(()), Err)
    }

    /// Deals with an intake's refusal of a batch: a closed intake (the daemon is stopping) ends
    /// the feed (`false`); any other refusal loses that batch only — counted, the daemon's
    /// health says so for a while — and the feed goes on (`true`).
    fn refused<U>(&self, error: &IntakeError<U>) -> bool {
        if matches!(error, IntakeError::Closed { .. }) {
            return false;
        }
        tracing::warn!("the kernel feed lost a batch: {error}");
        self.stats.record_kernel_feed_error(error.to_string());
        true
    }

    fn check_lost(&self) {
        match self.task.lost_events() {
            Ok(lost) => {
                let total = lost.total();
                let before = self
                    .stats
                    .kernel_events_lost
                    .swap(total, std::sync::atomic::Ordering::Relaxed);
                if total > before {
                    tracing::warn!(
                        lost = total - before,
                        total,
                        "the kernel dropped events: a ring buffer was full"
                    );
                }
            }
            Err(e) => tracing::debug!("reading the lost-event counters: {e}"),
        }
    }

    /// Applies one batch; false when an intake closed (the registry shut down).
    async fn apply(&mut self, batch: Vec<KernelEvent>) -> bool {
        add(&self.stats.kernel_events, batch.len() as u64);
        // Sorting reads `/proc/<pid>/cgroup` for every exec (the container of the process):
        // file reads belong on the blocking pool, not on a runtime thread.
        let sorted = match tokio::task::spawn_blocking(move || sort(batch)).await {
            Ok(sorted) => sorted,
            Err(e) => {
                self.stats
                    .record_kernel_feed_error(format!("sorting a kernel batch failed: {e}"));
                return true;
            }
        };
        let max = self.out.processes.max_batch_len().max(1);
        let mut processes = sorted.processes.into_iter().peekable();
        while processes.peek().is_some() {
            let chunk: Vec<ProcessUpdate> = processes.by_ref().take(max).collect();
            let n = chunk.len() as u64;
            match self.out.processes.submit(chunk).await {
                Ok(()) => {
                    add(&self.stats.process_updates_submitted, n);
                    add(&self.stats.kernel_process_updates, n);
                }
                Err(e) if self.refused(&e) => {}
                Err(_) => return false,
            }
        }
        let max = self.out.dns.max_batch_len().max(1);
        let mut dns = sorted.dns.into_iter().peekable();
        while dns.peek().is_some() {
            let chunk: Vec<DnsPacket> = dns.by_ref().take(max).collect();
            let n = chunk.len() as u64;
            match self.out.dns.submit(chunk).await {
                Ok(()) => add(&self.stats.kernel_dns_answers, n),
                Err(e) if self.refused(&e) => {}
                Err(_) => return false,
            }
        }
        if sorted.module_loads > 0 {
            add(&self.stats.kernel_module_loads, sorted.module_loads);
            if let Some(signal) = &self.out.symbol_reload {
                signal.module_loaded();
            }
        }
        if sorted.reload_requested
            && let Some(signal) = &self.out.symbol_reload
        {
            signal.force();
        }
        if !sorted.events.is_empty() {
            wait_applied(&self.out.process_store, &self.stats, self.apply_wait).await;
            for event in sorted.events {
                if self.out.events.try_send(event).is_err() {
                    bump(&self.stats.events_dropped);
                }
            }
        }
        true
    }
}
