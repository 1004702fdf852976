//! Empty on purpose: the programs are the `watchpost-ebpf-programs` binary (`src/main.rs`),
//! built for `bpfel-unknown-none` by the loader's build script. This library target exists so the
//! loader can list the crate as a build-dependency, which makes cargo rebuild the loader when the
//! programs or the shared record types change.
#![no_std]
