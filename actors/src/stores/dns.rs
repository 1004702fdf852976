//! The DNS store: answers observed on the wire, fed as raw DNS response packets with the
//! network namespace each was seen in, and answered from the published read view. Lookups answer
//! as the trusted namespaces saw it (the host's and known containers'), or as one namespace saw
//! it when asked.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};
use watchpost_core::dns::{DnsCacheStats, DnsOrigin, DnsReadScratch, DnsResponseView};
use watchpost_core::{DataStoreMetrics, EpochNanos, ErrorKind, HealthInfo, StoreError};

use crate::adapters::dns::to_response;
use crate::handle::StoreHandle;
use crate::protocol::{IntoCopies, Protocol, StoreBackend};
use crate::view::Reads;

/// A cached DNS answer (the reference's `DNSResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DnsResponse {
    /// The name asked about (or the IP, for a reverse lookup).
    pub query: String,
    /// Addresses it resolved to.
    pub ips: Vec<String>,
    /// Names it resolved to (CNAME targets, or names of an IP in a reverse lookup).
    pub domains: Vec<String>,
    /// Set when the store related more addresses or names than one answer carries.
    #[serde(default)]
    pub truncated: bool,
}

/// One DNS response packet observed on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsPacket {
    /// The DNS message (header onwards, no UDP/TCP framing).
    pub payload: Vec<u8>,
    /// When it was observed, epoch ns (TTLs count from here; 0: when the store applies it; a
    /// time in the future counts as now).
    pub observed_at: EpochNanos,
    /// Inode number of the network namespace it was delivered in.
    pub netns: u32,
    /// Whether the collector trusts that namespace (the host's, or a known container's).
    pub trusted: bool,
}

impl DnsPacket {
    /// A packet seen in the trusted namespace `netns`.
    pub fn trusted(payload: Vec<u8>, observed_at: EpochNanos, netns: u32) -> Self {
        DnsPacket {
            payload,
            observed_at,
            netns,
            trusted: true,
        }
    }

    /// Where it was seen.
    pub fn origin(&self) -> DnsOrigin {
        DnsOrigin {
            netns: self.netns,
            trusted: self.trusted,
        }
    }
}

/// The DNS store protocol.
pub struct DnsProtocol;

impl Protocol for DnsProtocol {
    type Update = DnsPacket;
    type Applied = bool;
    type Backend = dyn DnsBackend;

    fn accepted(applied: &bool) -> bool {
        *applied
    }
}

/// Which store-specific read counter counts answers cut at the size limit.
const RESPONSES_TRUNCATED: usize = 0;

/// What a DNS cache must do to run behind the DNS store: read-only lookups from `&self` with a
/// reader-owned scratch (answers borrow the published copy), deterministic updates.
pub trait DnsBackend: Send + Sync + 'static {
    /// A traversal scratch fitting this cache (a reader keeps one and reuses it).
    fn read_scratch(&self) -> DnsReadScratch;
    /// The cached answer (`NotFound` if not cached or expired). Counts nothing. answer, as the trusted namespaces saw it (`netns` `None`) or as namespace
    /// `netns` did.
    fn find_dns_response<'a>(
        &'a self,
        query: &'a str,
        netns: Option<u32>,
        now: EpochNanos,
        scratch: &mut DnsReadScratch,
    ) -> Result<DnsResponseView<'a>, StoreError>;
    /// Calls `f` with `(slot, identity)` of each name the last lookup with `scratch` read.
    fn names_read(&self, scratch: &DnsReadScratch, f: &mut dyn FnMut(u32, u32));
    /// Name slots (one recency mark each).
    fn name_slots(&self) -> usize;
    /// Records an observed response packet; `false` if it was not cacheable or malformed.
    fn observe(&mut self, packet: &DnsPacket, now: EpochNanos) -> bool;
    /// Touches the names readers read (`(slot, identity)`, oldest first).
    fn refresh_recency(&mut self, reads: &[(u32, u32)]);
    /// Upkeep after each intake message (dropping expired answers). Nothing by default.
    fn after_apply(&mut self, _now: EpochNanos) {}
    /// The cache's own counters; `None` (answered `NotImplemented`) if it keeps none.
    fn stats(&self) -> Option<DnsCacheStats> {
        None
    }
    /// Bytes reserved.
    fn bytes_reserved(&self) -> usize {
        0
    }
    /// The store itself, to downcast to its concrete type (snapshots, inspection).
    fn as_any(&self) -> &dyn std::any::Any;
    /// The store itself, mutably.
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
    /// Health.
    fn health(&self, now: EpochNanos) -> HealthInfo;
    /// Metrics (writes; the view counts reads).
    fn metrics(&self) -> DataStoreMetrics;
}

impl<T: DnsBackend + ?Sized> StoreBackend<DnsProtocol> for T {
    fn apply_update(&mut self, update: &DnsPacket, now: EpochNanos) -> bool {
        self.observe(update, now)
    }

    fn after_apply(&mut self, now: EpochNanos) {
        DnsBackend::after_apply(self, now)
    }

    fn read_mark_slots(&self) -> usize {
        self.name_slots()
    }

    fn apply_read_marks(&mut self, marks: &[(u32, u32)]) {
        self.refresh_recency(marks)
    }

    fn bytes_reserved(&self) -> usize {
        DnsBackend::bytes_reserved(self)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        DnsBackend::as_any(self)
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        DnsBackend::as_any_mut(self)
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        DnsBackend::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        DnsBackend::metrics(self)
    }
}

impl<T: DnsBackend + Clone> IntoCopies<DnsProtocol> for T {
    fn into_copies(self) -> [Box<dyn DnsBackend>; 2] {
        [Box::new(self.clone()), Box::new(self)]
    }
}

/// Handle to the DNS store (`registry.dns()`).
pub type DnsHandle = StoreHandle<DnsProtocol>;

thread_local! {
    /// This thread's traversal scratch (sized for the DNS cache it last read).
    static SCRATCH: RefCell<Option<DnsReadScratch>> = const { RefCell::new(None) };
}

/// One lookup on the published copy, counted and its names marked as read.
fn lookup(
    store: &dyn DnsBackend,
    reads: &mut Reads<'_>,
    query: &str,
    netns: Option<u32>,
) -> Result<DnsResponse, StoreError> {
    SCRATCH.with(|cell| {
        let mut cell = cell.borrow_mut();
        let scratch = match cell.as_mut() {
            Some(s) => s,
            None => cell.insert(store.read_scratch()),
        };
        let mut found = store.find_dns_response(query, netns, reads.now(), scratch);
        if matches!(&found, Err(e) if e.is(ErrorKind::StoreUnhealthy)) {
            // The scratch was sized for another cache: size it for this one.
            *scratch = store.read_scratch();
            found = store.find_dns_response(query, netns, reads.now(), scratch);
        }
        reads.count(&found);
        let answer = found.map(|v| {
            if v.truncated {
                reads.extra(RESPONSES_TRUNCATED);
            }
            to_response(&v)
        });
        if answer.is_ok() {
            store.names_read(scratch, &mut |slot, id| reads.mark(slot, id));
        }
        answer
    })
}

/// Queries answer from the store's published copy in the caller's task; each counts in the
/// store's metrics and refreshes the recency of the names it returns.
impl StoreHandle<DnsProtocol> {
    /// The cached answer for `query` (a name, or an IP for a reverse lookup), as the trusted
    /// network namespaces (the host's and known containers') saw it.
    pub async fn get_dns_response(&self, query: &str) -> Result<DnsResponse, StoreError> {
        self.read_view("get_dns_response", |store, reads| {
            lookup(store, reads, query, None)
        })?
    }

    /// The cached answer for `query` as network namespace `netns` (its inode number) saw it,
    /// trusted or not.
    pub async fn get_dns_response_in(
        &self,
        query: &str,
        netns: u32,
    ) -> Result<DnsResponse, StoreError> {
        self.read_view("get_dns_response", |store, reads| {
            lookup(store, reads, query, Some(netns))
        })?
    }

    /// The cache's own counters; `NotImplemented` for a backend that keeps none. Not counted as
    /// a request in the metrics.
    pub async fn dns_stats(&self) -> Result<DnsCacheStats, StoreError> {
        let stats = self.inspect_view(|store| store.stats())?;
        let mut stats = stats.ok_or(StoreError::new(
            watchpost_core::error::store_names::DNS,
            "get_stats",
            ErrorKind::NotImplemented,
        ))?;
        stats.responses_truncated = stats
            .responses_truncated
            .saturating_add(self.slot.read_extras()[RESPONSES_TRUNCATED]);
        Ok(stats)
    }

    /// Many lookups from one published copy, one answer each in order.
    pub async fn get_dns_responses(
        &self,
        queries: &[&str],
    ) -> Result<Vec<Result<DnsResponse, StoreError>>, StoreError> {
        self.read_view("get_dns_responses", |store, reads| {
            queries
                .iter()
                .map(|q| lookup(store, reads, q, None))
                .collect()
        })
    }
}
