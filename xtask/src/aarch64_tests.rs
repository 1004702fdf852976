//! The aarch64 step of `cargo xtask test`: the workspace's tests built for
//! `aarch64-unknown-linux-gnu` (release) and run under `qemu-aarch64` (the runner in
//! `.cargo/config.toml`) — everything that needs no kernel privilege the emulator lacks.
//!
//! - The eBPF object is the one the host build made (`WATCHPOST_EBPF_OBJECT`): built once,
//!   embedded in both architectures' binaries.
//! - qemu-user has no `bpf()` (ENOSYS): the eBPF kernel tests are skipped on purpose
//!   (`WATCHPOST_SKIP_EBPF_TESTS=1`, they ran natively in the step before), daemons under test
//!   run with `collector.ebpf = "off"` (`WATCHPOST_TEST_EBPF`), and `tests/emulation.rs`
//!   checks that `auto` takes the degraded path (`WATCHPOST_TEST_UNDER_EMULATION=1` makes it
//!   fail rather than skip).
//! - An emulated test cannot exec an aarch64 binary directly, so spawned daemons and CLIs go
//!   through the same qemu command (`WATCHPOST_TEST_RUNNER`).
//! - [`EMULATION_SKIPS`] lists the tests whose *reference* is wrong under emulation, each with
//!   the reason; they run natively in the step before.
//! - The container-runtime tests drive podman and containerd as root (`WATCHPOST_SKIP_RUNTIME_TESTS`)
//!   and the kill -9 crash loop runs 20 rounds, not 200 (`WATCHPOST_CRASH_LOOP_ROUNDS`): both ran
//!   in full natively; under emulation they would only multiply the step's time.

use std::process::Command;

use crate::install::AARCH64_TARGET;

/// The qemu-user command that runs aarch64 binaries here (also `.cargo/config.toml`'s runner).
pub const QEMU_RUNNER: &str = "qemu-aarch64 -L /usr/aarch64-linux-gnu";

/// Tests that cannot hold under user-mode emulation, and why.
pub const EMULATION_SKIPS: &[(&str, &str)] = &[
    // qemu-user answers a process's reads of its *own* /proc/<pid>/stat with a synthesized line
    // (state "0", most fields 0, an approximate start time), which the core's parser rightly
    // refuses; these tests read their own stat as the reference (the daemon under test reads
    // other processes' files, which are real).
    (
        "procfs::tests::this_process_reads_back_consistently",
        "reads its own /proc/self/stat (synthesized by qemu-user)",
    ),
    (
        "rescans_turn_processes_into_events_and_refill_a_restarted_store",
        "looks itself up by its own /proc/self/stat (synthesized by qemu-user)",
    ),
    (
        "process_queries_agree_with_proc",
        "walks the expected ancestry through its own /proc/self/stat (synthesized by qemu-user)",
    ),
    (
        "a_container_running_a_binary_from_tmp_is_reported",
        "its parent entry comes from its own /proc/self/stat (synthesized by qemu-user)",
    ),
    (
        "every_stat_file_of_this_machine",
        "includes its own /proc/self/stat (synthesized by qemu-user)",
    ),
    (
        "this_process_start_time_from_proc",
        "parses its own /proc/self/stat (synthesized by qemu-user)",
    ),
    // The daemon under emulation reads its own /proc/<pid>/stat (synthesized), so it cannot
    // describe itself; these ask it about its own process.
    (
        "a_missing_runtime_socket_is_reported_and_queries_keep_answering",
        "asks the daemon about its own process (its own stat is synthesized by qemu-user)",
    ),
    (
        "garbage_silence_and_100_mb_answers_stay_bounded",
        "asks the daemon about its own process (its own stat is synthesized by qemu-user)",
    ),
    // Expects a producer that outruns the store actor; emulated, the producer is the slow side.
    (
        "a_flood_is_refused_and_counted_never_buffered",
        "relative speed of producer and consumer differs under emulation",
    ),
];

/// Crates never built for aarch64 Linux: the bare-metal firmware (thumbv7em only), the eBPF
/// programs (bpfel only) and the build helper.
const EXCLUDED: &[&str] = &["watchpost-baremetal", "watchpost-ebpf-programs", "xtask"];

/// The cargo invocation (program and arguments) and its environment.
pub fn command() -> Command {
    let mut cargo = Command::new(env!("CARGO"));
    // The host build's object, as `dist` and the kernel matrix embed it; without one (no host
    // build yet) the aarch64 build makes its own.
    match crate::dist::stable_ebpf_object(&crate::dist::target_dir()) {
        Ok(Some(object)) => {
            cargo.env("WATCHPOST_EBPF_OBJECT", object);
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("xtask test: the shared eBPF object: {e}; the aarch64 build makes its own")
        }
    }
    cargo.args([
        "test",
        "--locked",
        "--release",
        "--target",
        AARCH64_TARGET,
        "--workspace",
    ]);
    for excluded in EXCLUDED {
        cargo.args(["--exclude", excluded]);
    }
    cargo.arg("--");
    for (test, _why) in EMULATION_SKIPS {
        cargo.args(["--skip", test]);
    }
    cargo
        .env("WATCHPOST_SKIP_EBPF_TESTS", "1")
        .env("WATCHPOST_TEST_RUNNER", QEMU_RUNNER)
        .env("WATCHPOST_TEST_EBPF", "off")
        .env("WATCHPOST_TEST_UNDER_EMULATION", "1")
        .env("WATCHPOST_SKIP_RUNTIME_TESTS", "1")
        .env("WATCHPOST_CRASH_LOOP_ROUNDS", "20");
    cargo
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runner_matches_cargo_config() {
        let config = std::fs::read_to_string(crate::workspace_root().join(".cargo/config.toml"))
            .expect(".cargo/config.toml");
        assert!(
            config.contains(&format!("runner = \"{QEMU_RUNNER}\"")),
            "runner in .cargo/config.toml differs from {QEMU_RUNNER}"
        );
    }

    #[test]
    fn every_skip_says_why() {
        for (test, why) in EMULATION_SKIPS {
            assert!(!test.is_empty() && why.len() > 10, "{test}: {why}");
        }
    }
}
