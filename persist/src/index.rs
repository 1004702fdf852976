//! Which keys a store holds, kept in memory beside the file so a changed-only snapshot can be
//! written as one small delta value without reading the pages back: the index tells whether an
//! upsert replaces a record and whether a delete removes one, which keeps [`StoreMeta`]'s
//! `items`, `bytes`, `written` and `deleted` exact.
//!
//! Per record it holds a 64-bit hash of the key ([`key_hash`]) and the record's size (key and
//! value bytes): about 16–32 bytes per record, not the records. Two keys with the same hash
//! (one chance in about 30 million among a million keys) would miscount `items`; the next load
//! then refuses the file as damaged and moves it aside, so a collision costs that restore,
//! never wrong records.
//!
//! [`StoreMeta`]: crate::StoreMeta

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::file::StoreWrite;
use crate::pages::{DeltaOp, key_hash};

/// The keys are already hashes: the map uses them as they are.
#[derive(Debug, Default, Clone, Copy)]
pub struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Map<V> = HashMap<u64, V, BuildHasherDefault<Identity>>;

/// One store's keys: key hash → record bytes.
#[derive(Debug, Default, Clone)]
pub struct KeyIndex {
    sizes: Map<u32>,
}

/// What a changed-only write does, worked out against the index before anything is written.
#[derive(Debug)]
pub struct Staged<'w> {
    /// The delta's ops: deletes of keys that were there, then every upsert.
    pub ops: Vec<DeltaOp<'w>>,
    /// Records held after it.
    pub items: u64,
    /// Bytes of keys and values held after it.
    pub bytes: u64,
    /// Records written.
    pub written: u64,
    /// Records deleted (that were there).
    pub deleted: u64,
    changes: Map<Option<u32>>,
}

fn size(k: &[u8], v: &[u8]) -> u32 {
    u32::try_from(k.len() + v.len()).unwrap_or(u32::MAX)
}

impl KeyIndex {
    /// The index of `records`.
    pub fn of<'r>(records: impl ExactSizeIterator<Item = (&'r [u8], &'r [u8])>) -> KeyIndex {
        let mut sizes = Map::with_capacity_and_hasher(records.len(), Default::default());
        for (k, v) in records {
            sizes.insert(key_hash(k), size(k, v));
        }
        KeyIndex { sizes }
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.sizes.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }

    /// Works out `write`'s deletes and upserts (not its ranges) over a store holding `items`
    /// records of `bytes`; the index changes only with [`KeyIndex::commit`].
    pub fn stage<'w>(&self, write: &'w StoreWrite, items: u64, bytes: u64) -> Staged<'w> {
        let mut s = Staged {
            ops: Vec::with_capacity(write.deletes.len() + write.upserts.len()),
            items,
            bytes,
            written: 0,
            deleted: 0,
            changes: Map::default(),
        };
        let now = |s: &Staged<'_>, h: u64| match s.changes.get(&h) {
            Some(&state) => state,
            None => self.sizes.get(&h).copied(),
        };
        for k in &write.deletes {
            let h = key_hash(k);
            if let Some(old) = now(&s, h) {
                s.items = s.items.saturating_sub(1);
                s.bytes = s.bytes.saturating_sub(u64::from(old));
                s.deleted += 1;
                s.changes.insert(h, None);
                s.ops.push(DeltaOp::Delete(k));
            }
        }
        for (k, v) in &write.upserts {
            let h = key_hash(k);
            match now(&s, h) {
                Some(old) => s.bytes = s.bytes.saturating_sub(u64::from(old)),
                None => s.items += 1,
            }
            let new = size(k, v);
            s.bytes += u64::from(new);
            s.written += 1;
            s.changes.insert(h, Some(new));
            s.ops.push(DeltaOp::Upsert(k, v));
        }
        s
    }

    /// Applies what `staged` did (after its transaction committed).
    pub fn commit(&mut self, staged: Staged<'_>) {
        for (h, state) in staged.changes {
            match state {
                Some(size) => self.sizes.insert(h, size),
                None => self.sizes.remove(&h),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_counts_like_the_records_would() {
        let a = (b"a".to_vec(), b"11".to_vec());
        let b = (b"b".to_vec(), b"2".to_vec());
        let mut index = KeyIndex::of([&a, &b].into_iter().map(|(k, v)| (&k[..], &v[..])));
        let write = StoreWrite {
            upserts: vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"c".to_vec(), b"3".to_vec()),
            ],
            deletes: vec![b"b".to_vec(), b"zz".to_vec(), b"b".to_vec()],
            ..StoreWrite::default()
        };
        let s = index.stage(&write, 2, 5);
        assert_eq!((s.items, s.bytes, s.written, s.deleted), (2, 4, 2, 1));
        assert_eq!(s.ops.len(), 3);
        index.commit(s);
        assert_eq!(index.len(), 2);
    }
}
