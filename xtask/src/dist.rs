//! `cargo xtask dist`: the shipped binaries, stripped, for x86_64 and aarch64, at stable paths
//! other tools use (`target/dist/<arch>/watchpost`; the kernel-matrix boots and the Debian
//! packages take them from there).
//!
//! Built with the `dist-release` profile (workspace `Cargo.toml`: fat LTO, one codegen unit,
//! stripped, `panic = "unwind"` kept so supervision can restart a store actor that panicked).
//! The eBPF object is built once, by the x86_64 build, and the aarch64 build embeds that same
//! file (`WATCHPOST_EBPF_OBJECT`, see `ebpf/loader/build.rs`): eBPF bytecode does not depend on
//! the architecture that loads it. After building, each binary is checked: `file` names the
//! right architecture and says stripped, and the eBPF object's bytes are found inside both.
//!
//! Runs on an x86_64 Linux host (aarch64 is the cross target, `.cargo/config.toml`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use crate::install::AARCH64_TARGET;

/// The cargo profile of shipped binaries.
pub const PROFILE: &str = "dist-release";
/// Size goal for each binary (issue 10): 5 MiB.
const SIZE_GOAL_BYTES: u64 = 5 * 1024 * 1024;

/// One shipped architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// The build host's architecture (x86_64).
    X86_64,
    /// The cross target.
    Aarch64,
}

impl Arch {
    /// Both, host first (its build produces the eBPF object the other embeds).
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The name used in paths (`target/dist/<name>/`), as Rust and qemu spell it.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// Debian's name (`dpkg --print-architecture`).
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// The Rust target triple.
    pub fn triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Aarch64 => AARCH64_TARGET,
        }
    }

    /// What `file` prints for an executable of this architecture.
    fn file_signature(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86-64",
            Arch::Aarch64 => "ARM aarch64",
        }
    }

    /// Where cargo leaves the binary of this architecture's `dist-release` build.
    pub fn cargo_output(self, target_dir: &Path) -> PathBuf {
        match self {
            // Built without `--target` (see `build`), so it lands in the host directory.
            Arch::X86_64 => target_dir.join(PROFILE).join("watchpost"),
            Arch::Aarch64 => target_dir
                .join(self.triple())
                .join(PROFILE)
                .join("watchpost"),
        }
    }

    /// The stable path of the shipped binary.
    pub fn dist_path(self, target_dir: &Path) -> PathBuf {
        target_dir.join("dist").join(self.name()).join("watchpost")
    }
}

/// Cargo's target directory (`CARGO_TARGET_DIR` or `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"))
}

/// The eBPF object every host build (tests, clippy, release) rewrites.
pub fn ebpf_object(target_dir: &Path) -> PathBuf {
    target_dir
        .join("ebpf-programs")
        .join("watchpost-ebpf-programs")
}

/// What the aarch64 builds embed (`WATCHPOST_EBPF_OBJECT`): a copy of the host's object,
/// rewritten only when its bytes change. Pointed at the host's object directly, every host
/// build's rewrite would rebuild the aarch64 loader and everything above it; one path for the
/// aarch64 tests, `dist` and the kernel matrix makes their dist-release aarch64 builds one.
/// `None` while no host build has made the object yet.
pub fn stable_ebpf_object(target_dir: &Path) -> Result<Option<PathBuf>, String> {
    let Ok(bytes) = std::fs::read(ebpf_object(target_dir)) else {
        return Ok(None);
    };
    let copy = target_dir.join("ebpf-object").join("watchpost-ebpf.o");
    if std::fs::read(&copy).ok().as_deref() != Some(bytes.as_slice()) {
        std::fs::create_dir_all(target_dir.join("ebpf-object"))
            .and_then(|()| std::fs::write(&copy, &bytes))
            .map_err(|e| format!("{}: {e}", copy.display()))?;
    }
    Ok(Some(copy))
}

pub fn run(options: &[String]) -> ExitCode {
    if !options.is_empty() {
        eprintln!("xtask dist: unexpected arguments {options:?} (expected none)");
        return ExitCode::from(2);
    }
    match build_all() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask dist: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Builds, copies and checks both binaries; prints one line per binary.
pub fn build_all() -> Result<(), String> {
    if std::env::consts::ARCH != "x86_64" {
        return Err(format!(
            "runs on an x86_64 host (this one is {}): aarch64 is the cross target",
            std::env::consts::ARCH
        ));
    }
    crate::install::ensure(crate::install::Purpose::Dist).map_err(|e| e.to_string())?;
    let target_dir = target_dir();
    for arch in Arch::ALL {
        build(arch, &target_dir)?;
    }
    let object = std::fs::read(ebpf_object(&target_dir))
        .map_err(|e| format!("reading the eBPF object: {e}"))?;
    for arch in Arch::ALL {
        let from = arch.cargo_output(&target_dir);
        let to = arch.dist_path(&target_dir);
        std::fs::create_dir_all(to.parent().expect("dist path has a parent"))
            .map_err(|e| format!("creating {}: {e}", to.display()))?;
        std::fs::copy(&from, &to)
            .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))?;
        check(arch, &to, &object)?;
    }
    Ok(())
}

/// `cargo build --profile dist-release -p watchpost` for `arch`.
fn build(arch: Arch, target_dir: &Path) -> Result<(), String> {
    let started = Instant::now();
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["build", "--locked", "--profile", PROFILE, "-p", "watchpost"]);
    match arch {
        // No `--target` for the host: its build scripts and the eBPF build then share
        // `target/ebpf-programs` with every other host build (tests, clippy), so the object
        // is built once per change, not once per profile and target.
        Arch::X86_64 => {
            cargo.env_remove("WATCHPOST_EBPF_OBJECT");
        }
        Arch::Aarch64 => {
            let object = stable_ebpf_object(target_dir)?
                .ok_or("no eBPF object: the x86_64 build did not make one")?;
            cargo
                .args(["--target", arch.triple()])
                .env("WATCHPOST_EBPF_OBJECT", object);
        }
    }
    eprintln!("xtask dist: {}: building ({PROFILE})", arch.name());
    let status = cargo
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("the {} build failed ({status})", arch.name()));
    }
    eprintln!(
        "xtask dist: {}: built in {:.0?}",
        arch.name(),
        started.elapsed()
    );
    Ok(())
}

/// `file` agrees on architecture and stripping; the eBPF object is embedded; the size.
fn check(arch: Arch, binary: &Path, object: &[u8]) -> Result<(), String> {
    let file = Command::new("file")
        .arg("-b")
        .arg(binary)
        .output()
        .map_err(|e| format!("cannot run `file`: {e}"))?;
    let description = String::from_utf8_lossy(&file.stdout).trim().to_owned();
    if !description.contains(arch.file_signature()) || !description.contains(", stripped") {
        return Err(format!(
            "{}: `file` says \"{description}\"; expected {} and stripped",
            binary.display(),
            arch.file_signature()
        ));
    }
    let bytes = std::fs::read(binary).map_err(|e| format!("reading {}: {e}", binary.display()))?;
    if !contains(&bytes, object) {
        return Err(format!(
            "{} does not embed {} byte for byte",
            binary.display(),
            "target/ebpf-programs/watchpost-ebpf-programs"
        ));
    }
    let size = bytes.len() as u64;
    let goal = if size <= SIZE_GOAL_BYTES {
        "goal <= 5 MiB met"
    } else {
        "OVER the 5 MiB goal"
    };
    println!(
        "{}: {} bytes ({:.2} MiB; {goal}); embeds the same {}-byte eBPF object; file: {description}",
        binary.display(),
        size,
        size as f64 / (1024.0 * 1024.0),
        object.len()
    );
    Ok(())
}

/// Whether `needle` occurs in `haystack` (a rare 64-byte window of the needle is searched
/// first, then the whole needle compared at each hit).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    const PROBE: usize = 64;
    if needle.len() <= PROBE {
        return haystack.windows(needle.len().max(1)).any(|w| w == needle);
    }
    // The ELF header at the start of the object looks like any ELF header: probe its middle.
    let probe_at = needle.len() / 2;
    let probe = &needle[probe_at..probe_at + PROBE];
    haystack
        .windows(PROBE)
        .enumerate()
        .filter(|(_, w)| *w == probe)
        .any(|(at, _)| {
            at.checked_sub(probe_at)
                .and_then(|start| haystack.get(start..start + needle.len()))
                .is_some_and(|candidate| candidate == needle)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_an_embedded_object_only_when_every_byte_matches() {
        let object: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut binary = vec![0u8; 300];
        binary.extend_from_slice(&object);
        binary.extend_from_slice(&[1u8; 300]);
        assert!(contains(&binary, &object));
        let mut altered = binary.clone();
        altered[300 + 999] ^= 1;
        assert!(!contains(&altered, &object));
        assert!(!contains(&object[..500], &object));
    }

    #[test]
    fn paths_are_stable() {
        let t = Path::new("/t");
        assert_eq!(
            Arch::Aarch64.dist_path(t),
            Path::new("/t/dist/aarch64/watchpost")
        );
        assert_eq!(
            Arch::X86_64.dist_path(t),
            Path::new("/t/dist/x86_64/watchpost")
        );
        assert_eq!(
            Arch::Aarch64.cargo_output(t),
            Path::new("/t/aarch64-unknown-linux-gnu/dist-release/watchpost")
        );
    }
}
