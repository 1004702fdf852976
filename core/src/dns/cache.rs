//! The DNS store's state: a bounded graph of the DNS answers actually observed, answering
//! "what does this name resolve to" and "which names lead to this address".
//!
//! # Model
//! Nodes are **names** (lowercase text, interned in a bounded [`InternArena`]) and **addresses**
//! (IPv4 or IPv6). Every cached record is a **link** between two nodes, with its own expiry:
//! - `CNAME`, `MX`, `SRV`, and a `PTR` whose owner is not a reverse name: name → name;
//! - `A`, `AAAA`: name → address;
//! - `PTR` owned by `4.3.2.1.in-addr.arpa` / a 32-nibble `ip6.arpa` name: address → name, the
//!   address read back in the right order (1.2.3.4).
//!
//! Names, addresses and links each live in a slab whose size is fixed by [`DnsCacheConfig`], found
//! through [`SlotIndex`]es (name → node, address → node, (from, to, type) → link), and a link
//! sits in the intrusive out-list of its source and in-list of its target. Nothing allocates
//! after [`DnsCache::new`].
//!
//! # Namespaces
//! Every answer is inserted with its [`DnsOrigin`]: the network namespace it was seen in and
//! whether the collector trusts that namespace (the host's, or a container's the runtime made).
//! Nodes belong to one namespace — the same name seen in two namespaces is two nodes, and links
//! never cross namespaces — so an answer a process made up in a namespace of its own is a fact
//! about that namespace only. See [`super::namespaces`] for the shares and rates that keep one
//! namespace from flushing the others' answers.
//!
//! # What is cached
//! A message is cached when it is a response (QR set) to a standard query (opcode 0) with RCODE
//! NOERROR or NXDOMAIN (a CNAME chain ending in a name that does not exist is still a true chain),
//! exactly one question of class IN and at least one answer: the reference's rule (≥ 1 answer,
//! exactly 1 question), made explicit. Anything else is counted and ignored, and a message that
//! does not parse is rejected. Only answer records are read (authority and additional records
//! are not answers to the question and are easy to forge).
//!
//! An answer record is kept when it is of class IN, type A, AAAA, CNAME, PTR, MX or SRV, has a
//! TTL above 0 (RFC 2181: a TTL over 2^31 - 1 counts as 0), names that are UTF-8 without a `.`
//! inside a label and not the root, and an owner on the question's chain: the question itself or
//! the target of an on-chain CNAME earlier in the same message, kept or not, up to
//! [`MAX_CHAIN`] hops (resolvers write chains in order, RFC 1034 §4.3.2; a record about an
//! unrelated owner is an injection attempt or noise: `records_out_of_chain`).
//!
//! # Time
//! A link observed at `now` with TTL `t` seconds is live while `now' < now + t`; at exactly
//! `now + t` it is expired (never answered again). Seeing the same record again (same source,
//! target and type) refreshes that link to the later of the two expiries, never duplicating
//! it. A node is answered while at least one of its links is live; the reference's query
//! roots that never expire are gone, and each link is checked against its own expiry (the
//! reference checks the wrong node's).
//!
//! # `get_dns_response(query, now)` and `get_dns_response_in(query, netns, now)`
//! The first answers as the trusted namespaces saw it (each trusted namespace holding `query`
//! contributes, the same name or address listed once), the second as one namespace saw it.
//! `query` is an address (`1.2.3.4`, `2606:4700::1`; IPv4-mapped IPv6 counts as IPv4), a
//! reverse name (`4.3.2.1.in-addr.arpa`, which means the address 1.2.3.4) or a name (any ASCII
//! case, an optional trailing dot). Like the reference, the answer is the queried node, then
//! everything below it (following live links forward, breadth first: CNAME targets, addresses,
//! MX and SRV hosts, PTR names), then everything above it (following live links backwards,
//! breadth first: the names that lead to it), each node once, never going down again from a
//! node found going up. Names go to `domains`, addresses to `ips`, each nearest first, and
//! among one node's links in the order they were first stored.
//! - `www.example.com` (`CNAME a.example.net`, `a.example.net CNAME b.cdn.net`,
//!   `b.cdn.net A 1.2.3.4`): domains `[www.example.com, a.example.net, b.cdn.net]`, ips
//!   `[1.2.3.4]`.
//! - `1.2.3.4`: ips `[1.2.3.4]`, domains `[b.cdn.net, a.example.net, www.example.com]`, after
//!   the names of PTR answers for it if any (those are below the address).
//!
//! An empty query, or one longer than 253 bytes once a trailing dot is dropped, is
//! `InvalidArgument`; an unknown or fully expired node is `NotFound`. Answers are bounded
//! ([`MAX_RESPONSE_IPS`], [`MAX_RESPONSE_DOMAINS`]; `truncated` says more was related).
//! Metrics follow the crate's counting rule.
//!
//! # Eviction when a slab (or the name arena) is full
//! 0. An untrusted namespace storing something while the untrusted namespaces together hold
//!    their share of that pool (`untrusted_share_percent`) first takes it from the untrusted
//!    namespace holding the most (`names_evicted_untrusted_share`).
//! 1. If any link may have expired (the cache keeps a lower bound of all expiries), every expired
//!    link is dropped, then every node left without links: counted as `*_expired`.
//! 2. Otherwise (or if that freed nothing of what is needed) the least recently used name of the
//!    namespace holding the most of the full pool is evicted with all of its links, and so is
//!    every node those links leave without links: counted as `*_evicted`. That namespace is
//!    chosen among the untrusted ones when there are any holding the pool (and only among them
//!    for an untrusted insert: an untrusted namespace never evicts a trusted answer), else among
//!    the trusted ones — so a namespace can push another down to its own size, never below.
//!    Storing a record touches its names (owner first, then target) and a query touches every
//!    name it visits, so a CNAME chain ages together and its head (the name applications asked
//!    for) goes first, as the reference's LRU of query roots does.
//!
//! The sweep scans every link slot, so it runs only when something can have expired; the lower
//! bound is made exact by each sweep.
//!
//! Addresses have no recency of their own: they live as long as a link reaches them. A record
//! that cannot fit even in an emptied cache (a name longer than the whole arena) is dropped and
//! counted (`records_dropped`).
//!
//! # Memory
//! With the default [`DnsCacheConfig`] (5,000 names, 10,000 addresses, 20,000 links, 160,000
//! name bytes, 256 namespaces) the cache reserves about 2.5 MB on 64-bit targets, about 508
//! bytes per name slot with its share of addresses, links, indexes, text, snapshot stamps and
//! namespace bookkeeping ([`DnsCache::bytes_per_name`]).

mod read;

pub use read::DnsReadScratch;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::net::IpAddr;

use super::name::{MAX_NAME_TEXT_LEN, NameBuf};
use super::namespaces::{DnsOrigin, Limits, NamespaceTable, Pool, Refusal};
use super::response::{DnsResponseView, MAX_RESPONSE_DOMAINS, MAX_RESPONSE_IPS};
use super::reverse::parse_reverse_name;
use super::wire::{CLASS_IN, Message, Record, RecordData, WireError};
use crate::error::{StoreError, store_names};
use crate::health::{HealthInfo, HealthStatus};
use crate::intern_arena::{InternArena, StrHandle};
use crate::metrics::{DataStoreMetrics, StoreMetrics};
use crate::reserved_vec::ReservedVec;
use crate::slot_index::{KeyHasher, SlotIndex};
use crate::time::{EpochNanos, NANOS_PER_SEC};

mod snapshot;
pub use snapshot::DnsRestoreReport;

const STORE: &str = store_names::DNS;
const GET: &str = "get_dns_response";

/// Default number of names: the reference's 5000 query roots, which here bound every name.
pub const DEFAULT_MAX_NAMES: usize = 5_000;
/// Default number of addresses.
pub const DEFAULT_MAX_ADDRESSES: usize = 10_000;
/// Default number of links (cached records).
pub const DEFAULT_MAX_LINKS: usize = 20_000;
/// Default bytes of name text (32 per name on average; typical names are 15 to 30 bytes).
pub const DEFAULT_NAME_BYTES: usize = DEFAULT_MAX_NAMES * 32;
/// Most slots of any one kind: slot numbers are 31 bits (the top bit tells addresses apart).
pub const MAX_SLOTS: usize = (1 << 31) - 2;
/// Most CNAME hops followed within one message (resolvers give up after 8 to 16).
pub const MAX_CHAIN: usize = 16;
/// Default number of network namespaces with answers held at once.
pub const DEFAULT_MAX_NAMESPACES: usize = 256;
/// Default share of each pool the untrusted namespaces may hold together, percent.
pub const DEFAULT_UNTRUSTED_SHARE_PERCENT: u8 = 25;
/// Default answers per second one trusted namespace may insert.
pub const DEFAULT_TRUSTED_ANSWERS_PER_SEC: u32 = 5_000;
/// Default answers per second one untrusted namespace may insert.
pub const DEFAULT_UNTRUSTED_ANSWERS_PER_SEC: u32 = 50;

/// End of a link list.
const NIL: u32 = u32::MAX;
/// Top bit of a [`NodeId`]: set for addresses.
const ADDR_BIT: u32 = 1 << 31;

/// How a [`DnsCache`] is sized. Every value is clamped to `1..=MAX_SLOTS` (bytes to at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DnsCacheConfig {
    /// Most names held (owners and targets alike).
    pub max_names: usize,
    /// Most addresses held.
    pub max_addresses: usize,
    /// Most records held.
    pub max_links: usize,
    /// Bytes of name text, all names together.
    pub name_bytes: usize,
    /// Seed of the hash indexes; pass a random value so names cannot be chosen to collide.
    pub hash_seed: u64,
    /// Network namespaces holding answers at once (clamped to `1..=65535`).
    pub max_namespaces: usize,
    /// Share of each pool (names, addresses, records, name bytes) the untrusted namespaces may
    /// hold together, percent (at most 100).
    pub untrusted_share_percent: u8,
    /// Answer messages per second one trusted namespace may insert (at least 1).
    pub trusted_answers_per_sec: u32,
    /// Answer messages per second one untrusted namespace may insert (at least 1).
    pub untrusted_answers_per_sec: u32,
}

impl Default for DnsCacheConfig {
    fn default() -> Self {
        DnsCacheConfig {
            max_names: DEFAULT_MAX_NAMES,
            max_addresses: DEFAULT_MAX_ADDRESSES,
            max_links: DEFAULT_MAX_LINKS,
            name_bytes: DEFAULT_NAME_BYTES,
            hash_seed: 0x646e_735f_6361_6368,
            max_namespaces: DEFAULT_MAX_NAMESPACES,
            untrusted_share_percent: DEFAULT_UNTRUSTED_SHARE_PERCENT,
            trusted_answers_per_sec: DEFAULT_TRUSTED_ANSWERS_PER_SEC,
            untrusted_answers_per_sec: DEFAULT_UNTRUSTED_ANSWERS_PER_SEC,
        }
    }
}

/// Why a whole message was not cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MessageOutcome {
    /// Cached (its records were each kept, refreshed, ignored or dropped).
    Cached,
    /// A query, not a response.
    NotAResponse,
    /// Opcode other than standard query.
    NotAStandardQuery,
    /// RCODE other than NOERROR and NXDOMAIN.
    ErrorResponse,
    /// Zero or several questions.
    NotOneQuestion,
    /// Question class other than IN.
    NotInternetClass,
    /// No answer records.
    NoAnswers,
    /// Its namespace inserted more messages than its rate allows this second.
    RateLimited,
    /// Every namespace slot holds answers (and an untrusted namespace may not evict any).
    NoNamespaceSlot,
}

/// What [`DnsCache::insert_message`] did with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ingested {
    /// Whether the message was cached, and if not why.
    pub outcome: MessageOutcome,
    /// Records stored as new links.
    pub inserted: u32,
    /// Records that refreshed a link already held.
    pub refreshed: u32,
    /// Records not kept by rule (type, class, TTL, name, chain).
    pub ignored: u32,
    /// Records that did not fit even after evicting.
    pub dropped: u32,
}

impl Ingested {
    const fn not_cached(outcome: MessageOutcome) -> Self {
        Ingested {
            outcome,
            inserted: 0,
            refreshed: 0,
            ignored: 0,
            dropped: 0,
        }
    }
}

/// Counters of the cache's own work; all monotonic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DnsCacheStats {
    /// Messages cached.
    pub messages_cached: u64,
    /// Messages ignored by rule (not a response, no answer, …).
    pub messages_ignored: u64,
    /// Messages that did not parse.
    pub messages_rejected: u64,
    /// Records stored as new links.
    pub records_inserted: u64,
    /// Records that refreshed a held link.
    pub records_refreshed: u64,
    /// Records not kept by rule: type, class, zero TTL, unusable or root name, self-reference.
    pub records_ignored: u64,
    /// Records whose owner was not on the question's chain.
    pub records_out_of_chain: u64,
    /// Records that did not fit even after evicting.
    pub records_dropped: u64,
    /// Names dropped because all of their links expired.
    pub names_expired: u64,
    /// Names evicted as least recently used (or left without links by such an eviction).
    pub names_evicted: u64,
    /// Addresses dropped because all of their links expired.
    pub addresses_expired: u64,
    /// Addresses left without links by an eviction.
    pub addresses_evicted: u64,
    /// Links dropped because they expired.
    pub links_expired: u64,
    /// Links dropped with an evicted name.
    pub links_evicted: u64,
    /// Answers cut to [`MAX_RESPONSE_IPS`] / [`MAX_RESPONSE_DOMAINS`].
    pub responses_truncated: u64,
    /// Messages refused because their namespace was over its rate.
    pub messages_rate_limited: u64,
    /// Messages refused because no namespace slot was free.
    pub messages_no_namespace_slot: u64,
    /// Names of trusted namespaces evicted as least recently used (a subset of
    /// `names_evicted`; the untrusted namespaces never cause one).
    pub trusted_names_evicted: u64,
    /// Names of untrusted namespaces evicted because the untrusted namespaces held their whole
    /// share of a pool.
    pub names_evicted_untrusted_share: u64,
}

/// Current occupancy, per slab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DnsCacheUsage {
    /// Names held.
    pub names: usize,
    /// Addresses held.
    pub addresses: usize,
    /// Links (records) held, expired ones not yet swept included.
    pub links: usize,
    /// Bytes of name text held.
    pub name_bytes: usize,
}

/// A node: a name slot, or an address slot with [`ADDR_BIT`] set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NodeId(u32);

enum NodeSlot {
    Name(usize),
    Addr(usize),
}

impl NodeId {
    const fn name(slot: u32) -> Self {
        NodeId(slot)
    }

    const fn addr(slot: u32) -> Self {
        NodeId(slot | ADDR_BIT)
    }

    const fn slot(self) -> NodeSlot {
        if self.0 & ADDR_BIT == 0 {
            NodeSlot::Name(self.0 as usize)
        } else {
            NodeSlot::Addr((self.0 & !ADDR_BIT) as usize)
        }
    }
}

/// The link lists of one node.
#[derive(Debug, Clone, Copy)]
struct Adjacency {
    /// First link leaving the node (`NIL` if none); threaded through `Link::next_out`.
    out_head: u32,
    /// First link reaching the node; threaded through `Link::next_in`.
    in_head: u32,
    /// Links in both lists. Invariant: equals their total length; a held node has `degree > 0`
    /// except while it is pinned during an insertion.
    degree: u32,
    /// Traversal mark: equal to the cache's `epoch` when visited by the current query.
    visit: u32,
}

impl Adjacency {
    const EMPTY: Adjacency = Adjacency {
        out_head: NIL,
        in_head: NIL,
        degree: 0,
        visit: 0,
    };
}

#[derive(Debug, Clone, Copy)]
struct NameNode {
    /// Lowercase text; one arena reference held per node.
    text: StrHandle,
    /// The namespace slot it belongs to.
    ns: u16,
    adj: Adjacency,
    /// Cache stamp of the last recency refresh: its namespace's recency list is in this order (see `snapshot`).
    touched: u64,
}

#[derive(Debug, Clone, Copy)]
struct AddrNode {
    /// Canonical: IPv4-mapped IPv6 is stored as IPv4.
    addr: IpAddr,
    /// The namespace slot it belongs to.
    ns: u16,
    adj: Adjacency,
}

/// The record type a link stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum LinkKind {
    A = 1,
    Aaaa,
    Cname,
    Ptr,
    Mx,
    Srv,
}

#[derive(Debug, Clone, Copy)]
struct Link {
    from: NodeId,
    to: NodeId,
    /// Live while `now < expires_at`.
    expires_at: EpochNanos,
    kind: LinkKind,
    /// The namespace slot of both ends.
    ns: u16,
    /// Cache stamp of the link's creation: both lists it sits in are newest first by it.
    created: u64,
    /// Neighbours in `from`'s out-list and `to`'s in-list (`NIL` at the ends).
    prev_out: u32,
    next_out: u32,
    prev_in: u32,
    next_in: u32,
}

/// One end of a record, before it has a node.
#[derive(Clone, Copy)]
enum NodeKey<'k> {
    /// Lowercase name text.
    Name(&'k str),
    Addr(IpAddr),
}

/// Why a record could not be stored.
enum NotStored {
    /// By rule (self-reference).
    Ignored,
    /// No room even after evicting.
    Dropped,
}

/// The DNS store: see the module documentation.
#[derive(Debug, Clone)]
pub struct DnsCache {
    /// Invariant: a `Some` slot is indexed in `name_index` under the hash of its namespace and
    /// text, linked in its namespace's recency list, and holds one arena reference; a `None`
    /// slot is in `free_names`.
    names: Box<[Option<NameNode>]>,
    free_names: ReservedVec<u32>,
    /// Invariant: a `Some` slot is indexed in `addr_index`; a `None` slot is in `free_addrs`.
    addrs: Box<[Option<AddrNode>]>,
    free_addrs: ReservedVec<u32>,
    /// Invariant: a `Some` slot is indexed in `link_index`, in its source's out-list and its
    /// target's in-list, and both ends are held; a `None` slot is in `free_links`.
    links: Box<[Option<Link>]>,
    free_links: ReservedVec<u32>,
    name_index: SlotIndex,
    addr_index: SlotIndex,
    link_index: SlotIndex,
    arena: InternArena,
    /// Namespaces with their usage, rate and the recency order of their names.
    namespaces: NamespaceTable,
    hasher: KeyHasher,
    /// Lower bound of every held link's `expires_at` (`u64::MAX` when none): nothing can have
    /// expired before it, so eviction skips the sweep until then.
    earliest_expiry: EpochNanos,
    /// Nodes of the record being stored, and whether each was created for it: never evicted or
    /// dropped as orphans meanwhile.
    pinned: [Option<(NodeId, bool)>; 2],
    /// Query traversal: nodes in visit order. Capacity: every node, so pushes never allocate.
    scratch: ReservedVec<NodeId>,
    epoch: u32,
    metrics: StoreMetrics,
    stats: DnsCacheStats,
    /// Source of `NameNode::touched` / `Link::created`; strictly increasing.
    stamp: u64,
    /// Counts every change (a snapshot is needed when it moved since the last one).
    changes: u64,
    /// Set while [`DnsCache::restore`] runs: recorded stamps are kept, not renewed.
    restoring: bool,
    /// While restoring: the recorded creation stamp of the link being restored.
    restore_created: u64,
}

impl DnsCache {
    /// A cache with all of its memory reserved now.
    pub fn new(config: DnsCacheConfig) -> Self {
        let max_names = config.max_names.clamp(1, MAX_SLOTS);
        let max_addrs = config.max_addresses.clamp(1, MAX_SLOTS);
        let max_links = config.max_links.clamp(1, MAX_SLOTS);
        let name_bytes = config.name_bytes.max(1);
        DnsCache {
            names: empty_slab(max_names),
            free_names: free_list(max_names),
            addrs: empty_slab(max_addrs),
            free_addrs: free_list(max_addrs),
            links: empty_slab(max_links),
            free_links: free_list(max_links),
            name_index: SlotIndex::with_capacity(max_names),
            addr_index: SlotIndex::with_capacity(max_addrs),
            link_index: SlotIndex::with_capacity(max_links),
            arena: InternArena::with_capacity(max_names, name_bytes, config.hash_seed),
            namespaces: NamespaceTable::new(
                config.max_namespaces,
                max_names,
                Limits::new(
                    config.trusted_answers_per_sec,
                    config.untrusted_answers_per_sec,
                    config.untrusted_share_percent,
                    [max_names, max_addrs, max_links, name_bytes],
                ),
                config.hash_seed,
            ),
            hasher: KeyHasher::new(config.hash_seed),
            earliest_expiry: u64::MAX,
            pinned: [None; 2],
            scratch: ReservedVec::with_capacity(max_names.saturating_add(max_addrs)),
            epoch: 0,
            metrics: StoreMetrics::new(),
            stats: DnsCacheStats::default(),
            stamp: 0,
            changes: 0,
            restoring: false,
            restore_created: 0,
        }
    }

    /// The store's registry name, `"dns"`.
    pub const fn name(&self) -> &'static str {
        STORE
    }

    /// Names held (the store's item count).
    pub fn len(&self) -> usize {
        self.names.len() - self.free_names.len()
    }

    /// Whether no name is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most names held.
    pub fn capacity(&self) -> usize {
        self.names.len()
    }

    /// What each slab holds now.
    pub fn usage(&self) -> DnsCacheUsage {
        DnsCacheUsage {
            names: self.len(),
            addresses: self.addrs.len() - self.free_addrs.len(),
            links: self.links.len() - self.free_links.len(),
            name_bytes: self.arena.bytes_used(),
        }
    }

    /// The sizes the cache was built with (after clamping).
    pub fn config_capacity(&self) -> DnsCacheUsage {
        DnsCacheUsage {
            names: self.names.len(),
            addresses: self.addrs.len(),
            links: self.links.len(),
            name_bytes: self.arena.capacity_bytes(),
        }
    }

    /// Bytes reserved at construction (the cache never reserves more).
    pub fn bytes_reserved(&self) -> usize {
        core::mem::size_of_val(&*self.names)
            + core::mem::size_of_val(&*self.addrs)
            + core::mem::size_of_val(&*self.links)
            + (self.free_names.capacity() + self.free_addrs.capacity() + self.free_links.capacity())
                * core::mem::size_of::<u32>()
            + self.scratch.capacity() * core::mem::size_of::<NodeId>()
            + self.name_index.bytes_reserved()
            + self.addr_index.bytes_reserved()
            + self.link_index.bytes_reserved()
            + self.arena.bytes_reserved()
            + self.namespaces.bytes_reserved()
    }

    /// Bytes reserved per name slot, for one name with its share of addresses, links, indexes and
    /// text ([`bytes_reserved`](Self::bytes_reserved) / [`capacity`](Self::capacity)).
    pub fn bytes_per_name(&self) -> usize {
        self.bytes_reserved() / self.capacity()
    }

    /// The reference's metrics; `item_count` is [`len`](Self::len).
    pub fn metrics(&self) -> DataStoreMetrics {
        self.metrics.snapshot(self.len())
    }

    /// Counters of the cache's own work.
    pub const fn stats(&self) -> DnsCacheStats {
        self.stats
    }

    /// Healthy: the cache answers for what it holds. When names had to be evicted before they
    /// expired the message says so (lookups for them are then `NotFound`): raise the capacity.
    pub fn health(&self, now: EpochNanos) -> HealthInfo {
        // Untrusted namespaces losing answers to their share is the defence working, not a
        // capacity problem.
        if self.stats.trusted_names_evicted == 0 && self.stats.records_dropped == 0 {
            HealthInfo::healthy(now)
        } else {
            HealthInfo::with_message(
                HealthStatus::Healthy,
                "capacity reached: live dns answers were evicted",
                now,
            )
        }
    }

    // ----- writes -------------------------------------------------------------------------

    /// Parses a DNS message seen in `origin` and caches it
    /// ([`insert_message`](Self::insert_message)). A message that does not parse is counted as a
    /// failed request and changes nothing.
    pub fn insert_packet(
        &mut self,
        bytes: &[u8],
        origin: DnsOrigin,
        now: EpochNanos,
    ) -> Result<Ingested, WireError> {
        match Message::parse(bytes) {
            Ok(message) => Ok(self.insert_message(&message, origin, now)),
            Err(e) => {
                self.stats.messages_rejected = self.stats.messages_rejected.saturating_add(1);
                self.metrics.error(now);
                Err(e)
            }
        }
    }

    /// Caches the answers of a response observed in `origin` at `now`, for that namespace only;
    /// see the module documentation for what is kept.
    pub fn insert_message(
        &mut self,
        message: &Message<'_>,
        origin: DnsOrigin,
        now: EpochNanos,
    ) -> Ingested {
        self.metrics.success(now);
        let header = message.header();
        let refuse = if !header.is_response() {
            Some(MessageOutcome::NotAResponse)
        } else if header.opcode() != 0 {
            Some(MessageOutcome::NotAStandardQuery)
        } else if header.rcode() != 0 && header.rcode() != 3 {
            Some(MessageOutcome::ErrorResponse)
        } else if header.question_count != 1 {
            Some(MessageOutcome::NotOneQuestion)
        } else if header.answer_count == 0 {
            Some(MessageOutcome::NoAnswers)
        } else {
            None
        };
        if let Some(outcome) = refuse {
            return self.ignore_message(outcome);
        }
        let Some(question) = message.questions().next() else {
            return self.ignore_message(MessageOutcome::NotOneQuestion);
        };
        if question.qclass & 0x7FFF != CLASS_IN {
            return self.ignore_message(MessageOutcome::NotInternetClass);
        }
        let ns = match self.namespace_for(origin, now) {
            Ok(ns) => ns,
            Err(Refusal::RateLimited) => {
                bump(&mut self.stats.messages_rate_limited);
                return self.ignore_message(MessageOutcome::RateLimited);
            }
            Err(Refusal::TableFull) => {
                bump(&mut self.stats.messages_no_namespace_slot);
                return self.ignore_message(MessageOutcome::NoNamespaceSlot);
            }
        };

        let mut ingested = Ingested::not_cached(MessageOutcome::Cached);
        // Hashes of the lowercase CNAME targets kept so far: the rest of the question's chain.
        let mut chain: heapless::Vec<u64, MAX_CHAIN> = heapless::Vec::new();
        let mut owner = NameBuf::new();
        let mut target = NameBuf::new();
        for record in message.answers() {
            let on_chain = record.name.eq_ignore_ascii_case_name(&question.name) || {
                record.name.decode_into(&mut owner);
                owner.make_ascii_lowercase();
                chain.contains(&self.hasher.hash_bytes(owner.as_bytes()))
            };
            if !on_chain {
                ingested.ignored += 1;
                self.stats.records_out_of_chain = self.stats.records_out_of_chain.saturating_add(1);
                continue;
            }
            // The chain continues at a CNAME's target whether or not the CNAME itself is kept.
            if let RecordData::Cname(next) = record.data {
                next.decode_into(&mut target);
                target.make_ascii_lowercase();
                // A chain longer than MAX_CHAIN stops being followed.
                let _ = chain.push(self.hasher.hash_bytes(target.as_bytes()));
            }
            match self.insert_record(&record, ns, &mut owner, &mut target, now) {
                Ok(refreshed) => {
                    if refreshed {
                        ingested.refreshed += 1;
                        self.stats.records_refreshed =
                            self.stats.records_refreshed.saturating_add(1);
                    } else {
                        ingested.inserted += 1;
                        self.stats.records_inserted = self.stats.records_inserted.saturating_add(1);
                    }
                }
                Err(NotStored::Ignored) => {
                    ingested.ignored += 1;
                    self.stats.records_ignored = self.stats.records_ignored.saturating_add(1);
                }
                Err(NotStored::Dropped) => {
                    ingested.dropped += 1;
                    self.stats.records_dropped = self.stats.records_dropped.saturating_add(1);
                }
            }
        }
        self.stats.messages_cached = self.stats.messages_cached.saturating_add(1);
        ingested
    }

    fn ignore_message(&mut self, outcome: MessageOutcome) -> Ingested {
        self.stats.messages_ignored = self.stats.messages_ignored.saturating_add(1);
        Ingested::not_cached(outcome)
    }

    /// The namespace slot for a message from `origin`: found or made, its rate charged. When
    /// every slot holds answers, a trusted namespace takes the slot of the untrusted namespace
    /// holding the most names (evicting them); an untrusted one is refused.
    fn namespace_for(&mut self, origin: DnsOrigin, now: EpochNanos) -> Result<u16, Refusal> {
        match self.namespaces.admit(origin, now) {
            Err(Refusal::TableFull) if origin.trusted => {
                let Some(victim) = self.namespaces.biggest(Pool::Names, false) else {
                    return Err(Refusal::TableFull);
                };
                while self.evict_oldest(victim) {}
                self.namespaces.admit(origin, now)
            }
            other => other,
        }
    }

    /// Stores one answer record for namespace `ns`. Returns whether it refreshed a held link.
    fn insert_record(
        &mut self,
        record: &Record<'_>,
        ns: u16,
        owner: &mut NameBuf,
        target: &mut NameBuf,
        now: EpochNanos,
    ) -> Result<bool, NotStored> {
        if record.class & 0x7FFF != CLASS_IN {
            return Err(NotStored::Ignored);
        }
        // RFC 2181 §8: a TTL with the top bit set is 0.
        let ttl = if record.ttl > 0x7FFF_FFFF {
            0
        } else {
            record.ttl
        };
        if ttl == 0 {
            return Err(NotStored::Ignored);
        }
        let expires_at = now.saturating_add(u64::from(ttl).saturating_mul(NANOS_PER_SEC));
        record.name.decode_into(owner);
        owner.make_ascii_lowercase();
        let (kind, to) = match record.data {
            RecordData::A(v4) => (LinkKind::A, NodeKey::Addr(IpAddr::V4(v4))),
            RecordData::Aaaa(v6) => (LinkKind::Aaaa, NodeKey::Addr(IpAddr::V6(v6).to_canonical())),
            RecordData::Cname(name) => (LinkKind::Cname, name_key(name, target)?),
            RecordData::Ptr(name) => (LinkKind::Ptr, name_key(name, target)?),
            RecordData::Mx { exchange, .. } => (LinkKind::Mx, name_key(exchange, target)?),
            RecordData::Srv { target: host, .. } => (LinkKind::Srv, name_key(host, target)?),
            RecordData::Other { .. } => return Err(NotStored::Ignored),
        };
        let reverse = match kind {
            LinkKind::Ptr => parse_reverse_name(owner.as_bytes()),
            _ => None,
        };
        let from = match reverse {
            Some(addr) => NodeKey::Addr(addr.to_canonical()),
            None => NodeKey::Name(storable(owner)?),
        };
        self.upsert_link(ns, from, to, kind, expires_at, now)
    }

    /// Finds or creates both nodes and the link between them; `Ok(true)` if the link was held.
    fn upsert_link(
        &mut self,
        ns: u16,
        from: NodeKey<'_>,
        to: NodeKey<'_>,
        kind: LinkKind,
        expires_at: EpochNanos,
        now: EpochNanos,
    ) -> Result<bool, NotStored> {
        let result = self.upsert_link_pinned(ns, from, to, kind, expires_at, now);
        // Nodes left without links (created for a record that was not stored, or bared by an
        // eviction while pinned) would be orphans.
        let pinned = core::mem::take(&mut self.pinned);
        for (node, created) in pinned.into_iter().flatten() {
            if self.adjacency(node).is_some_and(|a| a.degree == 0) {
                let why = if created {
                    Removal::Unstored
                } else {
                    Removal::Evicted
                };
                self.remove_node(node, why);
            }
        }
        result
    }

    fn upsert_link_pinned(
        &mut self,
        ns: u16,
        from: NodeKey<'_>,
        to: NodeKey<'_>,
        kind: LinkKind,
        expires_at: EpochNanos,
        now: EpochNanos,
    ) -> Result<bool, NotStored> {
        let (from, created) = self.find_or_add_node(ns, from, now)?;
        self.pinned[0] = Some((from, created));
        let (to, created) = self.find_or_add_node(ns, to, now)?;
        self.pinned[1] = Some((to, created));
        if from == to {
            return Err(NotStored::Ignored);
        }
        let hash = self.link_hash(from, to, kind);
        let links = &self.links;
        let held = self.link_index.find(hash, |slot| {
            links
                .get(slot as usize)
                .and_then(Option::as_ref)
                .is_some_and(|l| l.from == from && l.to == to && l.kind == kind)
        });
        if let Some(slot) = held {
            if let Some(link) = self.links.get_mut(slot as usize).and_then(Option::as_mut) {
                link.expires_at = link.expires_at.max(expires_at);
            }
            self.changes = self.changes.wrapping_add(1);
            return Ok(true);
        }
        if !self.reserve(Pool::Links, ns, now, |c| !c.free_links.is_empty()) {
            return Err(NotStored::Dropped);
        }
        let Some(slot) = self.free_links.pop() else {
            return Err(NotStored::Dropped);
        };
        if self.link_index.insert(hash, slot).is_err() {
            // Cannot happen: the index is sized for every link slot.
            self.free_links.push(slot);
            return Err(NotStored::Dropped);
        }
        let created = if self.restoring {
            self.restore_created
        } else {
            self.next_stamp()
        };
        let mut link = Link {
            from,
            to,
            expires_at,
            kind,
            ns,
            created,
            prev_out: NIL,
            next_out: NIL,
            prev_in: NIL,
            next_in: NIL,
        };
        if let Some(adj) = self.adjacency_mut(from) {
            link.next_out = adj.out_head;
            adj.out_head = slot;
            adj.degree += 1;
        }
        if let Some(adj) = self.adjacency_mut(to) {
            link.next_in = adj.in_head;
            adj.in_head = slot;
            adj.degree += 1;
        }
        if let Some(next) = self.link_mut(link.next_out) {
            next.prev_out = slot;
        }
        if let Some(next) = self.link_mut(link.next_in) {
            next.prev_in = slot;
        }
        if let Some(place) = self.links.get_mut(slot as usize) {
            *place = Some(link);
        }
        self.namespaces.add(ns, Pool::Links, 1);
        self.earliest_expiry = self.earliest_expiry.min(expires_at);
        Ok(false)
    }

    /// The node for `key` in namespace `ns` and whether it was created (evicting to make room).
    /// Names are touched.
    fn find_or_add_node(
        &mut self,
        ns: u16,
        key: NodeKey<'_>,
        now: EpochNanos,
    ) -> Result<(NodeId, bool), NotStored> {
        match key {
            NodeKey::Name(text) => {
                if let Some(slot) = self.find_name(ns, text) {
                    self.touch_name(ns, slot);
                    return Ok((NodeId::name(slot), false));
                }
                if !self.reserve(Pool::Names, ns, now, |c| !c.free_names.is_empty())
                    || !self.reserve(Pool::NameBytes, ns, now, |_| true)
                {
                    return Err(NotStored::Dropped);
                }
                let handle = loop {
                    match self.arena.intern(text) {
                        Ok(handle) => break handle,
                        Err(_) => {
                            if !self.make_room(Pool::NameBytes, ns, now) {
                                return Err(NotStored::Dropped);
                            }
                        }
                    }
                };
                // Evicting for the arena may have used no slot, but never fills one.
                let Some(slot) = self.free_names.pop() else {
                    self.arena.release(handle);
                    return Err(NotStored::Dropped);
                };
                let hash = self.name_hash(ns, text);
                if self.name_index.insert(hash, slot).is_err() {
                    self.arena.release(handle);
                    self.free_names.push(slot);
                    return Err(NotStored::Dropped);
                }
                if let Some(place) = self.names.get_mut(slot as usize) {
                    *place = Some(NameNode {
                        text: handle,
                        ns,
                        adj: Adjacency::EMPTY,
                        touched: 0,
                    });
                }
                self.touch_name(ns, slot);
                self.namespaces.add(ns, Pool::Names, 1);
                self.namespaces
                    .add(ns, Pool::NameBytes, text_len(text.len()));
                Ok((NodeId::name(slot), true))
            }
            NodeKey::Addr(addr) => {
                if let Some(slot) = self.find_addr(ns, addr) {
                    return Ok((NodeId::addr(slot), false));
                }
                if !self.reserve(Pool::Addresses, ns, now, |c| !c.free_addrs.is_empty()) {
                    return Err(NotStored::Dropped);
                }
                let Some(slot) = self.free_addrs.pop() else {
                    return Err(NotStored::Dropped);
                };
                let hash = self.addr_hash(ns, addr);
                if self.addr_index.insert(hash, slot).is_err() {
                    self.free_addrs.push(slot);
                    return Err(NotStored::Dropped);
                }
                if let Some(place) = self.addrs.get_mut(slot as usize) {
                    *place = Some(AddrNode {
                        addr,
                        ns,
                        adj: Adjacency::EMPTY,
                    });
                }
                self.namespaces.add(ns, Pool::Addresses, 1);
                Ok((NodeId::addr(slot), true))
            }
        }
    }

    /// Makes sure namespace `ns` may take one more of `pool`: while the untrusted namespaces
    /// hold their whole share of it (and `ns` is untrusted), the untrusted namespace holding the
    /// most loses a name; while the pool itself is full (`has_room` false), [`make_room`]. `false`
    /// when nothing more could be freed.
    ///
    /// [`make_room`]: Self::make_room
    fn reserve(
        &mut self,
        pool: Pool,
        ns: u16,
        now: EpochNanos,
        has_room: impl Fn(&Self) -> bool,
    ) -> bool {
        let untrusted = self.namespaces.get(ns).is_some_and(|n| !n.trusted);
        loop {
            if untrusted && self.namespaces.untrusted_at_cap(pool) {
                let freed = self
                    .namespaces
                    .biggest(pool, false)
                    .is_some_and(|victim| self.evict_oldest(victim));
                if !freed {
                    return false;
                }
                bump(&mut self.stats.names_evicted_untrusted_share);
                continue;
            }
            if has_room(self) {
                return true;
            }
            if !self.make_room(pool, ns, now) {
                return false;
            }
        }
    }

    /// Frees something of a full `pool` for namespace `ns`: every expired link (and the nodes
    /// they leave bare) if anything may have expired and that frees something of `pool`; else
    /// the least recently used unpinned name of the namespace holding the most of `pool` —
    /// untrusted namespaces first, and only them when `ns` is untrusted. `false` when nothing
    /// could be freed.
    fn make_room(&mut self, pool: Pool, ns: u16, now: EpochNanos) -> bool {
        if self.earliest_expiry <= now {
            let before = self.usage();
            self.sweep_expired(now);
            let after = self.usage();
            let freed = match pool {
                Pool::Names => after.names < before.names,
                Pool::Addresses => after.addresses < before.addresses,
                Pool::Links => after.links < before.links,
                Pool::NameBytes => after.name_bytes < before.name_bytes,
            };
            if freed {
                return true;
            }
        }
        let trusted = self.namespaces.get(ns).is_some_and(|n| n.trusted);
        let victim = if !trusted || self.namespaces.untrusted_usage(pool) > 0 {
            self.namespaces.biggest(pool, false)
        } else {
            self.namespaces.biggest(pool, true)
        };
        victim.is_some_and(|victim| self.evict_oldest(victim))
    }

    /// Evicts namespace `ns`'s least recently used unpinned name with its links; `false` if it
    /// has none.
    fn evict_oldest(&mut self, ns: u16) -> bool {
        let victim = self
            .namespaces
            .oldest_first(ns)
            .find(|&slot| !self.is_pinned(NodeId::name(slot)));
        match victim {
            Some(slot) => {
                if self.namespaces.get(ns).is_some_and(|n| n.trusted) {
                    bump(&mut self.stats.trusted_names_evicted);
                }
                self.remove_node(NodeId::name(slot), Removal::Evicted);
                true
            }
            None => false,
        }
    }

    /// Drops every expired link and every unpinned node left without links. Returns the number
    /// of links dropped.
    fn sweep_expired(&mut self, now: EpochNanos) -> usize {
        let mut earliest = u64::MAX;
        let mut dropped = 0;
        for slot in 0..self.links.len() {
            let Some(link) = self.links.get(slot).copied().flatten() else {
                continue;
            };
            if link.expires_at > now {
                earliest = earliest.min(link.expires_at);
                continue;
            }
            self.remove_link(slot as u32, Removal::Expired);
            dropped += 1;
            for end in [link.from, link.to] {
                if !self.is_pinned(end) && self.adjacency(end).is_some_and(|a| a.degree == 0) {
                    self.remove_node(end, Removal::Expired);
                }
            }
        }
        self.earliest_expiry = earliest;
        dropped
    }

    /// Drops every expired record now, and every name and address left without records; the
    /// cache also does this itself when it needs room. Returns the number of records dropped.
    pub fn purge_expired(&mut self, now: EpochNanos) -> usize {
        if self.earliest_expiry > now {
            return 0;
        }
        self.sweep_expired(now)
    }

    /// Forgets everything (keeps the reserved memory and the counters).
    pub fn clear(&mut self) {
        for slot in 0..self.names.len() {
            if let Some(node) = self.names.get_mut(slot).and_then(Option::take) {
                self.arena.release(node.text);
            }
        }
        self.addrs.fill(None);
        self.links.fill(None);
        refill(&mut self.free_names, self.names.len());
        refill(&mut self.free_addrs, self.addrs.len());
        refill(&mut self.free_links, self.links.len());
        self.name_index.clear();
        self.addr_index.clear();
        self.link_index.clear();
        self.namespaces.clear();
        self.earliest_expiry = u64::MAX;
        self.pinned = [None; 2];
        self.changes = self.changes.wrapping_add(1);
    }

    /// Removes a node with all of its links; nodes those links leave bare go too (one level:
    /// a bare node has no links to cascade through).
    fn remove_node(&mut self, node: NodeId, why: Removal) {
        loop {
            let Some(adj) = self.adjacency(node) else {
                return;
            };
            let (slot, other) = if adj.out_head != NIL {
                (adj.out_head, self.link(adj.out_head).map(|l| l.to))
            } else if adj.in_head != NIL {
                (adj.in_head, self.link(adj.in_head).map(|l| l.from))
            } else {
                break;
            };
            let Some(other) = other else {
                break;
            };
            self.remove_link(slot, why);
            if other != node
                && !self.is_pinned(other)
                && self.adjacency(other).is_some_and(|a| a.degree == 0)
            {
                self.free_node(other, why);
            }
        }
        self.free_node(node, why);
    }

    /// Frees a node's slot, index entry, recency and text; its lists must be empty.
    fn free_node(&mut self, node: NodeId, why: Removal) {
        match node.slot() {
            NodeSlot::Name(slot) => {
                let Some(name) = self.names.get_mut(slot).and_then(Option::take) else {
                    return;
                };
                let text = self.arena.get(name.text);
                let len = text.map_or(0, str::len);
                if let Some(hash) = text.map(|t| self.name_hash(name.ns, t)) {
                    self.name_index.remove(hash, slot as u32);
                }
                self.arena.release(name.text);
                self.namespaces.unlink(name.ns, slot as u32);
                self.namespaces.sub(name.ns, Pool::Names, 1);
                self.namespaces.sub(name.ns, Pool::NameBytes, text_len(len));
                self.free_names.push(slot as u32);
                match why {
                    Removal::Expired => bump(&mut self.stats.names_expired),
                    Removal::Evicted => bump(&mut self.stats.names_evicted),
                    Removal::Unstored => {}
                }
            }
            NodeSlot::Addr(slot) => {
                let Some(addr) = self.addrs.get_mut(slot).and_then(Option::take) else {
                    return;
                };
                self.addr_index
                    .remove(self.addr_hash(addr.ns, addr.addr), slot as u32);
                self.namespaces.sub(addr.ns, Pool::Addresses, 1);
                self.free_addrs.push(slot as u32);
                match why {
                    Removal::Expired => bump(&mut self.stats.addresses_expired),
                    Removal::Evicted => bump(&mut self.stats.addresses_evicted),
                    Removal::Unstored => {}
                }
            }
        }
    }

    /// Refreshes a name's recency in its namespace `ns`, stamping it (a restore keeps the
    /// recorded stamps).
    fn touch_name(&mut self, ns: u16, slot: u32) {
        if !self.restoring {
            let stamp = self.next_stamp();
            if let Some(node) = self.names.get_mut(slot as usize).and_then(Option::as_mut) {
                node.touched = stamp;
            }
        }
        self.namespaces.touch(ns, slot);
    }

    fn next_stamp(&mut self) -> u64 {
        self.changes = self.changes.wrapping_add(1);
        self.stamp = self.stamp.saturating_add(1);
        self.stamp
    }

    /// Unthreads a link from both lists and frees it.
    fn remove_link(&mut self, slot: u32, why: Removal) {
        self.changes = self.changes.wrapping_add(1);
        let Some(link) = self.links.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        match self.link_mut(link.prev_out) {
            Some(prev) => prev.next_out = link.next_out,
            None => {
                if let Some(adj) = self.adjacency_mut(link.from) {
                    adj.out_head = link.next_out;
                }
            }
        }
        if let Some(next) = self.link_mut(link.next_out) {
            next.prev_out = link.prev_out;
        }
        match self.link_mut(link.prev_in) {
            Some(prev) => prev.next_in = link.next_in,
            None => {
                if let Some(adj) = self.adjacency_mut(link.to) {
                    adj.in_head = link.next_in;
                }
            }
        }
        if let Some(next) = self.link_mut(link.next_in) {
            next.prev_in = link.prev_in;
        }
        for end in [link.from, link.to] {
            if let Some(adj) = self.adjacency_mut(end) {
                adj.degree = adj.degree.saturating_sub(1);
            }
        }
        let hash = self.link_hash(link.from, link.to, link.kind);
        self.link_index.remove(hash, slot);
        self.namespaces.sub(link.ns, Pool::Links, 1);
        self.free_links.push(slot);
        match why {
            Removal::Expired => bump(&mut self.stats.links_expired),
            Removal::Evicted => bump(&mut self.stats.links_evicted),
            Removal::Unstored => {}
        }
    }

    // ----- queries ------------------------------------------------------------------------

    /// The reference's `GetDNSResponse`, as the trusted network namespaces (the host's and
    /// known containers') saw it: see the module documentation for what `query` may be and what
    /// the answer holds. Answers seen only in untrusted namespaces are never returned here (ask
    /// [`get_dns_response_in`](Self::get_dns_response_in)). Touches every name returned.
    pub fn get_dns_response<'a>(
        &'a mut self,
        query: &'a str,
        now: EpochNanos,
    ) -> Result<DnsResponseView<'a>, StoreError> {
        self.answer(query, None, now)
    }

    /// [`get_dns_response`](Self::get_dns_response) as one network namespace (`netns`, its
    /// inode number), trusted or not, saw it.
    pub fn get_dns_response_in<'a>(
        &'a mut self,
        query: &'a str,
        netns: u32,
        now: EpochNanos,
    ) -> Result<DnsResponseView<'a>, StoreError> {
        self.answer(query, Some(netns), now)
    }

    fn answer<'a>(
        &'a mut self,
        query: &'a str,
        netns: Option<u32>,
        now: EpochNanos,
    ) -> Result<DnsResponseView<'a>, StoreError> {
        let trimmed = query.strip_suffix('.').unwrap_or(query);
        if trimmed.is_empty() || trimmed.len() > MAX_NAME_TEXT_LEN {
            self.metrics.error(now);
            return Err(StoreError::invalid_argument(STORE, GET));
        }
        self.begin_traversal();
        let mut counts = [0usize; 2];
        let mut found = false;
        let mut truncated = false;
        match netns {
            Some(netns) => {
                if let Some(ns) = self.namespaces.find(netns) {
                    found = self.collect_in(ns, trimmed, now, &mut counts, &mut truncated);
                }
            }
            None => {
                // The trusted namespaces, in inode order.
                for i in 0..self.namespaces.trusted_count() {
                    if let Some(ns) = self.namespaces.trusted_at(i) {
                        found |= self.collect_in(ns, trimmed, now, &mut counts, &mut truncated);
                    }
                }
            }
        }
        if !found {
            self.metrics.miss(now);
            return Err(StoreError::not_found(STORE, GET));
        }
        for i in 0..self.scratch.len() {
            if let Some(&NodeId(id)) = self.scratch.get(i)
                && id & ADDR_BIT == 0
                && let Some(ns) = self.names.get(id as usize).and_then(|n| n.map(|n| n.ns))
            {
                self.touch_name(ns, id);
            }
        }
        self.metrics.hit(now);
        if truncated {
            bump(&mut self.stats.responses_truncated);
        }
        // From here on the answer borrows the cache's names.
        let this: &'a Self = self;
        let mut view = DnsResponseView::new(query);
        view.truncated = truncated;
        for &node in this.scratch.iter() {
            // A full list just stops taking (`truncated` already says so). The same name or
            // address seen in two namespaces is listed once.
            match node.slot() {
                NodeSlot::Name(slot) => {
                    if let Some(text) = this
                        .names
                        .get(slot)
                        .and_then(Option::as_ref)
                        .and_then(|n| this.arena.get(n.text))
                        && !view.domains().contains(&text)
                    {
                        view.push_domain(text);
                    }
                }
                NodeSlot::Addr(slot) => {
                    if let Some(a) = this.addrs.get(slot).and_then(Option::as_ref)
                        && !view.ips().contains(&a.addr)
                    {
                        view.push_ip(a.addr);
                    }
                }
            }
        }
        Ok(view)
    }

    /// Adds what namespace `ns` relates to `query` to the traversal; whether it knows `query`.
    fn collect_in(
        &mut self,
        ns: u16,
        query: &str,
        now: EpochNanos,
        counts: &mut [usize; 2],
        truncated: &mut bool,
    ) -> bool {
        let start = self.find_query_node(ns, query);
        let Some(start) = start.filter(|&node| self.has_live_link(node, now)) else {
            return false;
        };
        if !*truncated {
            *truncated = self.collect_related(start, now, counts);
        }
        true
    }

    /// The node a (trimmed) query names in namespace `ns`: an address, a reverse name, or a
    /// name.
    fn find_query_node(&self, ns: u16, query: &str) -> Option<NodeId> {
        let addr = query
            .parse::<IpAddr>()
            .ok()
            .or_else(|| parse_reverse_name(query.as_bytes()));
        if let Some(addr) = addr {
            return self.find_addr(ns, addr.to_canonical()).map(NodeId::addr);
        }
        let mut lower: heapless::Vec<u8, MAX_NAME_TEXT_LEN> = heapless::Vec::new();
        lower.extend_from_slice(query.as_bytes()).ok()?;
        lower.make_ascii_lowercase();
        // Lowercasing ASCII keeps UTF-8 valid.
        let text = core::str::from_utf8(&lower).ok()?;
        self.find_name(ns, text).map(NodeId::name)
    }

    /// Starts a query's traversal: new visit marks, empty queue.
    fn begin_traversal(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Marks from 2^32 queries ago could look current: reset them all once.
            for node in self.names.iter_mut().flatten() {
                node.adj.visit = 0;
            }
            for node in self.addrs.iter_mut().flatten() {
                node.adj.visit = 0;
            }
            self.epoch = 1;
        }
        self.scratch.clear();
    }

    /// Appends to `scratch` `start`, then the nodes below it breadth first, then the nodes above
    /// it breadth first, each once, following live links only; `counts` tallies
    /// `[names, addresses]` queued by the whole query. Stops early once both kinds have more than
    /// an answer can carry. Returns whether there is more than an answer can carry.
    fn collect_related(&mut self, start: NodeId, now: EpochNanos, counts: &mut [usize; 2]) -> bool {
        let mut next = self.scratch.len();
        if !self.visit(start) {
            return false;
        }
        count(start, counts);
        let full = |c: &[usize; 2]| c[0] > MAX_RESPONSE_DOMAINS && c[1] > MAX_RESPONSE_IPS;
        let over = |c: &[usize; 2]| c[0] > MAX_RESPONSE_DOMAINS || c[1] > MAX_RESPONSE_IPS;
        // Down, from `start` and every node found going down.
        while let Some(&node) = self.scratch.get(next) {
            next += 1;
            if full(counts) {
                return true;
            }
            let first_new = self.scratch.len();
            let mut link = self.adjacency(node).map_or(NIL, |a| a.out_head);
            while let Some(l) = self.link(link).copied() {
                link = l.next_out;
                if l.expires_at > now && self.visit(l.to) {
                    count(l.to, counts);
                }
            }
            // Lists are newest first; answer in the order records were first stored.
            if let Some(new) = self.scratch.get_mut(first_new..) {
                new.reverse();
            }
        }
        // Up, from `start` and every node found going up.
        let mut node = Some(start);
        while let Some(current) = node {
            if full(counts) {
                return true;
            }
            let first_new = self.scratch.len();
            let mut link = self.adjacency(current).map_or(NIL, |a| a.in_head);
            while let Some(l) = self.link(link).copied() {
                link = l.next_in;
                if l.expires_at > now && self.visit(l.from) {
                    count(l.from, counts);
                }
            }
            if let Some(new) = self.scratch.get_mut(first_new..) {
                new.reverse();
            }
            node = self.scratch.get(next).copied();
            next += 1;
        }
        over(counts)
    }

    /// Marks `node` visited and queues it; `false` if it already was.
    fn visit(&mut self, node: NodeId) -> bool {
        let epoch = self.epoch;
        let Some(adj) = self.adjacency_mut(node) else {
            return false;
        };
        if adj.visit == epoch {
            return false;
        }
        adj.visit = epoch;
        // Never allocates: capacity covers every node, and each is queued once per query.
        if self.scratch.len() < self.scratch.capacity() {
            self.scratch.push(node);
        }
        true
    }

    fn is_pinned(&self, node: NodeId) -> bool {
        self.pinned
            .iter()
            .flatten()
            .any(|&(pinned, _)| pinned == node)
    }

    fn has_live_link(&self, node: NodeId, now: EpochNanos) -> bool {
        let Some(adj) = self.adjacency(node) else {
            return false;
        };
        let mut out = adj.out_head;
        while let Some(l) = self.link(out) {
            if l.expires_at > now {
                return true;
            }
            out = l.next_out;
        }
        let mut into = adj.in_head;
        while let Some(l) = self.link(into) {
            if l.expires_at > now {
                return true;
            }
            into = l.next_in;
        }
        false
    }

    // ----- lookups and plumbing -----------------------------------------------------------

    fn find_name(&self, ns: u16, text: &str) -> Option<u32> {
        let hash = self.name_hash(ns, text);
        self.name_index.find(hash, |slot| {
            self.names
                .get(slot as usize)
                .and_then(Option::as_ref)
                .filter(|n| n.ns == ns)
                .and_then(|n| self.arena.get(n.text))
                == Some(text)
        })
    }

    fn find_addr(&self, ns: u16, addr: IpAddr) -> Option<u32> {
        self.addr_index.find(self.addr_hash(ns, addr), |slot| {
            self.addrs
                .get(slot as usize)
                .and_then(Option::as_ref)
                .is_some_and(|a| a.addr == addr && a.ns == ns)
        })
    }

    fn name_hash(&self, ns: u16, text: &str) -> u64 {
        self.hasher.hash_bytes(text.as_bytes()) ^ self.hasher.hash_u64(u64::from(ns))
    }

    fn addr_hash(&self, ns: u16, addr: IpAddr) -> u64 {
        let spread = self.hasher.hash_u64(u64::from(ns) | (1 << 32));
        spread
            ^ match addr {
                IpAddr::V4(v4) => self.hasher.hash_u64(u64::from(v4.to_bits())),
                IpAddr::V6(v6) => self.hasher.hash_bytes(&v6.octets()),
            }
    }

    fn link_hash(&self, from: NodeId, to: NodeId, kind: LinkKind) -> u64 {
        let ends = (u64::from(from.0) << 32) | u64::from(to.0);
        self.hasher.hash_u64(ends) ^ u64::from(kind as u8)
    }

    fn adjacency(&self, node: NodeId) -> Option<&Adjacency> {
        match node.slot() {
            NodeSlot::Name(slot) => self.names.get(slot)?.as_ref().map(|n| &n.adj),
            NodeSlot::Addr(slot) => self.addrs.get(slot)?.as_ref().map(|a| &a.adj),
        }
    }

    fn adjacency_mut(&mut self, node: NodeId) -> Option<&mut Adjacency> {
        match node.slot() {
            NodeSlot::Name(slot) => self.names.get_mut(slot)?.as_mut().map(|n| &mut n.adj),
            NodeSlot::Addr(slot) => self.addrs.get_mut(slot)?.as_mut().map(|a| &mut a.adj),
        }
    }

    fn link(&self, slot: u32) -> Option<&Link> {
        self.links.get(slot as usize)?.as_ref()
    }

    fn link_mut(&mut self, slot: u32) -> Option<&mut Link> {
        self.links.get_mut(slot as usize)?.as_mut()
    }
}

/// Why something leaves the cache (which counters move).
#[derive(Clone, Copy)]
enum Removal {
    Expired,
    Evicted,
    /// Created for a record that was then not stored: never counted.
    Unstored,
}

fn bump(counter: &mut u64) {
    *counter = counter.saturating_add(1);
}

/// A name's length as counted in its namespace's usage.
fn text_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Tallies a queued node: `[names, addresses]`.
fn count(node: NodeId, counts: &mut [usize; 2]) {
    let i = usize::from(node.0 & ADDR_BIT != 0);
    if let Some(c) = counts.get_mut(i) {
        *c += 1;
    }
}

/// The lowercase text of `name` in `buf`, if the cache can hold it.
fn name_key<'b>(
    name: super::name::Name<'_>,
    buf: &'b mut NameBuf,
) -> Result<NodeKey<'b>, NotStored> {
    name.decode_into(buf);
    buf.make_ascii_lowercase();
    storable(buf).map(NodeKey::Name)
}

/// Names the cache keeps: not the root, UTF-8, no `.` inside a label (the dotted text would
/// merge labels).
fn storable(buf: &NameBuf) -> Result<&str, NotStored> {
    if buf.is_empty() || buf.has_dot_in_label() {
        return Err(NotStored::Ignored);
    }
    buf.as_str().ok_or(NotStored::Ignored)
}

fn empty_slab<T>(len: usize) -> Box<[Option<T>]> {
    let mut slab = Vec::with_capacity(len);
    slab.resize_with(len, || None);
    slab.into_boxed_slice()
}

fn free_list(len: usize) -> ReservedVec<u32> {
    let mut free = ReservedVec::with_capacity(len);
    refill(&mut free, len);
    free
}

/// Every slot number, slot 0 popped first. Never reallocates: `free` was reserved for `len`.
fn refill(free: &mut Vec<u32>, len: usize) {
    free.clear();
    free.extend((0..len as u32).rev());
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    /// Every invariant written on the fields, checked the slow way.
    fn assert_consistent(c: &DnsCache) {
        assert!(c.pinned.iter().all(Option::is_none));
        let mut links_seen = 0;
        let mut check_node = |node: NodeId, adj: &Adjacency| {
            assert!(adj.degree > 0, "bare node {node:?}");
            let mut len = 0;
            let mut l = adj.out_head;
            let mut prev = NIL;
            while let Some(link) = c.link(l) {
                assert_eq!(link.from, node);
                assert_eq!(link.prev_out, prev);
                assert!(c.adjacency(link.to).is_some(), "dangling target");
                prev = l;
                l = link.next_out;
                len += 1;
                links_seen += 1;
            }
            assert_eq!(l, NIL);
            let mut l = adj.in_head;
            let mut prev = NIL;
            while let Some(link) = c.link(l) {
                assert_eq!(link.to, node);
                assert_eq!(link.prev_in, prev);
                prev = l;
                l = link.next_in;
                len += 1;
            }
            assert_eq!(l, NIL);
            assert_eq!(len, adj.degree);
        };
        let mut names = 0;
        // Per namespace slot: [names, addresses, links, name bytes] counted the slow way.
        let mut usage = alloc::collections::BTreeMap::<u16, [u32; 4]>::new();
        for (slot, node) in c.names.iter().enumerate() {
            let slot = slot as u32;
            if let Some(n) = node {
                names += 1;
                let text = c.arena.get(n.text).expect("live text");
                assert_eq!(text, text.to_ascii_lowercase());
                assert_eq!(c.find_name(n.ns, text), Some(slot));
                assert!(
                    c.namespaces.oldest_first(n.ns).any(|s| s == slot),
                    "name {slot} not in its namespace's recency list"
                );
                let u = usage.entry(n.ns).or_default();
                u[0] += 1;
                u[3] += text.len() as u32;
                check_node(NodeId::name(slot), &n.adj);
            }
        }
        let mut linked = 0;
        for (ns, _) in c.namespaces.iter() {
            for slot in c.namespaces.oldest_first(ns) {
                linked += 1;
                assert_eq!(c.names[slot as usize].map(|n| n.ns), Some(ns));
            }
        }
        assert_eq!(linked, names, "recency lists hold exactly the names");
        let mut addrs = 0;
        for (slot, node) in c.addrs.iter().enumerate() {
            if let Some(a) = node {
                addrs += 1;
                assert_eq!(c.find_addr(a.ns, a.addr), Some(slot as u32));
                usage.entry(a.ns).or_default()[1] += 1;
                check_node(NodeId::addr(slot as u32), &a.adj);
            }
        }
        let links: Vec<&Link> = c.links.iter().flatten().collect();
        assert_eq!(links_seen, links.len());
        for link in &links {
            assert!(c.earliest_expiry <= link.expires_at);
            for end in [link.from, link.to] {
                let ns = match end.slot() {
                    NodeSlot::Name(s) => c.names[s].map(|n| n.ns),
                    NodeSlot::Addr(s) => c.addrs[s].map(|a| a.ns),
                };
                assert_eq!(ns, Some(link.ns), "a link crosses namespaces");
            }
            usage.entry(link.ns).or_default()[2] += 1;
        }
        let mut untrusted = [0u32; 4];
        for (ns, entry) in c.namespaces.iter() {
            let counted = usage.get(&ns).copied().unwrap_or_default();
            let held = [Pool::Names, Pool::Addresses, Pool::Links, Pool::NameBytes]
                .map(|p| entry.usage.get(p));
            assert_eq!(held, counted, "usage of namespace slot {ns}");
            if !entry.trusted {
                for (u, h) in untrusted.iter_mut().zip(held) {
                    *u += h;
                }
            }
        }
        for (i, pool) in [Pool::Names, Pool::Addresses, Pool::Links, Pool::NameBytes]
            .into_iter()
            .enumerate()
        {
            assert_eq!(c.namespaces.untrusted_usage(pool), untrusted[i]);
        }
        assert_eq!(names, c.len());
        assert_eq!(names + c.free_names.len(), c.names.len());
        assert_eq!(addrs + c.free_addrs.len(), c.addrs.len());
        assert_eq!(links.len() + c.free_links.len(), c.links.len());
        assert_eq!(c.name_index.len(), names);
        assert_eq!(c.addr_index.len(), addrs);
        assert_eq!(c.link_index.len(), links.len());
    }

    /// An uncompressed response: question `q` (type A) and `(owner, type, ttl, rdata)` answers.
    fn packet(q: &str, answers: &[(&str, u16, u32, Vec<u8>)]) -> Vec<u8> {
        let name = |out: &mut Vec<u8>, n: &str| {
            for label in n.split('.').filter(|l| !l.is_empty()) {
                out.push(label.len() as u8);
                out.extend_from_slice(label.as_bytes());
            }
            out.push(0);
        };
        let mut out = vec![0, 1, 0x81, 0x80, 0, 1];
        out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        name(&mut out, q);
        out.extend_from_slice(&[0, 1, 0, 1]);
        for (owner, rtype, ttl, rdata) in answers {
            name(&mut out, owner);
            out.extend_from_slice(&rtype.to_be_bytes());
            out.extend_from_slice(&[0, 1]);
            out.extend_from_slice(&ttl.to_be_bytes());
            out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            out.extend_from_slice(rdata);
        }
        out
    }

    fn wire_name(n: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in n.split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    #[test]
    fn stays_consistent_under_churn_in_every_pool() {
        let mut c = DnsCache::new(DnsCacheConfig {
            max_names: 12,
            max_addresses: 9,
            max_links: 16,
            name_bytes: 12 * 14,
            hash_seed: 5,
            max_namespaces: 3,
            untrusted_share_percent: 40,
            trusted_answers_per_sec: 1_000_000,
            untrusted_answers_per_sec: 1_000_000,
        });
        let origins = [
            DnsOrigin::trusted(4_026_531_840),
            DnsOrigin::trusted(4_026_532_000),
            DnsOrigin::untrusted(4_026_532_100),
            DnsOrigin::untrusted(4_026_532_200),
        ];
        // A fixed pseudo-random walk (LCG) over names, chains, PTRs, expiries and queries.
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % n
        };
        let mut now = 1_000 * NANOS_PER_SEC;
        for step in 0..3_000 {
            let a = alloc::format!("n{}.ex", next(30));
            let b = alloc::format!("m{}.ex", next(30));
            let ttl = 1 + next(40) as u32;
            let ip = [10, 0, 0, next(20) as u8];
            let bytes = match next(5) {
                0 => packet(&a, &[(&a, 1, ttl, ip.to_vec())]),
                1 => packet(
                    &a,
                    &[
                        (&a, 5, ttl, wire_name(&b)),
                        (&b, 1, ttl / 2, ip.to_vec()),
                        (
                            &b,
                            28,
                            ttl,
                            [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ip[3]].to_vec(),
                        ),
                    ],
                ),
                2 => {
                    let arpa = alloc::format!("{}.0.0.10.in-addr.arpa", ip[3]);
                    packet(&arpa, &[(&arpa, 12, ttl, wire_name(&a))])
                }
                3 => packet(
                    &a,
                    &[(&a, 15, ttl, [&[0, 10][..], &wire_name(&b)].concat())],
                ),
                _ => packet(&a, &[(&a, 5, ttl, wire_name(&a))]),
            };
            let origin = origins[next(origins.len() as u64) as usize];
            let ingested = c.insert_packet(&bytes, origin, now).unwrap();
            assert!(
                matches!(
                    ingested.outcome,
                    MessageOutcome::Cached | MessageOutcome::NoNamespaceSlot
                ),
                "{ingested:?}"
            );
            assert_consistent(&c);
            let q = alloc::format!("10.0.0.{}", next(20));
            if let Ok(view) = c.get_dns_response(&q, now) {
                assert_eq!(view.ips().first().map(|ip| ip.to_string()), Some(q.clone()));
            }
            let _ = c.get_dns_response(&a, now);
            let _ = c.get_dns_response_in(&a, origin.netns, now);
            assert_consistent(&c);
            if step % 97 == 0 {
                c.purge_expired(now);
                assert_consistent(&c);
            }
            now += next(3) * NANOS_PER_SEC;
        }
        let s = c.stats();
        assert!(s.names_evicted > 0 && s.names_expired > 0, "{s:?}");
        assert!(s.addresses_evicted > 0 && s.addresses_expired > 0, "{s:?}");
        assert!(s.links_evicted > 0 && s.links_expired > 0, "{s:?}");
        assert!(s.names_evicted_untrusted_share > 0, "{s:?}");
        assert!(s.messages_no_namespace_slot > 0, "{s:?}");
        c.clear();
        assert_consistent(&c);
        assert_eq!(c.usage(), DnsCacheUsage::default());
    }
}
