//! `cargo xtask`: the project's build helper (one quick-to-compile binary, no dependencies).
//!
//! A small subcommand dispatcher; each command lives in its own module. Run `cargo xtask help`.

mod cpu_hog;
mod gen_syscalls;
mod kernels;
mod man_page;
mod soak;
mod syscall_tbl;
mod test_command;

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
  test [--fuzz-seconds N]  run every test suite, the bare-metal builds, the generated-code
                           check and a fuzz smoke run of N seconds per target (default 10)
                           and a 3-minute soak (--no-soak leaves it out)
  test --under-load        run the test suites while a busy thread per core loads the machine
  soak [--minutes N] [--processes N] [--dns N] [--budget-mib N] [--ci] [--no-build]
                           run the release daemon under real process, DNS and query load,
                           sample its RSS every second; fail over the budget (33 MiB) or on
                           an upward trend (defaults: 1 M lifecycles, 1 M answers, 12 min)
  man [--out DIR]          write the watchpost(1) man page (default target/man/watchpost.1)
  help                     print this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
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
