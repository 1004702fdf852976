//! watchpost-actors: every datastore as a ractor actor owning its core store (its only writer),
//! the read view each store publishes, the registry actor that registers and supervises them,
//! the typed handles detectors query (from the view, in their own task), the bounded intake
//! collectors feed, and the detector engine.
//!
//! # Layout
//! - [`registry`]: [`Registry`], the handle everything starts from: `processes()`,
//!   `containers()`, `system()`, `syscalls()`, `kernel_symbols()`, `dns()` (never fail; null
//!   stores until registered), `register_*_store`, `register_writable_store`, `get_custom`,
//!   `list`, `is_available`, `metadata`, `metrics`, `health`, `supervision`, `shutdown`.
//! - [`handle`]: [`StoreHandle`], the typed handle (queries read the store's published view in
//!   the caller's task; writes, `get_health`, `get_metrics` are one hop to the store's actor with
//!   a timeout; `supervision`, `inspect` for snapshots, `view_bytes`).
//! - [`view`]: the published read view (two copies, per-thread reader records, recency marks).
//! - [`stores`]: one module per store kind: owned reply types (`ProcessInfo`, `ContainerInfo`,
//!   `SystemInfo`, `SymbolInfo`, `DnsResponse`, `Verdict`), updates (`ProcessUpdate`,
//!   `ContainerUpdate`, ...), query messages, the backend trait a core store implements, and the
//!   handle's query methods; `stores::ip_reputation` has the owner's and readers' typed handles.
//! - [`writable`]: writable stores (`WritableStore`, owner's `WriteHandle`, everybody else's
//!   `ReadHandle`).
//! - [`intake`]: bounded intake queues (`IntakeSender`) and their drain tasks.
//! - [`supervision`]: factories (`StoreFactory`, with `BuildContext` as the seam for snapshot
//!   restore) and the restart policy.
//! - [`protocol`], `store_actor`, `slot`: the generic store actor (the view's writer), its
//!   messages, and the shared slot handles use (actor, view, null store, restarts, handle-side
//!   counters).
//! - [`adapters`]: the core stores behind the backend traits (`ProcessTable`, `ContainerTable`,
//!   `DnsCache`, `SyscallStore`, `SystemFacts` over the core `SystemStore`, `KernelSymbols` over the core
//!   `KernelSymbolTable`, `IpReputationStore` as a writable store), converting borrowed views to
//!   owned replies, and their factories (fresh random hash seeds per build, see [`seed`]).
//! - [`detect`]: the `Detector` trait, `Event`, serialisable `DetectorOutput`, the
//!   `DetectorEngine` (concurrent, bounded), and the built-in detectors `shell_from_service`
//!   and `tmp_exec_in_container`.
//! - [`names`]: store-name rules.
//! - [`clock`]: the `now` passed to core stores.

pub mod adapters;
pub mod clock;
pub mod detect;
pub mod handle;
pub mod intake;
pub mod names;
pub mod protocol;
pub mod registry;
pub mod seed;
mod slot;
mod store_actor;
pub mod stores;
pub mod supervision;
pub mod view;
pub mod writable;

pub use handle::StoreHandle;
pub use intake::{IntakeError, IntakeOptions, IntakeSender};
pub use registry::{
    CustomStore, RegistrationError, Registry, RegistryConfig, StoreKind, StoreMetadata,
    StoreOptions,
};
pub use slot::{Lifecycle, SupervisionStats};
pub use supervision::{BuildContext, BuildError, RestartPolicy, StoreFactory};
pub use watchpost_core::{DataStoreMetrics, ErrorKind, HealthInfo, HealthStatus, StoreError};
pub use writable::{ReadHandle, WritableStore, WriteHandle};
