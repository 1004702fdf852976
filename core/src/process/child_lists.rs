//! Intrusive sibling lists over slot numbers: the children of every process, without an index
//! keyed by the parent.
//!
//! A hash index keyed by the parent's key files all children of one parent under one hash, so
//! with 10,000 children of pid 1 (systemd, a fork storm under one shell) every insert and
//! remove probes a 10,000-long run. Here every slot carries three links (its first child, its
//! next and previous sibling), reserved once for the whole slab: linking, unlinking and walking
//! cost O(1) per child whatever the family size, and nothing allocates.
//!
//! A list is either the children of a parent slot (its head is that slot's first child) or a
//! *detached* list whose head the caller keeps elsewhere (the process table keeps the children
//! still waiting for a missing parent this way). A slot is in at most one list at a time.
//! Slot numbers out of range are ignored, never a panic.

use alloc::boxed::Box;

use crate::process::table::NO_SLOT;

/// The three links of one slot; `NO_SLOT` where there is none.
#[derive(Debug, Clone, Copy)]
struct Links {
    /// Head of this slot's children list.
    first_child: u32,
    /// Invariant: `next` and `prev` are mutual (`links[next].prev == this`, and likewise), and
    /// `prev == NO_SLOT` exactly for the head of a list (or a slot in no list).
    next: u32,
    prev: u32,
}

const UNLINKED: Links = Links {
    first_child: NO_SLOT,
    next: NO_SLOT,
    prev: NO_SLOT,
};

/// Children and sibling links for slots `0..capacity`, all reserved at construction.
#[derive(Debug, Clone)]
pub(crate) struct ChildLists {
    links: Box<[Links]>,
}

impl ChildLists {
    /// Links for `slots` slots, all unlinked.
    pub(crate) fn with_capacity(slots: usize) -> Self {
        ChildLists {
            links: alloc::vec![UNLINKED; slots].into_boxed_slice(),
        }
    }

    /// Bytes reserved at construction (12 per slot).
    pub(crate) fn copy_from(&mut self, other: &ChildLists) -> bool {
        let ChildLists { links } = other;
        crate::reserved_vec::copy_slab(&mut self.links, links)
    }

    pub(crate) fn bytes_reserved(&self) -> usize {
        core::mem::size_of_val(&*self.links)
    }

    /// Unlinks every slot.
    pub(crate) fn clear(&mut self) {
        self.links.fill(UNLINKED);
    }

    /// `parent`'s children, most recently linked first.
    pub(crate) fn children(&self, parent: u32) -> Siblings<'_> {
        let head = self
            .links
            .get(parent as usize)
            .map_or(NO_SLOT, |l| l.first_child);
        self.iter_from(head)
    }

    /// The list that starts at `head`, in list order.
    pub(crate) fn iter_from(&self, head: u32) -> Siblings<'_> {
        Siblings {
            links: &self.links,
            next: head,
            remaining: self.links.len(),
        }
    }

    /// Links `child` (in no list) at the front of `parent`'s children.
    pub(crate) fn link_child(&mut self, parent: u32, child: u32) {
        let Some(head) = self.links.get(parent as usize).map(|l| l.first_child) else {
            return;
        };
        if self.push_front_detached(head, child)
            && let Some(p) = self.links.get_mut(parent as usize)
        {
            p.first_child = child;
        }
    }

    /// Unlinks `child` from `parent`'s children.
    pub(crate) fn unlink_child(&mut self, parent: u32, child: u32) {
        let was_head = self
            .links
            .get(parent as usize)
            .is_some_and(|p| p.first_child == child);
        let next = self.unlink_detached(child);
        if was_head && let (Some(next), Some(p)) = (next, self.links.get_mut(parent as usize)) {
            p.first_child = next;
        }
    }

    /// Takes all of `parent`'s children as one detached list, order kept; returns its head
    /// (`NO_SLOT` if there were none).
    pub(crate) fn detach_children(&mut self, parent: u32) -> u32 {
        self.links
            .get_mut(parent as usize)
            .map_or(NO_SLOT, |p| core::mem::replace(&mut p.first_child, NO_SLOT))
    }

    /// Makes the detached list starting at `head` the children of `parent`, which has none.
    pub(crate) fn attach_children(&mut self, parent: u32, head: u32) {
        if let Some(p) = self.links.get_mut(parent as usize) {
            debug_assert_eq!(p.first_child, NO_SLOT);
            p.first_child = head;
        }
    }

    /// Links `slot` (in no list) in front of the detached list headed by `head` (`NO_SLOT`: a
    /// new list); `slot` is the new head. False (nothing changed) for an out-of-range slot.
    pub(crate) fn push_front_detached(&mut self, head: u32, slot: u32) -> bool {
        let Some(s) = self.links.get_mut(slot as usize) else {
            return false;
        };
        s.next = head;
        s.prev = NO_SLOT;
        if let Some(h) = self.links.get_mut(head as usize) {
            h.prev = slot;
        }
        true
    }

    /// Unlinks `slot` from the list it is in. `Some(next)` if `slot` was the head (the caller
    /// must make `next` the head, `NO_SLOT` for an emptied list), `None` otherwise.
    pub(crate) fn unlink_detached(&mut self, slot: u32) -> Option<u32> {
        let s = self.links.get_mut(slot as usize)?;
        let (prev, next) = (s.prev, s.next);
        s.prev = NO_SLOT;
        s.next = NO_SLOT;
        if let Some(n) = self.links.get_mut(next as usize) {
            n.prev = prev;
        }
        match self.links.get_mut(prev as usize) {
            Some(p) => {
                p.next = next;
                None
            }
            None => Some(next),
        }
    }
}

impl ChildLists {
    /// Sorts `parent`'s children so that `before(a, b)` holds from head to tail (stable).
    pub(crate) fn sort_children(&mut self, parent: u32, before: impl Fn(u32, u32) -> bool) {
        let Some(head) = self.links.get(parent as usize).map(|l| l.first_child) else {
            return;
        };
        let head = self.sort_detached(head, before);
        if let Some(p) = self.links.get_mut(parent as usize) {
            p.first_child = head;
        }
    }

    /// Whether `slot` is the head of a detached list (or in no list).
    pub(crate) fn is_detached_head(&self, slot: u32) -> bool {
        self.links
            .get(slot as usize)
            .is_some_and(|l| l.prev == NO_SLOT)
    }

    /// Sorts the detached list starting at `head` the same way; returns its new head.
    pub(crate) fn sort_detached(&mut self, head: u32, before: impl Fn(u32, u32) -> bool) -> u32 {
        let max = self.links.len();
        let head = crate::list_sort::sort_list(
            &mut SiblingLinks(&mut self.links),
            head,
            NO_SLOT,
            max,
            |_, a, b| before(a, b),
        );
        let mut prev = NO_SLOT;
        let mut cursor = head;
        for _ in 0..max {
            let Some(l) = self.links.get_mut(cursor as usize) else {
                break;
            };
            l.prev = prev;
            prev = cursor;
            cursor = l.next;
        }
        head
    }
}

/// The sibling links as [`crate::list_sort::NextLinks`].
struct SiblingLinks<'a>(&'a mut [Links]);

impl crate::list_sort::NextLinks for SiblingLinks<'_> {
    fn next(&self, slot: u32) -> u32 {
        self.0.get(slot as usize).map_or(NO_SLOT, |l| l.next)
    }
    fn set_next(&mut self, slot: u32, next: u32) {
        if let Some(l) = self.0.get_mut(slot as usize) {
            l.next = next;
        }
    }
}

/// Slots of one list, head first.
#[derive(Debug, Clone)]
pub(crate) struct Siblings<'a> {
    links: &'a [Links],
    next: u32,
    /// A list never holds more slots than exist; the bound keeps a walk finite whatever the
    /// links say.
    remaining: usize,
}

impl Siblings<'_> {
    /// An empty walk.
    pub(crate) fn empty() -> Self {
        Siblings {
            links: &[],
            next: NO_SLOT,
            remaining: 0,
        }
    }
}

impl Iterator for Siblings<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        if self.remaining == 0 {
            return None;
        }
        let slot = self.next;
        let links = self.links.get(slot as usize)?;
        self.remaining -= 1;
        self.next = links.next;
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn kids(lists: &ChildLists, parent: u32) -> Vec<u32> {
        lists.children(parent).collect()
    }

    #[test]
    fn link_unlink_keeps_order_and_neighbours() {
        let mut l = ChildLists::with_capacity(8);
        for c in 1..=5 {
            l.link_child(0, c);
        }
        assert_eq!(kids(&l, 0), [5, 4, 3, 2, 1]);
        l.unlink_child(0, 3); // middle
        assert_eq!(kids(&l, 0), [5, 4, 2, 1]);
        l.unlink_child(0, 5); // head
        assert_eq!(kids(&l, 0), [4, 2, 1]);
        l.unlink_child(0, 1); // tail
        assert_eq!(kids(&l, 0), [4, 2]);
        l.link_child(0, 3);
        assert_eq!(kids(&l, 0), [3, 4, 2]);
        for c in [4, 3, 2] {
            l.unlink_child(0, c);
        }
        assert!(kids(&l, 0).is_empty());
    }

    #[test]
    fn detached_lists_move_whole() {
        let mut l = ChildLists::with_capacity(8);
        l.link_child(0, 1);
        l.link_child(0, 2);
        let head = l.detach_children(0);
        assert!(kids(&l, 0).is_empty());
        assert!(l.push_front_detached(head, 3));
        assert_eq!(l.iter_from(3).collect::<Vec<_>>(), [3, 2, 1]);
        assert_eq!(l.unlink_detached(3), Some(2)); // was the head
        assert_eq!(l.unlink_detached(1), None);
        l.attach_children(7, 2);
        assert_eq!(kids(&l, 7), [2]);
    }

    #[test]
    fn out_of_range_slots_are_ignored() {
        let mut l = ChildLists::with_capacity(2);
        l.link_child(5, 1);
        l.link_child(0, 9);
        assert!(!l.push_front_detached(NO_SLOT, 9));
        assert_eq!(l.unlink_detached(9), None);
        l.unlink_child(9, 1);
        assert_eq!(l.detach_children(9), NO_SLOT);
        assert!(kids(&l, 0).is_empty());
        assert_eq!(l.iter_from(NO_SLOT).count(), 0);
        assert_eq!(Siblings::empty().count(), 0);
    }
}
