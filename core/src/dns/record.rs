//! What a snapshot keeps of the DNS cache: its names (with their recency and the network
//! namespace they belong to) and its links (the cached records, with their absolute expiry and
//! namespace), as plain serialisable data.
//!
//! The one place to add a field that must survive a restart (a network namespace, say): add it
//! here, fill it in `DnsCache::records` and read it in `DnsCache::restore`
//! (`dns/cache/snapshot.rs`).

use core::net::IpAddr;

use crate::time::EpochNanos;

/// One end of a cached record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum DnsNodeRecord<'a> {
    /// A lowercase name.
    Name(#[cfg_attr(feature = "serde", serde(borrow))] &'a str),
    /// An address.
    Addr(IpAddr),
}

/// The record type a link stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DnsLinkKind {
    /// name → IPv4 address.
    A,
    /// name → IPv6 address.
    Aaaa,
    /// name → name.
    Cname,
    /// address → name (reverse), or name → name.
    Ptr,
    /// name → mail exchanger name.
    Mx,
    /// name → service host name.
    Srv,
}

/// One entry of a DNS cache snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum DnsRecord<'a> {
    /// A name and its recency stamp (the smaller is evicted first), in its namespace.
    Name {
        /// Lowercase text.
        #[cfg_attr(feature = "serde", serde(borrow))]
        name: &'a str,
        /// Recency stamp.
        recency: u64,
        /// Inode number of the network namespace the name was seen in.
        netns: u32,
        /// Whether that namespace was trusted.
        trusted: bool,
    },
    /// A cached record between two nodes.
    Link {
        /// Source node.
        #[cfg_attr(feature = "serde", serde(borrow))]
        from: DnsNodeRecord<'a>,
        /// Target node.
        #[cfg_attr(feature = "serde", serde(borrow))]
        to: DnsNodeRecord<'a>,
        /// Record type.
        kind: DnsLinkKind,
        /// Absolute expiry, epoch ns: valid across a reboot.
        expires_at: EpochNanos,
        /// Creation stamp: answers list a node's links in creation order.
        created: u64,
        /// Inode number of the network namespace of both ends.
        netns: u32,
    },
}

impl DnsRecord<'_> {
    /// The order to feed records to `DnsCache::restore` in so that, when they do not all fit,
    /// the cache's own rule drops what it would have dropped first: names least recently used
    /// first, then links.
    pub const fn restore_order(&self) -> (bool, u64) {
        match self {
            DnsRecord::Name { recency, .. } => (false, *recency),
            DnsRecord::Link { created, .. } => (true, *created),
        }
    }
}
