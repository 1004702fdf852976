//! Running host tools, and installing the few Debian packages the matrix needs when they are
//! missing (qemu, the aarch64 cross linker and binutils, xz and zstd). A warm machine pays
//! nothing: each package is checked with `dpkg-query` first.

use std::path::Path;
use std::process::{Command, Stdio};

/// The host packages the matrix uses.
const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "qemu-system-arm",
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "binutils",
    "xz-utils",
    "zstd",
];

/// Runs `program args` in `dir` (if given); its stdout, or an error with its stderr.
pub fn output(program: &str, args: &[&str], dir: Option<&Path>) -> Result<Vec<u8>, String> {
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let out = command
        .output()
        .map_err(|e| format!("running {program}: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs a shell pipeline (fixed text, no user input in it); an error with its stderr.
pub fn shell(script: &str) -> Result<(), String> {
    output("sh", &["-c", script], None).map(drop)
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Installs what is missing of [`PACKAGES`] (needs root).
pub fn ensure_packages() -> Result<(), String> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask kernels: installing {}", missing.join(" "));
    let mut args = vec![
        "install",
        "-y",
        "--no-install-recommends",
        "-o",
        "DPkg::Lock::Timeout=600",
    ];
    args.extend(&missing);
    if output("apt-get", &args, None).is_err() {
        // Stale package lists on a fresh machine: refresh once and retry.
        output(
            "apt-get",
            &["update", "-o", "DPkg::Lock::Timeout=600"],
            None,
        )?;
        output("apt-get", &args, None)?;
    }
    Ok(())
}
