//! Builds the eBPF programs (`ebpf/programs`), strips their debug info (BTF stays) and leaves
//! the object in `OUT_DIR` for `include_bytes_aligned!`. Never a committed binary: the object
//! is always built from source, unless `WATCHPOST_EBPF_OBJECT` names one already built (e.g.
//! the x86_64 build's object reused for an aarch64 build: eBPF bytecode does not depend on the
//! host architecture here, since the programs use no `pt_regs`).

use std::path::{Path, PathBuf};

/// Names an already-built programs object to embed instead of building one.
const PREBUILT_OBJECT_VAR: &str = "WATCHPOST_EBPF_OBJECT";
/// The programs crate (package and binary name).
const PROGRAMS_PACKAGE: &str = "watchpost-ebpf-programs";

fn main() {
    println!("cargo:rerun-if-env-changed={PREBUILT_OBJECT_VAR}");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let destination = out_dir.join(PROGRAMS_PACKAGE);

    if let Some(prebuilt) = std::env::var_os(PREBUILT_OBJECT_VAR) {
        let prebuilt = PathBuf::from(prebuilt);
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        copy_object(&prebuilt, &destination);
        return;
    }

    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let programs_dir = manifest_dir.join("../programs");
    let programs_dir = programs_dir
        .canonicalize()
        .unwrap_or_else(|e| panic!("cannot find {}: {e}", programs_dir.display()));
    let root_dir = programs_dir
        .to_str()
        .expect("the programs directory path is UTF-8");

    // aya-build builds into `$OUT_DIR/aya-build/target`. OUT_DIR changes with the profile and
    // with feature sets (`cargo build`, `cargo test`, `cargo clippy` may each get one), and each
    // new one would cost a cold eBPF build (~1 min). The eBPF build is always `--release` and
    // the same whatever our profile, so point aya-build at one directory per cargo target
    // directory, `<target>/[<triple>/]ebpf-programs`, and copy the object into the real OUT_DIR.
    // Concurrent builds serialise on that directory's cargo lock.
    let shared_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|target| target.join("ebpf-programs"))
        .unwrap_or_else(|| out_dir.clone());
    std::fs::create_dir_all(&shared_dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", shared_dir.display()));
    // SAFETY: build scripts are single-threaded until here; aya-build reads OUT_DIR before it
    // starts any thread.
    unsafe { std::env::set_var("OUT_DIR", &shared_dir) };
    let package = aya_build::Package {
        name: PROGRAMS_PACKAGE,
        root_dir,
        ..Default::default()
    };
    let built = aya_build::build_ebpf([package], aya_build::Toolchain::default());
    // SAFETY: as above; aya-build has joined its threads when it returns.
    unsafe { std::env::set_var("OUT_DIR", &out_dir) };
    if let Err(error) = built {
        panic!(
            "building the eBPF programs failed: {error:#}\n\
             (needs nightly with rust-src and bpf-linker: run ebpf/install-toolchain.sh, or set \
             {PREBUILT_OBJECT_VAR} to an object built elsewhere)"
        );
    }
    let built = shared_dir.join(PROGRAMS_PACKAGE);
    strip_debug_info(&built);
    copy_object(&built, &destination);
}

/// Drops the DWARF sections from the built object, in place (about 85% of its bytes): the
/// loader needs the programs, maps and BTF (`.BTF`, `.BTF.ext` stay), not the debug info, and
/// the object is embedded in every binary. Deterministic, so a prebuilt object handed to
/// another target's build (`WATCHPOST_EBPF_OBJECT`) is byte for byte the one embedded here.
fn strip_debug_info(object: &Path) {
    for tool in [
        "/usr/lib/llvm-22/bin/llvm-objcopy",
        "llvm-objcopy-22",
        "llvm-objcopy",
    ] {
        match std::process::Command::new(tool)
            .arg("--strip-debug")
            .arg(object)
            .status()
        {
            Ok(status) if status.success() => return,
            Ok(status) => panic!("{tool} --strip-debug {} failed: {status}", object.display()),
            Err(_) => continue,
        }
    }
    println!("cargo:warning=llvm-objcopy not found: the embedded eBPF object keeps its debug info");
}

fn copy_object(from: &Path, to: &Path) {
    if let Err(e) = std::fs::copy(from, to) {
        panic!("cannot copy {} to {}: {e}", from.display(), to.display());
    }
}
