//! Snapshot and restore of a [`DnsCache`]: its names and links out as [`DnsRecord`]s, and a
//! cache rebuilt from them that answers and evicts like the recorded one.
//!
//! Two orders decide answers and evictions besides the records themselves: the recency of
//! names, and the order of each node's links (answers list them in creation order). Names carry
//! their recency stamp and links their creation stamp; a restore inserts in any order, then
//! sorts the recency list and every link list back by those stamps.

use core::net::IpAddr;

use super::{DnsCache, DnsOrigin, Link, LinkKind, NIL, NodeId, NodeKey, NodeSlot, Removal};
use crate::dns::name::MAX_NAME_TEXT_LEN;
use crate::dns::record::{DnsLinkKind, DnsNodeRecord, DnsRecord};
use crate::list_sort::{NextLinks, sort_list};
use crate::time::EpochNanos;

/// What [`DnsCache::restore`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DnsRestoreReport {
    /// Names held afterwards.
    pub names: usize,
    /// Links (records) held afterwards.
    pub links: usize,
    /// Links that had expired by the time of the restore (not restored).
    pub expired: usize,
    /// Records the cache's eviction rule dropped because they did not fit, plus links whose
    /// name had been dropped.
    pub evicted: usize,
    /// Records refused: malformed names, repeated names or links, self-links, and names that
    /// ended up without a live link.
    pub rejected: usize,
}

impl From<LinkKind> for DnsLinkKind {
    fn from(kind: LinkKind) -> Self {
        match kind {
            LinkKind::A => DnsLinkKind::A,
            LinkKind::Aaaa => DnsLinkKind::Aaaa,
            LinkKind::Cname => DnsLinkKind::Cname,
            LinkKind::Ptr => DnsLinkKind::Ptr,
            LinkKind::Mx => DnsLinkKind::Mx,
            LinkKind::Srv => DnsLinkKind::Srv,
        }
    }
}

impl From<DnsLinkKind> for LinkKind {
    fn from(kind: DnsLinkKind) -> Self {
        match kind {
            DnsLinkKind::A => LinkKind::A,
            DnsLinkKind::Aaaa => LinkKind::Aaaa,
            DnsLinkKind::Cname => LinkKind::Cname,
            DnsLinkKind::Ptr => LinkKind::Ptr,
            DnsLinkKind::Mx => LinkKind::Mx,
            DnsLinkKind::Srv => LinkKind::Srv,
        }
    }
}

/// Whether a restored name could have been stored by the cache: non-empty, bounded, lowercase,
/// not starting or ending with a dot.
fn plausible_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_NAME_TEXT_LEN
        && !text.starts_with('.')
        && !text.ends_with('.')
        && !text.bytes().any(|b| b.is_ascii_uppercase())
}

impl DnsCache {
    /// A counter that moves on every change: a snapshot is needed when it differs from the value
    /// seen at the last one.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Every name, then every link, as snapshot records (slot order). Not a counted query;
    /// changes nothing.
    pub fn records(&self) -> impl Iterator<Item = DnsRecord<'_>> + '_ {
        let names = self.names.iter().flatten().filter_map(move |n| {
            let origin = self.namespaces.origin(n.ns)?;
            Some(DnsRecord::Name {
                name: self.arena.get(n.text)?,
                recency: n.touched,
                netns: origin.netns,
                trusted: origin.trusted,
            })
        });
        let links = self.links.iter().flatten().filter_map(move |l| {
            Some(DnsRecord::Link {
                from: self.node_record(l.from)?,
                to: self.node_record(l.to)?,
                kind: l.kind.into(),
                expires_at: l.expires_at,
                created: l.created,
                netns: self.namespaces.origin(l.ns)?.netns,
            })
        });
        names.chain(links)
    }

    fn node_record(&self, node: NodeId) -> Option<DnsNodeRecord<'_>> {
        match node.slot() {
            NodeSlot::Name(slot) => {
                let n = self.names.get(slot)?.as_ref()?;
                Some(DnsNodeRecord::Name(self.arena.get(n.text)?))
            }
            NodeSlot::Addr(slot) => Some(DnsNodeRecord::Addr(self.addrs.get(slot)?.as_ref()?.addr)),
        }
    }

    /// Empties the cache and rebuilds it from `records` (any order; names before the links
    /// that use them, as [`DnsRecord::restore_order`] sorts). Links expired at `now` are
    /// skipped; records past a capacity are dropped by the cache's own eviction rule, counted.
    /// Every list is then put back in its recorded order. Allocation-free.
    pub fn restore<'r>(
        &mut self,
        records: impl IntoIterator<Item = DnsRecord<'r>>,
        now: EpochNanos,
    ) -> DnsRestoreReport {
        self.clear();
        let before = self.stats;
        let mut report = DnsRestoreReport::default();
        let mut stamp = self.stamp;
        self.restoring = true;
        for record in records {
            match record {
                DnsRecord::Name {
                    name,
                    recency,
                    netns,
                    trusted,
                } => {
                    stamp = stamp.max(recency);
                    let Some(ns) = self
                        .namespaces
                        .admit_restored(DnsOrigin { netns, trusted }, now)
                    else {
                        report.evicted += 1;
                        continue;
                    };
                    if !plausible_name(name) || self.find_name(ns, name).is_some() {
                        report.rejected += 1;
                        continue;
                    }
                    match self.find_or_add_node(ns, NodeKey::Name(name), now) {
                        Ok((node, _)) => {
                            if let NodeSlot::Name(slot) = node.slot()
                                && let Some(n) = self.names.get_mut(slot).and_then(Option::as_mut)
                            {
                                n.touched = recency;
                            }
                        }
                        Err(_) => report.evicted += 1,
                    }
                }
                DnsRecord::Link {
                    from,
                    to,
                    kind,
                    expires_at,
                    created,
                    netns,
                } => {
                    stamp = stamp.max(created);
                    if expires_at <= now {
                        report.expired += 1;
                        continue;
                    }
                    // The namespace came with the link's names (every link has a name end).
                    let Some(ns) = self.namespaces.find(netns) else {
                        report.evicted += 1;
                        continue;
                    };
                    let (Some(from), Some(to)) =
                        (self.restore_key(ns, from), self.restore_key(ns, to))
                    else {
                        report.evicted += 1;
                        continue;
                    };
                    self.restore_created = created;
                    match self.upsert_link(ns, from, to, kind.into(), expires_at, now) {
                        Ok(false) => {}
                        Ok(true) => report.rejected += 1,
                        Err(super::NotStored::Ignored) => report.rejected += 1,
                        Err(super::NotStored::Dropped) => report.evicted += 1,
                    }
                }
            }
        }
        self.restoring = false;
        // Names whose links all expired or were refused.
        for slot in 0..self.names.len() as u32 {
            let bare = self
                .names
                .get(slot as usize)
                .and_then(Option::as_ref)
                .is_some_and(|n| n.adj.degree == 0);
            if bare {
                self.remove_node(NodeId::name(slot), Removal::Unstored);
                report.rejected += 1;
            }
        }
        self.stamp = stamp;
        self.sort_lists();
        let evicted = self
            .stats
            .names_evicted
            .saturating_sub(before.names_evicted)
            + self
                .stats
                .links_evicted
                .saturating_sub(before.links_evicted);
        report.evicted = report.evicted.saturating_add(evicted as usize);
        let usage = self.usage();
        report.names = usage.names;
        report.links = usage.links;
        report
    }

    /// The node key of a restored end in namespace `ns`; a name must have been restored already.
    fn restore_key<'k>(&self, ns: u16, node: DnsNodeRecord<'k>) -> Option<NodeKey<'k>> {
        match node {
            DnsNodeRecord::Name(text) => self.find_name(ns, text).map(|_| NodeKey::Name(text)),
            DnsNodeRecord::Addr(addr) => Some(NodeKey::Addr(IpAddr::to_canonical(&addr))),
        }
    }

    /// Each namespace's recency by name stamps; every out-list and in-list newest link first.
    fn sort_lists(&mut self) {
        let names = &self.names;
        for ns in 0..self.namespaces.slots() {
            self.namespaces.sort_by_key(ns, |slot| {
                names
                    .get(slot as usize)
                    .and_then(Option::as_ref)
                    .map_or(0, |n| n.touched)
            });
        }
        let max = self.links.len();
        for node in (0..self.names.len() as u32)
            .map(NodeId::name)
            .chain((0..self.addrs.len() as u32).map(NodeId::addr))
        {
            let Some(adj) = self.adjacency(node).copied() else {
                continue;
            };
            let out_head = sort_list(
                &mut OutLinks(&mut self.links),
                adj.out_head,
                NIL,
                max,
                |l, a, b| created(l.0, a) > created(l.0, b),
            );
            let in_head = sort_list(
                &mut InLinks(&mut self.links),
                adj.in_head,
                NIL,
                max,
                |l, a, b| created(l.0, a) > created(l.0, b),
            );
            self.repair_prev(out_head, in_head, max);
            if let Some(a) = self.adjacency_mut(node) {
                a.out_head = out_head;
                a.in_head = in_head;
            }
        }
    }

    /// Sets the backward links of the out-list at `out_head` and the in-list at `in_head`.
    fn repair_prev(&mut self, out_head: u32, in_head: u32, max: usize) {
        let mut prev = NIL;
        let mut cursor = out_head;
        for _ in 0..max {
            let Some(l) = self.link_mut(cursor) else {
                break;
            };
            l.prev_out = prev;
            prev = cursor;
            cursor = l.next_out;
        }
        let mut prev = NIL;
        let mut cursor = in_head;
        for _ in 0..max {
            let Some(l) = self.link_mut(cursor) else {
                break;
            };
            l.prev_in = prev;
            prev = cursor;
            cursor = l.next_in;
        }
    }
}

/// A link's creation stamp (0 for an empty slot).
fn created(links: &[Option<Link>], slot: u32) -> u64 {
    links
        .get(slot as usize)
        .and_then(Option::as_ref)
        .map_or(0, |l| l.created)
}

/// The out-list links of the slab as [`NextLinks`].
struct OutLinks<'a>(&'a mut [Option<Link>]);
/// The in-list links of the slab as [`NextLinks`].
struct InLinks<'a>(&'a mut [Option<Link>]);

impl NextLinks for OutLinks<'_> {
    fn next(&self, slot: u32) -> u32 {
        self.0
            .get(slot as usize)
            .and_then(Option::as_ref)
            .map_or(NIL, |l| l.next_out)
    }
    fn set_next(&mut self, slot: u32, next: u32) {
        if let Some(l) = self.0.get_mut(slot as usize).and_then(Option::as_mut) {
            l.next_out = next;
        }
    }
}

impl NextLinks for InLinks<'_> {
    fn next(&self, slot: u32) -> u32 {
        self.0
            .get(slot as usize)
            .and_then(Option::as_ref)
            .map_or(NIL, |l| l.next_in)
    }
    fn set_next(&mut self, slot: u32, next: u32) {
        if let Some(l) = self.0.get_mut(slot as usize).and_then(Option::as_mut) {
            l.next_in = next;
        }
    }
}
