//! watchpost-persist: restart safety. Every restorable store's snapshot lives in one redb file,
//! `watchpost.redb`, in the data directory, with the schema version and the boot identity it was
//! written under; a bad file is moved aside and the engine starts fresh.
//!
//! The daemon copies records out of its store actors (core snapshot records, encoded here) and
//! hands them to [`PersistFile::write_store`] off the actors; at start it opens the file with
//! [`PersistFile::open`], which verifies everything and returns what to restore.
//!
//! # Layout
//! - [`file`]: opening (data-directory lock, bad-file recovery), writing one store per write
//!   transaction, compaction, loading and verifying.
//! - [`schema`]: table names, the metadata kept beside the records, the schema version.
//! - [`codec`]: core records ↔ redb keys and postcard values; the content checksum.
//! - [`boot`]: the boot identity (`/proc/sys/kernel/random/boot_id`, `btime`).
//! - [`error`]: what can go wrong, in plain words.
//!
//! # Invariants (relied on by the daemon; each is tested in `persist/tests`)
//! 1. A store's snapshot is one redb write transaction: a reader sees the previous snapshot or
//!    the new one, never a mix (redb's commit is atomic and crash-safe).
//! 2. Every commit rewrites the store's metadata (item count, content checksum, sequence) in the
//!    same transaction; a load recomputes both from the records and refuses a file where they
//!    differ, so a silently damaged value cannot be restored.
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
