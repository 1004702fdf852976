//! The DNS store as an actor: answers observed on the wire, fed as raw DNS response packets with
//! the network namespace each was seen in. Lookups answer as the trusted namespaces saw it
//! (the host's and known containers'), or as one namespace saw it when asked.

use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};
use watchpost_core::dns::{DnsCacheStats, DnsOrigin};
use watchpost_core::{DataStoreMetrics, EpochNanos, ErrorKind, HealthInfo, StoreError};

use crate::handle::StoreHandle;
use crate::protocol::{Protocol, StoreBackend, answer};

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

/// Queries to the DNS store.
pub enum DnsQuery {
    /// The cached answer for a name or an IP.
    GetDnsResponse {
        /// Name or IP.
        query: String,
        /// One network namespace's view; `None`: the trusted namespaces'.
        netns: Option<u32>,
        /// Answer.
        reply: RpcReplyPort<Result<DnsResponse, StoreError>>,
    },
    /// Many lookups in one message, in order.
    GetDnsResponses {
        /// Names or IPs.
        queries: Vec<String>,
        /// Answers.
        reply: RpcReplyPort<Vec<Result<DnsResponse, StoreError>>>,
    },
    /// The cache's own counters (messages, records, expiries, evictions).
    GetStats {
        /// Answer.
        reply: RpcReplyPort<Result<DnsCacheStats, StoreError>>,
    },
}

/// The DNS store protocol.
pub struct DnsProtocol;

impl Protocol for DnsProtocol {
    type Query = DnsQuery;
    type Update = DnsPacket;
}

/// What a DNS cache must do to run behind the DNS store actor.
pub trait DnsBackend: Send + 'static {
    /// The cached answer (`NotFound` if not cached or expired), as the trusted namespaces saw it
    /// (`netns` `None`) or as namespace `netns` did.
    fn get_dns_response(
        &mut self,
        query: &str,
        netns: Option<u32>,
        now: EpochNanos,
    ) -> Result<DnsResponse, StoreError>;
    /// Records an observed response packet; `false` if it was not cacheable or malformed.
    fn observe(&mut self, packet: &DnsPacket, now: EpochNanos) -> bool;
    /// Upkeep after each intake message (dropping expired answers). Nothing by default.
    fn after_apply(&mut self, _now: EpochNanos) {}
    /// The cache's own counters; `None` (answered `NotImplemented`) if it keeps none.
    fn stats(&self) -> Option<DnsCacheStats> {
        None
    }
    /// Health.
    fn health(&self, now: EpochNanos) -> HealthInfo;
    /// Metrics.
    fn metrics(&self) -> DataStoreMetrics;
}

impl<T: DnsBackend> StoreBackend<DnsProtocol> for T {
    fn handle_query(&mut self, query: DnsQuery, now: EpochNanos) {
        match query {
            DnsQuery::GetDnsResponse {
                query,
                netns,
                reply,
            } => answer(reply, self.get_dns_response(&query, netns, now)),
            DnsQuery::GetDnsResponses { queries, reply } => {
                let answers = queries
                    .iter()
                    .map(|q| self.get_dns_response(q, None, now))
                    .collect();
                answer(reply, answers)
            }
            DnsQuery::GetStats { reply } => answer(
                reply,
                self.stats().ok_or(StoreError::new(
                    watchpost_core::error::store_names::DNS,
                    "get_stats",
                    ErrorKind::NotImplemented,
                )),
            ),
        }
    }

    fn apply_update(&mut self, update: DnsPacket, now: EpochNanos) -> bool {
        self.observe(&update, now)
    }

    fn after_apply(&mut self, now: EpochNanos) {
        DnsBackend::after_apply(self, now)
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        DnsBackend::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        DnsBackend::metrics(self)
    }
}

/// Handle to the DNS store (`registry.dns()`).
pub type DnsHandle = StoreHandle<DnsProtocol>;

impl StoreHandle<DnsProtocol> {
    /// The cached answer for `query` (a name, or an IP for a reverse lookup), as the trusted
    /// network namespaces (the host's and known containers') saw it.
    pub async fn get_dns_response(&self, query: &str) -> Result<DnsResponse, StoreError> {
        let query = query.to_owned();
        self.ask("get_dns_response", |reply| DnsQuery::GetDnsResponse {
            query,
            netns: None,
            reply,
        })
        .await
    }

    /// The cached answer for `query` as network namespace `netns` (its inode number) saw it,
    /// trusted or not.
    pub async fn get_dns_response_in(
        &self,
        query: &str,
        netns: u32,
    ) -> Result<DnsResponse, StoreError> {
        let query = query.to_owned();
        self.ask("get_dns_response", |reply| DnsQuery::GetDnsResponse {
            query,
            netns: Some(netns),
            reply,
        })
        .await
    }

    /// The cache's own counters; `NotImplemented` for a backend that keeps none. Not counted as
    /// a request in the metrics.
    pub async fn dns_stats(&self) -> Result<DnsCacheStats, StoreError> {
        self.ask("get_stats", |reply| DnsQuery::GetStats { reply })
            .await
    }

    /// Many lookups in one message, one answer each in order.
    pub async fn get_dns_responses(
        &self,
        queries: &[&str],
    ) -> Result<Vec<Result<DnsResponse, StoreError>>, StoreError> {
        let queries = queries.iter().map(|q| (*q).to_owned()).collect();
        self.call("get_dns_responses", |reply| DnsQuery::GetDnsResponses {
            queries,
            reply,
        })
        .await
    }
}
