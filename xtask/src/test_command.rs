//! `cargo xtask test`: the project's one test entry point, the command the README names and CI
//! runs. It runs every test suite, proves the core still builds bare-metal, checks that generated
//! code is current, and gives each fuzz target a short smoke run.
//!
//! Last comes the 3-minute soak (`cargo xtask soak --ci`: the shipped daemon under load, RSS
//! against its budget); `--no-soak` or `WATCHPOST_SKIP_PRIVILEGED_TESTS=1` leaves it out (it
//! needs root for eBPF and dnsmasq on port 53).
//!
//! `--under-load` runs the test suites only, while a CPU hog keeps every core busy
//! ([`crate::cpu_hog`]): the proof that no test depends on the machine's speed.

use std::process::{Command, ExitCode};
use std::time::Instant;

/// Seconds each fuzz target runs by default; `--fuzz-seconds N` overrides, 0 skips fuzzing.
const DEFAULT_FUZZ_SECONDS: u64 = 10;

/// The fuzz targets under `fuzz/fuzz_targets/`.
pub const FUZZ_TARGETS: &[&str] = &["kallsyms", "cgroup", "os_release", "dns", "proc_stat"];

/// What `cargo xtask test` was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TestOptions {
    fuzz_seconds: u64,
    under_load: bool,
    soak: bool,
}

pub fn run(options: &[String]) -> ExitCode {
    let options = match parse_options(options) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("xtask test: {message}");
            return ExitCode::from(2);
        }
    };
    if options.under_load {
        return run_under_load();
    }
    let fuzz_seconds = options.fuzz_seconds;
    let mut steps: Vec<(&str, Vec<&str>)> = vec![
        ("unit, integration and doc tests", vec!["test", "--locked"]),
        (
            "core tests with serde",
            vec![
                "test",
                "--locked",
                "-p",
                "watchpost-core",
                "--features",
                "serde",
            ],
        ),
        (
            "core builds no_std without features",
            vec![
                "build",
                "--locked",
                "-p",
                "watchpost-core",
                "--no-default-features",
                "--target",
                "thumbv7em-none-eabihf",
            ],
        ),
        (
            "core builds no_std with alloc, serde, defmt",
            vec![
                "build",
                "--locked",
                "-p",
                "watchpost-core",
                "--no-default-features",
                "--features",
                "alloc,serde,defmt",
                "--target",
                "thumbv7em-none-eabihf",
            ],
        ),
        (
            "bare-metal firmware links",
            vec![
                "build",
                "--locked",
                "--release",
                "-p",
                "watchpost-baremetal",
                "--target",
                "thumbv7em-none-eabihf",
            ],
        ),
        (
            "generated syscall tables are current",
            vec!["xtask", "gen-syscalls", "--check"],
        ),
    ];
    if let Err(e) = crate::install::ensure(crate::install::Purpose::Test {
        fuzz: fuzz_seconds > 0,
    }) {
        eprintln!("xtask test: installing what the tests need: {e}");
        return ExitCode::FAILURE;
    }
    let fuzz_time = format!("-max_total_time={fuzz_seconds}");
    if fuzz_seconds > 0 {
        if cargo_fuzz_installed() {
            for target in FUZZ_TARGETS {
                // Through `rustup run nightly`: the fuzz build needs nightly, and the `cargo`
                // running xtask is the resolved stable binary, which ignores `+nightly`.
                steps.push((
                    "fuzz smoke run",
                    vec![
                        "run",
                        "nightly",
                        "cargo",
                        "fuzz",
                        "run",
                        "--fuzz-dir",
                        "fuzz",
                        target,
                        "--",
                        &fuzz_time,
                        "-rss_limit_mb=2048",
                    ],
                ));
            }
        } else if std::env::var_os("CI").is_some() {
            eprintln!("xtask test: cargo-fuzz is not installed (CI must install it: see .ci/run)");
            return ExitCode::FAILURE;
        } else {
            eprintln!("xtask test: cargo-fuzz not installed; skipping fuzz smoke runs");
        }
    }
    if options.soak && std::env::var_os("WATCHPOST_SKIP_PRIVILEGED_TESTS").is_none() {
        steps.push(("soak, 3 minutes", vec!["xtask", "soak", "--ci"]));
    }
    for (what, args) in &steps {
        let started = Instant::now();
        // Fuzz steps are `rustup run nightly cargo fuzz …`; every other step is plain cargo.
        let program = if what.starts_with("fuzz") {
            "rustup"
        } else {
            env!("CARGO")
        };
        eprintln!("xtask test: {what}: {program} {}", args.join(" "));
        let status = Command::new(program).args(args).status();
        match status {
            Ok(status) if status.success() => {
                eprintln!("xtask test: {what}: ok in {:.1?}", started.elapsed());
            }
            Ok(status) => {
                eprintln!("xtask test: {what}: FAILED ({status})");
                return ExitCode::FAILURE;
            }
            Err(err) => {
                eprintln!("xtask test: {what}: could not run cargo: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    let ship_steps = crate::ship_steps::steps();
    let ship_count = ship_steps.len();
    if !crate::ship_steps::run(ship_steps) {
        return ExitCode::FAILURE;
    }
    eprintln!("xtask test: all {} steps passed", steps.len() + ship_count);
    ExitCode::SUCCESS
}

/// The test suites with every core kept busy by a [`CpuHog`](crate::cpu_hog::CpuHog). The
/// build runs first, unloaded (its speed proves nothing); then the tests run under the hog.
fn run_under_load() -> ExitCode {
    let cargo = env!("CARGO");
    let build = ["test", "--locked", "--no-run"];
    eprintln!(
        "xtask test --under-load: building: cargo {}",
        build.join(" ")
    );
    if !Command::new(cargo)
        .args(build)
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("xtask test --under-load: the build FAILED");
        return ExitCode::FAILURE;
    }
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let hog = crate::cpu_hog::CpuHog::start(cores);
    let started = Instant::now();
    eprintln!("xtask test --under-load: {cores} busy threads; running cargo test --locked");
    let status = Command::new(cargo).args(["test", "--locked"]).status();
    let rounds = hog.rounds();
    drop(hog);
    eprintln!(
        "xtask test --under-load: the hog did {rounds} rounds of busy work in {:.1?}",
        started.elapsed()
    );
    match status {
        Ok(s) if s.success() && rounds > 0 => {
            eprintln!("xtask test --under-load: ok");
            ExitCode::SUCCESS
        }
        Ok(s) if s.success() => {
            eprintln!("xtask test --under-load: the hog never ran; the run proves nothing");
            ExitCode::FAILURE
        }
        Ok(s) => {
            eprintln!("xtask test --under-load: FAILED ({s})");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("xtask test --under-load: could not run cargo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_options(options: &[String]) -> Result<TestOptions, String> {
    let mut parsed = TestOptions {
        fuzz_seconds: DEFAULT_FUZZ_SECONDS,
        under_load: false,
        soak: true,
    };
    let mut rest = options.iter();
    while let Some(flag) = rest.next() {
        match flag.as_str() {
            "--under-load" => parsed.under_load = true,
            "--no-soak" => parsed.soak = false,
            "--fuzz-seconds" => {
                let value = rest
                    .next()
                    .ok_or("--fuzz-seconds expects a number of seconds")?;
                parsed.fuzz_seconds = value.parse().map_err(|_| {
                    format!("--fuzz-seconds expects a whole number of seconds, got `{value}`")
                })?;
            }
            other => {
                return Err(format!(
                    "unexpected argument `{other}` (expected: [--fuzz-seconds N] [--under-load] [--no-soak])"
                ));
            }
        }
    }
    Ok(parsed)
}

fn cargo_fuzz_installed() -> bool {
    Command::new(env!("CARGO"))
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|out| out.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let default = TestOptions {
            fuzz_seconds: DEFAULT_FUZZ_SECONDS,
            under_load: false,
            soak: true,
        };
        assert_eq!(parse_options(&[]), Ok(default));
        assert_eq!(
            parse_options(&["--fuzz-seconds".into(), "0".into()]),
            Ok(TestOptions {
                fuzz_seconds: 0,
                ..default
            })
        );
        assert_eq!(
            parse_options(&["--under-load".into()]),
            Ok(TestOptions {
                under_load: true,
                ..default
            })
        );
        assert!(parse_options(&["--fuzz-seconds".into(), "x".into()]).is_err());
        assert!(parse_options(&["--fuzz-seconds".into()]).is_err());
        assert!(parse_options(&["--bogus".into()]).is_err());
    }
}
