//! One store's table in the packed layout ([`crate::pages`]): reading it back and verifying it
//! against its [`StoreMeta`], rewriting it as pages, appending a delta, and working out what a
//! write leaves when the store has to be rewritten (a full snapshot, a fold, a range delete).

use std::collections::BTreeMap;

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};

use crate::codec::Encoded;
use crate::error::PersistError;
use crate::file::StoreWrite;
use crate::pages::{
    self, DELTA, DeltaOp, PAGE, PagePacker, merge, read_delta, read_page, seal, value_key,
};
use crate::schema::StoreMeta;

/// A store's table: value key ([`pages::value_key`]) → page or delta.
pub type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;
/// A record borrowed from where it is held: key and value.
pub type Borrowed<'a> = (&'a [u8], &'a [u8]);
/// A store's table open for writing.
pub type WriteTable<'t> = Table<'t, &'static [u8], &'static [u8]>;

/// Most deltas a store keeps before they are folded into its pages.
pub const MAX_DELTAS: u64 = 256;
/// Deltas are folded once their bytes pass a quarter of the store's, or this, whichever is more.
/// 256 KiB let a 140 KB store's file settle at twice the size it had with one value per record
/// under the churn test (redb keeps the freed deltas' larger blocks); 64 KiB keeps it at that
/// size (561 KB, no compaction).
pub const FOLD_FLOOR_BYTES: u64 = 64 * 1024;

/// Whether appending a delta of `add` bytes should fold the store instead.
pub fn needs_fold(meta: &StoreMeta, add: usize) -> bool {
    meta.deltas + 1 > MAX_DELTAS
        || meta.delta_bytes + add as u64 > (meta.bytes / 4).max(FOLD_FLOOR_BYTES)
}

fn describe(key: &[u8]) -> String {
    match <&[u8; 9]>::try_from(key) {
        Ok(k) => pages::name(k),
        Err(_) => format!("a {}-byte key", key.len()),
    }
}

/// Reads every value of `store`'s table, checks it against `meta` (exactly the values it names,
/// each with a good checksum, adding up to its checksum; the records after applying the deltas
/// matching its items and bytes) and returns the records in key order.
///
/// # Errors
/// [`PersistError::Damaged`] for anything that does not match; redb's errors as they come.
pub fn read_store<T: ReadableTable<&'static [u8], &'static [u8]>>(
    store: &'static str,
    meta: &StoreMeta,
    table: &T,
) -> Result<Vec<Encoded>, PersistError> {
    let damaged = |reason: String| PersistError::Damaged { store, reason };
    let mut expected = (0..meta.deltas)
        .map(|n| value_key(DELTA, n))
        .chain((0..meta.pages).map(|n| value_key(PAGE, n)));
    let mut base = Vec::with_capacity(usize::try_from(meta.items.min(1 << 20)).unwrap_or(0));
    let mut over = BTreeMap::new();
    let mut sum = 0u64;
    for entry in table.iter()? {
        let (k, v) = entry?;
        let k = k.value();
        let Some(want) = expected.next() else {
            return Err(damaged(format!("{} is not in its metadata", describe(k))));
        };
        if k != want {
            // Keys come in order: a key the metadata names later means `want` is missing.
            let named = <[u8; 9]>::try_from(k).is_ok_and(|k| {
                let n = u64::from_be_bytes([k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8]]);
                (k[0] == DELTA && n < meta.deltas) || (k[0] == PAGE && n < meta.pages)
            });
            return Err(damaged(if named {
                format!("{} is missing", pages::name(&want))
            } else {
                format!("{} is not in its metadata", describe(k))
            }));
        }
        let (body, checksum) = pages::open(store, &want, v.value()).map_err(damaged)?;
        sum = sum.wrapping_add(checksum);
        let read = if want[0] == DELTA {
            read_delta(body, &mut over)
        } else {
            read_page(body, &mut base)
        };
        read.map_err(|e| damaged(format!("{}: {e}", pages::name(&want))))?;
    }
    if let Some(want) = expected.next() {
        return Err(damaged(format!("{} is missing", pages::name(&want))));
    }
    if sum != meta.checksum {
        return Err(damaged(
            "its values do not add up to the checksum committed with them".into(),
        ));
    }
    let records = merge(base, over);
    let bytes: u64 = records
        .iter()
        .map(|(k, v)| (k.len() + v.len()) as u64)
        .sum();
    if records.len() as u64 != meta.items || bytes != meta.bytes {
        return Err(damaged(format!(
            "{} records / {bytes} bytes do not match the {} / {} committed with them",
            records.len(),
            meta.items,
            meta.bytes
        )));
    }
    Ok(records)
}

/// What a rewrite left in the table.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rewritten {
    /// Pages written.
    pub pages: u64,
    /// Wrapping sum of their checksums.
    pub checksum: u64,
    /// Records.
    pub items: u64,
    /// Bytes of keys and values.
    pub bytes: u64,
}

/// Replaces `store`'s table with pages holding `records` (strictly increasing keys).
///
/// # Errors
/// redb's.
pub fn write_pages(
    txn: &WriteTransaction,
    def: Def,
    store: &'static str,
    records: &[Borrowed<'_>],
) -> Result<Rewritten, PersistError> {
    txn.delete_table(def)?;
    let mut table = txn.open_table(def)?;
    let mut out = Rewritten::default();
    let mut put = |table: &mut WriteTable<'_>, mut body: Vec<u8>| -> Result<(), PersistError> {
        let key = value_key(PAGE, out.pages);
        out.checksum = out.checksum.wrapping_add(seal(store, &key, &mut body));
        table.insert(key.as_slice(), body.as_slice())?;
        out.pages += 1;
        Ok(())
    };
    let mut packer = PagePacker::default();
    let mut bytes = 0u64;
    for (k, v) in records {
        bytes += (k.len() + v.len()) as u64;
        if let Some(body) = packer.push(k, v) {
            put(&mut table, body)?;
        }
    }
    if let Some(body) = packer.finish() {
        put(&mut table, body)?;
    }
    out.items = records.len() as u64;
    out.bytes = bytes;
    Ok(out)
}

/// Appends `ops` as delta `n` of `store`; returns its checksum and size.
///
/// # Errors
/// redb's.
pub fn append_delta(
    table: &mut WriteTable<'_>,
    store: &'static str,
    n: u64,
    ops: &[DeltaOp<'_>],
) -> Result<(u64, u64), PersistError> {
    let key = value_key(DELTA, n);
    let mut body = pages::write_delta(ops);
    let checksum = seal(store, &key, &mut body);
    table.insert(key.as_slice(), body.as_slice())?;
    Ok((checksum, body.len() as u64))
}

/// What `current` (strictly increasing keys) holds after `write` (a full write starts from
/// nothing): the records in key order, records written, records deleted (that were there).
pub fn apply<'a>(current: &'a [Encoded], write: &'a StoreWrite) -> (Vec<Borrowed<'a>>, u64, u64) {
    let current = if write.full { &[][..] } else { current };
    let mut ups: Vec<Borrowed<'_>> = write
        .upserts
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    // Stable: of equal keys the last upsert wins, as it would have one by one.
    ups.sort_by(|a, b| a.0.cmp(b.0));
    let mut last_of_each = Vec::with_capacity(ups.len());
    for (i, &(k, v)) in ups.iter().enumerate() {
        if ups.get(i + 1).is_none_or(|next| next.0 != k) {
            last_of_each.push((k, v));
        }
    }
    let mut deletes: Vec<&[u8]> = write.deletes.iter().map(Vec::as_slice).collect();
    deletes.sort_unstable();
    let doomed = |k: &[u8]| {
        deletes.binary_search(&k).is_ok()
            || write
                .delete_ranges
                .iter()
                .any(|(s, e)| s.as_slice() <= k && k < e.as_slice())
    };
    let mut out = Vec::with_capacity(current.len() + last_of_each.len());
    let mut deleted = 0u64;
    let mut ups = last_of_each.into_iter().peekable();
    for (k, v) in current {
        while let Some(u) = ups.next_if(|u| u.0 < k.as_slice()) {
            out.push(u);
        }
        if !write.full && doomed(k) {
            deleted += 1;
        }
        match ups.next_if(|u| u.0 == k.as_slice()) {
            Some(u) => out.push(u),
            None if !write.full && doomed(k) => {}
            None => out.push((k.as_slice(), v.as_slice())),
        }
    }
    out.extend(ups);
    (out, write.upserts.len() as u64, deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(k: &str, v: &str) -> Encoded {
        (k.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    #[test]
    fn apply_is_deletes_then_ranges_then_upserts() {
        let current = vec![rec("a", "1"), rec("b1", "2"), rec("b2", "3"), rec("c", "4")];
        let write = StoreWrite {
            full: false,
            upserts: vec![rec("b2", "x"), rec("d", "5"), rec("d", "6")],
            deletes: vec![b"a".to_vec(), b"zz".to_vec()],
            delete_ranges: vec![(b"b".to_vec(), b"c".to_vec())],
        };
        let (out, written, deleted) = apply(&current, &write);
        let out: Vec<Borrowed<'_>> = out;
        assert_eq!(
            out,
            vec![
                (&b"b2"[..], &b"x"[..]),
                (&b"c"[..], &b"4"[..]),
                (&b"d"[..], &b"6"[..])
            ]
        );
        assert_eq!((written, deleted), (3, 3));
        let full = StoreWrite {
            full: true,
            ..write
        };
        let (out, _, deleted) = apply(&current, &full);
        assert_eq!((out.len(), deleted), (2, 0));
    }
}
