//! `cargo xtask run [ARGS…]`: the one command that starts the daemon on a fresh machine. It
//! installs the eBPF build's pieces when they are missing, builds the release binary, and
//! replaces itself with `watchpost run ARGS…` (no arguments: the embedded default
//! configuration), so signals (Ctrl-C, SIGTERM) reach the daemon directly.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use crate::install::{self, Purpose};

pub fn run(options: &[String]) -> ExitCode {
    if let Err(e) = install::ensure(Purpose::Run) {
        eprintln!("xtask run: {e}");
        return ExitCode::FAILURE;
    }
    if !install::is_root() {
        eprintln!(
            "xtask run: not root: the kernel will refuse eBPF (the daemon then polls /proc) and \
             the default socket /run/watchpost/watchpost.sock needs root; pass --socket PATH \
             --data-dir DIR to run unprivileged"
        );
    }
    eprintln!("xtask run: building the release binary");
    let built = Command::new(env!("CARGO"))
        .args(["build", "--locked", "--release", "-p", "watchpost"])
        .env_remove("WATCHPOST_EBPF_OBJECT")
        .status();
    match built {
        Ok(status) if status.success() => {}
        Ok(status) => {
            eprintln!("xtask run: the build failed ({status})");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("xtask run: cannot run cargo: {e}");
            return ExitCode::FAILURE;
        }
    }
    let binary = crate::dist::target_dir().join("release").join("watchpost");
    eprintln!("xtask run: {} run {}", binary.display(), options.join(" "));
    // Only returns on failure.
    let error = Command::new(&binary).arg("run").args(options).exec();
    eprintln!("xtask run: cannot start {}: {error}", binary.display());
    ExitCode::FAILURE
}
