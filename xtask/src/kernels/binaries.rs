//! The programs that go into a guest: the shipped daemon and the check program of that
//! architecture, stripped, with the shared libraries they load.
//!
//! Both are built with `cargo build --profile dist-release` (what ships; native for x86_64; for aarch64 with the
//! `aarch64-linux-gnu-gcc` linker and the x86_64 build's eBPF object, whose bytecode is the
//! same, so the eBPF programs are not built twice). Libraries are found from each ELF's
//! `NEEDED` entries and interpreter (`readelf`), in the host's directories for that
//! architecture (the cross libraries for aarch64).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::arch::Arch;
use super::host::output;

/// The packages built for the guest, and their binaries.
const BINARIES: &[(&str, &str)] = &[
    ("watchpost", "watchpost"),
    ("watchpost-guest-check", "watchpost-guest-check"),
];

/// A file to put into the guest: host path, guest path.
pub type GuestFile = (PathBuf, String);

/// Adds the Rust target of `arch` when rustup lacks it (never `rustup update`: the toolchains
/// are pinned).
fn ensure_rust_target(arch: Arch) -> Result<(), String> {
    let installed = output("rustup", &["target", "list", "--installed"], None)?;
    if String::from_utf8_lossy(&installed)
        .lines()
        .any(|t| t.trim() == arch.rust_target())
    {
        return Ok(());
    }
    output("rustup", &["target", "add", arch.rust_target()], None).map(drop)
}

/// The cargo profile of the guest programs: the shipped one.
const PROFILE: &str = "dist-release";

/// Builds the guest programs for `arch`; their paths in `target`. One `cargo build` per
/// package, so each gets exactly its own features: the x86_64 daemon's build is then the very
/// one `cargo xtask soak` makes (`--profile dist-release -p watchpost`), and CI builds it once.
pub fn build(root: &Path, target: &Path, arch: Arch) -> Result<Vec<PathBuf>, String> {
    ensure_rust_target(arch)?;
    let out_dir = match arch {
        Arch::X86_64 => target.join(PROFILE),
        Arch::Aarch64 => target.join(arch.rust_target()).join(PROFILE),
    };
    let object = match arch {
        Arch::X86_64 => None,
        // The x86_64 build's object, when there is one: same bytecode, no second eBPF build.
        Arch::Aarch64 if std::env::var_os("WATCHPOST_EBPF_OBJECT").is_none() => {
            crate::dist::stable_ebpf_object(target)?
        }
        Arch::Aarch64 => None,
    };
    eprintln!("xtask kernels: building the {} guest programs", arch.name());
    let mut binaries = Vec::new();
    for (package, binary) in BINARIES {
        let mut command = Command::new(env!("CARGO"));
        command
            .current_dir(root)
            .args(["build", "--locked", "--profile", PROFILE, "-p", package]);
        if arch == Arch::Aarch64 {
            command.args(["--target", arch.rust_target()]);
            command.env(
                "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
                "aarch64-linux-gnu-gcc",
            );
            if let Some(object) = &object {
                command.env("WATCHPOST_EBPF_OBJECT", object);
            }
        }
        let status = command
            .status()
            .map_err(|e| format!("running cargo: {e}"))?;
        if !status.success() {
            return Err(format!(
                "cargo build of {package} for {} failed ({status})",
                arch.name()
            ));
        }
        binaries.push(out_dir.join(binary));
    }
    Ok(binaries)
}

/// A stripped copy of `binary` in `dir`.
pub fn stripped(binary: &Path, arch: Arch, dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let name = binary.file_name().ok_or("binary without a name")?;
    let out = dir.join(name);
    output(
        arch.strip(),
        &["-o", &out.to_string_lossy(), &binary.to_string_lossy()],
        None,
    )?;
    Ok(out)
}

/// `NEEDED` libraries and the interpreter of an ELF file, from `readelf`.
fn dynamic_deps(elf: &Path) -> Result<(Vec<String>, Option<String>), String> {
    let path = elf.to_string_lossy();
    let dynamic =
        String::from_utf8_lossy(&output("readelf", &["-d", "-W", &path], None)?).into_owned();
    let needed = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split('[').nth(1)?.split(']').next()?.to_owned()))
        .collect();
    let headers =
        String::from_utf8_lossy(&output("readelf", &["-l", "-W", &path], None)?).into_owned();
    let interpreter = headers.lines().find_map(|l| {
        let rest = l.split("[Requesting program interpreter: ").nth(1)?;
        Some(rest.trim_end_matches(']').to_owned())
    });
    Ok((needed, interpreter))
}

fn find_library(name: &str, arch: Arch) -> Result<PathBuf, String> {
    arch.library_dirs()
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .ok_or_else(|| {
            format!(
                "library {name} for {} not found in {:?} (install libc6-dev-arm64-cross for aarch64)",
                arch.name(),
                arch.library_dirs()
            )
        })
}

/// The shared libraries `binaries` load, transitively, as guest files: libraries under
/// `/lib/<multiarch>/` (the guest's `LD_LIBRARY_PATH`), the interpreter at its own path.
pub fn libraries(binaries: &[PathBuf], arch: Arch) -> Result<Vec<GuestFile>, String> {
    let mut files: Vec<GuestFile> = Vec::new();
    let mut queue: Vec<PathBuf> = binaries.to_vec();
    let mut seen: Vec<String> = Vec::new();
    while let Some(elf) = queue.pop() {
        let (needed, interpreter) = dynamic_deps(&elf)?;
        if let Some(interp) = interpreter
            && !files.iter().any(|(_, g)| *g == interp)
        {
            let name = Path::new(&interp)
                .file_name()
                .ok_or("interpreter without a name")?
                .to_string_lossy()
                .into_owned();
            let host = find_library(&name, arch)?;
            let host =
                std::fs::canonicalize(&host).map_err(|e| format!("{}: {e}", host.display()))?;
            files.push((host, interp));
        }
        for name in needed {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name.clone());
            let host = find_library(&name, arch)?;
            let host =
                std::fs::canonicalize(&host).map_err(|e| format!("{}: {e}", host.display()))?;
            queue.push(host.clone());
            files.push((host, format!("/lib/{}/{name}", arch.multiarch())));
        }
    }
    Ok(files)
}
