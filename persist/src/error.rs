//! What can go wrong with the snapshot file, in words an operator can act on.

use std::path::PathBuf;

/// Opening the data directory failed in a way that must stop the daemon (everything else is
/// recovered by moving the file aside).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process holds the data directory's lock: a second daemon on the same directory.
    #[error(
        "data directory {dir} is in use by another watchpost daemon{holder}; stop it or give this one another --data-dir"
    )]
    DataDirInUse {
        /// The directory.
        dir: PathBuf,
        /// ` (pid N)` when the lock file names its holder.
        holder: String,
    },
    /// The directory or a fresh file could not be created (permissions, disk full).
    #[error("cannot use data directory {dir}: {source}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A fresh file could not be created even after moving the old one aside.
    #[error("cannot create {path}: {reason}")]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// redb refused (I/O error, disk full, file damaged under us).
    #[error("snapshot file: {0}")]
    Redb(String),
    /// A record could not be encoded or decoded.
    #[error("snapshot record of {store}: {reason}")]
    Codec {
        /// The store.
        store: &'static str,
        /// Why.
        reason: String,
    },
    /// The file's content does not match its own metadata.
    #[error("snapshot of {store} is damaged: {reason}")]
    Damaged {
        /// The store.
        store: &'static str,
        /// What did not match.
        reason: String,
    },
    /// The file says it was written by a newer or older schema.
    #[error("snapshot schema {found} is not this build's {expected}")]
    Schema {
        /// What the file says.
        found: u32,
        /// What this build writes.
        expected: u32,
    },
    /// An unknown store name.
    #[error("no snapshot table for store {0}")]
    UnknownStore(String),
    /// File-system error (size, rename).
    #[error("snapshot file: {0}")]
    Io(#[from] std::io::Error),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for PersistError {
            fn from(e: $t) -> Self {
                PersistError::Redb(e.to_string())
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError,
    redb::SetDurabilityError
);
