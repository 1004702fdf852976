//! Builds the eBPF programs (`ebpf/programs`) and leaves the object in `OUT_DIR` for
//! `include_bytes_aligned!`. Never a committed binary: the object is always built from source,
//! unless `WATCHPOST_EBPF_OBJECT` names one already built (e.g. the x86_64 build's object reused
//! for an aarch64 build: eBPF bytecode does not depend on the host architecture here, since the
//! programs use no `pt_regs`).

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
    let package = aya_build::Package {
        name: PROGRAMS_PACKAGE,
        root_dir,
        ..Default::default()
    };
    if let Err(error) = aya_build::build_ebpf([package], aya_build::Toolchain::default()) {
        panic!(
            "building the eBPF programs failed: {error:#}\n\
             (needs nightly with rust-src and bpf-linker: run ebpf/install-toolchain.sh, or set \
             {PREBUILT_OBJECT_VAR} to an object built elsewhere)"
        );
    }
    if !destination.is_file() {
        panic!(
            "aya-build finished but left no {} in {}",
            PROGRAMS_PACKAGE,
            out_dir.display()
        );
    }
}

fn copy_object(from: &Path, to: &Path) {
    if let Err(e) = std::fs::copy(from, to) {
        panic!(
            "{PREBUILT_OBJECT_VAR}={}: cannot copy it to {}: {e}",
            from.display(),
            to.display()
        );
    }
}
