//! The core [`ProcessTable`] as a [`ProcessBackend`]: updates become the core's borrowed events
//! (no copy of the path), views become owned [`ProcessInfo`]s inside the actor.

use watchpost_core::process::{
    Comm, EventOutcome, ExecEvent, ExitEvent, ForkEvent, ProcessTable, ProcessTableConfig,
    ProcessView, ScanRecord,
};
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo, StoreError};

use crate::seed::random_seed;
use crate::stores::process::{ProcessBackend, ProcessInfo, ProcessStart, ProcessUpdate};
use crate::supervision::{BuildContext, BuildError};

/// A factory for the process store: a [`ProcessTable`] sized by `config`, with a fresh random
/// hash seed on every build (the seed in `config` is ignored).
pub fn process_table_factory(
    config: ProcessTableConfig,
) -> impl Fn(&BuildContext) -> Result<ProcessTable, BuildError> + Send + Sync + 'static {
    move |_| {
        Ok(ProcessTable::new(ProcessTableConfig {
            hash_seed: random_seed(),
            ..config
        }))
    }
}

/// The owned copy of a core process view.
pub fn to_info(view: &ProcessView<'_>) -> ProcessInfo {
    ProcessInfo {
        entity_id: view.entity_id(),
        pid: view.pid(),
        ppid: view.ppid(),
        name: view.name().to_owned(),
        exe: view.exe_path().unwrap_or_default().to_owned(),
        start_time: view.start_time(),
        uid: view.uid(),
        gid: view.gid(),
        exit_time: view.exit_time(),
        exit_time_unknown: view.exit_time_unknown(),
    }
}

fn fork_event(s: &ProcessStart) -> ForkEvent<'_> {
    ForkEvent {
        pid: s.pid,
        start_time: s.start_time,
        ppid: s.ppid,
        parent_start_time: s.parent_start_time,
        uid: s.uid,
        gid: s.gid,
        comm: Comm::new(&s.comm),
        exe_path: s.exe_path.as_deref(),
    }
}

fn scan_record(s: &ProcessStart) -> ScanRecord<'_> {
    ScanRecord {
        pid: s.pid,
        start_time: s.start_time,
        ppid: s.ppid,
        parent_start_time: s.parent_start_time,
        uid: s.uid,
        gid: s.gid,
        comm: Comm::new(&s.comm),
        exe_path: s.exe_path.as_deref(),
    }
}

impl ProcessBackend for ProcessTable {
    fn stats(&self) -> Option<(watchpost_core::process::ProcessTableStats, usize)> {
        Some((ProcessTable::stats(self), ProcessTable::capacity(self)))
    }

    fn get_process(&mut self, entity_id: u32, now: EpochNanos) -> Result<ProcessInfo, StoreError> {
        self.get(entity_id, now).map(|v| to_info(&v))
    }

    fn get_child_processes(
        &mut self,
        entity_id: u32,
        now: EpochNanos,
    ) -> Result<Vec<ProcessInfo>, StoreError> {
        Ok(self
            .children(entity_id, now)?
            .map(|v| to_info(&v))
            .collect())
    }

    fn get_ancestry(
        &mut self,
        entity_id: u32,
        max_depth: i32,
        now: EpochNanos,
    ) -> Result<Vec<ProcessInfo>, StoreError> {
        Ok(self
            .ancestry(entity_id, max_depth, now)?
            .map(|v| to_info(&v))
            .collect())
    }

    fn apply(&mut self, update: ProcessUpdate, now: EpochNanos) -> bool {
        let outcome = match &update {
            ProcessUpdate::Fork(s) => self.apply_fork(&fork_event(s), now),
            ProcessUpdate::Scan(s) => self.apply_scan(&scan_record(s), now),
            ProcessUpdate::Exec(e) => self.apply_exec(
                &ExecEvent {
                    pid: e.pid,
                    start_time: e.start_time,
                    uid: e.uid,
                    gid: e.gid,
                    comm: Comm::new(&e.comm),
                    exe_path: &e.exe_path,
                },
                now,
            ),
            ProcessUpdate::Exit(x) => self.apply_exit(
                &ExitEvent {
                    pid: x.pid,
                    start_time: x.start_time,
                    exit_time: x.exit_time,
                },
                now,
            ),
        };
        outcome != EventOutcome::Ignored
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        ProcessTable::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        ProcessTable::metrics(self)
    }
}
