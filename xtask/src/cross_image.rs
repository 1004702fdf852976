//! `cargo xtask cross-image`: proves `Cross.toml` with a real `cross build` for aarch64. It
//! builds the image locally from Debian packages (`targets/cross/build-image.sh`: debootstrap +
//! `podman import`, podman with its own storage under `target/cross-podman`), installs `cross`
//! 0.2.5 when missing, builds the eBPF object on the host, and runs
//! `cross +1.95.0 build --release --target aarch64-unknown-linux-gnu -p watchpost` with
//! `CROSS_CONTAINER_ENGINE=podman` into its own target directory (`target/cross`, so the
//! container's cargo never touches the host builds' caches).
//!
//! Safety: never plain `cross` (0.2.5 makes rustup re-sync the `stable` toolchain): always an
//! exact toolchain, and `rustup toolchain list` is compared before and after. Too slow for every
//! CI run (a cold image and a cold build in a container), so it is a command of its own.

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Instant;

/// The `cross` release this was proven with.
const CROSS_VERSION: &str = "0.2.5";
/// The exact toolchain `cross` runs with (installed here; never `stable`).
const TOOLCHAIN: &str = "+1.95.0";

pub fn run(options: &[String]) -> ExitCode {
    if !options.is_empty() {
        eprintln!("xtask cross-image: unexpected arguments {options:?} (expected none)");
        return ExitCode::from(2);
    }
    match prove() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask cross-image: {message}");
            ExitCode::FAILURE
        }
    }
}

fn say(line: &str) {
    eprintln!("xtask cross-image: {line}");
}

fn status(command: &mut Command, what: &str) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

fn toolchains() -> Result<String, String> {
    let out = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The named toolchain's installed components (cross adds `rust-src` when it is missing).
fn components() -> String {
    Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", "1.95.0"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn prove() -> Result<(), String> {
    if !crate::install::is_root() {
        return Err("needs root (debootstrap, podman storage)".into());
    }
    let before = toolchains()?;
    let components_before = components();
    let started = Instant::now();

    say("image: bash targets/cross/build-image.sh");
    status(
        Command::new("bash").arg("targets/cross/build-image.sh"),
        "targets/cross/build-image.sh",
    )?;

    // Asked of cargo, not of `cross` itself: running cross without a toolchain is what must
    // never happen.
    let installed = Command::new(env!("CARGO"))
        .args(["install", "--list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let cross_version = installed
        .lines()
        .find(|l| l.starts_with("cross v"))
        .unwrap_or_default()
        .to_owned();
    if cross_version.contains(CROSS_VERSION) {
        say(&format!("cross {CROSS_VERSION}: present"));
    } else {
        say(&format!(
            "cross {CROSS_VERSION}: installing (cargo install --locked)"
        ));
        status(
            Command::new(env!("CARGO")).args([
                "install",
                "cross",
                "--version",
                CROSS_VERSION,
                "--locked",
            ]),
            "cargo install cross",
        )?;
    }

    say("eBPF object: cargo build --release -p watchpost-ebpf (host)");
    status(
        Command::new(env!("CARGO"))
            .args(["build", "--locked", "--release", "-p", "watchpost-ebpf"])
            .env_remove("WATCHPOST_EBPF_OBJECT"),
        "the host eBPF build",
    )?;
    let target_dir = crate::dist::target_dir();
    let cross_target = target_dir.join("cross");
    let object_in = cross_target.join("ebpf-programs");
    std::fs::create_dir_all(&object_in).map_err(|e| e.to_string())?;
    std::fs::copy(
        crate::dist::ebpf_object(&target_dir),
        object_in.join("watchpost-ebpf-programs"),
    )
    .map_err(|e| format!("copying the eBPF object: {e}"))?;

    let podman_dir = target_dir.join("cross-podman");
    let built_at = Instant::now();
    say(&format!(
        "cross {TOOLCHAIN} build --locked --release --target {} -p watchpost (podman, \
         CARGO_TARGET_DIR={})",
        crate::install::AARCH64_TARGET,
        cross_target.display()
    ));
    status(
        Command::new("cross")
            .args([
                TOOLCHAIN,
                "build",
                "--locked",
                "--release",
                "--target",
                crate::install::AARCH64_TARGET,
                "-p",
                "watchpost",
            ])
            .env("CROSS_CONTAINER_ENGINE", "podman")
            .env("CONTAINERS_CONF", podman_dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", podman_dir.join("storage.conf"))
            .env("CARGO_TARGET_DIR", &cross_target)
            // Inside the container the target directory is mounted at /target.
            .env(
                "WATCHPOST_EBPF_OBJECT",
                "/target/ebpf-programs/watchpost-ebpf-programs",
            ),
        "cross build",
    )?;
    let binary = cross_target
        .join(crate::install::AARCH64_TARGET)
        .join("release")
        .join("watchpost");
    let file = Command::new("file")
        .arg("-b")
        .arg(&binary)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    if !file.contains("ARM aarch64") {
        return Err(format!("{}: `file` says {file}", binary.display()));
    }
    say(&format!(
        "built {} in {:.0?}: {file}",
        binary.display(),
        built_at.elapsed()
    ));
    let after = toolchains()?;
    if before != after {
        return Err(format!(
            "`rustup toolchain list` changed!\nbefore:\n{before}\nafter:\n{after}"
        ));
    }
    let components_after = components();
    let added: Vec<&str> = components_after
        .lines()
        .filter(|c| !components_before.lines().any(|b| b == *c))
        .collect();
    if !added.is_empty() {
        say(&format!(
            "cross added components to the 1.95.0 toolchain: {}",
            added.join(", ")
        ));
    }
    say(&format!(
        "rustup toolchain list unchanged ({}); total {:.0?}",
        before.lines().collect::<Vec<_>>().join(", "),
        started.elapsed()
    ));
    if !Path::new(&binary).exists() {
        return Err("no binary".into());
    }
    Ok(())
}
