//! The checks, in the order the guest runs them: the kernel booted is the one asked for; the
//! daemon starts and says how it collects; a process chain, a burst of short-lived processes,
//! an exec path, a DNS answer and a module load and unload reach its stores; the cgroup programs
//! are attached and container cgroups created, emptied, filled and removed reach the container
//! store; it exits cleanly;
//! and, started again without cgroup v2, it says why it cannot use eBPF and polls instead.

mod containers;
mod dns;
mod lifecycle;
mod modules;
mod processes;

use std::path::Path;
use std::process::ExitCode;

use crate::daemon::Daemon;
use crate::expect::Expectations;
use crate::procfacts::ProcFacts;
use crate::report::{Results, Status, fact};

/// The check program itself, a real (non-busybox) binary the checks execute.
pub const CHECK_BIN: &str = "/usr/bin/watchpost-guest-check";
/// The burst's program: a static ELF that only calls `exit_group(0)` (written by the host).
pub const EXIT0_BIN: &str = "/usr/bin/watchpost-exit0";

/// How the daemon collects on this kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The eBPF collector feeds the stores.
    Kernel,
    /// It polls `/proc`; the daemon's reason, and whether this kernel was expected to need it.
    Polling {
        /// The daemon's own words (`query health`).
        reason: String,
        /// The kernel lacks a feature, so this is the expected result.
        expected: bool,
    },
}

impl Mode {
    /// For a check that needs the kernel feed: `None` to go on, or the result to record
    /// instead (expected on a kernel that lacks a feature, a failure otherwise).
    fn needs_kernel_feed(&self, what: &str) -> Option<(Status, String)> {
        match self {
            Mode::Kernel => None,
            Mode::Polling {
                reason,
                expected: true,
            } => Some((
                Status::Expected,
                format!("{what} needs the eBPF collector; the daemon said: {reason}"),
            )),
            Mode::Polling {
                reason,
                expected: false,
            } => Some((
                Status::Fail,
                format!("{what} needs the eBPF collector, which did not load: {reason}"),
            )),
        }
    }
}

/// Runs every check and prints the results; fails if any check failed.
pub fn run_all() -> ExitCode {
    let mut results = Results::default();
    let ok = run(&mut results);
    results.done();
    if ok && !results.any_failed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|e| format!("unreadable: {e}"))
}

fn run(results: &mut Results) -> bool {
    let expect = match Expectations::load() {
        Ok(e) => e,
        Err(e) => {
            results.record("expectations", Status::Fail, &e);
            return false;
        }
    };
    let release = read_trimmed("/proc/sys/kernel/osrelease");
    fact("kernel", &release);
    fact(
        "arch",
        rustix::system::uname().machine().to_str().unwrap_or("?"),
    );
    let btf = std::fs::metadata("/sys/kernel/btf/vmlinux").map(|m| m.len());
    fact(
        "btf",
        &match btf {
            Ok(len) => format!("present ({len} bytes)"),
            Err(e) => format!("absent ({e})"),
        },
    );
    if release != expect.kernel {
        results.record(
            "kernel booted",
            Status::Fail,
            &format!("booted {release}, expected {}", expect.kernel),
        );
        return false;
    }
    results.record("kernel booted", Status::Pass, &release);
    let facts = match ProcFacts::new() {
        Ok(f) => f,
        Err(e) => {
            results.record("proc facts", Status::Fail, &e);
            return false;
        }
    };

    match Daemon::start(Path::new("/run/wp-main")) {
        Err(e) => results.record("daemon start", Status::Fail, &e),
        Ok(mut daemon) => {
            fact(
                "daemon_ready_ms",
                &daemon.ready_after.as_millis().to_string(),
            );
            let mode = lifecycle::collection_mode(&daemon, &expect, results);
            processes::chain(&daemon, &facts, results);
            processes::burst(&daemon, &facts, &mode, results);
            processes::exec_path(&daemon, &facts, results);
            dns::answer(&daemon, &mode, results);
            modules::load_and_unload(&daemon, &expect, &mode, results);
            containers::cgroup_events(&daemon, &mode, results);
            lifecycle::clean_exit(&mut daemon, results);
        }
    }
    lifecycle::fallback_without_cgroup2(&facts, results);
    true
}
