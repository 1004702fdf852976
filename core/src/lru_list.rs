//! A recency order over slot numbers, for least-recently-used eviction without allocation.
//!
//! Stores number their records `0..capacity`; this list threads those numbers into a doubly-linked
//! list kept in two preallocated arrays, so touching and evicting are O(1) and never allocate.

// Without `alloc` only the public plain types are usable; the slab internals are unused.
#![cfg_attr(not(feature = "alloc"), allow(dead_code))]

#[cfg(feature = "alloc")]
use alloc::boxed::Box;

/// End of the list.
const NIL: u32 = u32::MAX;
/// `prev` value of a slot that is not in the list.
const DETACHED: u32 = u32::MAX - 1;

/// Doubly-linked recency list over slots `0..capacity`.
#[cfg(feature = "alloc")]
#[derive(Debug, Clone)]
pub struct LruList {
    /// Towards the least-recent end; `DETACHED` when the slot is not linked.
    prev: Box<[u32]>,
    /// Towards the most-recent end.
    next: Box<[u32]>,
    /// Most recently touched.
    newest: u32,
    /// Least recently touched: the next eviction candidate.
    oldest: u32,
    len: usize,
}

#[cfg(feature = "alloc")]
impl LruList {
    /// A list for slots `0..slots` (at most `u32::MAX - 2`), all detached.
    pub fn with_capacity(slots: usize) -> Self {
        let slots = slots.min((u32::MAX - 2) as usize);
        LruList {
            prev: alloc::vec![DETACHED; slots].into_boxed_slice(),
            next: alloc::vec![NIL; slots].into_boxed_slice(),
            newest: NIL,
            oldest: NIL,
            len: 0,
        }
    }

    /// Makes this list equal to `other` (same capacity) without allocating; `false` if the
    /// capacities differ.
    pub(crate) fn copy_from(&mut self, other: &LruList) -> bool {
        let LruList {
            prev,
            next,
            newest,
            oldest,
            len,
        } = other;
        if self.prev.len() != prev.len() || self.next.len() != next.len() {
            return false;
        }
        crate::reserved_vec::copy_slab(&mut self.prev, prev);
        crate::reserved_vec::copy_slab(&mut self.next, next);
        (self.newest, self.oldest, self.len) = (*newest, *oldest, *len);
        true
    }

    /// Bytes reserved by the two link arrays.
    pub fn bytes_reserved(&self) -> usize {
        core::mem::size_of_val(&*self.prev) + core::mem::size_of_val(&*self.next)
    }

    /// Slots currently linked.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no slot is linked.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `slot` is linked.
    pub fn contains(&self, slot: u32) -> bool {
        self.prev.get(slot as usize).is_some_and(|&p| p != DETACHED)
    }

    /// Links `slot` as the most recent, moving it if it was already linked. Out-of-range slots
    /// are ignored.
    pub fn touch(&mut self, slot: u32) {
        if slot as usize >= self.prev.len() {
            return;
        }
        if self.newest == slot {
            return;
        }
        self.remove(slot);
        let s = slot as usize;
        self.prev[s] = self.newest;
        self.next[s] = NIL;
        if self.newest != NIL {
            self.next[self.newest as usize] = slot;
        } else {
            self.oldest = slot;
        }
        self.newest = slot;
        self.len += 1;
    }

    /// Unlinks `slot`; nothing happens if it is not linked or out of range.
    pub fn remove(&mut self, slot: u32) {
        if !self.contains(slot) {
            return;
        }
        let s = slot as usize;
        let (prev, next) = (self.prev[s], self.next[s]);
        if prev != NIL {
            self.next[prev as usize] = next;
        } else {
            self.oldest = next;
        }
        if next != NIL {
            self.prev[next as usize] = prev;
        } else {
            self.newest = prev;
        }
        self.prev[s] = DETACHED;
        self.next[s] = NIL;
        self.len -= 1;
    }

    /// The least recently touched slot.
    pub fn least_recent(&self) -> Option<u32> {
        (self.oldest != NIL).then_some(self.oldest)
    }

    /// Unlinks and returns the least recently touched slot.
    pub fn pop_least_recent(&mut self) -> Option<u32> {
        let slot = self.least_recent()?;
        self.remove(slot);
        Some(slot)
    }

    /// Linked slots from least to most recent.
    pub fn iter_least_recent_first(&self) -> impl Iterator<Item = u32> + '_ {
        let mut cursor = self.oldest;
        core::iter::from_fn(move || {
            if cursor == NIL {
                return None;
            }
            let slot = cursor;
            cursor = self.next.get(slot as usize).copied().unwrap_or(NIL);
            Some(slot)
        })
    }

    /// Reorders the linked slots so that the least recent is the one with the smallest `key`
    /// (stable: equal keys keep their order). For restoring a recorded recency order after
    /// inserting in another order; O(n log n), allocation-free.
    pub fn sort_by_key<K: Ord>(&mut self, key: impl Fn(u32) -> K) {
        if self.len < 2 {
            return;
        }
        let (head, tail) = crate::list_sort::sort_doubly_linked(
            &mut self.next,
            &mut self.prev,
            self.oldest,
            self.len,
            key,
        );
        self.oldest = head;
        self.newest = tail;
    }

    /// Unlinks every slot.
    pub fn clear(&mut self) {
        self.prev.fill(DETACHED);
        self.next.fill(NIL);
        self.newest = NIL;
        self.oldest = NIL;
        self.len = 0;
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use std::vec::Vec;

    #[test]
    fn evicts_least_recent_first() {
        let mut lru = LruList::with_capacity(4);
        for s in [0, 1, 2, 3] {
            lru.touch(s);
        }
        lru.touch(0);
        assert_eq!(
            lru.iter_least_recent_first().collect::<Vec<_>>(),
            [1, 2, 3, 0]
        );
        assert_eq!(lru.pop_least_recent(), Some(1));
        lru.remove(3);
        assert_eq!(lru.iter_least_recent_first().collect::<Vec<_>>(), [2, 0]);
        assert_eq!(lru.len(), 2);
        lru.touch(99); // out of range: ignored
        lru.remove(99);
        assert_eq!(lru.len(), 2);
    }

    #[test]
    fn sorts_by_key() {
        let mut lru = LruList::with_capacity(6);
        for s in [4, 0, 5, 2] {
            lru.touch(s);
        }
        let keys = [30u32, 0, 10, 0, 20, 5];
        lru.sort_by_key(|s| keys[s as usize]);
        assert_eq!(
            lru.iter_least_recent_first().collect::<Vec<_>>(),
            [5, 2, 4, 0]
        );
        assert_eq!(lru.pop_least_recent(), Some(5));
        lru.touch(2);
        assert_eq!(lru.iter_least_recent_first().collect::<Vec<_>>(), [4, 0, 2]);
        lru.remove(0);
        assert_eq!(lru.iter_least_recent_first().collect::<Vec<_>>(), [4, 2]);
    }

    proptest! {
        #[test]
        fn agrees_with_a_deque_model(ops in proptest::collection::vec((0u8..3, 0u32..10), 0..300)) {
            let mut lru = LruList::with_capacity(8);
            let mut model: VecDeque<u32> = VecDeque::new(); // front = least recent
            for (op, slot) in ops {
                match op {
                    0 => {
                        lru.touch(slot);
                        if slot < 8 {
                            model.retain(|&s| s != slot);
                            model.push_back(slot);
                        }
                    }
                    1 => {
                        lru.remove(slot);
                        model.retain(|&s| s != slot);
                    }
                    _ => prop_assert_eq!(lru.pop_least_recent(), model.pop_front()),
                }
                prop_assert_eq!(lru.iter_least_recent_first().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
                prop_assert_eq!(lru.len(), model.len());
            }
        }
    }
}
