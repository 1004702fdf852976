//! Read-only queries: `GetDNSResponse` from `&self`, for readers of a shared copy (the actors'
//! published read view).
//!
//! The counted query marks visited nodes in the cache, keeps its traversal in the cache's own
//! scratch, touches every name it returns and counts. A shared copy allows none of that, so here
//! the traversal lives in a caller-owned [`DnsReadScratch`] (sized once for the cache, reused
//! query after query: nothing allocates per query), nothing is counted (the caller counts by
//! the rule of [`crate::metrics`] and reads [`DnsResponseView::truncated`]), and the names to
//! touch are handed to the caller ([`DnsCache::names_read`]) for the cache's owner to touch later
//! with [`DnsCache::refresh_recency`]. Answers are the counted query's.

use alloc::vec;
use alloc::vec::Vec;

use super::{ADDR_BIT, DnsCache, GET, MAX_NAME_TEXT_LEN, NodeId, NodeSlot, STORE, count};
use crate::dns::response::{DnsResponseView, MAX_RESPONSE_DOMAINS, MAX_RESPONSE_IPS};
use crate::error::StoreError;
use crate::time::EpochNanos;

/// A reader's traversal state for one [`DnsCache`] (see the module documentation).
#[derive(Debug, Clone)]
pub struct DnsReadScratch {
    /// Nodes in visit order (the last query's, until the next one clears them).
    queue: Vec<NodeId>,
    /// Visited bits: name slots first, then address slots.
    seen: Vec<u64>,
    names: usize,
    addrs: usize,
}

impl DnsReadScratch {
    /// Whether this scratch was made for a cache of `cache`'s size.
    pub fn fits(&self, cache: &DnsCache) -> bool {
        self.names == cache.names.len() && self.addrs == cache.addrs.len()
    }

    fn bit(&self, node: NodeId) -> Option<usize> {
        match node.slot() {
            NodeSlot::Name(slot) => (slot < self.names).then_some(slot),
            NodeSlot::Addr(slot) => (slot < self.addrs).then_some(self.names + slot),
        }
    }

    fn reset(&mut self) {
        for i in 0..self.queue.len() {
            let Some(&node) = self.queue.get(i) else {
                break;
            };
            if let Some(bit) = self.bit(node)
                && let Some(word) = self.seen.get_mut(bit / 64)
            {
                *word &= !(1u64 << (bit % 64));
            }
        }
        self.queue.clear();
    }
}

impl DnsCache {
    /// A traversal scratch for read-only queries on this cache (or any copy of it): one bit and
    /// one queue entry per node slot, allocated now.
    pub fn read_scratch(&self) -> DnsReadScratch {
        let nodes = self.names.len() + self.addrs.len();
        DnsReadScratch {
            queue: Vec::with_capacity(nodes),
            seen: vec![0; nodes.div_ceil(64)],
            names: self.names.len(),
            addrs: self.addrs.len(),
        }
    }

    /// Read-only [`get_dns_response`](DnsCache::get_dns_response) (`netns` `None`: as the
    /// trusted namespaces saw it) or [`get_dns_response_in`](DnsCache::get_dns_response_in)
    /// (`Some`: as that namespace saw it): the same answer, counted nowhere, recency unchanged.
    /// `scratch` must fit this cache ([`DnsReadScratch::fits`]; otherwise `StoreUnhealthy`).
    pub fn find_dns_response<'a>(
        &'a self,
        query: &'a str,
        netns: Option<u32>,
        now: EpochNanos,
        scratch: &mut DnsReadScratch,
    ) -> Result<DnsResponseView<'a>, StoreError> {
        scratch.reset();
        if !scratch.fits(self) {
            return Err(StoreError::unhealthy(STORE, GET));
        }
        let trimmed = query.strip_suffix('.').unwrap_or(query);
        if trimmed.is_empty() || trimmed.len() > MAX_NAME_TEXT_LEN {
            return Err(StoreError::invalid_argument(STORE, GET));
        }
        let mut counts = [0usize; 2];
        let mut found = false;
        let mut truncated = false;
        match netns {
            Some(netns) => {
                if let Some(ns) = self.namespaces.find(netns) {
                    found = self.collect_in_into(
                        ns,
                        trimmed,
                        now,
                        &mut counts,
                        &mut truncated,
                        scratch,
                    );
                }
            }
            None => {
                // The trusted namespaces, in inode order (as the counted query asks them).
                for i in 0..self.namespaces.trusted_count() {
                    if let Some(ns) = self.namespaces.trusted_at(i) {
                        found |= self.collect_in_into(
                            ns,
                            trimmed,
                            now,
                            &mut counts,
                            &mut truncated,
                            scratch,
                        );
                    }
                }
            }
        }
        if !found {
            return Err(StoreError::not_found(STORE, GET));
        }
        let mut view = DnsResponseView::new(query);
        view.truncated = truncated;
        for &node in &scratch.queue {
            // The same name or address seen in two namespaces is listed once.
            match node.slot() {
                NodeSlot::Name(slot) => {
                    if let Some(text) = self
                        .names
                        .get(slot)
                        .and_then(Option::as_ref)
                        .and_then(|n| self.arena.get(n.text))
                        && !view.domains().contains(&text)
                    {
                        view.push_domain(text);
                    }
                }
                NodeSlot::Addr(slot) => {
                    if let Some(a) = self.addrs.get(slot).and_then(Option::as_ref)
                        && !view.ips().contains(&a.addr)
                    {
                        view.push_ip(a.addr);
                    }
                }
            }
        }
        Ok(view)
    }

    /// The counted `collect_in`: adds what namespace `ns` relates to `query` to `scratch`;
    /// whether it knows `query`.
    fn collect_in_into(
        &self,
        ns: u16,
        query: &str,
        now: EpochNanos,
        counts: &mut [usize; 2],
        truncated: &mut bool,
        scratch: &mut DnsReadScratch,
    ) -> bool {
        let start = self.find_query_node(ns, query);
        let Some(start) = start.filter(|&node| self.has_live_link(node, now)) else {
            return false;
        };
        if !*truncated {
            *truncated = self.collect_related_into(start, now, counts, scratch);
        }
        true
    }

    /// The names the last [`find_dns_response`](DnsCache::find_dns_response) with `scratch`
    /// visited, as `(slot, identity)` pairs to hand to [`DnsCache::refresh_recency`] (the
    /// counted query touches these same names).
    pub fn names_read<'s>(
        &'s self,
        scratch: &'s DnsReadScratch,
    ) -> impl Iterator<Item = (u32, u32)> + 's {
        scratch.queue.iter().filter_map(move |&NodeId(id)| {
            if id & ADDR_BIT != 0 {
                return None;
            }
            Some((id, self.name_identity(id)?))
        })
    }

    /// A name slot's identity for recency marks: a hash of its text and namespace slot
    /// (`None` if the slot is empty).
    fn name_identity(&self, slot: u32) -> Option<u32> {
        let node = self.names.get(slot as usize)?.as_ref()?;
        let text = self.arena.get(node.text)?;
        Some((self.hasher.hash_bytes(text.as_bytes()) ^ u64::from(node.ns)) as u32)
    }

    /// Touches the names readers of a shared copy read, oldest first: each `(slot, identity)`
    /// from [`DnsCache::names_read`] touches the name in `slot` if it is still that name.
    /// Allocates nothing.
    pub fn refresh_recency(&mut self, reads: impl IntoIterator<Item = (u32, u32)>) {
        for (slot, identity) in reads {
            if self.name_identity(slot) == Some(identity)
                && let Some(ns) = self.names.get(slot as usize).and_then(|n| n.map(|n| n.ns))
            {
                // As the counted query does: recency, and the stamp snapshots keep.
                self.touch_name(ns, slot);
            }
        }
    }

    /// The counted traversal of `collect_related`, with the visited set and queue in `scratch`.
    fn collect_related_into(
        &self,
        start: NodeId,
        now: EpochNanos,
        counts: &mut [usize; 2],
        scratch: &mut DnsReadScratch,
    ) -> bool {
        let visit = |scratch: &mut DnsReadScratch, node: NodeId| -> bool {
            if self.adjacency(node).is_none() {
                return false;
            }
            let Some(bit) = scratch.bit(node) else {
                return false;
            };
            let Some(word) = scratch.seen.get_mut(bit / 64) else {
                return false;
            };
            let mask = 1u64 << (bit % 64);
            if *word & mask != 0 {
                return false;
            }
            *word |= mask;
            // Never grows: capacity covers every node, each queued once per query.
            if scratch.queue.len() < scratch.queue.capacity() {
                scratch.queue.push(node);
            }
            true
        };
        let mut next = scratch.queue.len();
        if !visit(scratch, start) {
            return false;
        }
        count(start, counts);
        let full = |c: &[usize; 2]| c[0] > MAX_RESPONSE_DOMAINS && c[1] > MAX_RESPONSE_IPS;
        let over = |c: &[usize; 2]| c[0] > MAX_RESPONSE_DOMAINS || c[1] > MAX_RESPONSE_IPS;
        // Down, from `start` and every node found going down.
        while let Some(&node) = scratch.queue.get(next) {
            next += 1;
            if full(counts) {
                return true;
            }
            let first_new = scratch.queue.len();
            let mut link = self.adjacency(node).map_or(super::NIL, |a| a.out_head);
            while let Some(l) = self.link(link).copied() {
                link = l.next_out;
                if l.expires_at > now && visit(scratch, l.to) {
                    count(l.to, counts);
                }
            }
            // Lists are newest first; answer in the order records were first stored.
            if let Some(new) = scratch.queue.get_mut(first_new..) {
                new.reverse();
            }
        }
        // Up, from `start` and every node found going up.
        let mut node = Some(start);
        while let Some(current) = node {
            if full(counts) {
                return true;
            }
            let first_new = scratch.queue.len();
            let mut link = self.adjacency(current).map_or(super::NIL, |a| a.in_head);
            while let Some(l) = self.link(link).copied() {
                link = l.next_in;
                if l.expires_at > now && visit(scratch, l.from) {
                    count(l.from, counts);
                }
            }
            if let Some(new) = scratch.queue.get_mut(first_new..) {
                new.reverse();
            }
            node = scratch.queue.get(next).copied();
            next += 1;
        }
        over(counts)
    }
}
