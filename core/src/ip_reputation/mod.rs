//! The reference writable store: what feeds and detectors say about IP addresses, kept per source
//! and merged on read by a deterministic conflict policy.
//!
//! Mirrors Tracee's `ipreputation` store (write, write_batch, delete, clear, list_sources,
//! get_reputation, is_denied, is_allowed, check_ips) and fixes its weak spots:
//! - ties between sources are broken by a documented chain ending in the source name
//!   ([`ConflictPolicy`]), never by map order;
//! - addresses are parsed and normalised (`::ffff:1.2.3.4` is `1.2.3.4`, IPv6 case does not
//!   matter); text that is not an address is `InvalidArgument`;
//! - batches are checked whole before anything is written, including against the remaining
//!   capacity;
//! - memory is bounded: entries, sources and tag/metadata strings all have capacities fixed at
//!   construction, and a write that does not fit is refused, never silently evicting someone
//!   else's verdict (see [`IpReputationStore`]).
//!
//! [`record`] holds the plain data (no features); the store needs `alloc`.

pub mod policy;
pub mod record;
pub mod snapshot_record;
#[cfg(feature = "alloc")]
pub mod store;

pub use policy::{ConflictPolicy, Contender};
pub use record::{
    IpInput, IpParseError, IpReputation, RecordError, ReputationStatus, normalize_ip, parse_ip,
};
pub use snapshot_record::ReputationRecord;
#[cfg(feature = "alloc")]
pub use store::{
    CheckIps, IpReputationConfig, IpReputationStats, IpReputationStore, ReputationLookup,
    ReputationRestoreReport, ReputationView, SourceNames,
};
