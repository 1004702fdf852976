//! The core [`ProcessTable`] as a [`ProcessBackend`]: updates become the core's borrowed events
//! (no copy of the path); reads are the core's read-only queries; [`to_info`] makes the owned
//! [`ProcessInfo`] of a borrowed view.

use watchpost_core::process::{
    Ancestry, Children, Comm, EventOutcome, ExecEvent, ExitEvent, ForkEvent, ProcessKey,
    ProcessTable, ProcessTableConfig, ProcessView, ReadLookup, RenameEvent, ScanRecord,
};
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo};

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
    let exe = view.exe_path().unwrap_or_default();
    let flags = view.exe_flags();
    ProcessInfo {
        entity_id: view.entity_id(),
        pid: view.pid(),
        ppid: view.ppid(),
        name: view.name().to_owned(),
        exe: exe.to_owned(),
        invoked_path: view.invoked_path().unwrap_or_default().to_owned(),
        exe_deleted: flags.deleted,
        exe_memfd: flags.memfd,
        memfd_name: flags.memfd_name(exe).map(str::to_owned),
        exe_truncated: flags.truncated,
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
        exe_flags: s.exe_flags,
    }
}

impl ProcessBackend for ProcessTable {
    fn stats(&self) -> Option<(watchpost_core::process::ProcessTableStats, usize)> {
        Some((ProcessTable::stats(self), ProcessTable::capacity(self)))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn find(&self, entity_id: u32, now: EpochNanos) -> ReadLookup<'_> {
        ProcessTable::find(self, entity_id, now)
    }

    fn find_exact(&self, key: ProcessKey, now: EpochNanos) -> Option<ProcessView<'_>> {
        ProcessTable::find_exact(self, key, now)
    }

    fn children_of<'a>(&'a self, parent: &ProcessView<'a>, now: EpochNanos) -> Children<'a> {
        ProcessTable::children_of(self, parent, now)
    }

    fn ancestry_of<'a>(
        &'a self,
        start: &ProcessView<'a>,
        max_depth: i32,
        now: EpochNanos,
    ) -> Ancestry<'a> {
        ProcessTable::ancestry_of(self, start, max_depth, now)
    }

    fn records(&self) -> Box<dyn Iterator<Item = ProcessView<'_>> + '_> {
        Box::new(self.iter())
    }

    fn apply(&mut self, update: &ProcessUpdate, now: EpochNanos) -> bool {
        let outcome = match update {
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
                    invoked_path: e.invoked_path.as_deref(),
                    exe_flags: e.exe_flags,
                },
                now,
            ),
            ProcessUpdate::Rename(r) => self.apply_rename(
                &RenameEvent {
                    pid: r.pid,
                    start_time: r.start_time,
                    comm: Comm::new(&r.comm),
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

    fn refresh_recency(&mut self, reads: &[(u32, u32)]) {
        ProcessTable::refresh_recency(self, reads.iter().copied())
    }

    fn copy_from(&mut self, other: &dyn std::any::Any) -> bool {
        other
            .downcast_ref::<ProcessTable>()
            .is_some_and(|other| ProcessTable::copy_from(self, other))
    }

    fn capacity(&self) -> usize {
        ProcessTable::capacity(self)
    }

    fn bytes_reserved(&self) -> usize {
        ProcessTable::bytes_reserved(self)
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        ProcessTable::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        ProcessTable::metrics(self)
    }
}
