//! The packed value format: why a store is a few hundred redb values instead of one per record.
//!
//! One redb insert per record (a B-tree descent and a copy of the leaf on write) made a full
//! snapshot of the benchmark's 94,000 records take about 100 ms, and a changed-only snapshot of
//! 640 scattered records copy hundreds of leaves. So a store's table holds:
//!
//! - **pages** (`p` ‖ BE u64 number, `0..pages`): records in strictly increasing key order, up
//!   to [`PAGE_BYTES`] (just under 16 KiB) per value, written whole by a full snapshot (or a
//!   fold);
//! - **deltas** (`d` ‖ BE u64 number, `0..deltas`): what each changed-only snapshot did (upserts
//!   and deletes of keys that were there), applied in number order over the pages at load.
//!
//! Every value is `body ‖ checksum` (u64, little-endian): the checksum ([`hash64`]) covers the
//! store's name, the value's key and the body, so a flipped byte, a value moved to another key or
//! store, or a truncated value is refused at load. Bodies are a varint count and then, per
//! record, varint key length, key, varint value length, value (a delta op starts with a tag
//! byte: [`OP_UPSERT`] or [`OP_DELETE`], the latter without a value). Nothing here panics on bad
//! bytes: every length is checked against what is left.

use std::collections::BTreeMap;

use crate::codec::Encoded;

/// Key kind of a page.
pub const PAGE: u8 = b'p';
/// Key kind of a delta.
pub const DELTA: u8 = b'd';
/// Most bytes of records in a page (unless one record alone is larger). redb keeps a value larger
/// than its 4 KiB page in a leaf of a power-of-two number of pages; on the benchmark's data set
/// pages just under 16 KiB left the file the size it had with one value per record (95 bytes
/// per record), pages just under 64 KiB left 40 % of it fragmented (137 bytes per record), and
/// 8 KiB ones made snapshots slower again.
pub const PAGE_BYTES: usize = 16 * 1024 - 256;
/// A delta op that inserts or replaces a record.
pub const OP_UPSERT: u8 = 0;
/// A delta op that removes a record (only written for keys that were there).
pub const OP_DELETE: u8 = 1;

const CHECKSUM_BYTES: usize = 8;
const SEED_VALUE: u64 = 0x5761_7463_6870_6f73; // "Watchpos"
const SEED_KEY: u64 = 0x6b65_7969_6e64_6578; // "keyindex"

/// The redb key of value `n` of `kind` ([`PAGE`] or [`DELTA`]).
pub fn value_key(kind: u8, n: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = kind;
    k[1..].copy_from_slice(&n.to_be_bytes());
    k
}

/// A 64-bit hash, 8 bytes per step. Each step (`xor`, multiply by an odd constant, rotate) is a
/// bijection of the state, so any change confined to one 8-byte word of equal-length input
/// always changes the result; wider damage goes unseen with probability about 2⁻⁶⁴.
pub fn hash64(seed: u64, bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let step = |h: u64, w: u64| (h ^ w).wrapping_mul(K).rotate_left(29);
    let mut h = seed ^ (bytes.len() as u64).wrapping_mul(K);
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        h = step(h, u64::from_le_bytes(a));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut a = [0u8; 8];
        a[..rest.len()].copy_from_slice(rest);
        h = step(h, u64::from_le_bytes(a));
    }
    h ^= h >> 32;
    h = h.wrapping_mul(K);
    h ^ (h >> 29)
}

/// The hash a store's key index keeps for `key`.
pub fn key_hash(key: &[u8]) -> u64 {
    hash64(SEED_KEY, key)
}

fn value_checksum(store: &str, key: &[u8; 9], body: &[u8]) -> u64 {
    let seed = hash64(SEED_VALUE, store.as_bytes()) ^ hash64(SEED_VALUE.rotate_left(17), key);
    hash64(seed, body)
}

/// Appends the checksum of `body` as value `key` of `store`; returns the checksum.
pub fn seal(store: &str, key: &[u8; 9], body: &mut Vec<u8>) -> u64 {
    let sum = value_checksum(store, key, body);
    body.extend_from_slice(&sum.to_le_bytes());
    sum
}

/// Checks `value`'s checksum as value `key` of `store`: its body and checksum.
pub fn open<'v>(store: &str, key: &[u8; 9], value: &'v [u8]) -> Result<(&'v [u8], u64), String> {
    let Some(split) = value.len().checked_sub(CHECKSUM_BYTES) else {
        return Err(format!("{} is {} bytes, too short", name(key), value.len()));
    };
    let (body, tail) = value.split_at(split);
    let mut a = [0u8; 8];
    a.copy_from_slice(tail);
    let stored = u64::from_le_bytes(a);
    if value_checksum(store, key, body) != stored {
        return Err(format!("{} fails its checksum", name(key)));
    }
    Ok((body, stored))
}

/// `page 3`, `delta 7`: a value's key in words.
pub fn name(key: &[u8; 9]) -> String {
    let mut n = [0u8; 8];
    n.copy_from_slice(&key[1..]);
    let kind = match key[0] {
        PAGE => "page",
        DELTA => "delta",
        _ => "value",
    };
    format!("{kind} {}", u64::from_be_bytes(n))
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads a body front to back; every read checks what is left.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self
                .bytes
                .split_first()
                .ok_or("a length runs past the end")?;
            self.bytes = rest;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err("a length is longer than 10 bytes".into())
    }

    fn byte(&mut self) -> Result<u8, String> {
        let (&b, rest) = self.bytes.split_first().ok_or("an op runs past the end")?;
        self.bytes = rest;
        Ok(b)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.varint()?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= self.bytes.len())
            .ok_or_else(|| format!("a {len}-byte field runs past the end"))?;
        let (b, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(b)
    }

    fn done(&self) -> Result<(), String> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(format!("{} bytes after the last record", self.bytes.len()))
        }
    }
}

/// Packs records (strictly increasing keys) into page bodies of about [`PAGE_BYTES`].
#[derive(Debug, Default)]
pub struct PagePacker {
    count: u64,
    records: Vec<u8>,
}

impl PagePacker {
    /// Adds one record; returns the previous page's body (without checksum) when this record
    /// did not fit in it.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> Option<Vec<u8>> {
        let size = key.len() + value.len() + 20;
        let full = (self.count > 0 && self.records.len() + size > PAGE_BYTES).then(|| self.take());
        put_bytes(&mut self.records, key);
        put_bytes(&mut self.records, value);
        self.count += 1;
        full
    }

    /// The last page's body, if it holds anything.
    pub fn finish(mut self) -> Option<Vec<u8>> {
        (self.count > 0).then(|| self.take())
    }

    fn take(&mut self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.records.len() + 10 + CHECKSUM_BYTES);
        put_varint(&mut body, self.count);
        body.append(&mut self.records);
        self.count = 0;
        body
    }
}

/// Decodes a page body, appending its records to `out`; keys must keep increasing from the last
/// record already in `out`.
pub fn read_page(body: &[u8], out: &mut Vec<Encoded>) -> Result<(), String> {
    let mut r = Reader { bytes: body };
    let count = r.varint()?;
    for _ in 0..count {
        let key = r.bytes()?;
        let value = r.bytes()?;
        if out.last().is_some_and(|(last, _)| last.as_slice() >= key) {
            return Err("keys out of order".into());
        }
        out.push((key.to_vec(), value.to_vec()));
    }
    r.done()
}

/// One change a delta records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaOp<'a> {
    /// Insert or replace.
    Upsert(&'a [u8], &'a [u8]),
    /// Remove (the key was there).
    Delete(&'a [u8]),
}

/// A delta body (without checksum) holding `ops` in order.
pub fn write_delta(ops: &[DeltaOp<'_>]) -> Vec<u8> {
    let size: usize = ops
        .iter()
        .map(|op| match op {
            DeltaOp::Upsert(k, v) => k.len() + v.len() + 5,
            DeltaOp::Delete(k) => k.len() + 3,
        })
        .sum();
    let mut body = Vec::with_capacity(size + 10 + CHECKSUM_BYTES);
    put_varint(&mut body, ops.len() as u64);
    for op in ops {
        match op {
            DeltaOp::Upsert(k, v) => {
                body.push(OP_UPSERT);
                put_bytes(&mut body, k);
                put_bytes(&mut body, v);
            }
            DeltaOp::Delete(k) => {
                body.push(OP_DELETE);
                put_bytes(&mut body, k);
            }
        }
    }
    body
}

/// Decodes a delta body, applying its ops in order to `over` (key → new value, or `None`: gone).
pub fn read_delta(
    body: &[u8],
    over: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>,
) -> Result<(), String> {
    let mut r = Reader { bytes: body };
    let count = r.varint()?;
    for _ in 0..count {
        match r.byte()? {
            OP_UPSERT => {
                let key = r.bytes()?;
                let value = r.bytes()?;
                over.insert(key.to_vec(), Some(value.to_vec()));
            }
            OP_DELETE => {
                let key = r.bytes()?;
                over.insert(key.to_vec(), None);
            }
            tag => return Err(format!("unknown op {tag}")),
        }
    }
    r.done()
}

/// `base` (strictly increasing keys) with `over` applied: the records now held, in key order.
pub fn merge(base: Vec<Encoded>, over: BTreeMap<Vec<u8>, Option<Vec<u8>>>) -> Vec<Encoded> {
    if over.is_empty() {
        return base;
    }
    let mut out = Vec::with_capacity(base.len() + over.len());
    let mut over = over.into_iter().peekable();
    for (k, v) in base {
        while let Some((ok, ov)) = over.next_if(|(ok, _)| *ok < k) {
            if let Some(ov) = ov {
                out.push((ok, ov));
            }
        }
        match over.next_if(|(ok, _)| *ok == k) {
            Some((ok, Some(ov))) => out.push((ok, ov)),
            Some((_, None)) => {}
            None => out.push((k, v)),
        }
    }
    out.extend(over.filter_map(|(k, v)| v.map(|v| (k, v))));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(k: &str, v: &str) -> Encoded {
        (k.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    #[test]
    fn pages_round_trip_and_split() {
        let mut p = PagePacker::default();
        let mut bodies = Vec::new();
        let records: Vec<Encoded> = (0..5000u32)
            .map(|i| (i.to_be_bytes().to_vec(), vec![i as u8; 40]))
            .collect();
        for (k, v) in &records {
            bodies.extend(p.push(k, v));
        }
        bodies.extend(p.finish());
        assert!(bodies.len() > 2, "{} pages", bodies.len());
        let mut out = Vec::new();
        for b in &bodies {
            read_page(b, &mut out).unwrap();
        }
        assert_eq!(out, records);
        // Out of order across pages is refused.
        let mut out = vec![rec("zzzz", "")];
        assert!(read_page(&bodies[0], &mut out).is_err());
    }

    #[test]
    fn checksums_catch_flips_moves_and_truncation() {
        let key = value_key(PAGE, 3);
        let mut v = b"some body bytes".to_vec();
        seal("process", &key, &mut v);
        assert!(open("process", &key, &v).is_ok());
        assert!(open("dns", &key, &v).is_err(), "another store");
        assert!(
            open("process", &value_key(PAGE, 4), &v).is_err(),
            "another key"
        );
        assert!(
            open("process", &key, &v[..v.len() - 1]).is_err(),
            "truncated"
        );
        assert!(open("process", &key, &v[..3]).is_err(), "too short");
        for i in 0..v.len() {
            for bit in 0..8 {
                let mut bad = v.clone();
                bad[i] ^= 1 << bit;
                assert!(open("process", &key, &bad).is_err(), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn bad_bodies_are_errors_not_panics() {
        let mut body = Vec::new();
        put_varint(&mut body, 2);
        put_bytes(&mut body, b"k");
        for cut in 0..body.len() + 1 {
            let _ = read_page(&body[..cut], &mut Vec::new());
            let _ = read_delta(&body[..cut], &mut BTreeMap::new());
        }
        assert!(read_page(&[0xff; 12], &mut Vec::new()).is_err());
        assert!(read_delta(&[1, 9], &mut BTreeMap::new()).is_err());
    }

    #[test]
    fn deltas_merge_over_the_base_in_order() {
        let base = vec![rec("a", "1"), rec("c", "3"), rec("e", "5")];
        let mut over = BTreeMap::new();
        let d1 = write_delta(&[
            DeltaOp::Upsert(b"b", b"2"),
            DeltaOp::Delete(b"c"),
            DeltaOp::Upsert(b"f", b"6"),
        ]);
        let d2 = write_delta(&[DeltaOp::Upsert(b"a", b"1'"), DeltaOp::Delete(b"f")]);
        read_delta(&d1, &mut over).unwrap();
        read_delta(&d2, &mut over).unwrap();
        assert_eq!(
            merge(base, over),
            vec![rec("a", "1'"), rec("b", "2"), rec("e", "5")]
        );
    }
}
