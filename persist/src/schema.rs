//! The file's layout: one table of metadata, one table per store, all keyed by bytes.
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `schema`, `boot`, `seq`, `store.<name>` | postcard: `u32`, [`BootIdentity`](crate::BootIdentity), `u64`, [`StoreMeta`] |
//! | `process` | pid (BE u32) ‖ start time (BE u64): restore reads in pid order | `ProcessRecord` |
//! | `dns`, `container` | position (BE u64) in the export order | `DnsRecord`, `ContainerRecord` |
//! | `ip_reputation` | source ‖ 0 ‖ address octets | `ReputationRecord` |
//!
//! Values are postcard, not raw memory: the file does not depend on struct layout, and every
//! value is checked when decoded. Changing any record type changes [`SCHEMA_VERSION`]; a file of
//! another version is moved aside (there is no migration yet).

use redb::TableDefinition;
use serde::{Deserialize, Serialize};
use watchpost_core::error::store_names;

/// Version of the records' encoding. Bump it with any change to a snapshot record type.
pub const SCHEMA_VERSION: u32 = 2;

/// The metadata table.
pub(crate) const META: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("meta");

/// The stores this file holds, in restore order.
pub const STORES: [&str; 4] = [
    store_names::PROCESS,
    store_names::DNS,
    store_names::CONTAINER,
    store_names::IP_REPUTATION,
];

/// The table of `store`, if it is one of [`STORES`].
pub(crate) fn table_of(
    store: &str,
) -> Option<TableDefinition<'static, &'static [u8], &'static [u8]>> {
    STORES
        .iter()
        .find(|&&s| s == store)
        .map(|&s| TableDefinition::new(s))
}

/// Metadata key of `store`'s [`StoreMeta`].
pub(crate) fn meta_key(store: &str) -> Vec<u8> {
    let mut key = b"store.".to_vec();
    key.extend_from_slice(store.as_bytes());
    key
}

/// What the file says about one store's last snapshot; written in the same transaction as the
/// records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StoreMeta {
    /// When the snapshot was committed, epoch ns.
    pub committed_at: u64,
    /// Records held.
    pub items: u64,
    /// Bytes of keys and values held.
    pub bytes: u64,
    /// Wrapping sum of every record's hash ([`crate::codec::record_hash`]).
    pub checksum: u64,
    /// The file-wide commit sequence number of this snapshot.
    pub sequence: u64,
    /// How long the write transaction took, µs.
    pub write_micros: u64,
    /// Records written (inserted or replaced) by the last snapshot.
    pub written: u64,
    /// Records deleted by the last snapshot.
    pub deleted: u64,
    /// Whether the last snapshot replaced the whole table.
    pub full: bool,
}
