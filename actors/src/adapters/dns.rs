//! The core [`DnsCache`] as a [`DnsBackend`]: observed response packets are parsed and cached
//! inside the actor (the parser is zero-copy and checked; a packet is at most 64 KiB); reads are
//! the core's read-only lookups; [`to_response`] makes owned [`DnsResponse`]s. Expired answers are never returned; they are also swept after
//! every intake message, which costs nothing until one can have expired (the cache keeps a lower
//! bound of all expiries).

use watchpost_core::dns::{
    DnsCache, DnsCacheConfig, DnsCacheStats, DnsReadScratch, DnsResponseView, MessageOutcome,
};
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo, StoreError};

use crate::seed::random_seed;
use crate::stores::dns::{DnsBackend, DnsPacket, DnsResponse};
use crate::supervision::{BuildContext, BuildError};

/// The owned copy of a core answer (addresses as text, as the reference has them).
pub fn to_response(view: &DnsResponseView<'_>) -> DnsResponse {
    DnsResponse {
        query: view.query.to_owned(),
        ips: view.ips().iter().map(ToString::to_string).collect(),
        domains: view.domains().iter().map(|d| (*d).to_owned()).collect(),
        truncated: view.truncated,
    }
}

/// A factory for the DNS store: a [`DnsCache`] sized by `config`, with a fresh random hash seed
/// on every build (the seed in `config` is ignored).
pub fn dns_cache_factory(
    config: DnsCacheConfig,
) -> impl Fn(&BuildContext) -> Result<DnsCache, BuildError> + Send + Sync + 'static {
    move |_| {
        Ok(DnsCache::new(DnsCacheConfig {
            hash_seed: random_seed(),
            ..config
        }))
    }
}

impl DnsBackend for DnsCache {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn read_scratch(&self) -> DnsReadScratch {
        DnsCache::read_scratch(self)
    }

    fn find_dns_response<'a>(
        &'a self,
        query: &'a str,
        netns: Option<u32>,
        now: EpochNanos,
        scratch: &mut DnsReadScratch,
    ) -> Result<DnsResponseView<'a>, StoreError> {
        DnsCache::find_dns_response(self, query, netns, now, scratch)
    }

    fn names_read(&self, scratch: &DnsReadScratch, f: &mut dyn FnMut(u32, u32)) {
        for (slot, id) in DnsCache::names_read(self, scratch) {
            f(slot, id);
        }
    }

    fn name_slots(&self) -> usize {
        self.capacity()
    }

    fn refresh_recency(&mut self, reads: &[(u32, u32)]) {
        DnsCache::refresh_recency(self, reads.iter().copied())
    }

    fn bytes_reserved(&self) -> usize {
        DnsCache::bytes_reserved(self)
    }

    /// Applied when the packet parses and its message is cached; a packet that does not parse
    /// or a message the cache's rules skip (a query, an error response, no answers) is refused.
    fn observe(&mut self, packet: &DnsPacket, now: EpochNanos) -> bool {
        let at = if packet.observed_at == 0 {
            now
        } else {
            packet.observed_at.min(now)
        };
        self.insert_packet(&packet.payload, packet.origin(), at)
            .is_ok_and(|ingested| ingested.outcome == MessageOutcome::Cached)
    }

    fn after_apply(&mut self, now: EpochNanos) {
        self.purge_expired(now);
    }

    fn stats(&self) -> Option<DnsCacheStats> {
        Some(DnsCache::stats(self))
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        DnsCache::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        DnsCache::metrics(self)
    }
}
