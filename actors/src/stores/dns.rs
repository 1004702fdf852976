//! The DNS store as an actor: answers observed on the wire, fed as raw DNS response packets.

use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};
use watchpost_core::dns::DnsCacheStats;
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
}

/// Queries to the DNS store.
pub enum DnsQuery {
    /// The cached answer for a name or an IP.
    GetDnsResponse {
        /// Name or IP.
        query: String,
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
    /// The cached answer (`NotFound` if not cached or expired).
    fn get_dns_response(&mut self, query: &str, now: EpochNanos)
    -> Result<DnsResponse, StoreError>;
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
            DnsQuery::GetDnsResponse { query, reply } => {
                answer(reply, self.get_dns_response(&query, now))
            }
            DnsQuery::GetDnsResponses { queries, reply } => {
                let answers = queries
                    .iter()
                    .map(|q| self.get_dns_response(q, now))
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
    /// The cached answer for `query` (a name, or an IP for a reverse lookup).
    pub async fn get_dns_response(&self, query: &str) -> Result<DnsResponse, StoreError> {
        let query = query.to_owned();
        self.ask("get_dns_response", |reply| DnsQuery::GetDnsResponse {
            query,
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
