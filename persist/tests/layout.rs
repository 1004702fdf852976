//! The packed layout against real files: a store written whole and then changed through several
//! deltas, folded, and range-deleted reads back exactly what a plain map holds; a flipped byte in
//! a delta, a missing page or delta, and a value the metadata does not name are each refused at
//! load and the file moved aside.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use watchpost_persist::file::FILE_NAME;
use watchpost_persist::pages::{DELTA, PAGE, value_key};
use watchpost_persist::{BootIdentity, Opened, PersistFile, StoreWrite, WriteDurability};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn open(dir: &Path) -> Opened {
    PersistFile::open(
        dir,
        BootIdentity {
            boot_id: "boot-a".into(),
            btime: 1,
        },
    )
    .expect("open")
}

fn key(n: u32) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

fn value(n: u32, round: u32) -> Vec<u8> {
    format!(
        "value of {n} in round {round}: {}",
        "x".repeat((n % 50) as usize)
    )
    .into_bytes()
}

/// Applies `write` to the model the way the file must: deletes, ranges, then upserts.
fn apply(model: &mut Model, write: &StoreWrite) -> (u64, u64) {
    if write.full {
        model.clear();
    }
    let mut deleted = 0;
    for k in &write.deletes {
        deleted += u64::from(model.remove(k).is_some());
    }
    for (s, e) in &write.delete_ranges {
        let doomed: Vec<_> = model
            .range(s.clone()..e.clone())
            .map(|(k, _)| k.clone())
            .collect();
        deleted += doomed.len() as u64;
        for k in doomed {
            model.remove(&k);
        }
    }
    for (k, v) in &write.upserts {
        model.insert(k.clone(), v.clone());
    }
    (write.upserts.len() as u64, deleted)
}

fn write_and_check(file: &mut PersistFile, model: &mut Model, write: &StoreWrite) {
    let (written, deleted) = apply(model, write);
    let meta = file
        .write_store("dns", write, WriteDurability::Eventual)
        .unwrap();
    let bytes: u64 = model.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    assert_eq!(
        (
            meta.items,
            meta.bytes,
            meta.written,
            meta.deleted,
            meta.full
        ),
        (model.len() as u64, bytes, written, deleted, write.full)
    );
    let loaded = file.load_store("dns").unwrap();
    assert!(
        loaded.records.iter().eq(model
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
            .iter())
    );
}

fn loaded_equals(dir: &Path, model: &Model) {
    let Opened {
        loaded, recovery, ..
    } = open(dir);
    assert!(recovery.is_none(), "{recovery:?}");
    let records = &loaded.expect("loaded").stores["dns"].records;
    let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(records, &want);
}

#[test]
fn full_deltas_fold_and_ranges_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    {
        let mut file = open(dir.path()).file;
        let full = StoreWrite {
            full: true,
            upserts: (0..3000).map(|n| (key(n), value(n, 0))).collect(),
            ..StoreWrite::default()
        };
        write_and_check(&mut file, &mut model, &full);
        // Deltas: replacements, new keys, deletes of present and absent keys, an upsert of a
        // key deleted in the same write, and duplicate upserts.
        for round in 1..=5u32 {
            let write = StoreWrite {
                upserts: (0..40)
                    .map(|i| (round * 97 + i * 31) % 3500)
                    .chain([round, round])
                    .map(|n| (key(n), value(n, round)))
                    .collect(),
                deletes: vec![key(round * 7), key(9_999), key(round)],
                ..StoreWrite::default()
            };
            write_and_check(&mut file, &mut model, &write);
        }
        let meta = file.verify_all().unwrap()["dns"];
        assert_eq!(meta.deltas, 5);
        // An empty changed-only write commits without a delta.
        write_and_check(&mut file, &mut model, &StoreWrite::default());
        assert_eq!(file.verify_all().unwrap()["dns"].deltas, 5);
    }
    loaded_equals(dir.path(), &model);
    {
        let mut file = open(dir.path()).file;
        // Large changes pass the fold threshold: the deltas go back into the pages.
        let mut folded = false;
        for round in 6..40u32 {
            let write = StoreWrite {
                upserts: (0..1500)
                    .map(|i| (round * 13 + i * 2) % 4000)
                    .map(|n| (key(n), value(n, round)))
                    .collect(),
                deletes: (0..20).map(|i| key(round + i * 100)).collect(),
                ..StoreWrite::default()
            };
            write_and_check(&mut file, &mut model, &write);
            let meta = file.verify_all().unwrap()["dns"];
            folded |= meta.deltas == 0 && meta.pages > 0;
        }
        assert!(folded, "no fold in 34 large deltas");
        // A range delete rewrites the store.
        let write = StoreWrite {
            delete_ranges: vec![(key(1000), key(2000))],
            upserts: vec![(key(1500), value(1500, 99))],
            ..StoreWrite::default()
        };
        write_and_check(&mut file, &mut model, &write);
        assert_eq!(file.verify_all().unwrap()["dns"].deltas, 0);
        // A full write after deltas replaces everything.
        let write = StoreWrite {
            upserts: vec![(key(1), value(1, 100))],
            ..StoreWrite::default()
        };
        write_and_check(&mut file, &mut model, &write);
    }
    loaded_equals(dir.path(), &model);
    let mut file = open(dir.path()).file;
    let full = StoreWrite {
        full: true,
        upserts: (0..10).map(|n| (key(n), value(n, 200))).collect(),
        ..StoreWrite::default()
    };
    write_and_check(&mut file, &mut model, &full);
    drop(file);
    loaded_equals(dir.path(), &model);
}

/// A store of 2,000 records written whole, then three deltas (the second holding `DELTAMARK`).
fn file_with_deltas(dir: &Path) {
    let mut file = open(dir).file;
    let full = StoreWrite {
        full: true,
        upserts: (0..2000).map(|n| (key(n), value(n, 0))).collect(),
        ..StoreWrite::default()
    };
    file.write_store("dns", &full, WriteDurability::Immediate)
        .unwrap();
    for round in 1..=3u32 {
        let mut v = value(round, round);
        if round == 2 {
            v.extend_from_slice(b"DELTAMARK");
        }
        let write = StoreWrite {
            upserts: vec![(key(round), v)],
            ..StoreWrite::default()
        };
        file.write_store("dns", &write, WriteDurability::Immediate)
            .unwrap();
    }
}

/// Damages the file of [`file_with_deltas`] with `damage`; reopening moves it aside because of
/// something containing `reason_has`, and starts fresh.
fn refused(damage: impl FnOnce(&Path), reason_has: &str) {
    let dir = tempfile::tempdir().unwrap();
    file_with_deltas(dir.path());
    damage(&dir.path().join(FILE_NAME));
    let Opened {
        loaded, recovery, ..
    } = open(dir.path());
    let recovery = recovery.unwrap_or_else(|| panic!("not refused ({reason_has})"));
    assert!(
        recovery.reason.contains(reason_has),
        "{:?} lacks {reason_has:?}",
        recovery.reason
    );
    assert!(recovery.moved_to.exists());
    assert!(loaded.is_none());
}

/// Edits the `dns` table directly with redb.
fn edit(path: &Path, f: impl FnOnce(&mut redb::Table<'_, &'static [u8], &'static [u8]>)) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new("dns");
        let mut table = txn.open_table(def).unwrap();
        f(&mut table);
    }
    txn.commit().unwrap();
    let _ = db.begin_read();
}

#[test]
fn a_flipped_byte_in_a_delta_is_refused() {
    refused(
        |p| {
            let mut bytes = fs::read(p).unwrap();
            let at = bytes
                .windows(9)
                .position(|w| w == b"DELTAMARK")
                .expect("marker in file");
            bytes[at + 4] ^= 0x01;
            fs::write(p, bytes).unwrap();
        },
        "delta 1 fails its checksum",
    );
}

#[test]
fn a_missing_delta_is_refused() {
    refused(
        |p| {
            edit(p, |t| {
                t.remove(value_key(DELTA, 1).as_slice()).unwrap().unwrap();
            })
        },
        "delta 1 is missing",
    );
}

#[test]
fn a_missing_last_delta_is_refused() {
    refused(
        |p| {
            edit(p, |t| {
                t.remove(value_key(DELTA, 2).as_slice()).unwrap().unwrap();
            })
        },
        "delta 2 is missing",
    );
}

#[test]
fn a_missing_page_is_refused() {
    refused(
        |p| {
            edit(p, |t| {
                t.remove(value_key(PAGE, 0).as_slice()).unwrap().unwrap();
            })
        },
        "page 0 is missing",
    );
}

#[test]
fn a_value_the_metadata_does_not_name_is_refused() {
    refused(
        |p| {
            edit(p, |t| {
                let copy = t
                    .get(value_key(DELTA, 2).as_slice())
                    .unwrap()
                    .unwrap()
                    .value()
                    .to_vec();
                t.insert(value_key(DELTA, 3).as_slice(), copy.as_slice())
                    .unwrap();
            })
        },
        "not in its metadata",
    );
}

#[test]
fn a_value_swapped_for_another_is_refused() {
    refused(
        |p| {
            edit(p, |t| {
                let d0 = t
                    .get(value_key(DELTA, 0).as_slice())
                    .unwrap()
                    .unwrap()
                    .value()
                    .to_vec();
                t.insert(value_key(DELTA, 1).as_slice(), d0.as_slice())
                    .unwrap();
            })
        },
        "delta 1 fails its checksum",
    );
}
