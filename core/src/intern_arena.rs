//! A bounded arena of interned, reference-counted strings.
//!
//! Many records share few strings (thousands of processes run a handful of binaries; DNS names
//! repeat), so each distinct string is stored once and records hold a 4-byte [`StrHandle`]. Both
//! the number of strings and their total bytes are fixed at construction. Freed strings leave holes;
//! when a new string does not fit at the end but the holes would make room, the arena compacts
//! (moves the live bytes down) in place, using a scratch array reserved up front. Handles stay
//! valid across compaction because they name an entry, not a byte offset.

// Without `alloc` only the public plain types are usable; the slab internals are unused.
#![cfg_attr(not(feature = "alloc"), allow(dead_code))]

#[cfg(feature = "alloc")]
use alloc::boxed::Box;

#[cfg(feature = "alloc")]
use crate::slot_index::{KeyHasher, SlotIndex};

/// A reference to one interned string. Valid while its reference count is above zero; a stale
/// handle reads as `None` (or, if its entry was reused, as the newer string: hold a reference for
/// as long as you keep the handle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StrHandle(u32);

impl StrHandle {
    /// The entry number behind the handle.
    pub const fn index(self) -> u32 {
        self.0
    }
}

/// Error: no room for another string (too many strings, or too many bytes even after compacting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ArenaFull;

impl core::fmt::Display for ArenaFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("string arena is full")
    }
}

impl core::error::Error for ArenaFull {}

/// Where one string lives. `refs == 0` means the entry is free and `offset` links the free list.
#[derive(Debug, Clone, Copy)]
struct ArenaEntry {
    offset: u32,
    len: u32,
    refs: u32,
}

/// End of the free list.
const NO_FREE: u32 = u32::MAX;

/// Bounded, interning, reference-counted string storage.
#[cfg(feature = "alloc")]
#[derive(Debug, Clone)]
pub struct InternArena {
    /// String bytes; invariant: live strings lie in `bytes[..end]` and never overlap.
    bytes: Box<[u8]>,
    /// First byte past the last string ever placed since the last compaction.
    end: usize,
    /// Bytes held by live strings (`<= end`).
    live_bytes: usize,
    entries: Box<[ArenaEntry]>,
    /// Head of the list of free entries, threaded through `ArenaEntry::offset`.
    free_head: u32,
    live: usize,
    /// Content hash → entry, for interning.
    index: SlotIndex,
    hasher: KeyHasher,
    /// Reserved for compaction: entry numbers sorted by offset.
    scratch: Box<[u32]>,
}

#[cfg(feature = "alloc")]
impl InternArena {
    /// An arena for up to `max_strings` strings and `max_bytes` bytes in total, with `seed` for
    /// the content hash.
    pub fn with_capacity(max_strings: usize, max_bytes: usize, seed: u64) -> Self {
        let max_strings = max_strings.clamp(1, (u32::MAX / 2) as usize);
        let max_bytes = max_bytes.min(u32::MAX as usize);
        let entries: Box<[ArenaEntry]> = (0..max_strings)
            .map(|i| ArenaEntry {
                offset: if i + 1 < max_strings {
                    (i + 1) as u32
                } else {
                    NO_FREE
                },
                len: 0,
                refs: 0,
            })
            .collect();
        InternArena {
            bytes: alloc::vec![0u8; max_bytes].into_boxed_slice(),
            end: 0,
            live_bytes: 0,
            entries,
            free_head: 0,
            live: 0,
            index: SlotIndex::with_capacity(max_strings),
            hasher: KeyHasher::new(seed),
            scratch: alloc::vec![0u32; max_strings].into_boxed_slice(),
        }
    }

    /// Distinct live strings.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no string is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Most distinct strings.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Bytes held by live strings.
    pub fn bytes_used(&self) -> usize {
        self.live_bytes
    }

    /// Most bytes of string data.
    pub fn capacity_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Makes this arena equal to `other` (same sizes) without allocating; `false` if the sizes
    /// differ.
    pub(crate) fn copy_from(&mut self, other: &InternArena) -> bool {
        let InternArena {
            bytes,
            end,
            live_bytes,
            entries,
            free_head,
            live,
            index,
            hasher,
            scratch,
        } = other;
        if self.bytes.len() != bytes.len()
            || self.entries.len() != entries.len()
            || self.scratch.len() != scratch.len()
            || self.index.bytes_reserved() != index.bytes_reserved()
        {
            return false;
        }
        crate::reserved_vec::copy_slab(&mut self.bytes, bytes);
        crate::reserved_vec::copy_slab(&mut self.entries, entries);
        crate::reserved_vec::copy_slab(&mut self.scratch, scratch);
        self.index.copy_from(index);
        (self.end, self.live_bytes, self.free_head, self.live) =
            (*end, *live_bytes, *free_head, *live);
        self.hasher = *hasher;
        true
    }

    /// All memory reserved at construction.
    pub fn bytes_reserved(&self) -> usize {
        self.bytes.len()
            + core::mem::size_of_val(&*self.entries)
            + core::mem::size_of_val(&*self.scratch)
            + self.index.bytes_reserved()
    }

    fn text(&self, entry: &ArenaEntry) -> &[u8] {
        let start = entry.offset as usize;
        self.bytes
            .get(start..start + entry.len as usize)
            .unwrap_or(&[])
    }

    /// The live entry holding exactly `s`, if any.
    fn lookup(&self, s: &str, hash: u64) -> Option<u32> {
        self.index.find(hash, |id| {
            self.entries
                .get(id as usize)
                .is_some_and(|e| e.refs > 0 && self.text(e) == s.as_bytes())
        })
    }

    /// The handle of an already interned `s`, without taking a reference.
    pub fn find(&self, s: &str) -> Option<StrHandle> {
        self.lookup(s, self.hasher.hash_bytes(s.as_bytes()))
            .map(StrHandle)
    }

    /// Interns `s`: the same string always gets the same handle while it is live. Takes one
    /// reference, to be given back with [`release`](Self::release).
    pub fn intern(&mut self, s: &str) -> Result<StrHandle, ArenaFull> {
        let hash = self.hasher.hash_bytes(s.as_bytes());
        if let Some(id) = self.lookup(s, hash) {
            let entry = &mut self.entries[id as usize];
            entry.refs = entry.refs.checked_add(1).ok_or(ArenaFull)?;
            return Ok(StrHandle(id));
        }
        if self.free_head == NO_FREE {
            return Err(ArenaFull);
        }
        let len = s.len();
        if self.end + len > self.bytes.len() {
            if self.live_bytes + len > self.bytes.len() {
                return Err(ArenaFull);
            }
            self.compact();
        }
        let id = self.free_head;
        let offset = self.end;
        self.bytes[offset..offset + len].copy_from_slice(s.as_bytes());
        self.end += len;
        self.live_bytes += len;
        let entry = &mut self.entries[id as usize];
        self.free_head = entry.offset;
        *entry = ArenaEntry {
            offset: offset as u32,
            len: len as u32,
            refs: 1,
        };
        self.live += 1;
        // Cannot fail: the index holds one entry per live string and was sized for all of them.
        let _ = self.index.insert(hash, id);
        Ok(StrHandle(id))
    }

    /// Takes another reference to a live string; ignored for a stale handle.
    pub fn retain(&mut self, handle: StrHandle) {
        if let Some(entry) = self.entries.get_mut(handle.0 as usize)
            && entry.refs > 0
        {
            entry.refs = entry.refs.saturating_add(1);
        }
    }

    /// Gives back one reference; the string is freed when none is left. Ignored for a stale handle.
    pub fn release(&mut self, handle: StrHandle) {
        let Some(entry) = self.entries.get(handle.0 as usize).copied() else {
            return;
        };
        if entry.refs == 0 {
            return;
        }
        if entry.refs > 1 {
            self.entries[handle.0 as usize].refs -= 1;
            return;
        }
        let hash = self.hasher.hash_bytes(self.text(&entry));
        self.index.remove(hash, handle.0);
        self.live_bytes -= entry.len as usize;
        if (entry.offset + entry.len) as usize == self.end {
            // The last string placed: its bytes are reusable at once.
            self.end = entry.offset as usize;
        }
        self.entries[handle.0 as usize] = ArenaEntry {
            offset: self.free_head,
            len: 0,
            refs: 0,
        };
        self.free_head = handle.0;
        self.live -= 1;
        if self.live == 0 {
            self.end = 0;
        }
    }

    /// The string behind `handle`, `None` if it was freed.
    pub fn get(&self, handle: StrHandle) -> Option<&str> {
        let entry = self.entries.get(handle.0 as usize)?;
        if entry.refs == 0 {
            return None;
        }
        core::str::from_utf8(self.text(entry)).ok()
    }

    /// References held on `handle` (0 when freed).
    pub fn ref_count(&self, handle: StrHandle) -> u32 {
        self.entries.get(handle.0 as usize).map_or(0, |e| e.refs)
    }

    /// Moves every live string down to close the holes, in offset order, so nothing is
    /// overwritten before it has moved.
    fn compact(&mut self) {
        let mut count = 0;
        for (id, entry) in self.entries.iter().enumerate() {
            if entry.refs > 0 {
                self.scratch[count] = id as u32;
                count += 1;
            }
        }
        let entries = &self.entries;
        self.scratch[..count].sort_unstable_by_key(|&id| entries[id as usize].offset);
        let mut write = 0usize;
        for &id in &self.scratch[..count] {
            let entry = &mut self.entries[id as usize];
            let (start, len) = (entry.offset as usize, entry.len as usize);
            self.bytes.copy_within(start..start + len, write);
            entry.offset = write as u32;
            write += len;
        }
        self.end = write;
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::string::String;

    #[test]
    fn same_string_same_handle_and_refcounted() {
        let mut arena = InternArena::with_capacity(4, 64, 1);
        let a = arena.intern("/usr/bin/bash").unwrap();
        let b = arena.intern("/usr/bin/bash").unwrap();
        assert_eq!(a, b);
        assert_eq!(arena.len(), 1);
        assert_eq!(arena.ref_count(a), 2);
        arena.release(a);
        assert_eq!(arena.get(b), Some("/usr/bin/bash"));
        arena.release(b);
        assert_eq!(arena.get(b), None);
        assert_eq!(arena.bytes_used(), 0);
    }

    #[test]
    fn full_by_strings_and_by_bytes() {
        let mut arena = InternArena::with_capacity(2, 8, 1);
        arena.intern("aaaa").unwrap();
        assert_eq!(arena.intern("bbbbb"), Err(ArenaFull)); // 9 bytes > 8
        arena.intern("bbbb").unwrap();
        assert_eq!(arena.intern("c"), Err(ArenaFull)); // 3rd string
    }

    #[test]
    fn compacts_holes_and_keeps_handles() {
        let mut arena = InternArena::with_capacity(4, 12, 1);
        let a = arena.intern("aaaa").unwrap();
        let b = arena.intern("bbbb").unwrap();
        let c = arena.intern("cccc").unwrap();
        arena.release(b); // hole in the middle; arena bytes are all placed
        let d = arena.intern("dddd").unwrap(); // needs compaction
        assert_eq!(arena.get(a), Some("aaaa"));
        assert_eq!(arena.get(c), Some("cccc"));
        assert_eq!(arena.get(d), Some("dddd"));
        assert_eq!(arena.find("cccc"), Some(c));
    }

    proptest! {
        #[test]
        fn agrees_with_a_refcount_model(ops in proptest::collection::vec((any::<bool>(), 0usize..12), 0..300)) {
            let words: std::vec::Vec<String> = (0..12).map(|i| "x".repeat(i + 1)).collect();
            let mut arena = InternArena::with_capacity(6, 40, 7);
            let mut model: HashMap<usize, (StrHandle, u32)> = HashMap::new();
            for (is_intern, w) in ops {
                if is_intern {
                    let live_bytes: usize = model.keys().map(|&k| words[k].len()).sum();
                    let fits = model.contains_key(&w) || (model.len() < 6 && live_bytes + words[w].len() <= 40);
                    match arena.intern(&words[w]) {
                        Ok(h) => {
                            prop_assert!(fits);
                            let e = model.entry(w).or_insert((h, 0));
                            prop_assert_eq!(e.0, h);
                            e.1 += 1;
                        }
                        Err(ArenaFull) => prop_assert!(!fits),
                    }
                } else if let Some((h, refs)) = model.get(&w).copied() {
                    arena.release(h);
                    if refs == 1 { model.remove(&w); } else { model.insert(w, (h, refs - 1)); }
                }
                prop_assert_eq!(arena.len(), model.len());
                for (&k, &(h, refs)) in &model {
                    prop_assert_eq!(arena.get(h), Some(words[k].as_str()));
                    prop_assert_eq!(arena.ref_count(h), refs);
                }
            }
        }
    }
}
