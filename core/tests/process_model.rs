//! The process table against a deliberately naive model: a `BTreeMap` of records whose
//! "pinned" state is recomputed from scratch by walking descendants after every step, eviction
//! victims found by scanning everything, recency as a counter. Random fork/scan/exec/exit/query
//! sequences on a tiny table must give the same records, answers (children in their documented
//! order: most recently linked first), outcomes and counters.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use watchpost_core::process::{
    Comm, EventOutcome, ExeFlags, ExecEvent, ExitEvent, ForkEvent, ProcessKey, ProcessTable,
    ProcessTableConfig, ScanRecord,
};
use watchpost_core::time::NANOS_PER_MILLI;

const T0: u64 = 1_764_300_000_000_000_000;
const KEYS: usize = 40;
const CAPACITY: usize = 8;
const GRACE: u64 = 50 * NANOS_PER_MILLI;
const PENDING: usize = 3;
const PENDING_TTL: u64 = 30 * NANOS_PER_MILLI;
const EXES: [&str; 4] = [
    "/bin/sh",
    "/usr/bin/python3",
    "/usr/sbin/sshd",
    "/opt/app/server",
];

fn key(i: usize) -> ProcessKey {
    ProcessKey::new(100 + i as u32, T0 + i as u64 * 10_000_000)
}

#[derive(Debug, Clone)]
enum Op {
    Fork {
        parent: Option<u8>,
        exe: Option<u8>,
    },
    Scan {
        parent: Option<u8>,
        exe: Option<u8>,
    },
    Refork {
        target: u8,
        parent: Option<u8>,
    },
    Exec {
        target: u8,
        exe: u8,
        uid: u8,
    },
    Exit {
        target: u8,
    },
    Get {
        target: u8,
    },
    Children {
        target: u8,
    },
    Ancestry {
        target: u8,
        depth: i8,
    },
    /// The read-only queries (`find`, `children_of`, `ancestry_of`), then the found process's
    /// recency refreshed the way a shared view's owner does it (`refresh_recency`).
    Read {
        target: u8,
        depth: i8,
    },
    Advance {
        ms: u8,
    },
    Purge,
}

fn op() -> impl Strategy<Value = Op> {
    let idx = any::<u8>();
    prop_oneof![
        4 => (proptest::option::weighted(0.8, idx), proptest::option::of(0u8..4))
            .prop_map(|(parent, exe)| Op::Fork { parent, exe }),
        1 => (proptest::option::weighted(0.8, idx), proptest::option::of(0u8..4))
            .prop_map(|(parent, exe)| Op::Scan { parent, exe }),
        1 => (idx, proptest::option::of(idx)).prop_map(|(target, parent)| Op::Refork { target, parent }),
        2 => (idx, 0u8..4, 0u8..3).prop_map(|(target, exe, uid)| Op::Exec { target, exe, uid }),
        3 => idx.prop_map(|target| Op::Exit { target }),
        2 => idx.prop_map(|target| Op::Get { target }),
        1 => idx.prop_map(|target| Op::Children { target }),
        1 => (idx, -1i8..6).prop_map(|(target, depth)| Op::Ancestry { target, depth }),
        2 => (idx, -1i8..6).prop_map(|(target, depth)| Op::Read { target, depth }),
        2 => (0u8..40).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Purge),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MRec {
    parent: ProcessKey,
    from_fork: bool,
    uid: u32,
    gid: u32,
    comm: Comm,
    exe: Option<&'static str>,
    exit_time: u64,
    release_time: u64,
    last_use: u64,
    /// When the record was last attached to its parent key: its arrival, or the fork that
    /// corrected its parent. Children are listed newest attachment first.
    linked: u64,
}

#[derive(Debug, Clone)]
struct MPending {
    key: ProcessKey,
    received_at: u64,
    exec: Option<(u32, u32, Comm, &'static str)>,
    exit_time: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct MStats {
    evicted_expired: u64,
    evicted_exited: u64,
    evicted_exited_pinned: u64,
    evicted_live: u64,
    duplicate_events: u64,
    parent_corrections: u64,
    stale_events: u64,
    pending_buffered: u64,
    pending_applied: u64,
    pending_overflows: u64,
    pending_expired: u64,
    hits: u64,
    misses: u64,
    successes: u64,
}

#[derive(Default, Clone)]
struct Model {
    recs: BTreeMap<ProcessKey, MRec>,
    pending: Vec<MPending>,
    tick: u64,
    stats: MStats,
}

impl Model {
    fn has_parent(&self, k: ProcessKey) -> Option<ProcessKey> {
        let p = self.recs.get(&k)?.parent;
        (p.pid != 0 && p != k && self.recs.contains_key(&p)).then_some(p)
    }

    fn children(&self, k: ProcessKey) -> Vec<ProcessKey> {
        self.recs
            .iter()
            .filter(|(c, r)| r.parent == k && **c != k)
            .map(|(c, _)| *c)
            .collect()
    }

    /// The children in the table's documented order: most recently attached first.
    fn ordered_children(&self, k: ProcessKey) -> Vec<ProcessKey> {
        let mut children = self.children(k);
        children.sort_by_key(|c| std::cmp::Reverse(self.recs[c].linked));
        children
    }

    /// Running, or has a running descendant (parents always have smaller indexes: no loops).
    fn holding(&self, k: ProcessKey) -> bool {
        self.recs[&k].exit_time == 0 || self.children(k).into_iter().any(|c| self.holding(c))
    }

    fn pinned(&self, k: ProcessKey) -> bool {
        self.recs[&k].exit_time != 0 && self.children(k).into_iter().any(|c| self.holding(c))
    }

    fn pinned_set(&self) -> BTreeSet<ProcessKey> {
        self.recs
            .keys()
            .copied()
            .filter(|k| self.pinned(*k))
            .collect()
    }

    /// After a step: records that lost their last running descendant start their grace.
    fn settle(&mut self, before: &BTreeSet<ProcessKey>, cause: u64) {
        let freed: Vec<_> = before
            .iter()
            .copied()
            .filter(|k| self.recs.contains_key(k) && !self.pinned(*k))
            .collect();
        for k in freed {
            let r = self.recs.get_mut(&k).unwrap();
            r.release_time = r.exit_time.max(cause);
        }
    }

    fn touch(&mut self, k: ProcessKey) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(r) = self.recs.get_mut(&k)
            && r.exit_time == 0
        {
            r.last_use = tick;
        }
    }

    fn remove(&mut self, k: ProcessKey, now: u64) {
        let before = self.pinned_set();
        self.recs.remove(&k);
        self.settle(&before, now);
    }

    fn purge(&mut self, now: u64) {
        let expired: Vec<_> = self
            .recs
            .iter()
            .filter(|(k, r)| r.exit_time != 0 && !self.pinned(**k) && r.release_time + GRACE <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            self.recs.remove(&k);
            self.stats.evicted_expired += 1;
        }
    }

    fn evict_one(&mut self, now: u64) {
        let exited = self
            .recs
            .iter()
            .filter(|(_, r)| r.exit_time != 0)
            .map(|(k, r)| {
                let pinned = self.pinned(*k);
                let time = if pinned { r.exit_time } else { r.release_time };
                ((pinned, time, k.start_time, k.pid), *k)
            })
            .min();
        if let Some(((pinned, time, _, _), k)) = exited {
            if pinned {
                self.stats.evicted_exited_pinned += 1;
            } else if time + GRACE <= now {
                self.stats.evicted_expired += 1;
            } else {
                self.stats.evicted_exited += 1;
            }
            self.remove(k, now);
            return;
        }
        let victim = self
            .recs
            .iter()
            .min_by_key(|(_, r)| r.last_use)
            .map(|(k, _)| *k)
            .unwrap();
        self.stats.evicted_live += 1;
        self.remove(victim, now);
    }

    fn exit_record(&mut self, k: ProcessKey, t: u64) {
        let before = self.pinned_set();
        let r = self.recs.get_mut(&k).unwrap();
        r.exit_time = t;
        r.release_time = t;
        self.settle(&before, t);
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        k: ProcessKey,
        parent: ProcessKey,
        from_fork: bool,
        uid: u32,
        gid: u32,
        comm: Comm,
        exe: Option<&'static str>,
        inherit: bool,
        now: u64,
    ) {
        if self.recs.len() >= CAPACITY {
            self.evict_one(now);
        }
        let parent_exe = (parent.pid != 0 && parent != k)
            .then(|| self.recs.get(&parent).and_then(|p| p.exe))
            .flatten();
        let exe = if inherit { parent_exe } else { exe };
        self.tick += 1;
        self.recs.insert(
            k,
            MRec {
                parent,
                from_fork,
                uid,
                gid,
                comm,
                exe,
                exit_time: 0,
                release_time: 0,
                last_use: self.tick,
                linked: self.tick,
            },
        );
        if let Some(at) = self.pending.iter().position(|p| p.key == k) {
            let entry = self.pending.remove(at);
            if entry.received_at + PENDING_TTL <= now {
                self.stats.pending_expired += 1;
            } else {
                self.stats.pending_applied += 1;
                if let Some((uid, gid, comm, exe)) = entry.exec {
                    let r = self.recs.get_mut(&k).unwrap();
                    (r.uid, r.gid, r.comm, r.exe) = (uid, gid, comm, Some(exe));
                }
                if entry.exit_time != 0 {
                    self.exit_record(k, entry.exit_time);
                }
            }
        }
    }

    fn park(&mut self, k: ProcessKey, now: u64, fill: impl FnOnce(&mut MPending)) -> EventOutcome {
        self.stats.pending_buffered += 1;
        if !self.pending.iter().any(|p| p.key == k) {
            if self.pending.len() >= PENDING {
                let before = self.pending.len();
                self.pending.retain(|p| p.received_at + PENDING_TTL > now);
                self.stats.pending_expired += (before - self.pending.len()) as u64;
                if self.pending.len() >= PENDING {
                    let oldest = (0..self.pending.len())
                        .min_by_key(|&i| (self.pending[i].received_at, self.pending[i].key))
                        .unwrap();
                    self.pending.remove(oldest);
                    self.stats.pending_overflows += 1;
                }
            }
            self.pending.push(MPending {
                key: k,
                received_at: now,
                exec: None,
                exit_time: 0,
            });
        }
        fill(self.pending.iter_mut().find(|p| p.key == k).unwrap());
        EventOutcome::Pending
    }

    fn ancestry(&mut self, k: ProcessKey, depth: i32) -> Vec<ProcessKey> {
        let mut out = vec![];
        let mut cur = Some(k);
        while let Some(c) = cur {
            if out.len() as i64 >= i64::from(depth) || out.contains(&c) {
                break;
            }
            out.push(c);
            self.touch(c);
            cur = self.has_parent(c);
        }
        out
    }
}

/// Every held record: parent, uid, gid, name, path, exit time.
type Snapshot = BTreeMap<ProcessKey, (ProcessKey, u32, u32, String, Option<String>, u64)>;

fn snapshot(table: &ProcessTable) -> Snapshot {
    table
        .iter()
        .map(|p| {
            (
                p.key(),
                (
                    p.parent_key(),
                    p.uid(),
                    p.gid(),
                    p.name().to_owned(),
                    p.exe_path().map(str::to_owned),
                    p.exit_time().unwrap_or(0),
                ),
            )
        })
        .collect()
}

fn model_snapshot(model: &Model) -> Snapshot {
    model
        .recs
        .iter()
        .map(|(k, r)| {
            (
                *k,
                (
                    r.parent,
                    r.uid,
                    r.gid,
                    r.comm.as_str().to_owned(),
                    r.exe.map(str::to_owned),
                    r.exit_time,
                ),
            )
        })
        .collect()
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let ids: BTreeSet<u32> = (0..KEYS).map(|i| key(i).entity_id()).collect();
    prop_assert_eq!(ids.len(), KEYS, "test keys must not collide");
    let mut table = ProcessTable::new(ProcessTableConfig {
        capacity: CAPACITY,
        exit_grace_ns: GRACE,
        pending_capacity: PENDING,
        pending_ttl_ns: PENDING_TTL,
        exe_path_strings: 16,
        exe_path_bytes: 1024,
        hash_seed: 3,
    });
    let mut model = Model::default();
    let mut created = 0usize;
    let mut now = T0 + 10 * GRACE;

    for op in ops {
        match op {
            Op::Fork { parent, exe } | Op::Scan { parent, exe } => {
                if created == KEYS {
                    continue;
                }
                let is_fork = matches!(op, Op::Fork { .. });
                let k = key(created);
                let parent = match parent {
                    Some(j) if created > 0 => key(usize::from(j) % created),
                    _ => ProcessKey::default(),
                };
                let i = created as u32;
                created += 1;
                let exe = exe.map(|e| EXES[usize::from(e)]);
                let got = if is_fork {
                    table.apply_fork(
                        &ForkEvent {
                            pid: k.pid,
                            start_time: k.start_time,
                            ppid: parent.pid,
                            parent_start_time: parent.start_time,
                            uid: i,
                            gid: i + 1,
                            comm: Comm::new("forked"),
                            exe_path: exe,
                        },
                        now,
                    )
                } else {
                    table.apply_scan(
                        &ScanRecord {
                            pid: k.pid,
                            start_time: k.start_time,
                            ppid: parent.pid,
                            parent_start_time: parent.start_time,
                            uid: i,
                            gid: i + 1,
                            comm: Comm::new("scanned"),
                            exe_path: exe,
                            exe_flags: ExeFlags::NONE,
                        },
                        now,
                    )
                };
                model.stats.successes += 1;
                model.purge(now);
                if is_fork && model.recs.contains_key(&parent) {
                    model.touch(parent);
                }
                let comm = Comm::new(if is_fork { "forked" } else { "scanned" });
                model.insert(
                    k,
                    parent,
                    is_fork,
                    i,
                    i + 1,
                    comm,
                    exe,
                    is_fork && exe.is_none(),
                    now,
                );
                prop_assert_eq!(got, EventOutcome::Inserted);
            }
            Op::Refork { target, parent } => {
                if created == 0 {
                    continue;
                }
                let t = usize::from(target) % created;
                let k = key(t);
                let parent = match parent {
                    Some(j) if t > 0 => key(usize::from(j) % t),
                    _ => ProcessKey::default(),
                };
                let got = table.apply_fork(
                    &ForkEvent {
                        pid: k.pid,
                        start_time: k.start_time,
                        ppid: parent.pid,
                        parent_start_time: parent.start_time,
                        uid: 77,
                        gid: 78,
                        comm: Comm::new("reforked"),
                        exe_path: None,
                    },
                    now,
                );
                model.stats.successes += 1;
                model.purge(now);
                if model.recs.contains_key(&parent) {
                    model.touch(parent);
                }
                let want = match model.recs.get(&k).cloned() {
                    Some(r) if r.from_fork || r.parent == parent => {
                        model.recs.get_mut(&k).unwrap().from_fork = true;
                        model.stats.duplicate_events += 1;
                        EventOutcome::Duplicate
                    }
                    Some(_) => {
                        model.stats.parent_corrections += 1;
                        let before = model.pinned_set();
                        model.tick += 1;
                        let tick = model.tick;
                        let r = model.recs.get_mut(&k).unwrap();
                        r.parent = parent;
                        r.from_fork = true;
                        r.linked = tick;
                        model.settle(&before, now);
                        EventOutcome::Updated
                    }
                    None => {
                        model.insert(
                            k,
                            parent,
                            true,
                            77,
                            78,
                            Comm::new("reforked"),
                            None,
                            true,
                            now,
                        );
                        EventOutcome::Inserted
                    }
                };
                prop_assert_eq!(got, want);
            }
            Op::Exec { target, exe, uid } => {
                let k = key(usize::from(target) % KEYS);
                let path = EXES[usize::from(exe)];
                let comm = Comm::new(&path[path.rfind('/').unwrap() + 1..]);
                let uid = u32::from(uid);
                let got = table.apply_exec(
                    &ExecEvent {
                        pid: k.pid,
                        start_time: k.start_time,
                        uid,
                        gid: uid + 10,
                        comm,
                        exe_path: path,
                        invoked_path: None,
                        exe_flags: ExeFlags::NONE,
                    },
                    now,
                );
                model.stats.successes += 1;
                model.purge(now);
                let want = match model.recs.get(&k).map(|r| r.exit_time) {
                    Some(0) => {
                        let r = model.recs.get_mut(&k).unwrap();
                        (r.uid, r.gid, r.comm, r.exe) = (uid, uid + 10, comm, Some(path));
                        model.touch(k);
                        EventOutcome::Updated
                    }
                    Some(_) => {
                        model.stats.stale_events += 1;
                        EventOutcome::Ignored
                    }
                    None => model.park(k, now, |p| p.exec = Some((uid, uid + 10, comm, path))),
                };
                prop_assert_eq!(got, want);
            }
            Op::Exit { target } => {
                let k = key(usize::from(target) % KEYS);
                let got = table.apply_exit(
                    &ExitEvent {
                        pid: k.pid,
                        start_time: k.start_time,
                        exit_time: now,
                    },
                    now,
                );
                model.stats.successes += 1;
                model.purge(now);
                let want = match model.recs.get(&k).map(|r| r.exit_time) {
                    Some(0) => {
                        model.exit_record(k, now);
                        EventOutcome::Updated
                    }
                    Some(_) => {
                        model.stats.duplicate_events += 1;
                        EventOutcome::Duplicate
                    }
                    None => model.park(k, now, |p| p.exit_time = now),
                };
                prop_assert_eq!(got, want);
            }
            Op::Get { target } => {
                let k = key(usize::from(target) % KEYS);
                let got = table.get(k.entity_id(), now).ok().map(|p| p.key());
                model.purge(now);
                let want = model.recs.contains_key(&k).then_some(k);
                if want.is_some() {
                    model.stats.hits += 1;
                    model.touch(k);
                } else {
                    model.stats.misses += 1;
                }
                model.stats.successes += 1;
                prop_assert_eq!(got, want);
            }
            Op::Children { target } => {
                let k = key(usize::from(target) % KEYS);
                let got: Vec<ProcessKey> = table
                    .children(k.entity_id(), now)
                    .unwrap()
                    .map(|p| p.key())
                    .collect();
                model.purge(now);
                let want: Vec<ProcessKey> = if model.recs.contains_key(&k) {
                    model.stats.hits += 1;
                    model.touch(k);
                    model.ordered_children(k)
                } else {
                    model.stats.misses += 1;
                    Vec::new()
                };
                model.stats.successes += 1;
                prop_assert_eq!(got, want);
            }
            Op::Ancestry { target, depth } => {
                let k = key(usize::from(target) % KEYS);
                let depth = i32::from(depth);
                let got: Vec<ProcessKey> = table
                    .ancestry(k.entity_id(), depth, now)
                    .unwrap()
                    .map(|p| p.key())
                    .collect();
                model.purge(now);
                model.stats.successes += 1;
                let want = if depth <= 0 {
                    vec![]
                } else if model.recs.contains_key(&k) {
                    model.stats.hits += 1;
                    model.ancestry(k, depth)
                } else {
                    model.stats.misses += 1;
                    vec![]
                };
                prop_assert_eq!(got, want);
            }
            Op::Read { target, depth } => {
                let k = key(usize::from(target) % KEYS);
                let depth = i32::from(depth);
                // Read-only queries see the table as if purged at `now`, and change nothing.
                let mut purged = model.clone();
                purged.purge(now);
                let found = table.find(k.entity_id(), now);
                prop_assert!(!found.ambiguous);
                let want = purged.recs.contains_key(&k).then_some(k);
                prop_assert_eq!(found.process.map(|p| p.key()), want);
                prop_assert_eq!(table.find_exact(k, now).map(|p| p.key()), want);
                if let Some(p) = found.process {
                    let kids: Vec<ProcessKey> =
                        table.children_of(&p, now).map(|c| c.key()).collect();
                    prop_assert_eq!(kids, purged.ordered_children(k));
                    let chain: Vec<ProcessKey> =
                        table.ancestry_of(&p, depth, now).map(|c| c.key()).collect();
                    let want_chain = if depth <= 0 {
                        vec![]
                    } else {
                        purged.ancestry(k, depth)
                    };
                    prop_assert_eq!(chain, want_chain);
                    let read = (p.slot(), p.entity_id());
                    table.refresh_recency([read]);
                    model.touch(k);
                }
            }
            Op::Advance { ms } => now += u64::from(ms) * NANOS_PER_MILLI,
            Op::Purge => {
                table.purge_expired(now);
                model.purge(now);
                let before = model.pending.len();
                model.pending.retain(|p| p.received_at + PENDING_TTL > now);
                model.stats.pending_expired += (before - model.pending.len()) as u64;
            }
        }

        prop_assert!(table.len() <= table.capacity());
        prop_assert_eq!(snapshot(&table), model_snapshot(&model));
        let s = table.stats();
        let m = table.metrics();
        let got = MStats {
            evicted_expired: s.evicted_expired,
            evicted_exited: s.evicted_exited,
            evicted_exited_pinned: s.evicted_exited_pinned,
            evicted_live: s.evicted_live,
            duplicate_events: s.duplicate_events,
            parent_corrections: s.parent_corrections,
            stale_events: s.stale_events,
            pending_buffered: s.pending_buffered,
            pending_applied: s.pending_applied,
            pending_overflows: s.pending_overflows,
            pending_expired: s.pending_expired,
            hits: m.cache_hits,
            misses: m.cache_misses,
            successes: m.success_count,
        };
        prop_assert_eq!(&got, &model.stats);
        prop_assert_eq!(s.pending as usize, model.pending.len());
        let live = model.recs.values().filter(|r| r.exit_time == 0).count();
        prop_assert_eq!(s.live as usize, live);
        prop_assert_eq!(s.exited as usize, model.recs.len() - live);
        // Paths: one string per distinct path held by records or parked execs.
        let mut paths: BTreeSet<&str> = model.recs.values().filter_map(|r| r.exe).collect();
        paths.extend(model.pending.iter().filter_map(|p| p.exec.map(|e| e.3)));
        prop_assert_eq!(s.exe_paths as usize, paths.len());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn table_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..200)) {
        run(ops)?;
    }
}
