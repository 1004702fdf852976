//! Userspace side of DNS query matching (see the programs' `dns_match` module): the options,
//! the per-reason counters of what the kernel refused, and the set of trusted network
//! namespaces the programs consult.
//!
//! Trust: the host's network namespace (the one this process runs in when it loads) is always
//! trusted; the daemon adds the namespaces of the containers it knows and removes them when the
//! containers go. Queries from trusted namespaces live in their own pending-query map, and
//! answers into untrusted namespaces pass a rate limit; every answer record says whether its
//! namespace was trusted when it arrived.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aya::maps::{HashMap, MapData, PerCpuArray};
use watchpost_ebpf_common::{
    DNS_COUNTERS_MAP, DNS_PENDING_QUERIES, DnsMatching, TRUSTED_NETNS_CAPACITY, TRUSTED_NETNS_MAP,
    dns_counter,
};

use crate::error::ReadError;

/// How the DNS programs match answers to queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsMatchingOptions {
    /// Pass on only answers to outstanding queries (the default). `false` passes every answer
    /// from port 53, as before matching existed: for measuring what matching costs, never for
    /// production.
    pub require_query: bool,
    /// An answer later than this after its query is refused (resolvers retry after ~5 s).
    pub query_timeout: Duration,
    /// Answers per second, per CPU, accepted into untrusted network namespaces together.
    pub untrusted_answers_per_sec: u32,
    /// Burst of those, per CPU.
    pub untrusted_burst: u32,
    /// Entries of each outstanding-query map (trusted and other namespaces have one each).
    pub pending_queries: u32,
}

impl Default for DnsMatchingOptions {
    fn default() -> Self {
        DnsMatchingOptions {
            require_query: true,
            query_timeout: Duration::from_secs(10),
            untrusted_answers_per_sec: 200,
            untrusted_burst: 400,
            pending_queries: DNS_PENDING_QUERIES,
        }
    }
}

impl DnsMatchingOptions {
    /// The programs' global.
    pub(crate) fn global(&self) -> DnsMatching {
        DnsMatching {
            enabled: u32::from(self.require_query),
            untrusted_answers_per_sec: self.untrusted_answers_per_sec,
            untrusted_burst: self.untrusted_burst.max(1),
            reserved: 0,
            timeout_ns: u64::try_from(self.query_timeout.as_nanos()).unwrap_or(u64::MAX),
        }
    }
}

/// What the kernel did with DNS packets, summed over CPUs. Refusals are the `answers_*` fields
/// other than `answers_matched` and `answers_oversized`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsCounters {
    /// Outgoing queries recorded.
    pub queries_tracked: u64,
    /// Answers that matched a query and went on.
    pub answers_matched: u64,
    /// Answers that matched no outstanding query (forged, replayed, or too late for the map).
    pub answers_unmatched: u64,
    /// Answers that came after the timeout.
    pub answers_late: u64,
    /// Answers without a readable question.
    pub answers_malformed: u64,
    /// Answers into untrusted namespaces beyond the rate.
    pub answers_rate_limited: u64,
    /// Answers longer than the capture size (passed on cut; not a refusal).
    pub answers_oversized: u64,
    /// Answers whose socket's network namespace could not be read.
    pub answers_no_namespace: u64,
}

impl DnsCounters {
    /// Answers refused for any reason.
    pub fn refused(&self) -> u64 {
        self.answers_unmatched
            .saturating_add(self.answers_late)
            .saturating_add(self.answers_malformed)
            .saturating_add(self.answers_rate_limited)
            .saturating_add(self.answers_no_namespace)
    }
}

/// A shareable reader of the kernel's DNS counters (cheap to clone).
#[derive(Clone)]
pub struct DnsCounterReader {
    map: Arc<PerCpuArray<MapData, u64>>,
}

impl std::fmt::Debug for DnsCounterReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsCounterReader").finish_non_exhaustive()
    }
}

impl DnsCounterReader {
    pub(crate) fn new(map: PerCpuArray<MapData, u64>) -> Self {
        DnsCounterReader { map: Arc::new(map) }
    }

    /// Reads the counters now (one syscall per slot).
    pub fn read(&self) -> Result<DnsCounters, ReadError> {
        let sum = |slot: u32| -> Result<u64, ReadError> {
            let values = self.map.get(&slot, 0).map_err(|source| ReadError::Map {
                map: DNS_COUNTERS_MAP,
                source,
            })?;
            Ok(values.iter().fold(0u64, |acc, v| acc.saturating_add(*v)))
        };
        Ok(DnsCounters {
            queries_tracked: sum(dns_counter::QUERIES_TRACKED)?,
            answers_matched: sum(dns_counter::ANSWERS_MATCHED)?,
            answers_unmatched: sum(dns_counter::ANSWERS_UNMATCHED)?,
            answers_late: sum(dns_counter::ANSWERS_LATE)?,
            answers_malformed: sum(dns_counter::ANSWERS_MALFORMED)?,
            answers_rate_limited: sum(dns_counter::ANSWERS_RATE_LIMITED)?,
            answers_oversized: sum(dns_counter::ANSWERS_OVERSIZED)?,
            answers_no_namespace: sum(dns_counter::ANSWERS_NO_NAMESPACE)?,
        })
    }
}

/// The inode number of this process's network namespace (`/proc/self/ns/net`).
pub fn own_network_namespace() -> std::io::Result<u32> {
    let ino = std::fs::metadata("/proc/self/ns/net")?.ino();
    u32::try_from(ino).map_err(|_| std::io::Error::other("namespace inode beyond 32 bits"))
}

/// Why the trusted set could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// More namespaces than the map holds.
    #[error(
        "{0} trusted network namespaces asked for; the kernel map holds {TRUSTED_NETNS_CAPACITY}"
    )]
    TooMany(usize),
    /// The map update failed.
    #[error("updating {TRUSTED_NETNS_MAP}: {0}")]
    Map(#[from] aya::maps::MapError),
}

/// The trusted network namespaces of the programs (cheap to clone; usable from any thread).
#[derive(Clone)]
pub struct TrustedNamespaces {
    inner: Arc<Mutex<TrustedInner>>,
    host: u32,
}

struct TrustedInner {
    map: HashMap<MapData, u32, u32>,
    /// What the map holds besides the host.
    others: BTreeSet<u32>,
}

impl std::fmt::Debug for TrustedNamespaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedNamespaces")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl TrustedNamespaces {
    /// Wraps the loaded map and trusts `host` in it.
    pub(crate) fn new(mut map: HashMap<MapData, u32, u32>, host: u32) -> Result<Self, TrustError> {
        map.insert(host, 1, 0)?;
        Ok(TrustedNamespaces {
            inner: Arc::new(Mutex::new(TrustedInner {
                map,
                others: BTreeSet::new(),
            })),
            host,
        })
    }

    /// The host's network namespace (always trusted).
    pub fn host(&self) -> u32 {
        self.host
    }

    /// Trusts exactly the host and `others` from now on (adds what is new, removes what is
    /// gone). Answers already in flight keep the trust they were recorded with.
    pub fn replace(&self, others: &BTreeSet<u32>) -> Result<(), TrustError> {
        if others.len() >= TRUSTED_NETNS_CAPACITY as usize {
            return Err(TrustError::TooMany(others.len()));
        }
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let gone: Vec<u32> = inner.others.difference(others).copied().collect();
        for netns in gone {
            if netns != self.host {
                // Already absent is fine.
                let _ = inner.map.remove(&netns);
            }
            inner.others.remove(&netns);
        }
        for &netns in others {
            if inner.others.insert(netns) {
                inner.map.insert(netns, 1, 0)?;
            }
        }
        Ok(())
    }

    /// The namespaces trusted now, the host's included.
    pub fn current(&self) -> BTreeSet<u32> {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut all = inner.others.clone();
        all.insert(self.host);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_and_convert() {
        let options = DnsMatchingOptions::default();
        let global = options.global();
        assert_eq!(global.enabled, 1);
        assert_eq!(global.timeout_ns, 10_000_000_000);
        assert_eq!(global.untrusted_burst, 400);
        let off = DnsMatchingOptions {
            require_query: false,
            untrusted_burst: 0,
            ..options
        };
        assert_eq!(off.global().enabled, 0);
        assert_eq!(off.global().untrusted_burst, 1);
    }

    #[test]
    fn refusals_sum_without_the_oversized() {
        let c = DnsCounters {
            answers_unmatched: 1,
            answers_late: 2,
            answers_malformed: 3,
            answers_rate_limited: 4,
            answers_no_namespace: 5,
            answers_oversized: 100,
            answers_matched: 100,
            queries_tracked: 100,
        };
        assert_eq!(c.refused(), 15);
    }

    #[test]
    fn own_namespace_is_readable() {
        assert!(own_network_namespace().unwrap() > 0);
    }
}
