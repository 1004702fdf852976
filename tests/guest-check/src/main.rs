//! `watchpost-guest-check`: the program `cargo xtask kernels` runs inside each guest kernel.
//!
//! It starts the daemon under test, drives real processes, a DNS answer and a module load,
//! asks the daemon about them on its query socket, stops it, and prints one result line per
//! check on the console for the host to read ([`report`]). The host never trusts an exit code
//! alone: a guest that prints no `done` line failed.
//!
//! The same binary is also the real, non-busybox program the exec check runs (`hold`): busybox
//! applets re-execute `/proc/self/exe` and show up as `exe`, which would prove nothing about exec
//! paths. (The burst runs `/usr/bin/watchpost-exit0`, a minimal static program the host writes.)

mod checks;
mod client;
mod daemon;
mod dns_server;
mod expect;
mod procfacts;
mod report;
mod wire;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => checks::run_all(),
        // A real program that stays until its parent kills it.
        Some("hold") => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        _ => {
            eprintln!("usage: watchpost-guest-check run | hold");
            ExitCode::from(2)
        }
    }
}
