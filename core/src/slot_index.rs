//! A fixed-capacity hash index from a key's hash to the slot that holds the key.
//!
//! Stores keep their records in slabs (arrays of slots numbered `0..capacity`); this index finds
//! the slot for a key without owning the key. It is a multimap: several slots may share a hash
//! (32-bit entity IDs collide; different keys may hash alike), so lookups hand each candidate slot
//! to the caller, who compares the real key.
//!
//! Why not `hashbrown`: after deletions it may rehash into a new allocation; this index reserves its
//! table once and never allocates again. Open addressing with linear probing and backward-shift
//! deletion, so there are no tombstones to clean up and probe chains stay short. The table is
//! sized so that it is never more than 75 % full (probing degrades sharply above that).

// Without `alloc` only the public plain types are usable; the slab internals are unused.
#![cfg_attr(not(feature = "alloc"), allow(dead_code))]

#[cfg(feature = "alloc")]
use alloc::boxed::Box;

/// Marks an empty table position.
const EMPTY: u32 = u32::MAX;

/// Error: the index already holds as many entries as it was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct IndexFull;

impl core::fmt::Display for IndexFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("slot index is full")
    }
}

impl core::error::Error for IndexFull {}

/// One table position: a 32-bit fragment of the key's hash and the slot it points to.
#[derive(Debug, Clone, Copy)]
struct Entry {
    fragment: u32,
    /// `EMPTY` when the position is free.
    slot: u32,
}

const FREE: Entry = Entry {
    fragment: 0,
    slot: EMPTY,
};

/// Folds a 64-bit hash into the 32-bit fragment the table stores. The home position is derived
/// from the fragment alone, so deletion can recompute any entry's home.
fn fragment_of(hash: u64) -> u32 {
    (hash ^ (hash >> 32)) as u32
}

/// Open-addressing multimap: hash → slot numbers. Capacity fixed at construction.
#[cfg(feature = "alloc")]
#[derive(Debug, Clone)]
pub struct SlotIndex {
    /// Power-of-two sized table; invariant: at most `max_entries` positions are occupied, and
    /// `max_entries <= 3/4 * table.len()`.
    table: Box<[Entry]>,
    /// `table.len() - 1`.
    mask: usize,
    /// Shift that maps a mixed fragment to a table position (top bits).
    shift: u32,
    len: usize,
    max_entries: usize,
}

#[cfg(feature = "alloc")]
impl SlotIndex {
    /// An index for up to `max_entries` entries (at least 1), table reserved now.
    pub fn with_capacity(max_entries: usize) -> Self {
        let max_entries = max_entries.clamp(1, (u32::MAX / 2) as usize);
        // 4/3 of the entries, rounded up to a power of two: load never above 75 %.
        let wanted = max_entries.saturating_add(max_entries.div_ceil(3)).max(2);
        let size = wanted.next_power_of_two();
        let bits = size.trailing_zeros();
        SlotIndex {
            table: alloc::vec![FREE; size].into_boxed_slice(),
            mask: size - 1,
            shift: 64 - bits,
            len: 0,
            max_entries,
        }
    }

    /// Most entries this index holds.
    pub fn capacity(&self) -> usize {
        self.max_entries
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes this index equal to `other` (same capacity) without allocating; `false` if the
    /// capacities differ.
    pub(crate) fn copy_from(&mut self, other: &SlotIndex) -> bool {
        let SlotIndex {
            table,
            mask,
            shift,
            len,
            max_entries,
        } = other;
        if !crate::reserved_vec::copy_slab(&mut self.table, table) {
            return false;
        }
        (self.mask, self.shift, self.len, self.max_entries) = (*mask, *shift, *len, *max_entries);
        true
    }

    /// Bytes reserved by the table.
    pub fn bytes_reserved(&self) -> usize {
        core::mem::size_of_val(&*self.table)
    }

    fn home(&self, fragment: u32) -> usize {
        // Fibonacci hashing of the fragment: spreads fragments that differ only in low bits.
        let mixed = u64::from(fragment).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> self.shift) as usize & self.mask
    }

    /// Adds `hash → slot`. Duplicates are allowed (it is a multimap); `IndexFull` when
    /// [`capacity`](Self::capacity) entries are held.
    pub fn insert(&mut self, hash: u64, slot: u32) -> Result<(), IndexFull> {
        if self.len >= self.max_entries || slot == EMPTY {
            return Err(IndexFull);
        }
        let fragment = fragment_of(hash);
        let mut pos = self.home(fragment);
        // Terminates: the table always has free positions (load <= 75 %).
        loop {
            let entry = &mut self.table[pos];
            if entry.slot == EMPTY {
                *entry = Entry { fragment, slot };
                self.len += 1;
                return Ok(());
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// Removes the entry `hash → slot`; `false` if there is none.
    pub fn remove(&mut self, hash: u64, slot: u32) -> bool {
        let fragment = fragment_of(hash);
        let mut pos = self.home(fragment);
        loop {
            let entry = self.table[pos];
            if entry.slot == EMPTY {
                return false;
            }
            if entry.fragment == fragment && entry.slot == slot {
                break;
            }
            pos = (pos + 1) & self.mask;
        }
        self.len -= 1;
        // Backward-shift deletion: pull later members of the probe run into the hole when their
        // home position allows it, so lookups never need tombstones.
        let mut hole = pos;
        let mut next = pos;
        loop {
            next = (next + 1) & self.mask;
            let entry = self.table[next];
            if entry.slot == EMPTY {
                break;
            }
            let home = self.home(entry.fragment);
            // `entry` may move into the hole only if its home is not cyclically in (hole, next].
            let home_after_hole = if hole <= next {
                hole < home && home <= next
            } else {
                hole < home || home <= next
            };
            if !home_after_hole {
                self.table[hole] = entry;
                hole = next;
            }
        }
        self.table[hole] = FREE;
        true
    }

    /// The first slot with this hash for which `is_match` says yes.
    pub fn find(&self, hash: u64, mut is_match: impl FnMut(u32) -> bool) -> Option<u32> {
        self.slots_with_hash(hash).find(|&slot| is_match(slot))
    }

    /// Every slot whose stored hash fragment equals `hash`'s. May include slots of other keys
    /// whose hashes share the fragment: callers compare their real keys.
    pub fn slots_with_hash(&self, hash: u64) -> SlotsWithHash<'_> {
        let fragment = fragment_of(hash);
        SlotsWithHash {
            index: self,
            fragment,
            pos: self.home(fragment),
            done: false,
        }
    }

    /// Removes every entry, keeping the reserved table.
    pub fn clear(&mut self) {
        self.table.fill(FREE);
        self.len = 0;
    }
}

/// Iterator over the candidate slots of one hash; see [`SlotIndex::slots_with_hash`].
#[cfg(feature = "alloc")]
#[derive(Debug)]
pub struct SlotsWithHash<'a> {
    index: &'a SlotIndex,
    fragment: u32,
    pos: usize,
    done: bool,
}

#[cfg(feature = "alloc")]
impl Iterator for SlotsWithHash<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        while !self.done {
            let entry = self.index.table[self.pos];
            if entry.slot == EMPTY {
                self.done = true;
                return None;
            }
            self.pos = (self.pos + 1) & self.index.mask;
            if entry.fragment == self.fragment {
                return Some(entry.slot);
            }
        }
        None
    }
}

/// Seeded hashing of keys for [`SlotIndex`]. A per-process random seed keeps keys that arrive
/// from outside (DNS names, paths) from being chosen to collide.
#[derive(Debug, Clone, Copy)]
pub struct KeyHasher {
    seed: u64,
}

impl KeyHasher {
    /// A hasher with `seed`.
    pub fn new(seed: u64) -> Self {
        KeyHasher { seed }
    }

    /// Hash of an integer key.
    pub fn hash_u64(&self, value: u64) -> u64 {
        use core::hash::BuildHasher;
        self.state().hash_one(value)
    }

    /// Hash of a byte string.
    pub fn hash_bytes(&self, bytes: &[u8]) -> u64 {
        self.hash_words(bytes, false)
    }

    /// Hash of a byte string with ASCII letters lowercased: equal to
    /// `hash_bytes(&bytes.to_ascii_lowercase())`, without allocating.
    pub fn hash_ascii_lowercase(&self, bytes: &[u8]) -> u64 {
        self.hash_words(bytes, true)
    }

    fn state(&self) -> foldhash::fast::FixedState {
        foldhash::fast::FixedState::with_seed(self.seed)
    }

    fn hash_words(&self, bytes: &[u8], lowercase: bool) -> u64 {
        use core::hash::{BuildHasher, Hasher};
        let mut hasher = self.state().build_hasher();
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (dst, &src) in word.iter_mut().zip(chunk) {
                *dst = if lowercase {
                    src.to_ascii_lowercase()
                } else {
                    src
                };
            }
            hasher.write_u64(u64::from_le_bytes(word));
        }
        hasher.write_usize(bytes.len());
        hasher.finish()
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn never_more_than_three_quarters_full() {
        for cap in [1usize, 2, 3, 4, 5, 7, 100, 1000, 4096] {
            let index = SlotIndex::with_capacity(cap);
            assert!(index.capacity() * 4 <= index.table.len() * 3, "cap {cap}");
        }
    }

    #[test]
    fn rejects_past_capacity() {
        let mut index = SlotIndex::with_capacity(3);
        for slot in 0..3 {
            index.insert(7, slot).unwrap();
        }
        assert_eq!(index.insert(8, 9), Err(IndexFull));
        assert!(index.remove(7, 1));
        index.insert(8, 9).unwrap();
    }

    #[test]
    fn multimap_yields_every_slot_of_a_hash() {
        let mut index = SlotIndex::with_capacity(10);
        index.insert(42, 1).unwrap();
        index.insert(42, 2).unwrap();
        index.insert(43, 3).unwrap();
        let mut slots: Vec<u32> = index.slots_with_hash(42).collect();
        slots.sort();
        assert_eq!(slots, [1, 2]);
        assert_eq!(index.find(42, |s| s == 2), Some(2));
        assert_eq!(index.find(42, |s| s == 3), None);
    }

    #[test]
    fn lowercase_hash_equals_hash_of_lowercased() {
        let h = KeyHasher::new(99);
        let name = b"WWW.Example.COM.and-a-long-tail";
        assert_eq!(
            h.hash_ascii_lowercase(name),
            h.hash_bytes(&name.to_ascii_lowercase())
        );
        assert_ne!(h.hash_bytes(b"ab"), h.hash_bytes(b"ab\0"));
    }

    proptest! {
        /// Against a list model, under random inserts and removes with a tiny hash space (so
        /// probe runs are long and wrap around the table): every lookup agrees with the model.
        #[test]
        fn agrees_with_a_model(ops in proptest::collection::vec((any::<bool>(), 0u64..6, 0u32..40), 1..400)) {
            let mut index = SlotIndex::with_capacity(24);
            let mut model: Vec<(u64, u32)> = Vec::new();
            for (is_insert, key, slot) in ops {
                // Spread the small keys over the whole table so wrap-around happens.
                let hash = key.wrapping_mul(0x0123_4567_89AB_CDEF);
                if is_insert {
                    let res = index.insert(hash, slot);
                    if model.len() < 24 {
                        prop_assert!(res.is_ok());
                        model.push((hash, slot));
                    } else {
                        prop_assert_eq!(res, Err(IndexFull));
                    }
                } else {
                    let expected = model.iter().position(|&e| e == (hash, slot));
                    prop_assert_eq!(index.remove(hash, slot), expected.is_some());
                    if let Some(pos) = expected {
                        model.swap_remove(pos);
                    }
                }
                prop_assert_eq!(index.len(), model.len());
                for key in 0u64..6 {
                    let hash = key.wrapping_mul(0x0123_4567_89AB_CDEF);
                    let mut got: Vec<u32> = index.slots_with_hash(hash).collect();
                    let mut want: Vec<u32> = model.iter().filter(|e| e.0 == hash).map(|e| e.1).collect();
                    got.sort();
                    want.sort();
                    prop_assert_eq!(got, want);
                }
            }
        }
    }
}
