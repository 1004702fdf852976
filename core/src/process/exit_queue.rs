//! The order in which exited processes leave the table: an indexed binary min-heap over slot
//! numbers.
//!
//! The sort key lives in the records (it changes when a process gains or loses its last live
//! descendant), so the heap stores only slot numbers and asks the caller for a slot's key; a
//! position array lets it find, re-sort or remove any slot in O(log n). Reserved once, never
//! allocates.

use alloc::boxed::Box;

/// Position of a slot that is not in the heap.
const ABSENT: u32 = u32::MAX;

/// Min-heap of slots `0..capacity`, ordered by a caller-supplied key.
#[derive(Debug, Clone)]
pub(crate) struct ExitQueue {
    /// `heap[..len]` is a binary min-heap of slots.
    heap: Box<[u32]>,
    len: usize,
    /// Invariant: `pos[s] == i` iff `heap[i] == s` for `i < len`; `ABSENT` for slots not held.
    pos: Box<[u32]>,
}

impl ExitQueue {
    /// A queue for slots `0..slots`.
    pub(crate) fn with_capacity(slots: usize) -> Self {
        ExitQueue {
            heap: alloc::vec![0u32; slots].into_boxed_slice(),
            len: 0,
            pos: alloc::vec![ABSENT; slots].into_boxed_slice(),
        }
    }

    pub(crate) fn copy_from(&mut self, other: &ExitQueue) -> bool {
        let ExitQueue { heap, len, pos } = other;
        if self.heap.len() != heap.len() || self.pos.len() != pos.len() {
            return false;
        }
        crate::reserved_vec::copy_slab(&mut self.heap, heap);
        crate::reserved_vec::copy_slab(&mut self.pos, pos);
        self.len = *len;
        true
    }

    pub(crate) fn bytes_reserved(&self) -> usize {
        core::mem::size_of_val(&*self.heap) + core::mem::size_of_val(&*self.pos)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn contains(&self, slot: u32) -> bool {
        self.pos.get(slot as usize).is_some_and(|&p| p != ABSENT)
    }

    /// The slot with the smallest key.
    pub(crate) fn peek(&self) -> Option<u32> {
        self.heap.get(..self.len)?.first().copied()
    }

    /// Adds `slot` (or re-sorts it if already held).
    pub(crate) fn push<K: Ord>(&mut self, slot: u32, key: impl Fn(u32) -> K) {
        if self.contains(slot) {
            self.update(slot, key);
            return;
        }
        let at = self.len;
        let (Some(cell), Some(pos)) = (self.heap.get_mut(at), self.pos.get_mut(slot as usize))
        else {
            return;
        };
        *cell = slot;
        *pos = at as u32;
        self.len += 1;
        self.sift_up(at, &key);
    }

    /// Removes `slot`; nothing happens if it is not held.
    pub(crate) fn remove<K: Ord>(&mut self, slot: u32, key: impl Fn(u32) -> K) {
        let Some(&at) = self.pos.get(slot as usize) else {
            return;
        };
        if at == ABSENT {
            return;
        }
        let at = at as usize;
        let last = self.len - 1;
        self.swap(at, last);
        self.len = last;
        self.pos[slot as usize] = ABSENT;
        if at < self.len {
            self.sift_up(at, &key);
            self.sift_down(at, &key);
        }
    }

    /// Restores heap order after `slot`'s key changed; nothing happens if it is not held.
    pub(crate) fn update<K: Ord>(&mut self, slot: u32, key: impl Fn(u32) -> K) {
        let Some(&at) = self.pos.get(slot as usize) else {
            return;
        };
        if at == ABSENT {
            return;
        }
        self.sift_up(at as usize, &key);
        let at = self.pos[slot as usize] as usize;
        self.sift_down(at, &key);
    }

    /// Empties the queue.
    pub(crate) fn clear(&mut self) {
        self.pos.fill(ABSENT);
        self.len = 0;
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a] as usize] = a as u32;
        self.pos[self.heap[b] as usize] = b as u32;
    }

    fn sift_up<K: Ord>(&mut self, mut at: usize, key: &impl Fn(u32) -> K) {
        while at > 0 {
            let parent = (at - 1) / 2;
            if key(self.heap[at]) < key(self.heap[parent]) {
                self.swap(at, parent);
                at = parent;
            } else {
                break;
            }
        }
    }

    fn sift_down<K: Ord>(&mut self, mut at: usize, key: &impl Fn(u32) -> K) {
        loop {
            let left = 2 * at + 1;
            if left >= self.len {
                break;
            }
            let right = left + 1;
            let smaller = if right < self.len && key(self.heap[right]) < key(self.heap[left]) {
                right
            } else {
                left
            };
            if key(self.heap[smaller]) < key(self.heap[at]) {
                self.swap(at, smaller);
                at = smaller;
            } else {
                break;
            }
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    proptest! {
        /// Against a sorted-list model under pushes, removes and key changes: the minimum agrees.
        #[test]
        fn agrees_with_a_model(ops in proptest::collection::vec((0u8..3, 0u32..12, 0u64..50), 0..300)) {
            let mut keys = [0u64; 12];
            let mut queue = ExitQueue::with_capacity(12);
            let mut model: Vec<u32> = Vec::new();
            for (op, slot, new_key) in ops {
                match op {
                    0 => {
                        keys[slot as usize] = new_key;
                        queue.push(slot, |s| (keys[s as usize], s));
                        if !model.contains(&slot) { model.push(slot); }
                    }
                    1 => {
                        queue.remove(slot, |s| (keys[s as usize], s));
                        model.retain(|&s| s != slot);
                    }
                    _ => {
                        keys[slot as usize] = new_key;
                        queue.update(slot, |s| (keys[s as usize], s));
                    }
                }
                let want = model.iter().copied().min_by_key(|&s| (keys[s as usize], s));
                prop_assert_eq!(queue.peek(), want);
                prop_assert_eq!(queue.len(), model.len());
                for s in 0..12 {
                    prop_assert_eq!(queue.contains(s), model.contains(&s));
                }
            }
        }
    }
}
