//! Processes through the kernel feed: a shell chain's ancestry and entity IDs, a burst of
//! short-lived real processes all seen with their exits, and an exec's resolved path. `/proc`
//! ([`ProcFacts`]) is the reference; while eBPF is active the daemon never rescans `/proc`, so
//! what it knows came from the kernel.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

use super::{CHECK_BIN, EXIT0_BIN, Mode};
use crate::client::eventually;
use crate::daemon::Daemon;
use crate::procfacts::{ProcEntry, ProcFacts};
use crate::report::{Results, Status};
use crate::wire::{Answer, Request};

/// Short-lived processes in the burst.
pub const BURST: usize = 200;
/// How long the daemon may take to know what happened (emulated guest, shared host).
const SEEN_LIMIT: Duration = Duration::from_secs(120);

fn my_pid() -> u32 {
    std::process::id()
}

fn kill_group(child: &mut Child) {
    if let Some(pid) = Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
    }
    let _ = child.wait();
}

/// `pid` and its descendants, breadth first.
fn descendants(facts: &ProcFacts, pid: u32) -> Vec<u32> {
    let all: Vec<ProcEntry> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|p| facts.entry(p))
                .collect()
        })
        .unwrap_or_default();
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(all.iter().filter(|e| e.ppid == parent).map(|e| e.pid));
        i += 1;
    }
    out
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end().to_owned())
        .unwrap_or_default()
}

fn describe(entries: &[(u32, u32)]) -> String {
    entries
        .iter()
        .map(|(pid, eid)| format!("{pid}/{eid:#010x}"))
        .collect::<Vec<_>>()
        .join(" <- ")
}

/// The shell command of the chain. The trailing `exit 0`s keep each shell a process of its
/// own: busybox's shell (like dash and bash) otherwise replaces itself with a lone last command,
/// and the "chain" would be one process.
const CHAIN: &str = "sh -c \"sleep 30; exit 0\"; exit 0";

/// `sh -c 'sh -c "sleep 30"'`: the daemon's ancestry of `sleep` equals `/proc`'s — sleep, two
/// shells, this program — pid by pid and entity ID by entity ID.
pub fn chain(daemon: &Daemon, facts: &ProcFacts, results: &mut Results) {
    let outcome = (|| {
        let mut shell = Command::new("/bin/sh")
            .args(["-c", CHAIN])
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting the shell chain: {e}"))?;
        let mut sleep = None;
        eventually(Duration::from_secs(30), || {
            sleep = descendants(facts, shell.id())
                .into_iter()
                .find(|p| comm(*p) == "sleep");
            sleep.is_some()
        });
        let result = (|| {
            let sleep = sleep.ok_or("no `sleep` under the shell chain within 30 s")?;
            let expected: Vec<(u32, u32)> = facts
                .ancestry(sleep, my_pid())
                .iter()
                .map(|e| (e.pid, e.entity_id))
                .collect();
            if expected.len() != 4 || expected.last().map(|e| e.0) != Some(my_pid()) {
                return Err(format!(
                    "/proc ancestry of sleep is not sleep <- sh <- sh <- us: {}",
                    describe(&expected)
                ));
            }
            let request = Request::Ancestry {
                entity_id: expected[0].1,
                depth: expected.len() as u32,
            };
            let answered = |a: &Answer| -> Option<Vec<(u32, u32)>> {
                match a {
                    Answer::Processes(list) => {
                        Some(list.iter().map(|p| (p.pid, p.entity_id)).collect())
                    }
                    _ => None,
                }
            };
            let reply = daemon.client.ask_until(&request, SEEN_LIMIT, |a| {
                answered(a).as_ref() == Some(&expected)
            });
            let got = reply.as_ref().map(answered);
            match got {
                Ok(Some(got)) if got == expected => Ok((
                    Status::Pass,
                    format!(
                        "{} processes, pids/entity IDs as /proc: {}",
                        expected.len(),
                        describe(&expected)
                    ),
                )),
                Ok(got) => Err(format!(
                    "ancestry of sleep: daemon {} vs /proc {}",
                    got.map(|g| describe(&g)).unwrap_or_default(),
                    describe(&expected)
                )),
                Err(e) => Err(format!(
                    "ancestry of sleep ({}) not answered: {e}",
                    describe(&expected)
                )),
            }
        })();
        kill_group(&mut shell);
        result
    })();
    results.outcome(
        "process chain ancestry",
        outcome.map_err(|e| daemon.explain(e)),
    );
}

/// Waits, without reaping, until `pid` (a child) has exited; then `/proc` still shows it.
fn wait_exited_keep_zombie(pid: u32) -> Result<(), String> {
    let pid = Pid::from_raw(pid as i32).ok_or("pid 0")?;
    rustix::process::waitid(
        WaitId::Pid(pid),
        WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
    )
    .map(drop)
    .map_err(|e| format!("waitid: {e}"))
}

/// 200 real short-lived processes (a static program that only exits): every one is in the
/// process store with its exit time, its parent and its path, and the kernel lost nothing.
pub fn burst(daemon: &Daemon, facts: &ProcFacts, mode: &Mode, results: &mut Results) {
    if let Some((status, detail)) = mode.needs_kernel_feed("seeing short-lived processes") {
        results.record("burst of 200 short-lived processes", status, &detail);
        return;
    }
    let outcome = (|| {
        let started = Instant::now();
        let mut children = Vec::with_capacity(BURST);
        for _ in 0..BURST {
            let child = Command::new(EXIT0_BIN)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("spawning: {e}"))?;
            children.push(child);
        }
        let spawned = started.elapsed();
        let mut wanted: HashMap<u32, ProcEntry> = HashMap::new();
        for child in &mut children {
            wait_exited_keep_zombie(child.id())?;
            let entry = facts
                .entry(child.id())
                .ok_or_else(|| format!("no /proc entry for zombie {}", child.id()))?;
            wanted.insert(entry.entity_id, entry);
            child.wait().map_err(|e| format!("reaping: {e}"))?;
        }
        if wanted.len() != BURST {
            return Err(format!(
                "{} distinct entity IDs for {BURST} processes",
                wanted.len()
            ));
        }
        let mut wrong = Vec::new();
        let all_seen = eventually(SEEN_LIMIT, || {
            wanted.retain(|eid, entry| {
                match daemon.client.ask(&Request::Process { entity_id: *eid }) {
                    Ok(Answer::Process(p)) if p.exit_time.is_some() => {
                        if p.pid != entry.pid
                            || p.ppid != my_pid()
                            || p.exe != EXIT0_BIN
                            || p.start_time != entry.start_time
                        {
                            wrong.push(format!(
                                "pid {} ppid {} exe {:?} start {} (expected pid {} ppid {} \
                                 start {})",
                                p.pid,
                                p.ppid,
                                p.exe,
                                p.start_time,
                                entry.pid,
                                my_pid(),
                                entry.start_time
                            ));
                        }
                        false
                    }
                    _ => true,
                }
            });
            wanted.is_empty()
        });
        let stats = daemon.client.daemon_stats()?;
        if !all_seen {
            let sample: Vec<u32> = wanted.values().take(5).map(|e| e.pid).collect();
            return Err(format!(
                "{} of {BURST} not in the store with an exit time after {} s (e.g. pids \
                 {sample:?}); kernel events lost {}",
                wanted.len(),
                SEEN_LIMIT.as_secs(),
                stats.kernel_events_lost
            ));
        }
        if !wrong.is_empty() {
            return Err(format!(
                "{} records disagree with /proc: {}",
                wrong.len(),
                wrong[..wrong.len().min(3)].join("; ")
            ));
        }
        if stats.kernel_events_lost != 0 {
            return Err(format!(
                "all seen, but the kernel lost {} events",
                stats.kernel_events_lost
            ));
        }
        Ok((
            Status::Pass,
            format!(
                "{BURST}/{BURST} seen with exit times, parent and path; 0 lost; spawned in {} ms",
                spawned.as_millis()
            ),
        ))
    })();
    results.outcome(
        "burst of 200 short-lived processes",
        outcome.map_err(|e| daemon.explain(e)),
    );
}

/// A real binary executed by its plain path: the store has that path and the name the kernel
/// gave it. (Correct whether the daemon reports the path as executed or the file resolved: for
/// a plain path without links they are the same.)
pub fn exec_path(daemon: &Daemon, facts: &ProcFacts, results: &mut Results) {
    let outcome = (|| {
        let mut child = Command::new(CHECK_BIN)
            .arg("hold")
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting {CHECK_BIN} hold: {e}"))?;
        let result = (|| {
            let entry = facts
                .entry(child.id())
                .ok_or("the held process is not in /proc")?;
            let request = Request::Process {
                entity_id: entry.entity_id,
            };
            let reply = daemon.client.ask_until(
                &request,
                SEEN_LIMIT,
                |a| matches!(a, Answer::Process(p) if !p.exe.is_empty()),
            );
            match reply {
                Ok(Answer::Process(p)) if p.exe == CHECK_BIN && p.name == "watchpost-guest" => {
                    Ok((
                        Status::Pass,
                        format!("pid {} exe {} name {}", p.pid, p.exe, p.name),
                    ))
                }
                Ok(other) => Err(format!(
                    "expected exe {CHECK_BIN} name watchpost-guest, got {other:?}"
                )),
                Err(e) => Err(format!("pid {} not answered: {e}", entry.pid)),
            }
        })();
        kill_group(&mut child);
        result
    })();
    results.outcome(
        "exec of a real binary: resolved path",
        outcome.map_err(|e| daemon.explain(e)),
    );
}
