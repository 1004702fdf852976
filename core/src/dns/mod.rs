//! DNS: reading answers off the wire and, with `alloc`, the bounded cache of observed answers
//! behind the DNS store.
//!
//! - [`wire`]: zero-copy, checked reader of DNS messages (header, questions, records).
//! - [`name`]: names inside a message (labels, compression pointers) and [`NameBuf`], the
//!   caller's buffer a name is decoded into.
//! - [`reverse`]: `in-addr.arpa` / `ip6.arpa` names and the addresses they stand for.
//! - [`response`]: the answer to `get_dns_response`, bounded.
//! - `cache` (feature `alloc`): `DnsCache`, the store's state.
//! - `namespaces` (feature `alloc`): whose answers they are — every answer belongs to the
//!   network namespace it was seen in ([`DnsOrigin`]), with shares and rates per namespace.
//!
//! ```
//! # #[cfg(feature = "alloc")] {
//! use watchpost_core::dns::{DnsCache, DnsCacheConfig, DnsOrigin};
//!
//! // `dig example.com A`: one question, one answer (owner compressed to the question), TTL 3600.
//! let packet = [
//!     0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, // header: response, 1 question, 1 answer
//!     7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, 0, 1, 0, 1,
//!     0xC0, 12, 0, 1, 0, 1, 0, 0, 0x0E, 0x10, 0, 4, 93, 184, 216, 34,
//! ];
//! let mut cache = DnsCache::new(DnsCacheConfig::default());
//! let now = 1_764_300_000_000_000_000;
//! // Seen in the host's network namespace (inode 4026531840), which the collector trusts.
//! cache.insert_packet(&packet, DnsOrigin::trusted(4_026_531_840), now)?;
//! let answer = cache.get_dns_response("Example.COM", now)?;
//! assert_eq!(answer.ips()[0].to_string(), "93.184.216.34");
//! let answer = cache.get_dns_response("93.184.216.34", now)?;
//! assert_eq!(answer.domains(), ["example.com"]);
//! // Gone at exactly observed time + TTL.
//! assert!(cache.get_dns_response("example.com", now + 3600 * 1_000_000_000).is_err());
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "alloc")]
pub mod cache;
pub mod name;
#[cfg(feature = "alloc")]
pub mod namespaces;
pub mod record;
pub mod response;
pub mod reverse;
pub mod wire;

#[cfg(feature = "alloc")]
pub use cache::{
    DEFAULT_MAX_ADDRESSES, DEFAULT_MAX_LINKS, DEFAULT_MAX_NAMES, DEFAULT_MAX_NAMESPACES,
    DEFAULT_NAME_BYTES, DEFAULT_TRUSTED_ANSWERS_PER_SEC, DEFAULT_UNTRUSTED_ANSWERS_PER_SEC,
    DEFAULT_UNTRUSTED_SHARE_PERCENT, DnsCache, DnsCacheConfig, DnsCacheStats, DnsCacheUsage,
    DnsReadScratch, DnsRestoreReport, Ingested, MAX_CHAIN, MAX_SLOTS, MessageOutcome,
};
#[cfg(feature = "alloc")]
pub use namespaces::DnsOrigin;
pub use record::{DnsLinkKind, DnsNodeRecord, DnsRecord};
#[cfg(feature = "alloc")]
pub use response::DnsResponse;
pub use response::{DnsResponseView, MAX_RESPONSE_DOMAINS, MAX_RESPONSE_IPS};

pub use name::{
    Labels, MAX_LABEL_LEN, MAX_NAME_TEXT_LEN, MAX_NAME_WIRE_LEN, MAX_POINTER_JUMPS, Name, NameBuf,
    NameBufFull,
};
pub use reverse::{parse_reverse_name, reverse_name_of};
pub use wire::{
    CLASS_IN, HEADER_LEN, Header, MAX_MESSAGE_LEN, Message, Question, Questions, Record,
    RecordData, RecordType, Records, Section, WireError,
};
