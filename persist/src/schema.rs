//! The file's layout: one table of metadata, one table per store, all keyed by bytes.
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `schema`, `boot`, `seq`, `store.<name>` | postcard: `u32`, [`BootIdentity`](crate::BootIdentity), `u64`, [`StoreMeta`] |
//! | `process`, `dns`, `container`, `ip_reputation` | `p` ‖ page number (BE u64), `0..pages` | a page: records in strictly increasing key order, just under 16 KiB, ‖ checksum |
//! | (same) | `d` ‖ delta number (BE u64), `0..deltas` | a delta: one changed-only snapshot's upserts and deletes, in order, ‖ checksum |
//!
//! The value format is in [`crate::pages`]; a store's [`StoreMeta`] names exactly which values
//! its table holds (`pages`, `deltas`), so a missing or extra value is refused at load, and the
//! wrapping sum of their checksums. Record keys inside pages and deltas:
//!
//! | store | record key | record value |
//! |---|---|---|
//! | `process` | pid (BE u32) ‖ start time (BE u64): restore reads in pid order | `ProcessRecord` |
//! | `dns`, `container` | position (BE u64) in the export order | `DnsRecord`, `ContainerRecord` |
//! | `ip_reputation` | source ‖ 0 ‖ address octets | `ReputationRecord` |
//!
//! Record values are postcard, not raw memory: the file does not depend on struct layout, and
//! every value is checked when decoded. Changing any record type or this layout changes
//! [`SCHEMA_VERSION`]; a file of another version is moved aside (there is no migration yet).

use redb::TableDefinition;
use serde::{Deserialize, Serialize};
use watchpost_core::error::store_names;

use crate::error::PersistError;

/// Version of the records' encoding and the file's layout. Bump it with any change to a
/// snapshot record type or to how they are stored. 3: records packed into pages and deltas.
pub const SCHEMA_VERSION: u32 = 3;

/// The metadata table.
pub(crate) const META: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("meta");

/// The stores this file holds, in restore order.
pub const STORES: [&str; 4] = [
    store_names::PROCESS,
    store_names::DNS,
    store_names::CONTAINER,
    store_names::IP_REPUTATION,
];

/// `store`'s own name and table, if it is one of [`STORES`].
pub(crate) fn store_def(store: &str) -> Result<(&'static str, crate::table::Def), PersistError> {
    STORES
        .iter()
        .find(|&&s| s == store)
        .map(|&s| (s, TableDefinition::new(s)))
        .ok_or_else(|| PersistError::UnknownStore(store.into()))
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
    /// Wrapping sum of the checksums of every page and delta value the table holds.
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
    /// Page values the table holds (`p0` up to this, exclusive).
    pub pages: u64,
    /// Delta values the table holds (`d0` up to this, exclusive), applied in order.
    pub deltas: u64,
    /// Bytes of those deltas (they are folded into the pages past a share of the store).
    pub delta_bytes: u64,
}
