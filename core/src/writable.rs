//! The contract every writable store keeps: sourced writes, all-or-nothing batches, idempotent
//! deletes, clearing by source, and a read side that is all non-owners ever see.
//!
//! The reference lets a detector register a store it owns and share it read-only with everybody
//! else; access control is "by type". Here the split is two traits:
//!
//! - [`WritableStoreRead`]: lookups, the list of sources, size, health and metrics. This is the
//!   whole surface of a **read-only handle**: the actor layer gives every non-owner a handle that
//!   can only send messages mapping to these methods (the core offers the same split in-process
//!   with [`ReadOnly`]).
//! - [`WritableStore`]: adds [`write`](WritableStore::write),
//!   [`write_batch`](WritableStore::write_batch), [`delete`](WritableStore::delete) and
//!   [`clear`](WritableStore::clear). Only the **owner's handle** (the registrant's) may send
//!   these.
//!
//! Every write names its source (a feed, a detector): [`SourceName`] rules say what a valid name
//! is, and a store checks them before touching anything. Rejections carry a [`Rejection`] that
//! says exactly why, next to the usual [`StoreError`].
//!
//! Queries take `&mut self` because every one of them is counted in the store's metrics.

use core::fmt;

use crate::error::{ErrorKind, StoreError};
use crate::health::HealthInfo;
use crate::metrics::DataStoreMetrics;
use crate::time::EpochNanos;

/// Longest source name, in bytes.
pub const MAX_SOURCE_NAME_LEN: usize = 64;

/// Why a source name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SourceNameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_SOURCE_NAME_LEN`] bytes.
    TooLong,
    /// The name starts or ends with a space (the reference refuses such registry names too;
    /// `"feed"` and `"feed "` would print alike).
    SurroundingWhitespace,
    /// The name holds a byte outside printable ASCII (`' '..='~'`): control characters could
    /// forge log lines, and look-alike Unicode could impersonate another source.
    NotPrintable,
}

impl SourceNameError {
    /// A short description.
    pub const fn message(self) -> &'static str {
        match self {
            SourceNameError::Empty => "source name is empty",
            SourceNameError::TooLong => "source name is longer than 64 bytes",
            SourceNameError::SurroundingWhitespace => "source name starts or ends with a space",
            SourceNameError::NotPrintable => "source name is not printable ASCII",
        }
    }
}

impl fmt::Display for SourceNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for SourceNameError {}

/// Checks `name` against the source-name rules: 1 to [`MAX_SOURCE_NAME_LEN`] bytes of printable
/// ASCII (`' '..='~'`), not starting or ending with a space. Allocation-free; stores call it before
/// any write.
pub fn validate_source_name(name: &str) -> Result<(), SourceNameError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err(SourceNameError::Empty);
    }
    if bytes.len() > MAX_SOURCE_NAME_LEN {
        return Err(SourceNameError::TooLong);
    }
    if !bytes.iter().all(|&b| (b' '..=b'~').contains(&b)) {
        return Err(SourceNameError::NotPrintable);
    }
    if bytes.first() == Some(&b' ') || bytes.last() == Some(&b' ') {
        return Err(SourceNameError::SurroundingWhitespace);
    }
    Ok(())
}

/// A source name that passed [`validate_source_name`], held inline (no allocation).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SourceName {
    /// Invariant: satisfies [`validate_source_name`].
    name: heapless::String<MAX_SOURCE_NAME_LEN, u8>,
}

impl SourceName {
    /// `name` as a [`SourceName`], if valid.
    pub fn new(name: &str) -> Result<Self, SourceNameError> {
        validate_source_name(name)?;
        let mut kept = heapless::String::new();
        // Cannot fail: validated to fit above.
        kept.push_str(name).map_err(|_| SourceNameError::TooLong)?;
        Ok(SourceName { name: kept })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        self.name.as_str()
    }
}

impl TryFrom<&str> for SourceName {
    type Error = SourceNameError;

    fn try_from(name: &str) -> Result<Self, Self::Error> {
        SourceName::new(name)
    }
}

impl AsRef<str> for SourceName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for SourceName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for SourceName {
    /// Validates like [`SourceName::new`]: a snapshot cannot smuggle in a name a write would refuse.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = heapless::String::<MAX_SOURCE_NAME_LEN, u8>::deserialize(deserializer)?;
        SourceName::new(&name).map_err(serde::de::Error::custom)
    }
}

/// Why a write, batch, delete or clear was refused. Nothing was changed when one is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Rejection {
    /// The source name breaks the [`SourceName`] rules.
    Source(SourceNameError),
    /// The key is malformed (for the IP store: not an IP address).
    Key,
    /// A field of the record is out of bounds; the text says which rule.
    Value(&'static str),
    /// The same key appears twice in one batch (which one should win is ambiguous, so neither
    /// does).
    DuplicateKey,
    /// The batch has more records than the store accepts in one batch.
    BatchTooLarge,
    /// The store holds as many entries as it was built for; the new entries do not fit.
    EntriesFull,
    /// The store holds data from as many sources as it was built for; a new source does not fit.
    SourcesFull,
    /// The store's bounded string storage (tags, metadata) has no room for the new strings.
    StringsFull,
}

impl Rejection {
    /// The [`ErrorKind`] this rejection is reported as.
    ///
    /// Every rejection is `InvalidArgument` for now: the shared kinds have no "capacity exceeded"
    /// yet, and a request that cannot be accepted as given is closest to an invalid argument. The
    /// mapping lives only here so that it changes in one place.
    pub const fn kind(self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }

    /// Whether the store being full (rather than the request being malformed) caused this.
    pub const fn is_capacity(self) -> bool {
        matches!(
            self,
            Rejection::EntriesFull | Rejection::SourcesFull | Rejection::StringsFull
        )
    }

    /// A short description.
    pub const fn message(self) -> &'static str {
        match self {
            Rejection::Source(e) => e.message(),
            Rejection::Key => "malformed key",
            Rejection::Value(rule) => rule,
            Rejection::DuplicateKey => "the same key appears twice in the batch",
            Rejection::BatchTooLarge => "batch has more records than the store accepts at once",
            Rejection::EntriesFull => "entry capacity reached",
            Rejection::SourcesFull => "source capacity reached",
            Rejection::StringsFull => "string storage capacity reached",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// A refused write-side request: the usual [`StoreError`] plus exactly why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WriteError {
    /// Store, operation and kind, as every store reports errors.
    pub error: StoreError,
    /// Why.
    pub rejection: Rejection,
    /// For a batch, the position of the first offending record, when one record is to blame.
    pub item: Option<usize>,
}

impl WriteError {
    /// `rejection` from `operation` on `store`, about the record at `item` if given.
    pub const fn new(
        store: &'static str,
        operation: &'static str,
        rejection: Rejection,
        item: Option<usize>,
    ) -> Self {
        WriteError {
            error: StoreError::new(store, operation, rejection.kind()),
            rejection,
            item,
        }
    }

    /// Whether the error is of `kind` (the `errors.Is` of the reference).
    pub const fn is(&self, kind: ErrorKind) -> bool {
        self.error.is(kind)
    }
}

impl From<WriteError> for StoreError {
    fn from(e: WriteError) -> Self {
        e.error
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.rejection)?;
        if let Some(item) = self.item {
            write!(f, " (batch item {item})")?;
        }
        Ok(())
    }
}

impl core::error::Error for WriteError {}

/// The read side of a writable store: everything a non-owner may do.
///
/// Lookups merge what every source wrote for a key by the store's conflict policy, and must do so
/// deterministically (the same data gives the same answer whatever order it was written in).
pub trait WritableStoreRead {
    /// What a lookup names (for the IP store, an [`IpAddr`](core::net::IpAddr)).
    type Key;
    /// The merged answer for a key, borrowed from the store.
    type View<'a>
    where
        Self: 'a;
    /// Iterator over the names of the sources that currently hold data.
    type Sources<'a>: Iterator<Item = &'a str>
    where
        Self: 'a;

    /// The store's registry name.
    fn name(&self) -> &'static str;

    /// The merged answer for `key`.
    ///
    /// # Errors
    /// `NotFound` when no source holds `key`; `InvalidArgument` for a malformed key.
    fn get(&mut self, key: &Self::Key, now: EpochNanos) -> Result<Self::View<'_>, StoreError>;

    /// The sources that currently hold data, in a documented, deterministic order. A source whose
    /// last entry was deleted or cleared is no longer listed.
    fn list_sources(&mut self, now: EpochNanos) -> Self::Sources<'_>;

    /// Entries held (one per source and key).
    fn len(&self) -> usize;

    /// Whether nothing is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most entries the store will ever hold.
    fn capacity(&self) -> usize;

    /// The reference's metrics view.
    fn metrics(&self) -> DataStoreMetrics;

    /// Health at `now`.
    fn health(&self, now: EpochNanos) -> HealthInfo;
}

/// The owner's side of a writable store: sourced writes on top of the read side.
///
/// Rules every implementation keeps:
/// - every request names its source, checked with [`validate_source_name`] first;
/// - a refused request changes nothing and says why ([`WriteError`]);
/// - [`write_batch`](Self::write_batch) validates every record and checks capacity before
///   applying any: all or nothing;
/// - [`delete`](Self::delete) and [`clear`](Self::clear) of something absent succeed (idempotent);
/// - capacity is fixed at construction; what happens when it is reached is documented by the store.
pub trait WritableStore: WritableStoreRead {
    /// One record as written (it carries its own key).
    type Record;

    /// Writes `record` for `source`, replacing what `source` said before about the same key.
    fn write(
        &mut self,
        source: &str,
        record: &Self::Record,
        now: EpochNanos,
    ) -> Result<(), WriteError>;

    /// Writes all of `records` for `source`, or none of them.
    fn write_batch(
        &mut self,
        source: &str,
        records: &[Self::Record],
        now: EpochNanos,
    ) -> Result<(), WriteError>;

    /// Removes what `source` said about `key`. `Ok(true)` if something was removed, `Ok(false)` if
    /// there was nothing (not an error).
    fn delete(
        &mut self,
        source: &str,
        key: &Self::Key,
        now: EpochNanos,
    ) -> Result<bool, WriteError>;

    /// Removes everything `source` wrote; the number of entries removed (0 for an unknown source).
    fn clear(&mut self, source: &str, now: EpochNanos) -> Result<usize, WriteError>;
}

/// A read-only handle over a writable store: exposes [`WritableStoreRead`] and nothing else, the
/// in-process equivalent of the handle non-owners get from the registry.
#[derive(Debug)]
pub struct ReadOnly<'s, S> {
    store: &'s mut S,
}

impl<'s, S: WritableStoreRead> ReadOnly<'s, S> {
    /// Read-only access to `store`.
    pub fn new(store: &'s mut S) -> Self {
        ReadOnly { store }
    }
}

impl<S: WritableStoreRead> WritableStoreRead for ReadOnly<'_, S> {
    type Key = S::Key;
    type View<'a>
        = S::View<'a>
    where
        Self: 'a;
    type Sources<'a>
        = S::Sources<'a>
    where
        Self: 'a;

    fn name(&self) -> &'static str {
        self.store.name()
    }

    fn get(&mut self, key: &Self::Key, now: EpochNanos) -> Result<Self::View<'_>, StoreError> {
        self.store.get(key, now)
    }

    fn list_sources(&mut self, now: EpochNanos) -> Self::Sources<'_> {
        self.store.list_sources(now)
    }

    fn len(&self) -> usize {
        self.store.len()
    }

    fn capacity(&self) -> usize {
        self.store.capacity()
    }

    fn metrics(&self) -> DataStoreMetrics {
        self.store.metrics()
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        self.store.health(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_name_rules() {
        assert_eq!(validate_source_name("local_detector"), Ok(()));
        assert_eq!(validate_source_name("feed one"), Ok(()));
        assert_eq!(validate_source_name("a"), Ok(()));
        assert_eq!(validate_source_name(""), Err(SourceNameError::Empty));
        assert_eq!(
            validate_source_name(" feed"),
            Err(SourceNameError::SurroundingWhitespace)
        );
        assert_eq!(
            validate_source_name("feed "),
            Err(SourceNameError::SurroundingWhitespace)
        );
        assert_eq!(
            validate_source_name("feed\n"),
            Err(SourceNameError::NotPrintable)
        );
        assert_eq!(
            validate_source_name("fe\u{202e}ed"),
            Err(SourceNameError::NotPrintable)
        );
        assert_eq!(
            validate_source_name("\tfeed"),
            Err(SourceNameError::NotPrintable)
        );
        let longest = [b'x'; MAX_SOURCE_NAME_LEN];
        let longest = core::str::from_utf8(&longest).unwrap();
        assert_eq!(validate_source_name(longest), Ok(()));
        let too_long = [b'x'; MAX_SOURCE_NAME_LEN + 1];
        let too_long = core::str::from_utf8(&too_long).unwrap();
        assert_eq!(
            validate_source_name(too_long),
            Err(SourceNameError::TooLong)
        );
    }

    #[test]
    fn source_name_keeps_valid_names_only() {
        assert_eq!(SourceName::new("feed").unwrap().as_str(), "feed");
        assert_eq!(SourceName::try_from(""), Err(SourceNameError::Empty));
    }

    #[test]
    fn write_error_reports_kind_and_reason() {
        let e = WriteError::new("ip_reputation", "write_batch", Rejection::EntriesFull, None);
        assert!(e.is(ErrorKind::InvalidArgument));
        assert!(e.rejection.is_capacity());
        assert!(!Rejection::Key.is_capacity());
        let as_store: StoreError = e.into();
        assert_eq!(as_store.operation, "write_batch");
    }
}
