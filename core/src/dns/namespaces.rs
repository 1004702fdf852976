//! Whose answers the DNS cache holds: every answer belongs to the network namespace it was seen
//! in, so one namespace's answers are never taken for another's, and no namespace can flush the
//! others'.
//!
//! A local user can fake both halves of a DNS exchange inside a network namespace of its own
//! (no privilege needed), so an answer is only a fact about the namespace it was seen in. The
//! cache keeps a bounded table of namespaces, each with:
//! - its network namespace inode number and whether it is **trusted** (the host's, or a
//!   container's the runtime made — the collector says so with each answer; the latest answer's
//!   word wins, so a namespace whose container is gone stops being trusted);
//! - what it holds of each pool (names, addresses, records, name bytes);
//! - the recency order of its names (an intrusive list through the name slots: each name is in
//!   exactly one namespace, so one pair of link arrays serves every namespace);
//! - a token bucket: answers per second it may insert.
//!
//! The rules the cache applies with it (see `DnsCache`):
//! - **untrusted namespaces together hold at most `untrusted_share_percent` of each pool**, and
//!   an answer for an untrusted namespace never evicts a trusted namespace's answer;
//! - when a pool is full, the namespace holding the most of it (within the inserting
//!   namespace's class; a trusted insert takes from untrusted namespaces first) loses its least
//!   recently used name: a namespace can push another down to its own size, never below;
//! - a namespace over its rate has the message refused (counted).

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::reserved_vec::ReservedVec;
use crate::slot_index::{KeyHasher, SlotIndex};
use crate::time::{EpochNanos, NANOS_PER_SEC};

/// End of a recency list.
pub(crate) const NIL: u32 = u32::MAX;

/// Where an answer was seen: the receiving socket's network namespace, and whether the collector
/// trusts it (the host's, or a known container's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DnsOrigin {
    /// Inode number of the network namespace (`/proc/<pid>/ns/net`).
    pub netns: u32,
    /// Whether it is the host's or a known container's namespace.
    pub trusted: bool,
}

impl DnsOrigin {
    /// A trusted namespace.
    pub const fn trusted(netns: u32) -> Self {
        DnsOrigin {
            netns,
            trusted: true,
        }
    }

    /// An untrusted namespace.
    pub const fn untrusted(netns: u32) -> Self {
        DnsOrigin {
            netns,
            trusted: false,
        }
    }
}

/// One of the cache's bounded resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pool {
    Names = 0,
    Addresses = 1,
    Links = 2,
    NameBytes = 3,
}

/// What one namespace (or a class of them) holds of each pool, indexed by [`Pool`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage([u32; 4]);

impl Usage {
    pub(crate) fn get(&self, pool: Pool) -> u32 {
        self.0[pool as usize]
    }

    fn add(&mut self, pool: Pool, amount: u32) {
        let v = &mut self.0[pool as usize];
        *v = v.saturating_add(amount);
    }

    fn sub(&mut self, pool: Pool, amount: u32) {
        let v = &mut self.0[pool as usize];
        *v = v.saturating_sub(amount);
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|&v| v == 0)
    }

    fn add_all(&mut self, other: &Usage) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine = mine.saturating_add(theirs);
        }
    }

    fn sub_all(&mut self, other: &Usage) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine = mine.saturating_sub(theirs);
        }
    }
}

/// One namespace's entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Namespace {
    pub(crate) netns: u32,
    pub(crate) trusted: bool,
    pub(crate) usage: Usage,
    /// Least recently used name slot (`NIL` if none): the eviction candidate.
    oldest: u32,
    /// Most recently used name slot.
    newest: u32,
    /// Answers it may still insert now.
    tokens: u32,
    refilled_at: EpochNanos,
}

/// Why a message could not be given a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Every namespace slot holds answers.
    TableFull,
    /// The namespace used up its rate.
    RateLimited,
}

/// Answers per second a namespace may insert, and the share of each pool the untrusted ones may
/// hold together.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) trusted_per_sec: u32,
    pub(crate) untrusted_per_sec: u32,
    /// Per pool: most the untrusted namespaces may hold together.
    pub(crate) untrusted_caps: Usage,
}

impl Limits {
    pub(crate) fn new(
        trusted_per_sec: u32,
        untrusted_per_sec: u32,
        untrusted_share_percent: u8,
        pool_sizes: [usize; 4],
    ) -> Self {
        let share = u64::from(untrusted_share_percent.min(100));
        let mut caps = Usage::default();
        for (cap, size) in caps.0.iter_mut().zip(pool_sizes) {
            *cap = u32::try_from(size as u64 * share / 100).unwrap_or(u32::MAX);
        }
        Limits {
            trusted_per_sec: trusted_per_sec.max(1),
            untrusted_per_sec: untrusted_per_sec.max(1),
            untrusted_caps: caps,
        }
    }
}

/// The namespace table and the per-namespace recency lists of names.
#[derive(Debug, Clone)]
pub(crate) struct NamespaceTable {
    /// Invariant: a `Some` slot is indexed under the hash of its `netns`; a `None` slot is in
    /// `free`.
    entries: Box<[Option<Namespace>]>,
    free: ReservedVec<u16>,
    index: SlotIndex,
    hasher: KeyHasher,
    /// Recency links of name slots, towards older (`prev`) and newer (`next`) names of the same
    /// namespace.
    prev: Box<[u32]>,
    next: Box<[u32]>,
    /// What the untrusted namespaces hold together.
    untrusted: Usage,
    /// The trusted namespaces' slots in ascending inode order: the default view asks them in
    /// this order, so answers do not depend on which slot a namespace happened to get (a
    /// restored cache answers like the recorded one). Never grows past its reserved capacity.
    trusted_order: ReservedVec<u16>,
    limits: Limits,
}

impl NamespaceTable {
    pub(crate) fn new(max_namespaces: usize, max_names: usize, limits: Limits, seed: u64) -> Self {
        let max_namespaces = max_namespaces.clamp(1, usize::from(u16::MAX));
        let mut entries = Vec::with_capacity(max_namespaces);
        entries.resize_with(max_namespaces, || None);
        let mut free = ReservedVec::with_capacity(max_namespaces);
        free.extend((0..max_namespaces as u16).rev());
        NamespaceTable {
            entries: entries.into_boxed_slice(),
            free,
            index: SlotIndex::with_capacity(max_namespaces),
            hasher: KeyHasher::new(seed ^ 0x6e73_6e73),
            prev: alloc::vec![NIL; max_names].into_boxed_slice(),
            next: alloc::vec![NIL; max_names].into_boxed_slice(),
            untrusted: Usage::default(),
            trusted_order: ReservedVec::with_capacity(max_namespaces),
            limits,
        }
    }

    pub(crate) fn bytes_reserved(&self) -> usize {
        core::mem::size_of_val(&*self.entries)
            + self.free.capacity() * core::mem::size_of::<u16>()
            + self.index.bytes_reserved()
            + core::mem::size_of_val(&*self.prev)
            + core::mem::size_of_val(&*self.next)
            + self.trusted_order.capacity() * core::mem::size_of::<u16>()
    }

    pub(crate) fn get(&self, ns: u16) -> Option<&Namespace> {
        self.entries.get(usize::from(ns))?.as_ref()
    }

    fn get_mut(&mut self, ns: u16) -> Option<&mut Namespace> {
        self.entries.get_mut(usize::from(ns))?.as_mut()
    }

    /// The slot of `netns`, if it has one.
    pub(crate) fn find(&self, netns: u32) -> Option<u16> {
        let entries = &self.entries;
        self.index
            .find(self.hasher.hash_u64(u64::from(netns)), |slot| {
                entries
                    .get(slot as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|n| n.netns == netns)
            })
            .map(|slot| slot as u16)
    }

    /// Number of namespace slots (used or not).
    pub(crate) fn slots(&self) -> u16 {
        // At most u16::MAX by construction.
        self.entries.len() as u16
    }

    /// Number of trusted namespaces.
    pub(crate) fn trusted_count(&self) -> usize {
        self.trusted_order.len()
    }

    /// The slot of the `i`-th trusted namespace in ascending inode order.
    pub(crate) fn trusted_at(&self, i: usize) -> Option<u16> {
        self.trusted_order.get(i).copied()
    }

    /// Adds or removes `ns` in the trusted order.
    fn order_trusted(&mut self, ns: u16, trusted: bool) {
        if let Some(at) = self.trusted_order.iter().position(|&s| s == ns) {
            self.trusted_order.remove(at);
        }
        if !trusted {
            return;
        }
        let Some(netns) = self.get(ns).map(|n| n.netns) else {
            return;
        };
        let entries = &self.entries;
        let at = self.trusted_order.partition_point(|&s| {
            entries
                .get(usize::from(s))
                .and_then(Option::as_ref)
                .is_some_and(|n| n.netns < netns)
        });
        // Never allocates: one entry per slot at most, and the capacity covers every slot.
        if self.trusted_order.len() < self.trusted_order.capacity() {
            self.trusted_order.insert(at, ns);
        }
    }

    /// The namespace slot for an answer from `origin` seen at `now`: found or made (reusing a
    /// slot that holds nothing), its trust updated, one token taken.
    pub(crate) fn admit(&mut self, origin: DnsOrigin, now: EpochNanos) -> Result<u16, Refusal> {
        let ns = match self.find(origin.netns) {
            Some(ns) => ns,
            None => self.make(origin, now)?,
        };
        self.set_trust(ns, origin.trusted);
        let limits = self.limits;
        let Some(entry) = self.get_mut(ns) else {
            return Err(Refusal::TableFull);
        };
        let per_sec = if entry.trusted {
            limits.trusted_per_sec
        } else {
            limits.untrusted_per_sec
        };
        // Refill: `per_sec` tokens a second, at most one second's worth held.
        let elapsed = now.saturating_sub(entry.refilled_at);
        if elapsed >= NANOS_PER_SEC {
            entry.tokens = per_sec;
            entry.refilled_at = now;
        } else {
            let added = elapsed.saturating_mul(u64::from(per_sec)) / NANOS_PER_SEC;
            if added > 0 {
                entry.tokens = entry
                    .tokens
                    .saturating_add(u32::try_from(added).unwrap_or(u32::MAX))
                    .min(per_sec);
                entry.refilled_at = now;
            }
        }
        if entry.tokens == 0 {
            return Err(Refusal::RateLimited);
        }
        entry.tokens -= 1;
        Ok(ns)
    }

    fn make(&mut self, origin: DnsOrigin, now: EpochNanos) -> Result<u16, Refusal> {
        if self.free.is_empty() {
            // Reuse a namespace that holds nothing any more (its rate state goes with it).
            let idle = self
                .entries
                .iter()
                .position(|e| e.as_ref().is_some_and(|n| n.usage.is_empty()));
            match idle {
                Some(slot) => self.release(slot as u16),
                None => return Err(Refusal::TableFull),
            }
        }
        let ns = self.free.pop().ok_or(Refusal::TableFull)?;
        let hash = self.hasher.hash_u64(u64::from(origin.netns));
        if self.index.insert(hash, u32::from(ns)).is_err() {
            self.free.push(ns);
            return Err(Refusal::TableFull);
        }
        let per_sec = if origin.trusted {
            self.limits.trusted_per_sec
        } else {
            self.limits.untrusted_per_sec
        };
        if let Some(place) = self.entries.get_mut(usize::from(ns)) {
            *place = Some(Namespace {
                netns: origin.netns,
                trusted: origin.trusted,
                usage: Usage::default(),
                oldest: NIL,
                newest: NIL,
                tokens: per_sec,
                refilled_at: now,
            });
        }
        self.order_trusted(ns, origin.trusted);
        Ok(ns)
    }

    /// Frees a slot that holds nothing.
    fn release(&mut self, ns: u16) {
        let Some(entry) = self.entries.get_mut(usize::from(ns)).and_then(Option::take) else {
            return;
        };
        self.index
            .remove(self.hasher.hash_u64(u64::from(entry.netns)), u32::from(ns));
        self.free.push(ns);
        self.order_trusted(ns, false);
    }

    fn set_trust(&mut self, ns: u16, trusted: bool) {
        let Some(entry) = self.get_mut(ns) else {
            return;
        };
        if entry.trusted == trusted {
            return;
        }
        entry.trusted = trusted;
        let usage = entry.usage;
        if trusted {
            self.untrusted.sub_all(&usage);
        } else {
            self.untrusted.add_all(&usage);
        }
        self.order_trusted(ns, trusted);
    }

    /// Counts `amount` of `pool` for namespace `ns`.
    pub(crate) fn add(&mut self, ns: u16, pool: Pool, amount: u32) {
        if let Some(entry) = self.get_mut(ns) {
            entry.usage.add(pool, amount);
            if !entry.trusted {
                self.untrusted.add(pool, amount);
            }
        }
    }

    /// Uncounts `amount` of `pool` for namespace `ns`.
    pub(crate) fn sub(&mut self, ns: u16, pool: Pool, amount: u32) {
        if let Some(entry) = self.get_mut(ns) {
            entry.usage.sub(pool, amount);
            if !entry.trusted {
                self.untrusted.sub(pool, amount);
            }
        }
    }

    /// Whether the untrusted namespaces already hold their whole share of `pool`.
    pub(crate) fn untrusted_at_cap(&self, pool: Pool) -> bool {
        self.untrusted.get(pool) >= self.limits.untrusted_caps.get(pool)
    }

    /// What the untrusted namespaces hold of `pool`.
    pub(crate) fn untrusted_usage(&self, pool: Pool) -> u32 {
        self.untrusted.get(pool)
    }

    /// The namespace of the class `trusted` holding the most of `pool` (and at least one name),
    /// the smaller inode number on a tie (not the slot: a restored cache must choose alike).
    pub(crate) fn biggest(&self, pool: Pool, trusted: bool) -> Option<u16> {
        let mut best: Option<(u32, u32, u16)> = None;
        for (slot, entry) in self.entries.iter().enumerate() {
            let Some(n) = entry else { continue };
            if n.trusted != trusted || n.usage.get(Pool::Names) == 0 {
                continue;
            }
            let held = n.usage.get(pool);
            let better = best
                .is_none_or(|(most, netns, _)| held > most || (held == most && n.netns < netns));
            if better {
                best = Some((held, n.netns, slot as u16));
            }
        }
        best.map(|(_, _, slot)| slot)
    }

    // ----- recency of names ----------------------------------------------------------------

    /// Makes `name` the most recent of namespace `ns` (linking it if new).
    pub(crate) fn touch(&mut self, ns: u16, name: u32) {
        if self.newest(ns) == Some(name) {
            return;
        }
        self.unlink(ns, name);
        let Some(entry) = self.get_mut(ns) else {
            return;
        };
        let old_newest = entry.newest;
        entry.newest = name;
        if entry.oldest == NIL {
            entry.oldest = name;
        }
        if let Some(p) = self.prev.get_mut(name as usize) {
            *p = old_newest;
        }
        if let Some(n) = self.next.get_mut(name as usize) {
            *n = NIL;
        }
        if let Some(n) = self.next.get_mut(old_newest as usize) {
            *n = name;
        }
    }

    fn newest(&self, ns: u16) -> Option<u32> {
        self.get(ns).map(|n| n.newest).filter(|&s| s != NIL)
    }

    /// Takes `name` out of namespace `ns`'s list (no-op if it is not in it).
    pub(crate) fn unlink(&mut self, ns: u16, name: u32) {
        let (Some(&p), Some(&n)) = (self.prev.get(name as usize), self.next.get(name as usize))
        else {
            return;
        };
        let Some(entry) = self
            .entries
            .get_mut(usize::from(ns))
            .and_then(Option::as_mut)
        else {
            return;
        };
        let linked = p != NIL || n != NIL || entry.oldest == name;
        if !linked {
            return;
        }
        if p == NIL {
            entry.oldest = n;
        } else if let Some(next_of_prev) = self.next.get_mut(p as usize) {
            *next_of_prev = n;
        }
        if n == NIL {
            entry.newest = p;
        } else if let Some(prev_of_next) = self.prev.get_mut(n as usize) {
            *prev_of_next = p;
        }
        if let Some(slot) = self.prev.get_mut(name as usize) {
            *slot = NIL;
        }
        if let Some(slot) = self.next.get_mut(name as usize) {
            *slot = NIL;
        }
    }

    /// Namespace `ns`'s names from least to most recently used.
    pub(crate) fn oldest_first(&self, ns: u16) -> OldestFirst<'_> {
        OldestFirst {
            table: self,
            at: self.get(ns).map_or(NIL, |n| n.oldest),
        }
    }

    /// The namespace slot for restoring records of `origin`: found or made like
    /// [`admit`](Self::admit), without charging its rate.
    pub(crate) fn admit_restored(&mut self, origin: DnsOrigin, now: EpochNanos) -> Option<u16> {
        let ns = match self.find(origin.netns) {
            Some(ns) => ns,
            None => self.make(origin, now).ok()?,
        };
        self.set_trust(ns, origin.trusted);
        Some(ns)
    }

    /// Puts namespace `ns`'s names in ascending `key` order, least recently used first (a
    /// restore inserts in any order, then sorts by the recorded stamps). Allocation-free.
    pub(crate) fn sort_by_key<K: Ord>(&mut self, ns: u16, key: impl Fn(u32) -> K) {
        let Some(entry) = self.get(ns).copied() else {
            return;
        };
        let len = entry.usage.get(Pool::Names) as usize;
        if len < 2 {
            return;
        }
        let (head, tail) = crate::list_sort::sort_doubly_linked(
            &mut self.next,
            &mut self.prev,
            entry.oldest,
            len,
            key,
        );
        if let Some(entry) = self.get_mut(ns) {
            entry.oldest = head;
            entry.newest = tail;
        }
    }

    /// The network namespace and trust of slot `ns`.
    pub(crate) fn origin(&self, ns: u16) -> Option<DnsOrigin> {
        self.get(ns).map(|n| DnsOrigin {
            netns: n.netns,
            trusted: n.trusted,
        })
    }

    /// Forgets everything (keeps the memory).
    pub(crate) fn clear(&mut self) {
        for slot in 0..self.entries.len() {
            if self.entries[slot].is_some() {
                self.release(slot as u16);
            }
        }
        self.free.clear();
        self.free.extend((0..self.entries.len() as u16).rev());
        self.index.clear();
        self.prev.fill(NIL);
        self.next.fill(NIL);
        self.untrusted = Usage::default();
        self.trusted_order.clear();
    }

    /// Namespaces with a slot (for the cache's consistency checks).
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u16, &Namespace)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(slot, e)| e.as_ref().map(|n| (slot as u16, n)))
    }
}

/// Iterator of [`NamespaceTable::oldest_first`].
pub(crate) struct OldestFirst<'a> {
    table: &'a NamespaceTable,
    at: u32,
}

impl Iterator for OldestFirst<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        if self.at == NIL {
            return None;
        }
        let current = self.at;
        self.at = self
            .table
            .next
            .get(current as usize)
            .copied()
            .unwrap_or(NIL);
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> NamespaceTable {
        NamespaceTable::new(3, 8, Limits::new(100, 2, 25, [8, 8, 8, 64]), 1)
    }

    #[test]
    fn recency_lists_are_per_namespace() {
        let mut t = table();
        let a = t.admit(DnsOrigin::trusted(10), 0).unwrap();
        let b = t.admit(DnsOrigin::untrusted(20), 0).unwrap();
        for name in [0, 1, 2] {
            t.touch(a, name);
        }
        t.touch(b, 5);
        t.touch(a, 0);
        let order: Vec<u32> = t.oldest_first(a).collect();
        assert_eq!(order, [1, 2, 0]);
        assert_eq!(t.oldest_first(b).collect::<Vec<_>>(), [5]);
        t.unlink(a, 2);
        t.unlink(a, 2);
        assert_eq!(t.oldest_first(a).collect::<Vec<_>>(), [1, 0]);
        t.unlink(a, 1);
        t.unlink(a, 0);
        assert_eq!(t.oldest_first(a).count(), 0);
        t.touch(a, 3);
        assert_eq!(t.oldest_first(a).collect::<Vec<_>>(), [3]);
    }

    #[test]
    fn untrusted_rate_and_share_are_bounded() {
        let mut t = table();
        let b = t.admit(DnsOrigin::untrusted(20), 0).unwrap();
        // Two tokens a second: the first admit took one.
        assert_eq!(t.admit(DnsOrigin::untrusted(20), 0), Ok(b));
        assert_eq!(
            t.admit(DnsOrigin::untrusted(20), 1),
            Err(Refusal::RateLimited)
        );
        assert_eq!(t.admit(DnsOrigin::untrusted(20), NANOS_PER_SEC), Ok(b));
        // 25 % of 8 names: 2.
        t.add(b, Pool::Names, 1);
        assert!(!t.untrusted_at_cap(Pool::Names));
        t.add(b, Pool::Names, 1);
        assert!(t.untrusted_at_cap(Pool::Names));
        // Trusting it moves its usage out of the untrusted class.
        t.admit(DnsOrigin::trusted(20), 2 * NANOS_PER_SEC).unwrap();
        assert_eq!(t.untrusted_usage(Pool::Names), 0);
        assert_eq!(t.biggest(Pool::Names, true), Some(b));
        assert_eq!(t.biggest(Pool::Names, false), None);
    }

    #[test]
    fn a_full_table_reuses_idle_slots_only() {
        let mut t = table();
        for netns in [1, 2, 3] {
            let ns = t.admit(DnsOrigin::untrusted(netns), 0).unwrap();
            t.add(ns, Pool::Names, 1);
        }
        assert_eq!(t.admit(DnsOrigin::trusted(4), 0), Err(Refusal::TableFull));
        let two = t.find(2).unwrap();
        t.sub(two, Pool::Names, 1);
        let four = t.admit(DnsOrigin::trusted(4), 0).unwrap();
        assert_eq!(four, two);
        assert_eq!(t.find(2), None);
        assert_eq!(t.find(4), Some(four));
        t.clear();
        assert_eq!(t.iter().count(), 0);
        assert!(t.admit(DnsOrigin::trusted(9), 0).is_ok());
    }
}
