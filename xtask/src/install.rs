//! Installing what a fresh machine lacks, each piece only when it is missing (idempotent: a warm
//! machine pays a few `--version` checks), one line per piece saying `present` or what it runs.
//! `cargo xtask test`, `cargo xtask run` and `.ci/run` (through `cargo xtask install`) call it,
//! so the README's commands work on a fresh clone.
//!
//! Never `rustup update` and never a toolchain install: the stable and nightly toolchains are
//! pinned on purpose (nightly's LLVM must match bpf-linker's, see `ebpf/install-toolchain.sh`);
//! a missing nightly is reported with the reason, not replaced by whatever is newest.

use std::path::Path;
use std::process::Command;

/// cargo-fuzz for the fuzz smoke runs.
const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// cargo-deb for `cargo xtask deb`.
pub const CARGO_DEB_VERSION: &str = "3.8.0";
/// The cross target the workspace ships besides the host's.
pub const AARCH64_TARGET: &str = "aarch64-unknown-linux-gnu";

/// What a command needs installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `cargo xtask run`: the eBPF build.
    Run,
    /// `cargo xtask dist` and `deb`: the eBPF build, the aarch64 cross pieces, `file`.
    Dist,
    /// `cargo xtask test`: everything its steps use; `fuzz` adds cargo-fuzz.
    Test { fuzz: bool },
    /// `.ci/run`: the test pieces plus clippy and rustfmt.
    Ci,
}

/// Why an install step failed.
#[derive(Debug)]
pub struct InstallError(pub String);

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Installs what `purpose` needs and is missing.
pub fn ensure(purpose: Purpose) -> Result<(), InstallError> {
    let mut apt = Apt::default();
    let test = matches!(purpose, Purpose::Test { .. } | Purpose::Ci);
    if purpose == Purpose::Ci {
        rustup_component("clippy")?;
        rustup_component("rustfmt")?;
    }
    if test {
        rustup_target("thumbv7em-none-eabihf")?;
    }
    ebpf_toolchain(test)?;
    // containerd's gRPC client (the default `containerd` feature) is generated at build time.
    program(
        &mut apt,
        "protoc",
        "protobuf-compiler",
        "containerd's gRPC client, built",
    )?;
    if purpose == Purpose::Run {
        return Ok(());
    }
    aarch64(&mut apt)?;
    program(&mut apt, "file", "file", "the binaries' architecture check")?;
    cargo_tool("deb", "cargo-deb", CARGO_DEB_VERSION)?;
    if test {
        if matches!(purpose, Purpose::Test { fuzz: true } | Purpose::Ci) {
            cargo_tool("fuzz", "cargo-fuzz", CARGO_FUZZ_VERSION)?;
        }
        program(
            &mut apt,
            "systemd-analyze",
            "systemd",
            "the service unit check",
        )?;
        test_runtimes(&mut apt)?;
    }
    Ok(())
}

fn say(what: &str, state: &str) {
    eprintln!("xtask install: {what}: {state}");
}

/// Runs `program args…`, failing with its name when it fails.
fn run(program: &str, args: &[&str]) -> Result<(), InstallError> {
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|e| InstallError(format!("cannot run {program}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(InstallError(format!(
            "`{program} {}` failed ({status})",
            args.join(" ")
        )))
    }
}

/// Whether `program args…` runs and succeeds (its output discarded).
fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn stdout_of(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn rustup_target(target: &str) -> Result<(), InstallError> {
    let what = format!("rust target {target}");
    if stdout_of("rustup", &["target", "list", "--installed"])
        .lines()
        .any(|l| l.trim() == target)
    {
        say(&what, "present");
        return Ok(());
    }
    say(&what, "installing (rustup target add)");
    run("rustup", &["target", "add", target])
}

fn rustup_component(component: &str) -> Result<(), InstallError> {
    let what = format!("rust component {component}");
    if stdout_of("rustup", &["component", "list", "--installed"])
        .lines()
        .any(|l| l.starts_with(component))
    {
        say(&what, "present");
        return Ok(());
    }
    say(&what, "installing (rustup component add)");
    run("rustup", &["component", "add", component])
}

/// `cargo <subcommand>` from crate `package` at exactly `version`.
fn cargo_tool(subcommand: &str, package: &str, version: &str) -> Result<(), InstallError> {
    let what = format!("{package} {version}");
    let cargo = env!("CARGO");
    if stdout_of(cargo, &[subcommand, "--version"]).contains(version) {
        say(&what, "present");
        return Ok(());
    }
    say(&what, "installing (cargo install --locked)");
    run(
        cargo,
        &["install", package, "--version", version, "--locked"],
    )
}

/// The eBPF build's pieces (and, for tests, dnsmasq, dig and setpriv): the script prints one
/// line per piece itself.
fn ebpf_toolchain(test_tools: bool) -> Result<(), InstallError> {
    if !succeeds("rustup", &["run", "nightly", "rustc", "--version"]) {
        return Err(InstallError(
            "the nightly toolchain is missing: the eBPF programs build with nightly, whose LLVM \
             must match bpf-linker's (LLVM 22); install that nightly with rustup (not the newest \
             one blindly), then run this again"
                .to_owned(),
        ));
    }
    let mut script = Command::new("bash");
    script.arg("ebpf/install-toolchain.sh");
    if test_tools {
        script.env("WATCHPOST_EBPF_TEST_TOOLS", "1");
    }
    let status = script
        .status()
        .map_err(|e| InstallError(format!("cannot run ebpf/install-toolchain.sh: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(InstallError(format!(
            "ebpf/install-toolchain.sh failed ({status})"
        )))
    }
}

/// The aarch64 cross linker and C library, user-mode qemu, and the Rust target.
fn aarch64(apt: &mut Apt) -> Result<(), InstallError> {
    let what = "aarch64 cross linker, libc and qemu-user";
    let present = succeeds("aarch64-linux-gnu-gcc", &["--version"])
        && Path::new("/usr/aarch64-linux-gnu/lib/libc.so.6").exists()
        && succeeds("qemu-aarch64", &["--version"]);
    if present {
        say(what, "present");
    } else {
        say(what, "installing (apt-get)");
        apt.install(&[
            "gcc-aarch64-linux-gnu",
            "libc6-dev-arm64-cross",
            "qemu-user",
        ])?;
    }
    rustup_target(AARCH64_TARGET)
}

/// The container runtimes the enrichment tests start (podman, runc, containerd, a busybox
/// image root, curl) and the fleet tests' MQTT broker.
fn test_runtimes(apt: &mut Apt) -> Result<(), InstallError> {
    let what = "container runtimes and mosquitto (the tests start them)";
    let mut missing = Vec::new();
    for (name, package) in [
        ("podman", "podman"),
        ("runc", "runc"),
        ("containerd", "containerd"),
        ("curl", "curl"),
    ] {
        if !succeeds("sh", &["-c", &format!("command -v {name}")]) {
            missing.push(package);
        }
    }
    if !Path::new("/bin/busybox").exists() {
        missing.push("busybox-static");
    }
    if !Path::new("/usr/sbin/mosquitto").exists() {
        missing.push("mosquitto");
    }
    if missing.is_empty() {
        say(what, "present");
        return Ok(());
    }
    say(what, &format!("installing {} (apt-get)", missing.join(" ")));
    apt.install(&missing)
}

/// A program from a Debian package.
fn program(apt: &mut Apt, name: &str, package: &str, why: &str) -> Result<(), InstallError> {
    let what = format!("{name} ({why})");
    if succeeds("sh", &["-c", &format!("command -v {name}")]) {
        say(&what, "present");
        return Ok(());
    }
    say(&what, &format!("installing {package} (apt-get)"));
    apt.install(&[package])
}

/// `apt-get`, with one `update` before the first install.
#[derive(Default)]
pub struct Apt {
    updated: bool,
}

impl Apt {
    /// Installs Debian packages (needs root).
    pub fn install(&mut self, packages: &[&str]) -> Result<(), InstallError> {
        if !is_root() {
            return Err(InstallError(format!(
                "installing Debian packages needs root: run `apt-get install {}` as root, then \
                 this again",
                packages.join(" ")
            )));
        }
        if !self.updated {
            run_apt(&["update", "-qq"])?;
            self.updated = true;
        }
        let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
        args.extend_from_slice(packages);
        run_apt(&args)
    }
}

fn run_apt(args: &[&str]) -> Result<(), InstallError> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| InstallError(format!("cannot run apt-get: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(InstallError(format!(
            "`apt-get {}` failed ({status})",
            args.join(" ")
        )))
    }
}

/// Whether this process runs with effective uid 0 (from `/proc/self/status`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}
