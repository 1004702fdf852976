//! The cgroup programs on this kernel: `cgroup_mkdir`, `cgroup_rmdir` and
//! `cgroup_notify_populated` attached (or named by the daemon as what the kernel lacks), and
//! their records reaching the container store.
//!
//! Only the kernel can tell the daemon here: while eBPF feeds the stores the guest's daemon does
//! not rescan `/proc` (reconciliation once an hour) and no runtime socket exists, so a container
//! cgroup created empty, emptied, filled again and removed is seen through the programs alone.
//! The cgroups follow systemd's Docker layout (`/system.slice/docker-<id>.scope`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{CHECK_BIN, Mode};
use crate::daemon::Daemon;
use crate::report::{Results, Status, fact};
use crate::wire::{Answer, Request};

/// How long the daemon may take to show a change (emulated guest on a busy host).
const LIMIT: Duration = Duration::from_secs(120);
/// The cgroup programs, by attach point.
pub const CGROUP_PROGRAMS: [&str; 3] = ["cgroup_mkdir", "cgroup_rmdir", "cgroup_notify_populated"];
/// Where systemd puts Docker's container cgroups.
const SLICE: &str = "/sys/fs/cgroup/system.slice";

/// A 64-hex container ID made from `seed` (distinct per check and per run).
fn container_id(seed: u64) -> String {
    let word = format!("{seed:016x}");
    word.repeat(4)
}

/// Runs the cgroup checks (each needs the kernel feed).
pub fn cgroup_events(daemon: &Daemon, mode: &Mode, results: &mut Results) {
    const ATTACHED: &str = "eBPF cgroup programs attached";
    if let Some((status, detail)) = mode.needs_kernel_feed("the cgroup programs") {
        for name in [
            ATTACHED,
            "container cgroup created and removed",
            "container cgroup emptied and filled",
        ] {
            results.record(name, status, &detail);
        }
        return;
    }
    results.outcome(ATTACHED, attached(daemon));
    let pid = u64::from(std::process::id());
    results.outcome(
        "container cgroup created and removed",
        created_and_removed(daemon, &container_id(0xc0de_0000_0000_0000 | pid)),
    );
    results.outcome(
        "container cgroup emptied and filled",
        emptied_and_filled(daemon, &container_id(0xfee1_0000_0000_0000 | pid)),
    );
    if let Ok(s) = daemon.client.daemon_stats() {
        fact("ebpf_attached", &s.ebpf_attached.join(" "));
    }
}

/// Every cgroup program attached. One missing fails: every kernel the collector loads on
/// (≥ 5.8, for the ring buffer) has these attach points, so a missing one is a layout the
/// programs no longer match — the daemon must still have named it, and its words are quoted.
fn attached(daemon: &Daemon) -> Result<(Status, String), String> {
    let stats = daemon.client.daemon_stats()?;
    let missing: Vec<&str> = CGROUP_PROGRAMS
        .into_iter()
        .filter(|p| !stats.ebpf_attached.iter().any(|a| a == p))
        .collect();
    if missing.is_empty() {
        return Ok((Status::Pass, CGROUP_PROGRAMS.join(", ")));
    }
    let health = daemon.client.daemon_health()?;
    let named = missing.iter().all(|m| {
        stats.ebpf_unavailable.iter().any(|u| u.contains(m)) && health.message.contains(m)
    });
    Err(format!(
        "not attached: {missing:?}; the daemon {} them: unavailable {:?}, health \"{}\"",
        if named { "named" } else { "did NOT name" },
        stats.ebpf_unavailable,
        health.message
    ))
}

/// Whether the daemon lists container `id` (as Docker's) now.
fn listed(daemon: &Daemon, id: &str) -> Result<bool, String> {
    match daemon.client.ask(&Request::Containers)? {
        Answer::Containers(all) => Ok(all.iter().any(|c| c.id == id && c.runtime == "docker")),
        other => Err(format!("containers answered {other:?}")),
    }
}

/// Waits until the daemon lists `id` (`want`) or no longer does (`!want`).
fn wait_listed(daemon: &Daemon, id: &str, want: bool, after: &str) -> Result<(), String> {
    let reply = daemon.client.ask_until(&Request::Containers, LIMIT, |a| {
        matches!(a, Answer::Containers(all)
                if all.iter().any(|c| c.id == id && c.runtime == "docker") == want)
    });
    match listed(daemon, id) {
        Ok(now) if now == want => Ok(()),
        _ => Err(daemon.explain(format!(
            "{after}: container {id} {} within {} s; last answer {reply:?}",
            if want { "not listed" } else { "still listed" },
            LIMIT.as_secs()
        ))),
    }
}

/// The container's cgroup directory, removed (with any process left in it killed) on drop.
struct ContainerCgroup {
    dir: PathBuf,
    children: Vec<Child>,
}

impl ContainerCgroup {
    fn create(id: &str) -> Result<ContainerCgroup, String> {
        std::fs::create_dir_all(SLICE).map_err(|e| format!("{SLICE}: {e}"))?;
        let dir = Path::new(SLICE).join(format!("docker-{id}.scope"));
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(ContainerCgroup {
            dir,
            children: Vec::new(),
        })
    }

    /// A real program started inside the cgroup (a shell moves itself in, then execs it).
    fn start_inside(&mut self) -> Result<(), String> {
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec {CHECK_BIN} hold",
            self.dir.display()
        );
        let child = Command::new("/bin/sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("sh: {e}"))?;
        self.children.push(child);
        let procs = self.dir.join("cgroup.procs");
        let entered = crate::client::eventually(LIMIT, || {
            std::fs::read_to_string(&procs).is_ok_and(|p| !p.trim().is_empty())
        });
        entered
            .then_some(())
            .ok_or_else(|| format!("no process entered {}", self.dir.display()))
    }

    /// Kills and reaps what runs inside; the cgroup is empty once the kernel says so.
    fn stop_inside(&mut self) -> Result<(), String> {
        for mut child in self.children.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let events = self.dir.join("cgroup.events");
        let emptied = crate::client::eventually(LIMIT, || {
            std::fs::read_to_string(&events).is_ok_and(|e| e.contains("populated 0"))
        });
        emptied
            .then_some(())
            .ok_or_else(|| format!("{} did not empty", self.dir.display()))
    }

    fn remove(&mut self) -> Result<(), String> {
        self.stop_inside()?;
        std::fs::remove_dir(&self.dir).map_err(|e| format!("rmdir {}: {e}", self.dir.display()))
    }
}

impl Drop for ContainerCgroup {
    fn drop(&mut self) {
        if self.dir.exists() {
            let _ = self.remove();
        }
    }
}

/// An empty container cgroup appears (`cgroup_mkdir`) and goes (`cgroup_rmdir`).
fn created_and_removed(daemon: &Daemon, id: &str) -> Result<(Status, String), String> {
    let mut cgroup = ContainerCgroup::create(id)?;
    wait_listed(daemon, id, true, "after mkdir")?;
    cgroup.remove()?;
    wait_listed(daemon, id, false, "after rmdir")?;
    Ok((
        Status::Pass,
        format!(
            "{} listed after mkdir, gone after rmdir",
            cgroup.dir.display()
        ),
    ))
}

/// A container whose last process left is gone while its cgroup stays, and back when a process
/// enters again (`cgroup_notify_populated`, both ways); then removed with its cgroup.
fn emptied_and_filled(daemon: &Daemon, id: &str) -> Result<(Status, String), String> {
    let mut cgroup = ContainerCgroup::create(id)?;
    wait_listed(daemon, id, true, "after mkdir")?;
    cgroup.start_inside()?;
    cgroup.stop_inside()?;
    wait_listed(daemon, id, false, "after its last process left")?;
    cgroup.start_inside()?;
    wait_listed(daemon, id, true, "after a process entered again")?;
    cgroup.remove()?;
    wait_listed(daemon, id, false, "after rmdir")?;
    Ok((
        Status::Pass,
        "gone when emptied (cgroup kept), back when filled, gone after rmdir".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_docker_shaped_and_distinct() {
        let a = container_id(0xc0de_0000_0000_0007);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, container_id(0xfee1_0000_0000_0007));
    }
}
