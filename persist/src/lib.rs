//! watchpost-persist: restart safety. Every restorable store's snapshot lives in one redb file,
//! `watchpost.redb`, in the data directory, with the schema version and the boot identity it was
//! written under; a bad file is moved aside and the engine starts fresh.
//!
//! The daemon copies records out of its store actors (core snapshot records, encoded here) and
//! hands them to [`PersistFile::write_store`] off the actors; at start it opens the file with
//! [`PersistFile::open`], which verifies everything and returns what to restore.
//!
//! # Layout
//! - [`file`](mod@file): opening (data-directory lock, bad-file recovery), writing one store
//!   per write transaction, compaction, loading and verifying.
//! - [`table`]: one store's table: read and verify, rewrite as pages, append a delta.
//! - [`pages`]: the value format: pages and deltas of records, each with a checksum.
//! - [`index`]: the keys each store holds, in memory, so a delta is written without reading.
//! - [`schema`]: table names, the metadata kept beside the records, the schema version.
//! - [`codec`]: core records ↔ record keys and postcard values.
//! - [`boot`]: the boot identity (`/proc/sys/kernel/random/boot_id`, `btime`).
//! - [`error`]: what can go wrong, in plain words.
//!
//! # Invariants (relied on by the daemon; each is tested in `persist/tests`)
//! 1. A store's snapshot is one redb write transaction: a reader sees the previous snapshot or
//!    the new one, never a mix (redb's commit is atomic and crash-safe).
//! 2. Every commit rewrites the store's metadata (which page and delta values exist, the sum of
//!    their checksums, item count, bytes, sequence) in the same transaction; a load checks every
//!    value's own checksum and recomputes the rest, and refuses a file where anything differs,
//!    so a silently damaged, missing or extra value cannot be restored.
//! 3. A file that cannot be opened, read or verified is renamed
//!    `watchpost.redb.corrupt-<UTC timestamp>` (never deleted) and a fresh file is created.
//! 4. Only one daemon uses a data directory: `watchpost.lock` is held (`flock`) for the file's
//!    whole life; a second opener gets [`error::OpenError::DataDirInUse`].
//! 5. Dependencies point one way: this crate knows the core's record types and redb, nothing of
//!    actors or the daemon.

pub mod boot;
pub mod codec;
pub mod error;
pub mod file;
pub mod index;
pub mod pages;
pub mod schema;
pub mod table;

pub use boot::BootIdentity;
pub use error::{OpenError, PersistError};
pub use file::{
    CACHE_BYTES, LoadedSnapshot, LoadedStore, Opened, PersistFile, Recovery, StoreWrite,
    WriteDurability,
};
pub use schema::{SCHEMA_VERSION, STORES, StoreMeta};
