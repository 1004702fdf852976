//! watchpost's kernel collection: loads the eBPF programs of `ebpf/programs`, attaches them, and
//! decodes their ring buffers into typed events the stores understand.
//!
//! # Layout
//! - [`collector`]: [`Collector`] — load, attach, read batches (`AsyncFd`, no blocking thread),
//!   lost-record counters, symbol-reload trigger; detaches on drop.
//! - [`event`]: the decoded [`KernelEvent`]s and their conversions into the core's
//!   `ForkEvent`/`ExecEvent`/`ExitEvent`.
//! - [`decode`]: ring-buffer bytes → events (bounds-checked).
//! - [`dns_matching`]: DNS answers only for queries that were asked — options, refusal
//!   counters, trusted network namespaces.
//! - [`btf`], [`offsets`]: the kernel's structure layout, read from `/sys/kernel/btf/vmlinux`
//!   and handed to the programs as a global (aya-ebpf has no CO-RE).
//! - [`clock`]: boot-time nanoseconds → the core's canonical epoch start times.
//! - [`cgroup_root`]: where cgroup v2 is mounted (the DNS capture attaches to its root).
//! - [`error`]: [`LoadError`] (refusal vs bug) and [`ReadError`].
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use watchpost_ebpf::{Collector, CollectorOptions, KernelEvent};
//!
//! let mut collector = match Collector::load(CollectorOptions::default()) {
//!     Ok(collector) => collector,
//!     Err(error) if error.is_refusal() => {
//!         eprintln!("no eBPF here ({error}); polling /proc instead");
//!         return Ok(());
//!     }
//!     Err(error) => return Err(error.into()),
//! };
//! loop {
//!     for event in collector.next_batch(1024).await? {
//!         if let KernelEvent::Exec(exec) = &event {
//!             println!("{} ran {}", exec.process.pid, exec.filename);
//!         }
//!     }
//!     let lost = collector.lost_events()?;
//!     if lost.total() > 0 {
//!         eprintln!("kernel dropped {} records", lost.total());
//!     }
//! }
//! # }
//! ```

#![deny(missing_docs)]

pub mod btf;
pub mod cgroup_root;
pub mod clock;
pub mod collector;
pub mod decode;
pub mod dns_matching;
pub mod error;
pub mod event;
pub mod offsets;
mod sysconf;

pub use collector::{
    Attachments, Collector, CollectorOptions, CollectorStats, CollectorTask, LostEventCounter,
    LostEvents, ModuleLoadSignal, SymbolReloadTrigger, WakeupPolicy,
};
pub use dns_matching::{
    DnsCounterReader, DnsCounters, DnsMatchingOptions, TrustError, TrustedNamespaces,
};
pub use error::{LoadError, LoadStage, ReadError};
pub use event::{
    CgroupChange, CgroupOp, DnsAnswer, KernelEvent, ModuleLoad, ProcessExec, ProcessExit,
    ProcessFork, ProcessIdentity, SymbolReloadCause,
};
