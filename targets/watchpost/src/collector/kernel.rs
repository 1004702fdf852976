//! Feeding the stores from the kernel: the eBPF collector's batches become process-store
//! updates (fork, exec, exit, rename), DNS-store packets (answers delivered to local sockets), a
//! signal to the symbol reloader (a module was loaded; [`super::symbol_reload`] reloads once per
//! change), and exec/exit events for the detectors — through the same bounded intakes the `/proc`
//! collector uses. The kernel's lost-record counters are read after batches, at most every
//! `collector.lost_check_interval_ms`, into the daemon's counters (shown by `query metrics`, and
//! as a warning by `query health`), and so are the kernel's DNS verdicts (answers refused by
//! reason); no timer runs while idle. Each DNS answer keeps the network namespace it was seen in
//! and whether that namespace was trusted. Lost records, a reader that stopped, and a container
//! only `/proc` could name ask the `/proc` collector for an early reconciliation
//! ([`ReconcileNudge`]).
//!
//! Containers: each event carries the cgroup v2 ID it fired in, which [`CgroupMap`] turns into
//! the process's container (a `/proc/<pid>/cgroup` read only when the map cannot tell, counted);
//! the kernel's cgroup creations and removals become container discoveries (with an enrichment
//! request) and removals as they happen.
//!
//! Races with the `/proc` scans are settled by the process table: a fork for a process a scan
//! already described merges into it (nothing duplicated) and corrects the scan's parent; a scan
//! never changes a parent. The rescan that keeps running as a slow reconciliation only sends
//! store updates, no detector events (the kernel already delivered them).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use watchpost_actors::detect::{Event, EventKind};
use watchpost_actors::stores::container::ContainerUpdate;
use watchpost_actors::stores::dns::DnsPacket;
use watchpost_actors::stores::process::{
    ProcessExec, ProcessExit, ProcessHandle, ProcessRename, ProcessStart, ProcessUpdate,
};
use watchpost_actors::{IntakeError, IntakeSender};
use watchpost_core::entity_id::entity_id;
use watchpost_ebpf::{
    CgroupChange, CgroupOp, CollectorTask, KernelEvent, ProcessIdentity, SymbolReloadCause,
};

use crate::collector::cgroup_map::{CgroupMap, Change, Lookup};
use crate::collector::symbol_reload::ReloadSignal;
use crate::collector::{ReconcileNudge, wait_applied};
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
    /// The container store's intake (containers whose cgroup appeared or went away).
    pub containers: IntakeSender<ContainerUpdate>,
    /// Container enrichment, asked about every container whose cgroup appears.
    pub enrich: Option<crate::runtimes::EnrichRequests>,
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
    /// cgroup ID → container (filled when the cgroup programs are attached).
    pub cgroups: CgroupMap,
    /// Asks the `/proc` collector for an early reconciliation.
    pub reconcile: ReconcileNudge,
    /// Containers found through `/proc` (the cgroup map could not tell) that a scan was already
    /// asked for (at most [`CONTAINERS_REMEMBERED`]).
    pub containers_seen: HashSet<String>,
}

/// Container IDs the kernel feed remembers having asked a scan for.
pub const CONTAINERS_REMEMBERED: usize = 1024;

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
        start_time: p.start_time,
        ppid: p.ppid,
        parent_entity_id: parent_entity(p),
        parent_start_time: p.parent_start_time,
        exe,
        invoked: String::new(),
        comm: p.comm.as_str().to_owned(),
        uid: p.uid,
        gid: p.gid,
        container_id: None,
        time,
    }
}

/// The container a running process belongs to, from its `/proc/<pid>/cgroup` (`None` if it
/// already exited or runs in no container): the fallback when the cgroup map cannot tell. Runs
/// inside [`sort`], on the blocking pool.
fn container_of_pid(pid: u32) -> Option<String> {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    container_of(&cgroup).map(|c| c.id.as_str().to_owned())
}

/// The container of the process an event is about: from its cgroup ID when the map knows,
/// else from `/proc` (counted in `stats`).
/// Containers found through `/proc` are also added to `proc_containers`: no cgroup event
/// described them to the container store, so the feed asks for a scan ([`ReconcileNudge`]).
fn container_of_event(
    cgroups: &CgroupMap,
    p: &ProcessIdentity,
    stats: &DaemonCounters,
    proc_containers: &mut Vec<String>,
) -> Option<String> {
    match cgroups.lookup(p.cgroup_id) {
        Lookup::Container(c) => {
            bump(&stats.kernel_container_lookups);
            Some(c.id.as_str().to_owned())
        }
        Lookup::NotContainer => {
            bump(&stats.kernel_container_lookups);
            None
        }
        Lookup::Unknown => {
            bump(&stats.kernel_container_proc_reads);
            let found = container_of_pid(p.pid);
            if let Some(id) = &found {
                proc_containers.push(id.clone());
            }
            found
        }
    }
}

/// One batch sorted by destination.
#[derive(Default)]
struct Sorted {
    processes: Vec<ProcessUpdate>,
    dns: Vec<DnsPacket>,
    events: Vec<Event>,
    containers: Vec<ContainerUpdate>,
    /// Containers of this batch's execs that only `/proc` could name.
    proc_containers: Vec<String>,
    module_loads: u64,
    reload_requested: bool,
}

/// What a cgroup change means for the container store.
fn container_change(cgroups: &mut CgroupMap, c: &CgroupChange, out: &mut Sorted) {
    if c.path_truncated {
        return;
    }
    let change = match c.op {
        CgroupOp::Created => cgroups.created(c.cgroup_id, &c.path),
        CgroupOp::Removed => cgroups.removed(c.cgroup_id, &c.path),
        CgroupOp::Populated => cgroups.populated(c.cgroup_id, &c.path, true),
        CgroupOp::Emptied => cgroups.populated(c.cgroup_id, &c.path, false),
    };
    match change {
        Change::ContainerCreated(found) => out.containers.push(ContainerUpdate::Observe(found)),
        // Timed by the store's wall clock when applied (a few ms later): the kernel's clock
        // converts to epoch time through the whole-second `btime` and can run up to a second
        // early, which would cut the removal grace short.
        Change::ContainerRemoved(gone) => out.containers.push(ContainerUpdate::Remove {
            id: gone.id.as_str().to_owned(),
            removed_at: 0,
        }),
        Change::Nothing => {}
    }
}

fn sort(batch: Vec<KernelEvent>, cgroups: &mut CgroupMap, stats: &DaemonCounters) -> Sorted {
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
                    exe_flags: Default::default(),
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
                    invoked_path: e.invoked_path.map(str::to_owned),
                    exe_flags: e.exe_flags,
                }));
                // Detectors judge the file the kernel ran; the invoked name is a second signal.
                let mut event =
                    detector_event(EventKind::Exec, &x.process, x.exe_path().to_owned(), x.time);
                event.invoked = x.filename.clone();
                event.container_id =
                    container_of_event(cgroups, &x.process, stats, &mut s.proc_containers);
                s.events.push(event);
            }
            KernelEvent::Rename(r) => s.processes.push(ProcessUpdate::Rename(ProcessRename {
                pid: r.pid,
                start_time: r.start_time,
                comm: r.comm.as_str().to_owned(),
            })),
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
            KernelEvent::Cgroup(c) => container_change(cgroups, &c, &mut s),
            KernelEvent::DnsAnswer(a) => s.dns.push(DnsPacket {
                payload: a.message,
                observed_at: a.time,
                netns: a.netns,
                trusted: a.trusted_netns,
            }),
        }
    }
    s
}

impl KernelFeed {
    /// Applies batches until `shutdown` turns true or a store's intake closes. Stops the reader
    /// (detaching the programs). `Err` when the eBPF reader stopped by itself: the daemon's
    /// supervisor reloads it.
    ///
    /// The kernel's lost-record counters are read after batches, at most once per
    /// `lost_interval`: the kernel loses records only when a ring is full, and a full ring is
    /// always followed by batches, so an idle daemon never needs to look. A batch that comes
    /// too soon after the last check arms a one-shot timer for the rest of the interval (a
    /// loss during the last burst is still reported); nothing is armed while idle.
    pub async fn run(
        mut self,
        lost_interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), String> {
        if self.task.attachments().cgroup_events {
            self.walk_cgroups().await;
        }
        let mut last_check = Instant::now();
        let mut check_due: Option<Instant> = None;
        let mut failure = None;
        loop {
            let due = async {
                match check_due {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                batch = self.task.recv() => match batch {
                    Some(batch) => {
                        if !self.apply(batch).await {
                            break;
                        }
                        if last_check.elapsed() >= lost_interval {
                            self.check_lost();
                            last_check = Instant::now();
                            check_due = None;
                        } else if check_due.is_none() {
                            check_due = Some(last_check + lost_interval);
                        }
                    }
                    None => {
                        self.stats.ebpf_active.store(0, Ordering::Relaxed);
                        self.reconcile.nudge();
                        failure = Some("the eBPF reader stopped".to_owned());
                        break;
                    }
                },
                () = due => {
                    self.check_lost();
                    last_check = Instant::now();
                    check_due = None;
                }
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

    /// Fills the cgroup map from the cgroup v2 hierarchy (the programs are attached already, so
    /// nothing created meanwhile is missed) and describes the containers found to the store.
    async fn walk_cgroups(&mut self) {
        let Some(root) = std::fs::read_to_string("/proc/mounts")
            .ok()
            .and_then(|m| watchpost_ebpf::cgroup_root::cgroup2_mount_point(&m))
        else {
            tracing::info!("no cgroup2 mount: containers of kernel events come from /proc");
            return;
        };
        let mut map = std::mem::replace(&mut self.cgroups, CgroupMap::new(1));
        let walked = tokio::task::spawn_blocking(move || {
            let found = map.walk(&root);
            (map, found)
        })
        .await;
        let Ok((map, found)) = walked else {
            return;
        };
        self.cgroups = map;
        match found {
            Ok(found) => {
                tracing::info!(
                    containers = found.len(),
                    cgroups = self.cgroups.len(),
                    complete = self.cgroups.is_complete(),
                    "cgroup map filled: kernel events name their container by cgroup ID"
                );
                if let Some(enrich) = &self.out.enrich {
                    found.iter().for_each(|c| enrich.request(c));
                }
                let updates: Vec<ContainerUpdate> =
                    found.into_iter().map(ContainerUpdate::Observe).collect();
                for chunk in updates.chunks(self.out.containers.max_batch_len().max(1)) {
                    let _ = self.out.containers.submit(chunk.to_vec()).await;
                }
            }
            Err(e) => {
                tracing::warn!("reading the cgroup hierarchy: {e}; containers come from /proc")
            }
        }
    }

    fn check_lost(&mut self) {
        match self.task.dns_counters() {
            Ok(dns) => self.stats.set_kernel_dns(&dns),
            Err(e) => tracing::debug!("reading the DNS counters: {e}"),
        }
        match self.task.lost_events() {
            Ok(lost) => {
                if lost.cgroup > 0 && self.cgroups.is_complete() {
                    tracing::warn!(
                        "the kernel dropped cgroup records: containers of kernel events are \
                         read from /proc where the cgroup map cannot tell"
                    );
                    self.cgroups.mark_incomplete();
                }
                let total = lost.total();
                let before = self
                    .stats
                    .kernel_events_lost
                    .swap(total, std::sync::atomic::Ordering::Relaxed);
                if total > before {
                    tracing::warn!(
                        lost = total - before,
                        total,
                        "the kernel dropped events: a ring buffer was full; reconciling with /proc"
                    );
                    self.reconcile.nudge();
                }
            }
            Err(e) => tracing::debug!("reading the lost-event counters: {e}"),
        }
    }

    /// Applies one batch; false when an intake closed (the registry shut down).
    async fn apply(&mut self, batch: Vec<KernelEvent>) -> bool {
        add(&self.stats.kernel_events, batch.len() as u64);
        // Sorting may read `/proc/<pid>/cgroup` (an exec whose cgroup the map cannot name): file
        // reads belong on the blocking pool, not on a runtime thread. The map travels with it.
        let mut map = std::mem::replace(&mut self.cgroups, CgroupMap::new(1));
        let stats = self.stats.clone();
        let sorted = match tokio::task::spawn_blocking(move || {
            let sorted = sort(batch, &mut map, &stats);
            (sorted, map)
        })
        .await
        {
            Ok((sorted, map)) => {
                self.cgroups = map;
                sorted
            }
            Err(e) => {
                // The map went with the failed task: containers come from /proc until a walk.
                self.cgroups.mark_incomplete();
                self.stats
                    .record_kernel_feed_error(format!("sorting a kernel batch failed: {e}"));
                return true;
            }
        };
        self.note_containers(&sorted.proc_containers);
        if !sorted.containers.is_empty() {
            if let Some(enrich) = &self.out.enrich {
                for update in &sorted.containers {
                    if let ContainerUpdate::Observe(found) = update {
                        enrich.request(found);
                    }
                }
            }
            match self.out.containers.submit(sorted.containers).await {
                Ok(()) => {}
                Err(e) if self.refused(&e) => {}
                Err(_) => return false,
            }
        }
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

    /// Asks for a reconciliation scan for the first process seen in a container that no cgroup
    /// event described (cgroup programs not attached, or the map lost track): the scans are
    /// what describe such containers to the container store, and they run only every
    /// `collector.reconcile_interval_ms` while the kernel feeds the stores.
    fn note_containers(&mut self, containers: &[String]) {
        for id in containers {
            if self.containers_seen.contains(id) {
                continue;
            }
            if self.containers_seen.len() >= CONTAINERS_REMEMBERED {
                // Bounded: forgetting costs at most one extra scan per container.
                self.containers_seen.clear();
            }
            self.containers_seen.insert(id.clone());
            self.reconcile.nudge();
        }
    }
}
