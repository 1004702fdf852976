//! `cargo xtask test`: the project's one test entry point, the command the README names and CI
//! runs. It runs every test suite, proves the core still builds bare-metal, checks that generated
//! code is current, and gives each fuzz target a short smoke run.

use std::process::{Command, ExitCode};
use std::time::Instant;

/// Seconds each fuzz target runs by default; `--fuzz-seconds N` overrides, 0 skips fuzzing.
const DEFAULT_FUZZ_SECONDS: u64 = 10;

/// The fuzz targets under `fuzz/fuzz_targets/`.
pub const FUZZ_TARGETS: &[&str] = &["kallsyms", "cgroup", "os_release", "dns", "proc_stat"];

pub fn run(options: &[String]) -> ExitCode {
    let fuzz_seconds = match parse_options(options) {
        Ok(seconds) => seconds,
        Err(message) => {
            eprintln!("xtask test: {message}");
            return ExitCode::from(2);
        }
    };
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

fn parse_options(options: &[String]) -> Result<u64, String> {
    match options {
        [] => Ok(DEFAULT_FUZZ_SECONDS),
        [flag, value] if flag == "--fuzz-seconds" => value.parse().map_err(|_| {
            format!("--fuzz-seconds expects a whole number of seconds, got `{value}`")
        }),
        other => Err(format!(
            "unexpected arguments {other:?} (expected: [--fuzz-seconds N])"
        )),
    }
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
        assert_eq!(parse_options(&[]), Ok(DEFAULT_FUZZ_SECONDS));
        assert_eq!(parse_options(&["--fuzz-seconds".into(), "0".into()]), Ok(0));
        assert!(parse_options(&["--fuzz-seconds".into(), "x".into()]).is_err());
        assert!(parse_options(&["--bogus".into()]).is_err());
    }
}
