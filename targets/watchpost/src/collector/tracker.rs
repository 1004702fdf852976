//! What changed between two `/proc` scans, as store updates and detector events.
//!
//! Polling sees states, not events, so the events are inferred:
//! - a process (pid, start time) not seen before **appeared**: a `Scan` record for the store and,
//!   when its executable is known, an `Exec` event for the detectors (the program it runs is new
//!   to us; kernel threads have no executable and raise no event);
//! - a process whose executable path changed **executed** a new program: an `Exec` update and
//!   event. A changed `comm` alone is not an exec (`prctl(PR_SET_NAME)` renames without one),
//!   and an exec of the same binary is invisible to polling;
//! - a process no longer listed, listed with another start time (its pid was reused), or now a
//!   zombie **exited**: an `Exit` update and event, timed at the scan that noticed.
//!
//! The first scan (and a resynchronisation after a store restart) only describes what runs:
//! `Scan` records, no events. Containers are tracked the same way: a container ID first named by
//! a cgroup is observed (discovery never overwrites a runtime's enrichment), one no process is in any more is marked removed (the store
//! keeps it gettable for its grace period; a process appearing in it again revives it).
//!
//! A scan that reached `collector.max_tracked_processes` lists the pids it left out: a known
//! process among them is alive, not exited, and stays known as it was (no false Exit events).
//!
//! Memory: the tracker holds the last scan, which the scan limit bounds (at most twice the
//! limit while processes beyond it are kept as they were).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use watchpost_actors::detect::{Event, EventKind};
use watchpost_actors::stores::container::ContainerUpdate;
use watchpost_actors::stores::process::{ProcessExec, ProcessExit, ProcessStart, ProcessUpdate};
use watchpost_core::EpochNanos;
use watchpost_core::cgroup::CgroupContainer;
use watchpost_core::entity_id::entity_id;

use crate::procfs::{ProcProcess, ProcScan};

/// Updates and events from one scan.
#[derive(Debug, Default)]
pub struct Changes {
    /// For the process store, exits first, then new records oldest first, then execs.
    pub processes: Vec<ProcessUpdate>,
    /// For the container store.
    pub containers: Vec<ContainerUpdate>,
    /// For the detectors, in the order of `processes`.
    pub events: Vec<Event>,
    /// Processes that appeared.
    pub appeared: u64,
    /// Processes that executed a new program.
    pub execs: u64,
    /// Processes that exited.
    pub exited: u64,
}

/// The last scan, to compare the next with.
#[derive(Debug, Default)]
pub struct ProcessTracker {
    /// Running (non-zombie) processes of the last scan, by pid.
    known: HashMap<u32, ProcProcess>,
    /// Containers named by the last scan's processes, by ID.
    containers: BTreeMap<String, CgroupContainer>,
    /// The network namespaces of those containers: each container's oldest process's (the one
    /// its runtime started; a namespace a process inside made later is not the container's).
    container_netns: BTreeSet<u32>,
}

/// The start time of `ppid` as the scan (else the previous scan) saw it; 0 when unknown.
fn parent_start(
    ppid: u32,
    now_seen: &HashMap<u32, EpochNanos>,
    known: &HashMap<u32, ProcProcess>,
) -> EpochNanos {
    if ppid == 0 {
        return 0;
    }
    now_seen
        .get(&ppid)
        .copied()
        .or_else(|| known.get(&ppid).map(|p| p.start_time))
        .unwrap_or(0)
}

fn start_record(p: &ProcProcess, parent_start_time: EpochNanos) -> ProcessStart {
    ProcessStart {
        pid: p.pid,
        start_time: p.start_time,
        ppid: p.ppid,
        parent_start_time,
        uid: p.uid,
        gid: p.gid,
        comm: p.comm.clone(),
        exe_path: p.exe.clone(),
        exe_flags: p.exe_flags,
    }
}

fn event(
    kind: EventKind,
    p: &ProcProcess,
    parent_start_time: EpochNanos,
    time: EpochNanos,
) -> Event {
    Event {
        kind,
        entity_id: p.entity_id(),
        pid: p.pid,
        start_time: p.start_time,
        ppid: p.ppid,
        parent_entity_id: if p.ppid == 0 || parent_start_time == 0 {
            0
        } else {
            entity_id(p.ppid, parent_start_time)
        },
        parent_start_time: if p.ppid == 0 { 0 } else { parent_start_time },
        exe: p.exe.clone().unwrap_or_default(),
        invoked: String::new(),
        comm: p.comm.clone(),
        uid: p.uid,
        gid: p.gid,
        container_id: p.container.as_ref().map(|c| c.id.as_str().to_owned()),
        time,
    }
}

impl ProcessTracker {
    /// Knows nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Running processes known from the last scan.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether no process is known.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// Containers known from the last scan.
    pub fn containers(&self) -> usize {
        self.containers.len()
    }

    /// Running processes of `scan`, oldest first (parents before their children), and the start
    /// time of every listed pid.
    fn running(scan: &ProcScan) -> (Vec<&ProcProcess>, HashMap<u32, EpochNanos>) {
        let seen = scan
            .processes
            .iter()
            .map(|p| (p.pid, p.start_time))
            .collect();
        let mut running: Vec<&ProcProcess> =
            scan.processes.iter().filter(|p| !p.is_zombie()).collect();
        running.sort_by_key(|p| (p.start_time, p.pid));
        (running, seen)
    }

    /// The network namespace of each container's oldest process (`running` is oldest first).
    fn namespaces_of(running: &[&ProcProcess]) -> BTreeSet<u32> {
        let mut first: BTreeMap<&str, Option<u32>> = BTreeMap::new();
        for p in running {
            if let Some(c) = &p.container {
                first.entry(c.id.as_str()).or_insert(p.netns);
            }
        }
        first.into_values().flatten().collect()
    }

    /// The network namespaces of the containers the last scan saw (see the field).
    pub fn container_namespaces(&self) -> &BTreeSet<u32> {
        &self.container_netns
    }

    fn containers_of(running: &[&ProcProcess]) -> BTreeMap<String, CgroupContainer> {
        running
            .iter()
            .filter_map(|p| p.container.as_ref())
            .map(|c| (c.id.as_str().to_owned(), c.clone()))
            .collect()
    }

    /// Takes `scan` as the whole truth: a `Scan` record for every running process and a
    /// discovery for every container, no events (bootstrap, or after a store restart).
    pub fn describe(&mut self, scan: &ProcScan) -> Changes {
        let (running, seen) = Self::running(scan);
        let mut changes = Changes::default();
        for p in &running {
            let parent = parent_start(p.ppid, &seen, &self.known);
            changes
                .processes
                .push(ProcessUpdate::Scan(start_record(p, parent)));
        }
        let containers = Self::containers_of(&running);
        changes.containers = containers
            .values()
            .map(|c| ContainerUpdate::Observe(c.clone()))
            .collect();
        self.container_netns = Self::namespaces_of(&running);
        self.known = running.into_iter().map(|p| (p.pid, p.clone())).collect();
        self.containers = containers;
        changes
    }

    /// What changed since the last scan; see the module docs. `now` times exits and execs.
    pub fn diff(&mut self, scan: &ProcScan, now: EpochNanos) -> Changes {
        let (running, seen) = Self::running(scan);
        let by_pid: HashMap<u32, &ProcProcess> = running.iter().map(|p| (p.pid, *p)).collect();
        let skipped: std::collections::HashSet<u32> = scan.skipped.iter().copied().collect();
        let mut changes = Changes::default();

        let mut gone: Vec<&ProcProcess> = self
            .known
            .values()
            .filter(|old| {
                !skipped.contains(&old.pid)
                    && by_pid
                        .get(&old.pid)
                        .is_none_or(|p| p.start_time != old.start_time)
            })
            .collect();
        gone.sort_by_key(|p| (p.start_time, p.pid));
        for old in gone {
            changes.processes.push(ProcessUpdate::Exit(ProcessExit {
                pid: old.pid,
                start_time: old.start_time,
                exit_time: now,
            }));
            let parent = parent_start(old.ppid, &seen, &self.known);
            changes
                .events
                .push(event(EventKind::Exit, old, parent, now));
            changes.exited += 1;
        }

        let mut execs = Vec::new();
        for p in &running {
            let parent = parent_start(p.ppid, &seen, &self.known);
            match self
                .known
                .get(&p.pid)
                .filter(|old| old.start_time == p.start_time)
            {
                None => {
                    changes
                        .processes
                        .push(ProcessUpdate::Scan(start_record(p, parent)));
                    if p.exe.is_some() {
                        changes
                            .events
                            .push(event(EventKind::Exec, p, parent, p.start_time));
                    }
                    changes.appeared += 1;
                }
                Some(old) if old.exe != p.exe && p.exe.is_some() => {
                    execs.push((
                        ProcessUpdate::Exec(ProcessExec {
                            pid: p.pid,
                            start_time: p.start_time,
                            uid: p.uid,
                            gid: p.gid,
                            comm: p.comm.clone(),
                            exe_path: p.exe.clone().unwrap_or_default(),
                            invoked_path: None,
                            exe_flags: p.exe_flags,
                        }),
                        event(EventKind::Exec, p, parent, now),
                    ));
                    changes.execs += 1;
                }
                Some(_) => {}
            }
        }
        for (update, ev) in execs {
            changes.processes.push(update);
            changes.events.push(ev);
        }

        // Known processes the scan left out stay as they were.
        let kept: Vec<ProcProcess> = self
            .known
            .values()
            .filter(|old| skipped.contains(&old.pid) && !by_pid.contains_key(&old.pid))
            .cloned()
            .collect();
        let mut with_kept = running.clone();
        with_kept.extend(kept.iter());
        let containers = Self::containers_of(&with_kept);
        for (id, c) in &containers {
            if !self.containers.contains_key(id) {
                changes.containers.push(ContainerUpdate::Observe(c.clone()));
            }
        }
        for id in self.containers.keys() {
            if !containers.contains_key(id) {
                changes.containers.push(ContainerUpdate::Remove {
                    id: id.clone(),
                    removed_at: now,
                });
            }
        }
        self.container_netns = Self::namespaces_of(&running);
        self.known = running
            .into_iter()
            .map(|p| (p.pid, p.clone()))
            .chain(kept.into_iter().map(|p| (p.pid, p)))
            .collect();
        self.containers = containers;
        changes
    }

    /// `Scan` records and container discoveries for everything known now (to refill a store
    /// that restarted empty).
    pub fn resync(&self) -> Changes {
        let mut running: Vec<&ProcProcess> = self.known.values().collect();
        running.sort_by_key(|p| (p.start_time, p.pid));
        let seen: HashMap<u32, EpochNanos> =
            running.iter().map(|p| (p.pid, p.start_time)).collect();
        let mut changes = Changes::default();
        for p in running {
            let parent = parent_start(p.ppid, &seen, &self.known);
            changes
                .processes
                .push(ProcessUpdate::Scan(start_record(p, parent)));
        }
        changes.containers = self
            .containers
            .values()
            .map(|c| ContainerUpdate::Observe(c.clone()))
            .collect();
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use watchpost_core::cgroup::parse_cgroup_path;

    const T0: EpochNanos = 1_700_000_000_000_000_000;
    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn proc_(pid: u32, ppid: u32, start: EpochNanos, exe: Option<&str>) -> ProcProcess {
        ProcProcess {
            pid,
            ppid,
            start_time: start,
            comm: exe
                .map_or("kworker", |e| e.rsplit('/').next().unwrap_or(e))
                .to_owned(),
            state: b'S',
            uid: 1000,
            gid: 1000,
            exe: exe.map(str::to_owned),
            exe_flags: Default::default(),
            container: None,
            netns: None,
        }
    }

    fn scan(processes: Vec<ProcProcess>) -> ProcScan {
        ProcScan {
            processes,
            ..ProcScan::default()
        }
    }

    fn kinds(c: &Changes) -> Vec<(EventKind, u32)> {
        c.events.iter().map(|e| (e.kind, e.pid)).collect()
    }

    #[test]
    fn first_scan_describes_without_events_parents_first() {
        let mut t = ProcessTracker::new();
        let c = t.describe(&scan(vec![
            proc_(1, 0, T0, Some("/sbin/init")),
            proc_(5, 9, T0 + 30, Some("/bin/sh")),
            proc_(9, 1, T0 + 20, Some("/usr/sbin/sshd")),
        ]));
        assert!(c.events.is_empty());
        let order: Vec<(u32, EpochNanos)> = c
            .processes
            .iter()
            .map(|u| match u {
                ProcessUpdate::Scan(s) => (s.pid, s.parent_start_time),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(order, [(1, 0), (9, T0), (5, T0 + 20)]);
        assert_eq!(t.len(), 3);
    }

    /// A scan over the limit leaves pids out; those processes are alive and never "exit".
    #[test]
    fn processes_beyond_the_scan_limit_are_never_reported_exited() {
        let mut t = ProcessTracker::new();
        t.describe(&scan(vec![
            proc_(1, 0, T0, Some("/sbin/init")),
            proc_(7, 1, T0 + 1, Some("/bin/bash")),
            proc_(9, 1, T0 + 2, Some("/bin/cat")),
        ]));
        // The limit is now 1: pids 7 and 9 are listed as skipped, every rescan.
        for round in 0..3 {
            let over = ProcScan {
                processes: vec![proc_(1, 0, T0, Some("/sbin/init"))],
                over_limit: 2,
                skipped: vec![7, 9],
                ..ProcScan::default()
            };
            let c = t.diff(&over, T0 + 1_000 + round);
            assert!(c.events.is_empty(), "round {round}: {:?}", kinds(&c));
            assert_eq!(c.exited, 0);
            assert!(c.processes.is_empty(), "{:?}", c.processes);
            assert_eq!(t.len(), 3, "the skipped processes stay known as they were");
        }
        // Once read again and gone for real, they exit.
        let c = t.diff(&scan(vec![proc_(1, 0, T0, Some("/sbin/init"))]), T0 + 9_000);
        assert_eq!(kinds(&c), [(EventKind::Exit, 7), (EventKind::Exit, 9)]);
    }

    #[test]
    fn appear_exec_exit_and_pid_reuse() {
        let mut t = ProcessTracker::new();
        t.describe(&scan(vec![
            proc_(1, 0, T0, Some("/sbin/init")),
            proc_(2, 0, T0, None),
            proc_(10, 1, T0 + 1, Some("/bin/bash")),
            proc_(11, 1, T0 + 2, Some("/bin/sleep")),
            proc_(12, 1, T0 + 3, Some("/bin/cat")),
        ]));
        let mut renamed = proc_(1, 0, T0, Some("/sbin/init"));
        renamed.comm = "systemd".into();
        let now = T0 + 1_000;
        let c = t.diff(
            &scan(vec![
                renamed,
                proc_(2, 0, T0, None),
                // 10 exec'd a new program
                proc_(10, 1, T0 + 1, Some("/usr/bin/python3")),
                // 11 is gone; 12 was reused by a new process
                proc_(12, 1, T0 + 500, Some("/bin/ls")),
                // a child of 10 appeared, and a kernel thread
                proc_(20, 10, T0 + 600, Some("/bin/sh")),
                proc_(21, 2, T0 + 700, None),
            ]),
            now,
        );
        assert_eq!(
            kinds(&c),
            [
                (EventKind::Exit, 11),
                (EventKind::Exit, 12),
                (EventKind::Exec, 12),
                (EventKind::Exec, 20),
                (EventKind::Exec, 10),
            ]
        );
        assert_eq!((c.appeared, c.execs, c.exited), (3, 1, 2));
        // Updates mirror the events, plus the kernel thread's record.
        assert!(
            matches!(c.processes[0], ProcessUpdate::Exit(ProcessExit { pid: 11, exit_time, .. }) if exit_time == now)
        );
        assert!(
            matches!(&c.processes[4], ProcessUpdate::Scan(s) if s.pid == 21 && s.exe_path.is_none())
        );
        assert!(
            matches!(&c.processes[5], ProcessUpdate::Exec(e) if e.pid == 10 && e.exe_path == "/usr/bin/python3")
        );
        let child = c.events.iter().find(|e| e.pid == 20).unwrap();
        assert_eq!(child.parent_entity_id, entity_id(10, T0 + 1));
        assert_eq!(child.time, T0 + 600);
        // Nothing changes: nothing to report.
        let again = t.diff(
            &scan(vec![
                proc_(1, 0, T0, Some("/sbin/init")),
                proc_(2, 0, T0, None),
                proc_(10, 1, T0 + 1, Some("/usr/bin/python3")),
                proc_(12, 1, T0 + 500, Some("/bin/ls")),
                proc_(20, 10, T0 + 600, Some("/bin/sh")),
                proc_(21, 2, T0 + 700, None),
            ]),
            now + 1,
        );
        assert!(again.processes.is_empty() && again.events.is_empty());
    }

    #[test]
    fn zombies_count_as_exited() {
        let mut t = ProcessTracker::new();
        t.describe(&scan(vec![
            proc_(1, 0, T0, Some("/sbin/init")),
            proc_(7, 1, T0 + 1, Some("/bin/true")),
        ]));
        let mut zombie = proc_(7, 1, T0 + 1, None);
        zombie.state = b'Z';
        let c = t.diff(
            &scan(vec![proc_(1, 0, T0, Some("/sbin/init")), zombie]),
            T0 + 9,
        );
        assert_eq!(kinds(&c), [(EventKind::Exit, 7)]);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn containers_are_discovered_and_removed() {
        let mut t = ProcessTracker::new();
        let mut inside = proc_(30, 1, T0 + 1, Some("/tmp/x"));
        inside.container = parse_cgroup_path(&format!("/system.slice/docker-{ID}.scope"));
        let c = t.describe(&scan(vec![
            proc_(1, 0, T0, Some("/sbin/init")),
            inside.clone(),
        ]));
        assert_eq!(c.containers.len(), 1);
        assert!(
            matches!(&c.containers[0], ContainerUpdate::Observe(o) if o.id.as_str() == ID && o.runtime.as_str() == "docker")
        );
        let c = t.diff(
            &scan(vec![proc_(1, 0, T0, Some("/sbin/init")), inside]),
            T0 + 5,
        );
        assert!(c.containers.is_empty());
        let c = t.diff(&scan(vec![proc_(1, 0, T0, Some("/sbin/init"))]), T0 + 6);
        assert!(
            matches!(&c.containers[..], [ContainerUpdate::Remove { id, removed_at }] if id == ID && *removed_at == T0 + 6)
        );
        assert_eq!(c.events[0].container_id.as_deref(), Some(ID));
        assert_eq!(t.containers(), 0);
    }

    #[test]
    fn a_container_namespace_is_its_oldest_process_s() {
        let mut t = ProcessTracker::new();
        let container = parse_cgroup_path(&format!("/system.slice/docker-{ID}.scope"));
        let mut init = proc_(30, 1, T0 + 1, Some("/bin/app"));
        init.container = container.clone();
        init.netns = Some(4_026_532_600);
        // A process inside that made a namespace of its own later: not the container's.
        let mut inner = proc_(31, 30, T0 + 2, Some("/bin/sh"));
        inner.container = container;
        inner.netns = Some(4_026_532_999);
        let mut host = proc_(1, 0, T0, Some("/sbin/init"));
        host.netns = Some(4_026_531_840);
        t.describe(&scan(vec![inner.clone(), host.clone(), init.clone()]));
        assert_eq!(
            t.container_namespaces().iter().copied().collect::<Vec<_>>(),
            [4_026_532_600]
        );
        t.diff(&scan(vec![host]), T0 + 5);
        assert!(t.container_namespaces().is_empty());
    }

    #[test]
    fn resync_describes_the_last_scan() {
        let mut t = ProcessTracker::new();
        t.describe(&scan(vec![
            proc_(1, 0, T0, Some("/sbin/init")),
            proc_(3, 1, T0 + 2, Some("/bin/sh")),
        ]));
        let c = t.resync();
        assert_eq!(c.processes.len(), 2);
        assert!(
            matches!(&c.processes[1], ProcessUpdate::Scan(s) if s.pid == 3 && s.parent_start_time == T0)
        );
        assert!(c.events.is_empty());
    }
}
