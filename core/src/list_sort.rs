//! Sorting an intrusive list of slot numbers in place, without allocating.
//!
//! Stores keep recency lists and child lists as links between slot numbers. A restored store
//! inserts its records in whatever order the snapshot file gives them, then puts each list back
//! in its recorded order (by the stamps the records carry) with this sort: a stable, bottom-up
//! merge sort over the `next` links only (O(n log n), a fixed array of 64 partial lists on the
//! stack, no recursion); [`sort_doubly_linked`] then repairs the `prev` links.

/// Where a list keeps its forward links.
pub(crate) trait NextLinks {
    /// The slot after `slot` (`end` at the tail).
    fn next(&self, slot: u32) -> u32;
    /// Sets the slot after `slot`.
    fn set_next(&mut self, slot: u32, next: u32);
}

/// Sorts the list that starts at `head` and ends at the sentinel `end`, stably, so that
/// `before(links, a, b)` is false for every consecutive pair `(b, a)` (i.e. ascending by
/// `before`; the links are passed so that keys can live beside them). Walks at most `max_len`
/// slots (a corrupt, cyclic list is cut there). Returns the new head.
pub(crate) fn sort_list<L: NextLinks + ?Sized>(
    links: &mut L,
    head: u32,
    end: u32,
    max_len: usize,
    before: impl Fn(&L, u32, u32) -> bool,
) -> u32 {
    // parts[i]: a sorted list of 2^i slots (or `end`); lower i holds later slots.
    let mut parts = [end; 64];
    let mut cursor = head;
    for _ in 0..max_len {
        if cursor == end {
            break;
        }
        let node = cursor;
        cursor = links.next(node);
        links.set_next(node, end);
        let mut carry = node;
        for part in parts.iter_mut() {
            if *part == end {
                *part = carry;
                carry = end;
                break;
            }
            carry = merge(links, *part, carry, end, &before);
            *part = end;
        }
        if carry != end {
            // 2^64 slots: cannot happen with u32 slot numbers.
            parts[63] = carry;
        }
    }
    let mut sorted = end;
    for &part in parts.iter() {
        if part != end {
            sorted = merge(links, part, sorted, end, &before);
        }
    }
    sorted
}

/// Forward links kept in a slice indexed by slot, ending at `u32::MAX`.
struct SliceLinks<'a>(&'a mut [u32]);

impl NextLinks for SliceLinks<'_> {
    fn next(&self, slot: u32) -> u32 {
        self.0.get(slot as usize).copied().unwrap_or(u32::MAX)
    }
    fn set_next(&mut self, slot: u32, next: u32) {
        if let Some(n) = self.0.get_mut(slot as usize) {
            *n = next;
        }
    }
}

/// Sorts a doubly linked list kept in `next`/`prev` slices (sentinel `u32::MAX`) that starts at
/// `head` and holds `len` slots, ascending by `key`, stably; repairs the `prev` links and returns
/// the new `(head, tail)`.
pub(crate) fn sort_doubly_linked<K: Ord>(
    next: &mut [u32],
    prev: &mut [u32],
    head: u32,
    len: usize,
    key: impl Fn(u32) -> K,
) -> (u32, u32) {
    const END: u32 = u32::MAX;
    let head = sort_list(&mut SliceLinks(next), head, END, len, |_, a, b| {
        key(a) < key(b)
    });
    let mut before = END;
    let mut cursor = head;
    for _ in 0..len {
        if cursor == END {
            break;
        }
        if let Some(p) = prev.get_mut(cursor as usize) {
            *p = before;
        }
        before = cursor;
        cursor = next.get(cursor as usize).copied().unwrap_or(END);
    }
    (head, before)
}

/// Merges two sorted lists; `first` holds the earlier slots, so ties keep it first (stable).
fn merge<L: NextLinks + ?Sized>(
    links: &mut L,
    first: u32,
    second: u32,
    end: u32,
    before: &impl Fn(&L, u32, u32) -> bool,
) -> u32 {
    let (mut a, mut b) = (first, second);
    let take_b = |links: &L, a: u32, b: u32| before(links, b, a);
    let head = if a == end || (b != end && take_b(links, a, b)) {
        let h = b;
        b = links.next(b);
        h
    } else {
        let h = a;
        a = links.next(a);
        h
    };
    if head == end {
        return end;
    }
    let mut tail = head;
    while a != end && b != end {
        let pick = if take_b(links, a, b) {
            let p = b;
            b = links.next(b);
            p
        } else {
            let p = a;
            a = links.next(a);
            p
        };
        links.set_next(tail, pick);
        tail = pick;
    }
    links.set_next(tail, if a != end { a } else { b });
    head
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    const END: u32 = u32::MAX;

    struct Arr(Vec<u32>);
    impl NextLinks for Arr {
        fn next(&self, slot: u32) -> u32 {
            self.0[slot as usize]
        }
        fn set_next(&mut self, slot: u32, next: u32) {
            self.0[slot as usize] = next;
        }
    }

    proptest! {
        /// Sorting a list of slots in a random order by random keys equals a stable sort.
        #[test]
        fn equals_a_stable_sort(keys in proptest::collection::vec(0u8..6, 0..200), seed in any::<u64>()) {
            let n = keys.len();
            let mut order: Vec<u32> = (0..n as u32).collect();
            let mut s = seed | 1;
            for i in (1..n).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                order.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let mut links = Arr(std::vec![END; n]);
            for w in order.windows(2) {
                links.0[w[0] as usize] = w[1];
            }
            let head = order.first().copied().unwrap_or(END);
            let head = sort_list(&mut links, head, END, n, |_, a, b| keys[a as usize] < keys[b as usize]);
            let mut got = Vec::new();
            let mut c = head;
            while c != END { got.push(c); c = links.0[c as usize]; }
            let mut want = order.clone();
            want.sort_by_key(|&s| keys[s as usize]);
            prop_assert_eq!(got, want);
        }
    }
}
