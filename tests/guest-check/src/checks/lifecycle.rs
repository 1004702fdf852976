//! The daemon's life: how it says it collects (eBPF, or polling and why), its clean exit on
//! SIGTERM, and its fallback when the kernel cannot give it what eBPF needs — shown here by
//! starting it again with cgroup v2 unmounted.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{CHECK_BIN, Mode};
use crate::daemon::{Daemon, SOCKET};
use crate::expect::Expectations;
use crate::procfacts::ProcFacts;
use crate::report::{Results, Status, fact};
use crate::wire::{Answer, Request};

/// The `ms=` value on the daemon's "eBPF collector attached" log line.
fn ebpf_load_ms(log: &str) -> Option<u64> {
    let line = log
        .lines()
        .find(|l| l.contains("eBPF collector attached"))?;
    let value = line.split("ms=").nth(1)?;
    value
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Reports how the daemon collects and checks it against what this kernel should allow.
pub fn collection_mode(daemon: &Daemon, expect: &Expectations, results: &mut Results) -> Mode {
    const CHECK: &str = "eBPF collector loaded";
    let health = daemon.client.daemon_health();
    let stats = daemon.client.daemon_stats();
    let (health, stats) = match (health, stats) {
        (Ok(h), Ok(s)) => (h, s),
        (h, s) => {
            let why = format!("health {h:?}, metrics {s:?}");
            results.record(CHECK, Status::Fail, &why);
            return Mode::Polling {
                reason: why,
                expected: false,
            };
        }
    };
    if stats.ebpf_active {
        let ms = ebpf_load_ms(&daemon.log());
        fact(
            "ebpf",
            &format!(
                "loaded in {} ms",
                ms.map(|m| m.to_string()).unwrap_or_else(|| "?".into())
            ),
        );
        if expect.ebpf_expected() {
            results.record(CHECK, Status::Pass, &health.message);
        } else {
            let lacks: Vec<&str> = expect.lacks.iter().map(|l| l.feature.as_str()).collect();
            results.record(
                CHECK,
                Status::Fail,
                &format!(
                    "the kernel lacks {lacks:?}, yet the daemon says: {}",
                    health.message
                ),
            );
        }
        return Mode::Kernel;
    }
    let reason = health.message.clone();
    fact("ebpf", &format!("refused: {reason}"));
    let log = daemon.log_lines("eBPF");
    if expect.ebpf_expected() {
        results.record(
            CHECK,
            Status::Fail,
            &format!("the daemon did not load eBPF: {reason}\ndaemon log:\n{log}"),
        );
        return Mode::Polling {
            reason,
            expected: false,
        };
    }
    // The kernel lacks something: the daemon must name it and poll.
    let named = expect
        .lacks
        .iter()
        .any(|l| reason.to_lowercase().contains(&l.word.to_lowercase()));
    if health.status == "degraded" && reason.contains("polling") && named {
        results.record(CHECK, Status::Expected, &reason);
        Mode::Polling {
            reason,
            expected: true,
        }
    } else {
        let words: Vec<&str> = expect.lacks.iter().map(|l| l.word.as_str()).collect();
        results.record(
            CHECK,
            Status::Fail,
            &format!(
                "the kernel lacks a feature the daemon must name ({words:?}) while it falls \
                 back to polling; it said: {} {reason}\ndaemon log:\n{log}",
                health.status
            ),
        );
        Mode::Polling {
            reason,
            expected: false,
        }
    }
}

/// SIGTERM: exit status 0, socket removed, no panic in the log.
pub fn clean_exit(daemon: &mut Daemon, results: &mut Results) {
    let outcome = match daemon.stop() {
        Err(e) => Err(e),
        Ok((status, took)) => {
            let log = daemon.log();
            if !status.success() {
                Err(format!(
                    "exit status {status}; daemon log:\n{}",
                    daemon.log_lines("shutting")
                ))
            } else if Path::new(SOCKET).exists() {
                Err(format!("exited 0 but left its socket {SOCKET}"))
            } else if log.contains("panicked") {
                Err(format!("exited 0 but logged a panic:\n{log}"))
            } else {
                Ok((
                    Status::Pass,
                    format!(
                        "exit 0 {} ms after SIGTERM, socket removed",
                        took.as_millis()
                    ),
                ))
            }
        }
    };
    results.outcome("clean exit on SIGTERM", outcome);
}

fn mount_cgroup2() -> Result<(), String> {
    let status = Command::new("mount")
        .args(["-t", "cgroup2", "cgroup2", "/sys/fs/cgroup"])
        .status()
        .map_err(|e| format!("mount: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("mounting cgroup2 again: {status}"))
}

/// With cgroup v2 unmounted the eBPF collector cannot attach its DNS program: the daemon must
/// say so in `query health`, poll `/proc` instead (a new process still shows up, with its path),
/// and still exit cleanly.
pub fn fallback_without_cgroup2(facts: &ProcFacts, results: &mut Results) {
    const CHECK: &str = "fallback to polling without cgroup v2";
    let unmounted = Command::new("umount")
        .arg("/sys/fs/cgroup")
        .status()
        .map_err(|e| format!("umount: {e}"))
        .and_then(|s| {
            s.success()
                .then_some(())
                .ok_or_else(|| format!("umount /sys/fs/cgroup: {s}"))
        });
    if let Err(e) = unmounted {
        results.record(CHECK, Status::Fail, &e);
        return;
    }
    let outcome = (|| {
        let mut daemon = Daemon::start(Path::new("/run/wp-no-cgroup2"))?;
        let health = daemon.client.daemon_health()?;
        let stats = daemon.client.daemon_stats()?;
        if stats.ebpf_active
            || health.status != "degraded"
            || !health.message.contains("polling")
            || !health.message.contains("cgroup")
        {
            return Err(format!(
                "expected a degraded daemon naming cgroup v2 and polling; health {} {:?}, eBPF \
                 active {}",
                health.status, health.message, stats.ebpf_active
            ));
        }
        let mut child = Command::new(CHECK_BIN)
            .arg("hold")
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {CHECK_BIN} hold: {e}"))?;
        let seen = facts.entry(child.id()).map(|entry| {
            daemon.client.ask_until(
                &Request::Process {
                    entity_id: entry.entity_id,
                },
                Duration::from_secs(120),
                |a| matches!(a, Answer::Process(p) if p.exe == CHECK_BIN),
            )
        });
        let _ = child.kill();
        let _ = child.wait();
        match seen {
            Some(Ok(Answer::Process(p))) if p.exe == CHECK_BIN => {}
            other => return Err(format!("a new process was not found by polling: {other:?}")),
        }
        let (status, _) = daemon.stop()?;
        if !status.success() {
            return Err(format!("exit status {status} after SIGTERM"));
        }
        Ok((
            Status::Pass,
            format!(
                "daemon said \"{}\"; a new process was found by polling; exit 0",
                health.message
            ),
        ))
    })();
    if let Err(e) = mount_cgroup2() {
        results.record("cgroup2 mounted again", Status::Fail, &e);
    }
    results.outcome(CHECK, outcome);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_load_time_from_the_log() {
        let log = "2026-12-06T00:00:00Z  INFO watchpost::daemon: eBPF collector attached: the \
                   kernel feeds the stores ms=812 module_loads=Attached\n";
        assert_eq!(ebpf_load_ms(log), Some(812));
        assert_eq!(ebpf_load_ms("nothing"), None);
    }
}
