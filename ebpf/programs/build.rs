//! Rebuilds the programs when the `bpf-linker` binary changes (a new linker can change the
//! object), as aya's project template does. No error if it is missing: the host build of the
//! (empty) library does not need it, and the eBPF build reports its absence itself.

fn main() {
    let Some(path) = std::env::var_os("PATH") else {
        return;
    };
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("bpf-linker");
        if candidate.is_file() {
            println!("cargo:rerun-if-changed={}", candidate.display());
            return;
        }
    }
}
