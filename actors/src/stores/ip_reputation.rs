//! The IP reputation store as a writable store: the owner (whoever registered it) writes what
//! feeds and detectors say about addresses; everybody else reads the merged verdicts.
//!
//! # Ownership is a type
//! [`Registry::register_writable_store`](crate::Registry::register_writable_store) hands the
//! registrant the only [`IpReputationOwner`] (`WriteHandle<IpReputationStore>`): `write_reputation`,
//! `write_batch`, `delete`, `clear`, plus every read. Everybody else gets an
//! [`IpReputationReader`] (`ReadHandle<IpReputationStore>`) from
//! [`Registry::get_custom_typed`](crate::Registry::get_custom_typed) (or
//! `get_custom(name)?.typed()`): `get_reputation`, `is_denied`, `is_allowed`, `check_ips`,
//! `list_sources`, `get_health`, `get_metrics`, and nothing that writes. There is no check at run
//! time to get around: a reader has no write method to call, and it cannot become an owner
//! (`WriteHandle` has no public constructor).
//!
//! The owner's code compiles:
//! ```no_run
//! # async fn demo(registry: watchpost_actors::Registry) -> Result<(), Box<dyn std::error::Error>> {
//! use watchpost_actors::StoreOptions;
//! use watchpost_actors::adapters::ip_reputation::ip_reputation_factory;
//! use watchpost_core::ip_reputation::{IpReputation, IpReputationConfig, ReputationStatus};
//!
//! let owner = registry
//!     .register_writable_store(
//!         "ip_reputation",
//!         ip_reputation_factory(IpReputationConfig::new(10_000), Vec::new()),
//!         StoreOptions::default(),
//!     )
//!     .await?;
//! let record = IpReputation::new("203.0.113.7", ReputationStatus::Deny, 8, 0)?;
//! owner.write_reputation("local_detector", record).await?;
//! owner.clear("local_detector").await?;
//! # Ok(()) }
//! ```
//! The same calls on a reader do not:
//! ```compile_fail,E0599
//! # async fn demo(registry: watchpost_actors::Registry) -> Result<(), Box<dyn std::error::Error>> {
//! use watchpost_core::ip_reputation::IpReputationStore;
//! let reader = registry.get_custom_typed::<IpReputationStore>("ip_reputation").await?;
//! reader.clear("local_detector").await?; // no method `clear` on a reader
//! # Ok(()) }
//! ```
//! ```compile_fail,E0599
//! # async fn demo(registry: watchpost_actors::Registry) -> Result<(), Box<dyn std::error::Error>> {
//! use watchpost_core::ip_reputation::{IpReputation, IpReputationStore, ReputationStatus};
//! let reader = registry.get_custom_typed::<IpReputationStore>("ip_reputation").await?;
//! let record = IpReputation::new("203.0.113.7", ReputationStatus::Deny, 8, 0)?;
//! reader.write_reputation("local_detector", record).await?; // nor `write_reputation`
//! # Ok(()) }
//! ```
//!
//! The single write is `write_reputation` (the reference's `WriteReputation`): every
//! [`WriteHandle`] already has a generic `write(request)` taking the store's raw request type,
//! here an [`IpReputationWrite`]. The owner can also feed large batches fire-and-forget through
//! [`WriteHandle::intake`] (`IpReputationWrite::WriteBatch` items).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use watchpost_core::ip_reputation::{
    IpInput, IpParseError, IpReputation, IpReputationStore, ReputationStatus, ReputationView,
    normalize_ip, parse_ip,
};
use watchpost_core::writable::{Rejection, WriteError};
use watchpost_core::{ErrorKind, StoreError};

use crate::adapters::ip_reputation::{CONFLICTS_RESOLVED, has_status, to_verdict, verdict};
use crate::handle::StoreHandle;
use crate::writable::{ReadHandle, WritableProtocol, WriteHandle};

/// The owner's handle of the IP reputation store.
pub type IpReputationOwner = WriteHandle<IpReputationStore>;
/// Everybody else's (read-only) handle of the IP reputation store.
pub type IpReputationReader = ReadHandle<IpReputationStore>;

/// An address as a caller gives it: text (parsed, and refused as `InvalidArgument`, inside the
/// store, so a malformed address counts in its metrics) or already parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IpQuery {
    /// `"203.0.113.7"`, `"2001:db8::1"`, `"::ffff:1.2.3.4"`.
    Text(String),
    /// A parsed address.
    Addr(IpAddr),
}

impl IpInput for IpQuery {
    fn to_ip(&self) -> Result<IpAddr, IpParseError> {
        match self {
            IpQuery::Text(text) => parse_ip(text),
            IpQuery::Addr(addr) => Ok(normalize_ip(*addr)),
        }
    }
}

impl From<&str> for IpQuery {
    fn from(text: &str) -> Self {
        IpQuery::Text(text.to_owned())
    }
}
impl From<String> for IpQuery {
    fn from(text: String) -> Self {
        IpQuery::Text(text)
    }
}
impl From<&String> for IpQuery {
    fn from(text: &String) -> Self {
        IpQuery::Text(text.clone())
    }
}
impl From<IpAddr> for IpQuery {
    fn from(addr: IpAddr) -> Self {
        IpQuery::Addr(addr)
    }
}
impl From<Ipv4Addr> for IpQuery {
    fn from(addr: Ipv4Addr) -> Self {
        IpQuery::Addr(IpAddr::V4(addr))
    }
}
impl From<Ipv6Addr> for IpQuery {
    fn from(addr: Ipv6Addr) -> Self {
        IpQuery::Addr(IpAddr::V6(addr))
    }
}

/// The merged verdict on one address: the record of the source the store's conflict policy
/// picked, owned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The winning source.
    pub source: String,
    /// Its configured priority (0 if none).
    pub priority: i32,
    /// What it said (address normalised).
    pub record: IpReputation,
}

/// A read request (what a reader can send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpReputationRead {
    /// The merged verdict.
    GetReputation(IpQuery),
    /// Whether the merged verdict is `Deny`.
    IsDenied(IpQuery),
    /// Whether the merged verdict is `Allow`.
    IsAllowed(IpQuery),
    /// Verdicts of many addresses, one answer each, in order.
    CheckIps(Vec<IpQuery>),
    /// Sources holding data, in name order.
    ListSources,
}

/// The answer to an [`IpReputationRead`] (the variant matches the request's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpReputationAnswer {
    /// For `GetReputation` (boxed: a record is about 1 KB inline).
    Verdict(Box<Result<Verdict, StoreError>>),
    /// For `IsDenied` and `IsAllowed`.
    Flag(Result<bool, StoreError>),
    /// For `CheckIps`.
    Verdicts(Vec<Result<Verdict, StoreError>>),
    /// For `ListSources`.
    Sources(Vec<String>),
}

/// A write request (only the owner can send one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpReputationWrite {
    /// One record for `source`, replacing what it said about the same address.
    Write {
        /// Who says it.
        source: String,
        /// What (boxed: a record is about 1 KB inline).
        record: Box<IpReputation>,
    },
    /// All records for `source`, or none.
    WriteBatch {
        /// Who says it.
        source: String,
        /// What.
        records: Vec<IpReputation>,
    },
    /// Forget what `source` said about `ip`.
    Delete {
        /// Whose verdict.
        source: String,
        /// Which address.
        ip: IpQuery,
    },
    /// Forget everything `source` said.
    Clear {
        /// Whose verdicts.
        source: String,
    },
    /// A feed message, applied whole or not at all, in one actor message (no reader sees it
    /// half-applied): with `replace`, everything `source` held is replaced by `records`;
    /// otherwise `remove` is forgotten and `records` written. Any number of records (the store's
    /// batch limit is met by chunks; a chunk refused rolls everything back to what `source`
    /// held before).
    ApplyFeed {
        /// Whose verdicts.
        source: String,
        /// Replace the source's whole set.
        replace: bool,
        /// What it says now.
        records: Vec<IpReputation>,
        /// Addresses it no longer says anything about.
        remove: Vec<IpAddr>,
    },
}

/// What an accepted [`IpReputationWrite`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpReputationWritten {
    /// `Write` stored its record.
    Written,
    /// `WriteBatch` stored this many records.
    BatchWritten(usize),
    /// `Delete`: whether there was something to delete.
    Deleted(bool),
    /// `Clear`: how many entries were removed.
    Cleared(usize),
    /// `ApplyFeed`: entries removed (cleared or deleted) and records written.
    FeedApplied {
        /// Entries removed.
        removed: usize,
        /// Records written.
        written: usize,
    },
}

/// An owner's write that did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReputationWriteError {
    /// The store refused it and changed nothing; [`WriteError::rejection`] says why and
    /// [`WriteError::item`] which batch record.
    #[error("{0}")]
    Refused(WriteError),
    /// The store did not answer (not running, restarting, or the call timed out; after a
    /// timeout the write may still be applied).
    #[error("{0}")]
    Unavailable(StoreError),
}

impl ReputationWriteError {
    /// The error as every store reports it (store, operation, kind).
    pub fn store_error(&self) -> StoreError {
        match self {
            ReputationWriteError::Refused(e) => e.error,
            ReputationWriteError::Unavailable(e) => *e,
        }
    }

    /// Whether it is of `kind` (refusals are `InvalidArgument`, see [`Rejection::kind`]).
    pub fn is(&self, kind: ErrorKind) -> bool {
        self.store_error().is(kind)
    }

    /// Why the store refused, if it did.
    pub fn rejection(&self) -> Option<Rejection> {
        match self {
            ReputationWriteError::Refused(e) => Some(e.rejection),
            ReputationWriteError::Unavailable(_) => None,
        }
    }
}

impl From<ReputationWriteError> for StoreError {
    fn from(e: ReputationWriteError) -> StoreError {
        e.store_error()
    }
}

/// Reads answer from the store's published copy in the caller's task (no message); each counts
/// in the store's metrics. `with_reputation` lends the borrowed verdict to a closure, so a
/// detector that needs one field does not copy the ~1 KB record.
impl StoreHandle<WritableProtocol<IpReputationStore>> {
    /// Runs `f` on the merged verdict on `ip`: `NotFound` if no source holds it,
    /// `InvalidArgument` if it is not an address.
    pub fn with_reputation<Q: IpInput + ?Sized, R>(
        &self,
        ip: &Q,
        f: impl FnOnce(&ReputationView<'_>) -> R,
    ) -> Result<R, StoreError> {
        const OP: &str = "get_reputation";
        self.read_view(OP, |store, reads| {
            verdict(store, reads, ip, OP).map(|v| f(&v))
        })?
    }

    /// Whether the merged verdict on `ip` is `Deny` (`false` if no source holds it), without
    /// waiting: the lookup runs here.
    pub fn check_denied<Q: IpInput + ?Sized>(&self, ip: &Q) -> Result<bool, StoreError> {
        const OP: &str = "is_denied";
        self.read_view(OP, |store, reads| {
            has_status(store, reads, ip, ReputationStatus::Deny, OP)
        })?
    }

    /// The merged verdict on `ip`: `NotFound` if no source holds it, `InvalidArgument` if it is
    /// not an address.
    pub async fn get_reputation(&self, ip: impl Into<IpQuery>) -> Result<Verdict, StoreError> {
        self.with_reputation(&ip.into(), to_verdict)
    }

    /// Whether the merged verdict on `ip` is `Deny` (`false` if no source holds it).
    pub async fn is_denied(&self, ip: impl Into<IpQuery>) -> Result<bool, StoreError> {
        self.check_denied(&ip.into())
    }

    /// Whether the merged verdict on `ip` is `Allow` (`false` if no source holds it).
    pub async fn is_allowed(&self, ip: impl Into<IpQuery>) -> Result<bool, StoreError> {
        const OP: &str = "is_allowed";
        let ip = ip.into();
        self.read_view(OP, |store, reads| {
            has_status(store, reads, &ip, ReputationStatus::Allow, OP)
        })?
    }

    /// Runs `f` on the verdict of each of `ips` in order, all from one published copy.
    pub fn with_verdicts<Q: IpInput>(
        &self,
        ips: &[Q],
        mut f: impl FnMut(&Q, Result<&ReputationView<'_>, StoreError>),
    ) -> Result<(), StoreError> {
        const OP: &str = "check_ips";
        self.read_view(OP, |store, reads| {
            for ip in ips {
                f(ip, verdict(store, reads, ip, OP).as_ref().map_err(|e| *e));
            }
        })
    }

    /// Verdicts of many addresses, one answer per address, in order, from one published copy.
    pub async fn check_ips<Q: Into<IpQuery>>(
        &self,
        ips: impl IntoIterator<Item = Q>,
    ) -> Result<Vec<Result<Verdict, StoreError>>, StoreError> {
        let ips: Vec<IpQuery> = ips.into_iter().map(Into::into).collect();
        let mut answers = Vec::with_capacity(ips.len());
        self.with_verdicts(&ips, |_, v| answers.push(v.map(to_verdict)))?;
        Ok(answers)
    }

    /// Names of the sources holding data, in byte order.
    pub async fn list_sources(&self) -> Result<Vec<String>, StoreError> {
        self.read_view("list_sources", |store, reads| {
            reads.success();
            store.sources().map(str::to_owned).collect()
        })
    }

    /// Lookups so far where several sources held the address (the conflict policy picked the
    /// answer); counted by readers, not by the store.
    pub fn conflicts_resolved(&self) -> u64 {
        self.slot.read_extras()[CONFLICTS_RESOLVED]
    }
}

impl WriteHandle<IpReputationStore> {
    /// An answer of the wrong shape: cannot happen (the store answers each request with its own
    /// variant); reported as the store misbehaving rather than a panic.
    fn misanswered(&self, operation: &'static str) -> StoreError {
        tracing::error!(
            store = self.name(),
            operation,
            "answer does not match the request"
        );
        StoreError::unhealthy(self.name(), operation)
    }

    async fn write_request(
        &self,
        operation: &'static str,
        request: IpReputationWrite,
    ) -> Result<IpReputationWritten, ReputationWriteError> {
        self.write_as(operation, request)
            .await
            .map_err(ReputationWriteError::Unavailable)?
            .map_err(ReputationWriteError::Refused)
    }

    /// Writes `record` for `source`, replacing what `source` said about the same address (the
    /// reference's `WriteReputation`).
    pub async fn write_reputation(
        &self,
        source: &str,
        record: IpReputation,
    ) -> Result<(), ReputationWriteError> {
        self.write_request(
            "write",
            IpReputationWrite::Write {
                source: source.to_owned(),
                record: Box::new(record),
            },
        )
        .await
        .map(drop)
    }

    /// Writes all of `records` for `source`, or none of them: the store checks every record,
    /// repeated addresses and the room left before writing anything.
    pub async fn write_batch(
        &self,
        source: &str,
        records: Vec<IpReputation>,
    ) -> Result<(), ReputationWriteError> {
        self.write_request(
            "write_batch",
            IpReputationWrite::WriteBatch {
                source: source.to_owned(),
                records,
            },
        )
        .await
        .map(drop)
    }

    /// Forgets what `source` said about `ip`; `false` if it said nothing (not an error).
    pub async fn delete(
        &self,
        source: &str,
        ip: impl Into<IpQuery>,
    ) -> Result<bool, ReputationWriteError> {
        match self
            .write_request(
                "delete",
                IpReputationWrite::Delete {
                    source: source.to_owned(),
                    ip: ip.into(),
                },
            )
            .await?
        {
            IpReputationWritten::Deleted(found) => Ok(found),
            _ => Err(ReputationWriteError::Unavailable(
                self.misanswered("delete"),
            )),
        }
    }

    /// Applies a feed message whole or not at all (see [`IpReputationWrite::ApplyFeed`]);
    /// answers (entries removed, records written).
    pub async fn apply_feed(
        &self,
        source: &str,
        replace: bool,
        records: Vec<IpReputation>,
        remove: Vec<IpAddr>,
    ) -> Result<(usize, usize), ReputationWriteError> {
        match self
            .write_request(
                "apply_feed",
                IpReputationWrite::ApplyFeed {
                    source: source.to_owned(),
                    replace,
                    records,
                    remove,
                },
            )
            .await?
        {
            IpReputationWritten::FeedApplied { removed, written } => Ok((removed, written)),
            _ => Err(ReputationWriteError::Unavailable(
                self.misanswered("apply_feed"),
            )),
        }
    }

    /// Forgets everything `source` said; how many entries that was (0 for an unknown source).
    pub async fn clear(&self, source: &str) -> Result<usize, ReputationWriteError> {
        match self
            .write_request(
                "clear",
                IpReputationWrite::Clear {
                    source: source.to_owned(),
                },
            )
            .await?
        {
            IpReputationWritten::Cleared(n) => Ok(n),
            _ => Err(ReputationWriteError::Unavailable(self.misanswered("clear"))),
        }
    }
}
