//! The steps `cargo xtask test` adds for what ships (after the workspace's own tests): the
//! aarch64 tests under qemu, the stripped binaries of both architectures, and the Debian
//! packages — built, the amd64 one installed, run as its unit would run it, removed, purged.

use std::process::Command;
use std::time::Instant;

/// One step: what it checks, and the command that checks it.
pub struct Step {
    /// Printed before and after.
    pub what: &'static str,
    /// Runs the step (cargo, or this xtask's own subcommand).
    pub command: Command,
}

/// The steps, in order (each needs the previous: the aarch64 build reuses the host's eBPF
/// object, the packages take the binaries from `target/dist`).
pub fn steps() -> Vec<Step> {
    let xtask = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO"));
        c.args(["xtask"]).args(args);
        c
    };
    vec![
        Step {
            what: "aarch64 tests under qemu-aarch64 (no bpf(): collector.ebpf = off)",
            command: crate::aarch64_tests::command(),
        },
        Step {
            what: "stripped binaries for x86_64 and aarch64 (target/dist)",
            command: xtask(&["dist"]),
        },
        Step {
            what: "Debian packages: build both, install/run/remove/purge amd64",
            command: xtask(&["deb", "--test"]),
        },
    ]
}

/// Runs `steps`, one line before and one after each; false at the first failure.
pub fn run(steps: Vec<Step>) -> bool {
    for Step { what, mut command } in steps {
        let started = Instant::now();
        eprintln!("xtask test: {what}: {command:?}");
        match command.status() {
            Ok(status) if status.success() => {
                eprintln!("xtask test: {what}: ok in {:.1?}", started.elapsed());
            }
            Ok(status) => {
                eprintln!("xtask test: {what}: FAILED ({status})");
                return false;
            }
            Err(err) => {
                eprintln!("xtask test: {what}: could not run: {err}");
                return false;
            }
        }
    }
    true
}
