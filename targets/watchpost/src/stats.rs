//! The daemon's own counters (collector, detections, query socket), shared by its tasks and
//! reported by `watchpost query metrics`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use watchpost_actors::detect::EngineStats;
use watchpost_core::EpochNanos;

use crate::wire::response::DaemonStats;

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
    /// Processes over the scan limit.
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
    /// Why the collection is degraded (`None`: it is not).
    pub degraded: Mutex<Option<String>>,
}

/// Adds `n` to `counter`.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Adds 1 to `counter`.
pub fn bump(counter: &AtomicU64) {
    add(counter, 1);
}

impl DaemonCounters {
    /// Counters of a daemon started at `started_at`.
    pub fn new(started_at: EpochNanos) -> Self {
        DaemonCounters {
            started_at: AtomicU64::new(started_at),
            ..Default::default()
        }
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
            ("healthy", "collecting with eBPF".to_owned())
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
            module_checks: get(&self.module_checks),
            kernel_module_loads: get(&self.kernel_module_loads),
        }
    }
}
