//! The daemon's own counters (collector, detections, query socket), shared by its tasks and
//! reported by `watchpost query metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use watchpost_actors::detect::EngineStats;
use watchpost_core::EpochNanos;

use crate::wire::response::{DaemonStats, KernelDnsCounters};

/// Counters bumped by the daemon's tasks; see [`DaemonStats`] for what each counts.
#[derive(Debug, Default)]
pub struct DaemonCounters {
    /// When the daemon started.
    pub started_at: AtomicU64,
    /// `/proc` scans.
    pub proc_scans: AtomicU64,
    /// Processes found by rescans.
    pub processes_appeared: AtomicU64,
    /// Execs found by rescans.
    pub processes_exec: AtomicU64,
    /// Processes that vanished.
    pub processes_exited: AtomicU64,
    /// Read races with exiting processes.
    pub proc_read_races: AtomicU64,
    /// Unreadable processes.
    pub proc_read_errors: AtomicU64,
    /// Processes the last scan left out (over the scan limit).
    pub proc_over_limit: AtomicU64,
    /// Events refused by the detectors' queue.
    pub events_dropped: AtomicU64,
    /// Symbol table reloads.
    pub symbol_reloads: AtomicU64,
    /// Checks of `/proc/modules` for a changed module list.
    pub module_checks: AtomicU64,
    /// Module loads reported by the kernel (eBPF `module_load`).
    pub kernel_module_loads: AtomicU64,
    /// Detections printed.
    pub detections: AtomicU64,
    /// Accepted query connections.
    pub connections: AtomicU64,
    /// Connections of peers not allowed.
    pub connections_denied: AtomicU64,
    /// Connections refused for lack of a client slot.
    pub connections_busy: AtomicU64,
    /// Requests answered.
    pub requests: AtomicU64,
    /// Requests refused as malformed, oversize or late.
    pub bad_requests: AtomicU64,
    /// Process-store updates submitted by the collectors (both feeds).
    pub process_updates_submitted: AtomicU64,
    /// 1 while the eBPF collector feeds the stores.
    pub ebpf_active: AtomicU64,
    /// Kernel events read from the eBPF ring buffers.
    pub kernel_events: AtomicU64,
    /// Process-store updates submitted from kernel events.
    pub kernel_process_updates: AtomicU64,
    /// DNS answers submitted to the DNS store from kernel events.
    pub kernel_dns_answers: AtomicU64,
    /// Records the kernel dropped (full ring buffer), as last read.
    pub kernel_events_lost: AtomicU64,
    /// The kernel's DNS verdicts, as last read.
    pub kernel_dns: Mutex<KernelDnsCounters>,
    /// The eBPF programs attached, and those this kernel lacks.
    pub ebpf_programs: Mutex<crate::collector::ebpf_programs::EbpfPrograms>,
    /// Why the collection is degraded (`None`: it is not).
    pub degraded: Mutex<Option<String>>,
    /// Kernel events whose container came from their cgroup ID.
    pub kernel_container_lookups: AtomicU64,
    /// Kernel events whose container had to be read from `/proc/<pid>/cgroup`.
    pub kernel_container_proc_reads: AtomicU64,
    /// Container enrichment: endpoint states and counters.
    pub enrichment: crate::runtimes::status::EnrichmentStatus,
    /// Restarts of the daemon's supervised tasks, by task.
    pub task_restart_counts: Mutex<BTreeMap<&'static str, u64>>,
    /// When a supervised task last restarted (epoch ns; 0: never).
    pub last_task_restart_at: AtomicU64,
    /// Kernel-feed batches an intake refused (other than at shutdown), and their updates.
    pub kernel_feed_errors: AtomicU64,
    /// When the kernel feed last lost a batch to an intake error (epoch ns; 0: never).
    pub last_kernel_feed_error_at: AtomicU64,
    /// The last intake error of the kernel feed.
    pub last_kernel_feed_error: Mutex<Option<String>>,
    /// Replies refused because they were longer than `socket.max_reply_bytes`.
    pub replies_too_large: AtomicU64,
    /// What each part of the daemon reserved or may hold.
    pub memory: crate::memory::ledger::MemoryLedger,
    /// The boot clock, built once at start by the `/proc` reader and shared with the eBPF
    /// collector.
    pub boot_clock: std::sync::OnceLock<watchpost_core::start_time::BootClock>,
}

/// How long a task restart or a feed error keeps the daemon's health "degraded".
pub const DEGRADED_AFTER_INCIDENT_NS: u64 = 60_000_000_000;

/// Adds `n` to `counter`.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Adds 1 to `counter`.
pub fn bump(counter: &AtomicU64) {
    add(counter, 1);
}

impl DaemonCounters {
    /// Records the kernel's DNS verdicts as just read.
    pub fn set_kernel_dns(&self, c: &watchpost_ebpf::DnsCounters) {
        if let Ok(mut d) = self.kernel_dns.lock() {
            *d = KernelDnsCounters::from(c);
        }
    }

    /// Counters of a daemon started at `started_at`.
    pub fn new(started_at: EpochNanos) -> Self {
        DaemonCounters {
            started_at: AtomicU64::new(started_at),
            ..Default::default()
        }
    }

    /// Counts a restart of supervised task `task`.
    pub fn count_task_restart(&self, task: &'static str) {
        if let Ok(mut counts) = self.task_restart_counts.lock() {
            *counts.entry(task).or_insert(0) += 1;
        }
        self.last_task_restart_at
            .store(watchpost_actors::clock::now(), Ordering::Relaxed);
    }

    /// Restarts per supervised task so far.
    pub fn task_restarts(&self) -> BTreeMap<String, u64> {
        self.task_restart_counts
            .lock()
            .map(|c| c.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect())
            .unwrap_or_default()
    }

    /// Records that the kernel feed lost a batch to an intake error (the feed goes on).
    pub fn record_kernel_feed_error(&self, error: String) {
        bump(&self.kernel_feed_errors);
        self.last_kernel_feed_error_at
            .store(watchpost_actors::clock::now(), Ordering::Relaxed);
        if let Ok(mut last) = self.last_kernel_feed_error.lock() {
            *last = Some(error);
        }
    }

    /// The daemon's health: [`Self::collection_health`], made "degraded" for a while after a
    /// task restart or a kernel-feed intake error, with the restart counts.
    pub fn daemon_health(&self, now: watchpost_core::EpochNanos) -> (&'static str, String) {
        let (mut status, mut message) = self.collection_health();
        let recent = |at: u64| at != 0 && now.saturating_sub(at) <= DEGRADED_AFTER_INCIDENT_NS;
        if recent(self.last_kernel_feed_error_at.load(Ordering::Relaxed)) {
            status = "degraded";
            let last = self
                .last_kernel_feed_error
                .lock()
                .ok()
                .and_then(|l| l.clone())
                .unwrap_or_default();
            message.push_str(&format!(
                "; the kernel feed lost {} batches to intake errors (last: {last})",
                self.kernel_feed_errors.load(Ordering::Relaxed)
            ));
        }
        let over = self.proc_over_limit.load(Ordering::Relaxed);
        if over > 0 {
            status = "degraded";
            message.push_str(&format!(
                "; {over} processes beyond collector.max_tracked_processes are not tracked"
            ));
        }
        let restarts = self.task_restarts();
        if !restarts.is_empty() {
            if recent(self.last_task_restart_at.load(Ordering::Relaxed)) {
                status = "degraded";
            }
            let list: Vec<String> = restarts.iter().map(|(t, n)| format!("{t} {n}")).collect();
            message.push_str(&format!("; task restarts: {}", list.join(", ")));
        }
        (status, message)
    }

    /// The collection's health: `degraded: polling …` when eBPF is not in use (and was not
    /// switched off), a warning when the kernel lost events, healthy otherwise. As a
    /// `(status, message)` pair for `query health`'s `daemon` entry.
    pub fn collection_health(&self) -> (&'static str, String) {
        if let Some(reason) = self.degraded.lock().ok().and_then(|d| d.clone()) {
            return ("degraded", format!("degraded: polling /proc ({reason})"));
        }
        let lost = self.kernel_events_lost.load(Ordering::Relaxed);
        if lost > 0 {
            return (
                "degraded",
                format!("the kernel dropped {lost} events (a ring buffer was full)"),
            );
        }
        if self.ebpf_active.load(Ordering::Relaxed) != 0 {
            let lacking = self
                .ebpf_programs
                .lock()
                .ok()
                .and_then(|p| p.lacking_note());
            match lacking {
                None => ("healthy", "collecting with eBPF".to_owned()),
                Some(note) => ("healthy", format!("collecting with eBPF; {note}")),
            }
        } else {
            (
                "healthy",
                "polling /proc (collector.ebpf = \"off\")".to_owned(),
            )
        }
    }

    /// The values now, with the detector engine's.
    pub fn snapshot(&self, engine: EngineStats) -> DaemonStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DaemonStats {
            started_at: get(&self.started_at),
            proc_scans: get(&self.proc_scans),
            processes_appeared: get(&self.processes_appeared),
            processes_exec: get(&self.processes_exec),
            processes_exited: get(&self.processes_exited),
            proc_read_races: get(&self.proc_read_races),
            proc_read_errors: get(&self.proc_read_errors),
            proc_over_limit: get(&self.proc_over_limit),
            events_dropped: get(&self.events_dropped),
            symbol_reloads: get(&self.symbol_reloads),
            events_judged: engine.events,
            detections: get(&self.detections),
            detector_failures: engine
                .detector_errors
                .saturating_add(engine.detector_timeouts),
            connections: get(&self.connections),
            connections_denied: get(&self.connections_denied),
            connections_busy: get(&self.connections_busy),
            requests: get(&self.requests),
            bad_requests: get(&self.bad_requests),
            ebpf_active: get(&self.ebpf_active) != 0,
            kernel_events: get(&self.kernel_events),
            kernel_process_updates: get(&self.kernel_process_updates),
            kernel_dns_answers: get(&self.kernel_dns_answers),
            kernel_events_lost: get(&self.kernel_events_lost),
            kernel_dns: self.kernel_dns.lock().map(|d| *d).unwrap_or_default(),
            dns_messages_rate_limited: 0,
            dns_messages_no_namespace_slot: 0,
            ebpf_attached: self
                .ebpf_programs
                .lock()
                .map(|p| p.attached.clone())
                .unwrap_or_default(),
            ebpf_unavailable: self
                .ebpf_programs
                .lock()
                .map(|p| p.unavailable.clone())
                .unwrap_or_default(),
            module_checks: get(&self.module_checks),
            kernel_module_loads: get(&self.kernel_module_loads),
            kernel_container_lookups: get(&self.kernel_container_lookups),
            kernel_container_proc_reads: get(&self.kernel_container_proc_reads),
            container_enrichment: Box::new(self.enrichment.snapshot()),
            task_restarts: self.task_restarts(),
            kernel_feed_errors: get(&self.kernel_feed_errors),
            replies_too_large: get(&self.replies_too_large),
            memory: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_error_or_a_restart_degrades_for_a_while_then_the_daemon_recovers() {
        let stats = DaemonCounters::new(0);
        stats.ebpf_active.store(1, Ordering::Relaxed);
        let t0 = 1_000 * DEGRADED_AFTER_INCIDENT_NS;
        assert_eq!(stats.daemon_health(t0).0, "healthy");
        stats.record_kernel_feed_error("batch of 600 updates exceeds the intake limit".into());
        let at = stats.last_kernel_feed_error_at.load(Ordering::Relaxed);
        let (status, message) = stats.daemon_health(at + 1);
        assert_eq!(status, "degraded");
        assert!(
            message.contains("lost 1 batches to intake errors"),
            "{message}"
        );
        assert!(message.contains("exceeds the intake limit"), "{message}");
        // The feed went on; once the window passes the daemon is healthy again.
        let (status, _) = stats.daemon_health(at + DEGRADED_AFTER_INCIDENT_NS + 1);
        assert_eq!(status, "healthy");

        stats.count_task_restart("server");
        let at = stats.last_task_restart_at.load(Ordering::Relaxed);
        let (status, message) = stats.daemon_health(at + 1);
        assert_eq!(status, "degraded");
        assert!(message.contains("task restarts: server 1"), "{message}");
        let (status, message) = stats.daemon_health(at + DEGRADED_AFTER_INCIDENT_NS + 1);
        assert_eq!(status, "healthy");
        assert!(
            message.contains("task restarts: server 1"),
            "still counted: {message}"
        );
    }
}
