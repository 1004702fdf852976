//! `cargo xtask`: the project's build helper (one quick-to-compile binary, no dependencies).
//!
//! A small subcommand dispatcher; each command lives in its own module. Run `cargo xtask help`.

mod aarch64_tests;
mod cpu_hog;
mod cross_image;
mod deb;
mod dist;
mod gen_syscalls;
mod install;
mod kernels;
mod man_page;
mod run_command;
mod ship_steps;
mod soak;
mod syscall_tbl;
mod test_command;

use std::path::PathBuf;
use std::process::ExitCode;

/// One line per command, printed by `cargo xtask help` and on a usage error.
const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  gen-syscalls [--check]   generate core/src/syscall/{x86_64,aarch64}.rs from the kernel's
                           syscall tables in core/syscall-tables/; with --check, write nothing
                           and fail if the committed files are stale
  kernels [--arch A]... [--kernel K]... [--timeout S]
                           boot Debian's kernels (default: 6.1 and the newest, x86_64 and
                           aarch64) under qemu and run the eBPF checks inside each
  test [--fuzz-seconds N]  install what the tests need when missing, then run every test suite,
                           the bare-metal builds, the generated-code check, a fuzz smoke run of
                           N seconds per target (default 10), a 3-minute soak (--no-soak leaves
                           it out), the aarch64 tests under qemu, the shipped binaries, and the
                           packages with the service unit
  test --under-load        run the test suites while a busy thread per core loads the machine
  soak [--minutes N] [--processes N] [--dns N] [--budget-mib N] [--ci] [--no-build]
                           run the release daemon under real process, DNS and query load,
                           sample its RSS every second; fail over the budget (28 MiB) or on
                           an upward trend (defaults: 1 M lifecycles, 1 M answers, 12 min)
  man [--out DIR]          write the watchpost(1) man page (default target/man/watchpost.1)
  run [ARGS...]            install the eBPF build's pieces when missing, build the release
                           daemon and run it (`watchpost run ARGS...`; none: embedded default)
  dist                     stripped release binaries at target/dist/{x86_64,aarch64}/watchpost
  deb [--test]             Debian packages for amd64 and arm64 in target/dist/ (after `dist`);
                           --test installs the amd64 one here, runs it, removes and purges it
  cross-image              build the local `cross` image for aarch64 from Debian packages
                           (debootstrap + podman import) and run a real `cross build` with it
  install [--ci]           install what `test` needs (with --ci: also clippy and rustfmt)
  help                     print this text
";

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let xtask = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().map(PathBuf::from).unwrap_or(xtask)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Every command works with paths relative to the workspace root (scripts, target/).
    if let Err(e) = std::env::set_current_dir(workspace_root()) {
        eprintln!("xtask: cannot enter the workspace root: {e}");
        return ExitCode::FAILURE;
    }
    let Some((command, options)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    match command.as_str() {
        "gen-syscalls" => gen_syscalls::run(options),
        "kernels" => kernels::run(options),
        "test" => test_command::run(options),
        "man" => man_page::run(options),
        "soak" => soak::run(options),
        "run" => run_command::run(options),
        "dist" => dist::run(options),
        "deb" => deb::run(options),
        "cross-image" => cross_image::run(options),
        "install" => match options {
            [] => install_command(install::Purpose::Test { fuzz: true }),
            [ci] if ci == "--ci" => install_command(install::Purpose::Ci),
            other => {
                eprintln!("xtask install: unexpected arguments {other:?} (expected: [--ci])");
                ExitCode::from(2)
            }
        },
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("unknown command `{other}`");
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn install_command(purpose: install::Purpose) -> ExitCode {
    match install::ensure(purpose) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask install: {e}");
            ExitCode::FAILURE
        }
    }
}
