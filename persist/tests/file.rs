//! The snapshot file against real files: round trips, changed-only writes, every kind of bad
//! file moved aside with its reason, the data-directory lock, a new boot, and the size bound
//! under 1,000 churning snapshots.

use std::fs;
use std::path::Path;

use watchpost_core::process::{
    Comm, ExitEvent, ForkEvent, ProcessRecord, ProcessTable, ProcessTableConfig,
};
use watchpost_persist::codec::{decode_process, encode_dns, encode_process, process_key};
use watchpost_persist::file::FILE_NAME;
use watchpost_persist::{
    BootIdentity, OpenError, Opened, PersistFile, StoreWrite, WriteDurability,
};

fn boot(id: &str) -> BootIdentity {
    BootIdentity {
        boot_id: id.into(),
        btime: 1_764_000_000,
    }
}

fn open(dir: &Path, id: &str) -> Opened {
    PersistFile::open(dir, boot(id)).expect("open")
}

/// A table of `n` processes with a marker in every path.
fn processes(n: u32) -> ProcessTable {
    let mut t = ProcessTable::new(ProcessTableConfig {
        capacity: n as usize + 10,
        ..Default::default()
    });
    for pid in 1..=n {
        t.apply_fork(
            &ForkEvent {
                pid,
                start_time: 1_000 + u64::from(pid),
                ppid: if pid == 1 { 0 } else { 1 },
                parent_start_time: 1_001,
                uid: 0,
                gid: 0,
                comm: Comm::new("worker"),
                exe_path: Some("/usr/bin/MARKER-worker"),
            },
            5_000,
        );
    }
    t
}

/// A full snapshot of `t`, through the chunked export (which clears the change marks).
fn full_write(t: &mut ProcessTable) -> StoreWrite {
    let mut write = StoreWrite {
        full: true,
        ..Default::default()
    };
    let _ = t.take_removed(|_| {});
    let mut cursor = Some(0);
    while let Some(from) = cursor {
        cursor = t.export_chunk(from, 64, false, |r| {
            write.upserts.push(encode_process(&r).unwrap())
        });
    }
    write
}

#[test]
fn round_trip_and_changed_only_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = processes(100);
    {
        let Opened {
            mut file,
            loaded,
            recovery,
        } = open(dir.path(), "boot-a");
        assert!(loaded.is_none() && recovery.is_none());
        let meta = file
            .write_store("process", &full_write(&mut t), WriteDurability::Immediate)
            .unwrap();
        assert_eq!((meta.items, meta.written, meta.full), (100, 100, true));
        // Changed-only: 3 exits and 2 removals.
        for pid in [5u32, 6, 7] {
            t.apply_exit(
                &ExitEvent {
                    pid,
                    start_time: 1_000 + u64::from(pid),
                    exit_time: 6_000,
                },
                6_000,
            );
        }
        let mut write = StoreWrite::default();
        let mut cursor = Some(0);
        while let Some(from) = cursor {
            cursor = t.export_chunk(from, 16, true, |r| {
                write.upserts.push(encode_process(&r).unwrap())
            });
        }
        assert_eq!(write.upserts.len(), 3);
        write
            .deletes
            .push(process_key(watchpost_core::process::ProcessKey::new(
                99, 1_099,
            )));
        write
            .deletes
            .push(process_key(watchpost_core::process::ProcessKey::new(
                100, 1_100,
            )));
        write
            .deletes
            .push(process_key(watchpost_core::process::ProcessKey::new(
                4242, 1,
            )));
        let meta = file
            .write_store("process", &write, WriteDurability::Immediate)
            .unwrap();
        assert_eq!(
            (meta.items, meta.written, meta.deleted, meta.full),
            (98, 3, 2, false)
        );
        file.verify_all().unwrap();
    }
    let Opened {
        loaded, recovery, ..
    } = open(dir.path(), "boot-a");
    assert!(recovery.is_none());
    let loaded = loaded.expect("loaded");
    assert!(loaded.same_boot);
    let store = &loaded.stores["process"];
    assert_eq!(store.records.len(), 98);
    let exited: Vec<u32> = store
        .records
        .iter()
        .map(|(_, v)| decode_process(v).unwrap())
        .filter(|r: &ProcessRecord<'_>| !r.is_live())
        .map(|r| r.pid)
        .collect();
    assert_eq!(exited, [5, 6, 7]);
}

#[test]
fn a_new_boot_drops_processes_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut file = open(dir.path(), "boot-a").file;
        file.write_store(
            "process",
            &full_write(&mut processes(10)),
            WriteDurability::Immediate,
        )
        .unwrap();
        let dns = watchpost_core::dns::DnsRecord::Name {
            name: "example.com",
            recency: 1,
            netns: 4_026_531_840,
            trusted: true,
        };
        let write = StoreWrite {
            full: true,
            upserts: vec![encode_dns(0, &dns).unwrap()],
            ..Default::default()
        };
        file.write_store("dns", &write, WriteDurability::Immediate)
            .unwrap();
    }
    let loaded = open(dir.path(), "boot-b").loaded.expect("loaded");
    assert!(!loaded.same_boot);
    assert!(!loaded.stores.contains_key("process"));
    assert_eq!(loaded.stores["dns"].records.len(), 1);
    // The old boot's processes are gone from the file for good, even back on "boot-a".
    let loaded = open(dir.path(), "boot-a").loaded.expect("loaded");
    assert!(!loaded.stores.contains_key("process"));
}

#[test]
fn a_second_opener_of_the_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path(), "boot-a");
    match PersistFile::open(dir.path(), boot("boot-a")) {
        Err(OpenError::DataDirInUse { holder, .. }) => {
            assert_eq!(holder, format!(" (pid {})", std::process::id()));
        }
        other => panic!("expected DataDirInUse, got {other:?}"),
    }
    drop(first);
    open(dir.path(), "boot-a");
}

/// Writes a good file, damages it with `damage`, reopens: moved aside with the reason, fresh.
fn check_recovery(damage: impl FnOnce(&Path), reason_has: &str) {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut file = open(dir.path(), "boot-a").file;
        file.write_store(
            "process",
            &full_write(&mut processes(2000)),
            WriteDurability::Immediate,
        )
        .unwrap();
    }
    let path = dir.path().join(FILE_NAME);
    damage(&path);
    let Opened {
        mut file,
        loaded,
        recovery,
    } = open(dir.path(), "boot-a");
    let recovery = recovery.unwrap_or_else(|| panic!("not recovered ({reason_has})"));
    assert!(
        recovery.reason.contains(reason_has),
        "{:?} lacks {reason_has:?}",
        recovery.reason
    );
    let name = recovery
        .moved_to
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        name.starts_with("watchpost.redb.corrupt-") && name.ends_with('Z'),
        "{name}"
    );
    assert!(recovery.moved_to.exists(), "moved-aside file kept");
    assert!(loaded.is_none());
    // Fresh and usable.
    file.write_store(
        "process",
        &full_write(&mut processes(3)),
        WriteDurability::Immediate,
    )
    .unwrap();
    drop(file);
    let loaded = open(dir.path(), "boot-a").loaded.expect("fresh file loads");
    assert_eq!(loaded.stores["process"].records.len(), 3);
}

#[test]
fn a_truncated_file_is_moved_aside() {
    check_recovery(
        |p| {
            let len = fs::metadata(p).unwrap().len();
            fs::OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        },
        "",
    );
}

#[test]
fn flipped_bytes_are_moved_aside() {
    check_recovery(
        |p| {
            let mut bytes = fs::read(p).unwrap();
            let at = bytes
                .windows(6)
                .position(|w| w == b"MARKER")
                .expect("marker in file");
            bytes[at] ^= 0x20;
            fs::write(p, bytes).unwrap();
        },
        "damaged",
    );
}

#[test]
fn an_empty_file_is_moved_aside() {
    check_recovery(|p| fs::write(p, b"").unwrap(), "empty");
}

#[test]
fn a_directory_in_its_place_is_moved_aside() {
    check_recovery(
        |p| {
            fs::remove_file(p).unwrap();
            fs::create_dir(p).unwrap();
        },
        "not a regular file",
    );
}

#[test]
fn garbage_is_moved_aside() {
    check_recovery(
        |p| fs::write(p, vec![0x5a; 100_000]).unwrap(),
        "cannot be opened",
    );
}

#[test]
fn a_schema_from_the_future_is_moved_aside() {
    check_recovery(
        |p| {
            let db = redb::Database::create(p).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let def: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("meta");
                let mut t = txn.open_table(def).unwrap();
                t.insert(
                    b"schema".as_slice(),
                    postcard::to_stdvec(&999u32).unwrap().as_slice(),
                )
                .unwrap();
            }
            txn.commit().unwrap();
        },
        "schema 999",
    );
}

#[test]
fn a_file_held_by_another_process_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut file = open(dir.path(), "boot-a").file;
        file.write_store(
            "process",
            &full_write(&mut processes(10)),
            WriteDurability::Immediate,
        )
        .unwrap();
    }
    let path = dir.path().join(FILE_NAME);
    let holder = redb::Database::create(&path).unwrap();
    let Opened {
        loaded, recovery, ..
    } = open(dir.path(), "boot-a");
    let recovery = recovery.expect("recovered");
    assert!(
        recovery.reason.contains("another process holds it open"),
        "{}",
        recovery.reason
    );
    assert!(loaded.is_none());
    // The holder's file is intact under its new name.
    let read = holder.begin_read().unwrap();
    let def: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("process");
    use redb::{ReadableDatabase, ReadableTableMetadata};
    let _ = &read;
    // Ten records fit one page.
    assert_eq!(read.open_table(def).unwrap().len().unwrap(), 1);
}

/// 1,000 snapshots of a churning store (a tenth of the records replaced each time, every 50th a
/// full rewrite) stay under a fixed bound with compaction past it.
#[test]
fn a_churning_store_stays_within_the_bound() {
    const BOUND: u64 = 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let mut file = open(dir.path(), "boot-a").file;
    let mut t = ProcessTable::new(ProcessTableConfig {
        capacity: 2000,
        ..Default::default()
    });
    let mut next_pid = 1u32;
    let mut largest = 0;
    let mut compactions = 0;
    for round in 0..1000u32 {
        for _ in 0..200 {
            let pid = next_pid;
            next_pid += 1;
            t.apply_fork(
                &ForkEvent {
                    pid,
                    start_time: u64::from(pid),
                    ppid: 0,
                    parent_start_time: 0,
                    uid: 0,
                    gid: 0,
                    comm: Comm::new("churn"),
                    exe_path: Some("/usr/lib/watchpost/churn"),
                },
                u64::from(round),
            );
        }
        let full = round % 50 == 0;
        let mut write = StoreWrite {
            full,
            ..Default::default()
        };
        let state = t.take_removed(|k| write.deletes.push(process_key(k)));
        write.full |= state.full_required;
        let mut cursor = Some(0);
        while let Some(from) = cursor {
            cursor = t.export_chunk(from, 512, !write.full, |r| {
                write.upserts.push(encode_process(&r).unwrap())
            });
        }
        file.write_store("process", &write, WriteDurability::Eventual)
            .unwrap();
        if file.compact_if_larger(BOUND).unwrap().is_some() {
            compactions += 1;
        }
        largest = largest.max(file.file_size());
    }
    file.verify_all().unwrap();
    assert!(
        largest <= BOUND + 512 * 1024,
        "file reached {largest} bytes"
    );
    assert!(
        file.file_size() <= BOUND,
        "file ends at {} bytes",
        file.file_size()
    );
    eprintln!(
        "largest {largest} bytes, final {} bytes, {compactions} compactions",
        file.file_size()
    );
}
