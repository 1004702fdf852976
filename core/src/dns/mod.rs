//! DNS: reading answers off the wire and, with `alloc`, the bounded cache of observed answers
//! behind the DNS store.
//!
//! - [`wire`]: zero-copy, checked reader of DNS messages (header, questions, records).
//! - [`name`]: names inside a message (labels, compression pointers) and [`NameBuf`], the
//!   caller's buffer a name is decoded into.
//! - [`reverse`]: `in-addr.arpa` / `ip6.arpa` names and the addresses they stand for.
//! - [`response`]: the answer to `get_dns_response`, bounded.
//! - `cache` (feature `alloc`): `DnsCache`, the store's state.

#[cfg(feature = "alloc")]
pub mod cache;
pub mod name;
pub mod response;
pub mod reverse;
pub mod wire;

#[cfg(feature = "alloc")]
pub use cache::{
    DEFAULT_MAX_ADDRESSES, DEFAULT_MAX_LINKS, DEFAULT_MAX_NAMES, DEFAULT_NAME_BYTES, DnsCache,
    DnsCacheConfig, DnsCacheStats, DnsCacheUsage, Ingested, MAX_CHAIN, MAX_SLOTS, MessageOutcome,
};
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
