//! The snapshot file: opening it (with the data-directory lock and bad-file recovery), writing
//! one store per write transaction, loading and verifying it, and keeping it small.
//!
//! # Invariants of a store's table (layout in [`crate::schema`], value format in [`crate::pages`])
//! 1. One [`PersistFile::write_store`] is one redb write transaction: its pages or delta and the
//!    store's [`StoreMeta`] commit together or not at all, so a reader sees the previous snapshot
//!    or the new one, never half a store.
//! 2. The table holds exactly the values its metadata names: pages `p0..pages` and deltas
//!    `d0..deltas`. Each value carries a checksum over the store's name, its key and its body,
//!    and the metadata holds the wrapping sum of them; a load checks every value, refuses a
//!    missing or unnamed one, applies the deltas in order over the pages, and compares the
//!    records' count and bytes with `items` and `bytes`.
//! 3. A full write and a write with key ranges rewrite the table as pages (no deltas); a
//!    changed-only write adds one delta, or folds everything into pages once the deltas pass a
//!    quarter of the store's bytes (at least 64 KiB) or [`crate::table::MAX_DELTAS`]; so the
//!    table holds at most 1.25× the store (or the store and 64 KiB), and compaction bounds the
//!    file.
//! 4. `items`, `bytes`, `written` and `deleted` are exact without reading pages back: the
//!    per-store [`KeyIndex`] (key hash → record size), built at load and changed only after a
//!    commit, says whether an upsert replaces and a delete removes a record.
//!
//! # Bad files
//! Whatever is wrong with `watchpost.redb` — not a regular file, empty, unreadable by redb
//! (truncated, bytes flipped), held open by another process, of another schema version, or
//! holding values that do not match their own checksums or metadata — the file is renamed
//! `watchpost.redb.corrupt-<UTC timestamp>` (never deleted), [`Opened::recovery`] says why in one
//! sentence, and a fresh file is created. The only refusal is a second daemon on the same data
//! directory ([`OpenError::DataDirInUse`]), detected by a lock on `watchpost.lock`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableError};
use watchpost_core::error::store_names;

use crate::boot::BootIdentity;
use crate::codec::Encoded;
use crate::error::{OpenError, PersistError};
use crate::index::KeyIndex;
use crate::schema::{META, SCHEMA_VERSION, STORES, StoreMeta, meta_key, store_def};
use crate::table::{self, needs_fold};

/// The snapshot file's name in the data directory.
pub const FILE_NAME: &str = "watchpost.redb";
/// The lock file's name in the data directory.
pub const LOCK_NAME: &str = "watchpost.lock";
/// redb's page cache (its default is 1 GiB, grown page by page as snapshots touch the file: the
/// daemon's RSS climbed about 1 MiB a minute under load). Snapshots write whole tables and
/// restores read each table once, front to back, so a small cache costs little; pages it drops
/// are read again from the OS page cache.
pub const CACHE_BYTES: usize = 2 << 20;

const KEY_SCHEMA: &[u8] = b"schema";
const KEY_BOOT: &[u8] = b"boot";
const KEY_SEQUENCE: &[u8] = b"seq";

/// An open snapshot file. Dropping it closes the file and releases the data directory.
pub struct PersistFile {
    /// Declared before the lock: dropped (closed) first.
    db: Database,
    path: PathBuf,
    boot: BootIdentity,
    /// File-wide commit counter (the last committed value).
    sequence: u64,
    /// Per store, the keys the file holds (what a changed-only write is worked out against).
    indexes: BTreeMap<&'static str, KeyIndex>,
    /// Held (flock) for the file's whole life.
    _lock: File,
}

impl std::fmt::Debug for PersistFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistFile")
            .field("path", &self.path)
            .field("sequence", &self.sequence)
            .finish()
    }
}

/// A bad file that was moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Where it went.
    pub moved_to: PathBuf,
    /// Why, in plain words.
    pub reason: String,
}

/// One store's records as loaded and verified.
#[derive(Debug, Clone, Default)]
pub struct LoadedStore {
    /// The metadata committed with them.
    pub meta: StoreMeta,
    /// Keys and values, in key order.
    pub records: Vec<Encoded>,
}

/// What a good file held.
#[derive(Debug, Clone, Default)]
pub struct LoadedSnapshot {
    /// The boot the file was last written in.
    pub boot: Option<BootIdentity>,
    /// Whether that is the running boot (process records are only loaded then).
    pub same_boot: bool,
    /// The file-wide commit sequence of the last snapshot.
    pub sequence: u64,
    /// Per store (only stores with a committed snapshot).
    pub stores: BTreeMap<&'static str, LoadedStore>,
}

/// The result of [`PersistFile::open`].
#[derive(Debug)]
pub struct Opened {
    /// The file, ready for snapshots.
    pub file: PersistFile,
    /// What it held (`None` for a fresh file).
    pub loaded: Option<LoadedSnapshot>,
    /// Set when a bad file was moved aside.
    pub recovery: Option<Recovery>,
}

/// What one snapshot of one store changes.
#[derive(Debug, Clone, Default)]
pub struct StoreWrite {
    /// Replace the whole table (else apply the changes to what is there).
    pub full: bool,
    /// Records to insert or replace.
    pub upserts: Vec<Encoded>,
    /// Keys to delete (absent keys are fine).
    pub deletes: Vec<Vec<u8>>,
    /// Key ranges `[start, end)` to delete.
    pub delete_ranges: Vec<(Vec<u8>, Vec<u8>)>,
}

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteDurability {
    /// fsync before the commit returns: survives a power cut (redb `Durability::Immediate`).
    Immediate,
    /// No fsync: survives a process crash once the OS writes it back, not a power cut, until the
    /// next `Immediate` commit (redb `Durability::None`).
    Eventual,
}

/// Now, epoch ns.
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl PersistFile {
    /// Opens (or creates) `dir/watchpost.redb` for the running `boot`: takes the data directory's
    /// lock, moves a bad file aside, loads and verifies what a good file holds. Process records of
    /// another boot are dropped from the file in the same step (they can never be restored).
    ///
    /// # Errors
    /// [`OpenError::DataDirInUse`] when another daemon holds the directory; [`OpenError::Io`] /
    /// [`OpenError::Create`] when the directory or a fresh file cannot be made.
    pub fn open(dir: &Path, boot: BootIdentity) -> Result<Opened, OpenError> {
        let io = |source| OpenError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .create(dir)
            .map_err(io)?;
        let lock = lock_dir(dir)?;
        let path = dir.join(FILE_NAME);
        let mut recovery = None;
        match fs::symlink_metadata(&path) {
            Ok(m) if !m.file_type().is_file() => {
                recovery = Some(move_aside(&path, "it is not a regular file").map_err(io)?);
            }
            Ok(m) if m.len() == 0 => {
                recovery = Some(move_aside(&path, "it is empty").map_err(io)?);
            }
            _ => {}
        }
        let db = match Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
        {
            Ok(db) => db,
            Err(e) => {
                let reason = match e {
                    redb::DatabaseError::DatabaseAlreadyOpen => {
                        "another process holds it open".to_owned()
                    }
                    other => format!("it cannot be opened ({other})"),
                };
                recovery = Some(move_aside(&path, &reason).map_err(io)?);
                create_fresh(&path)?
            }
        };
        let mut file = PersistFile {
            db,
            path: path.clone(),
            boot: boot.clone(),
            sequence: 0,
            indexes: BTreeMap::new(),
            _lock: lock,
        };
        let loaded = match file.load() {
            Ok(loaded) => loaded,
            Err(e) => {
                // Close it before renaming, then start over with a fresh file.
                let PersistFile { db, _lock, .. } = file;
                drop(db);
                recovery = Some(move_aside(&path, &e.to_string()).map_err(io)?);
                file = PersistFile {
                    db: create_fresh(&path)?,
                    path: path.clone(),
                    boot,
                    sequence: 0,
                    indexes: BTreeMap::new(),
                    _lock,
                };
                file.write_identity().map_err(|e| OpenError::Create {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                None
            }
        };
        Ok(Opened {
            file,
            loaded,
            recovery,
        })
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's size on disk, bytes.
    pub fn file_size(&self) -> u64 {
        fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// The file-wide sequence number of the last commit.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Reads and verifies everything; `None` for a file without metadata (fresh).
    fn load(&mut self) -> Result<Option<LoadedSnapshot>, PersistError> {
        let read = self.db.begin_read()?;
        let meta = match read.open_table(META) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => {
                drop(read);
                self.write_identity()?;
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let get = |key: &[u8]| -> Result<Option<Vec<u8>>, PersistError> {
            Ok(meta.get(key)?.map(|v| v.value().to_vec()))
        };
        let schema: u32 = match get(KEY_SCHEMA)? {
            Some(bytes) => decode_meta(&bytes)?,
            None => {
                return Err(PersistError::Damaged {
                    store: "meta",
                    reason: "no schema version".into(),
                });
            }
        };
        if schema != SCHEMA_VERSION {
            return Err(PersistError::Schema {
                found: schema,
                expected: SCHEMA_VERSION,
            });
        }
        let boot: Option<BootIdentity> = get(KEY_BOOT)?.map(|b| decode_meta(&b)).transpose()?;
        let sequence: u64 = get(KEY_SEQUENCE)?
            .map(|b| decode_meta(&b))
            .transpose()?
            .unwrap_or(0);
        let same_boot = boot
            .as_ref()
            .is_some_and(|b| b.boot_id == self.boot.boot_id && !b.boot_id.is_empty());
        let mut stores = BTreeMap::new();
        for store in STORES {
            let store_meta: Option<StoreMeta> = get(&meta_key(store))?
                .map(|b| decode_meta(&b))
                .transpose()?;
            let (_, def) = store_def(store)?;
            let records = read_table(&read, store, def, store_meta.as_ref())?;
            let Some(store_meta) = store_meta else {
                continue;
            };
            if store == store_names::PROCESS && !same_boot {
                continue;
            }
            self.indexes.insert(
                store,
                KeyIndex::of(records.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))),
            );
            stores.insert(
                store,
                LoadedStore {
                    meta: store_meta,
                    records,
                },
            );
        }
        drop(meta);
        drop(read);
        self.sequence = sequence;
        if !same_boot {
            // Process records of another boot can never be restored: drop them now, so a crash
            // before the next process snapshot cannot bring them back as this boot's.
            self.drop_store(store_names::PROCESS)?;
        }
        self.write_identity()?;
        Ok(Some(LoadedSnapshot {
            boot,
            same_boot,
            sequence,
            stores,
        }))
    }

    /// Writes the schema version and this boot's identity (one commit).
    fn write_identity(&mut self) -> Result<(), PersistError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(KEY_SCHEMA, encode_meta(&SCHEMA_VERSION)?.as_slice())?;
            meta.insert(KEY_BOOT, encode_meta(&self.boot)?.as_slice())?;
            meta.insert(KEY_SEQUENCE, encode_meta(&self.sequence)?.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    fn drop_store(&mut self, store: &'static str) -> Result<(), PersistError> {
        let (_, def) = store_def(store)?;
        self.indexes.remove(store);
        let txn = self.db.begin_write()?;
        txn.delete_table(def)?;
        {
            let mut meta = txn.open_table(META)?;
            meta.remove(meta_key(store).as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Applies one snapshot of `store` in one write transaction: never half of it. Keeps the
    /// store's metadata (items, bytes, checksum) exact in the same transaction.
    ///
    /// # Errors
    /// When redb refuses; nothing of this snapshot is then in the file.
    pub fn write_store(
        &mut self,
        store: &str,
        write: &StoreWrite,
        durability: WriteDurability,
    ) -> Result<StoreMeta, PersistError> {
        let (store, def) = store_def(store)?;
        let started = Instant::now();
        let mut txn = self.db.begin_write()?;
        txn.set_durability(match durability {
            WriteDurability::Immediate => Durability::Immediate,
            WriteDurability::Eventual => Durability::None,
        })?;
        let key = meta_key(store);
        let mut meta: StoreMeta = {
            let table = txn.open_table(META)?;
            let bytes = table.get(key.as_slice())?.map(|v| v.value().to_vec());
            bytes
                .map(|b| decode_meta(&b))
                .transpose()?
                .unwrap_or_default()
        };
        let index = self.indexes.entry(store).or_default();
        // Changed-only writes without ranges become one delta value, unless the deltas have
        // grown past their share: then, like full writes and range deletes, the store is
        // rewritten as pages (a fold).
        let mut staged = None;
        if !write.full && write.delete_ranges.is_empty() {
            let s = index.stage(write, meta.items, meta.bytes);
            let size = s.ops.iter().map(|op| op_size(op)).sum::<usize>();
            if s.ops.is_empty() || !needs_fold(&meta, size) {
                if !s.ops.is_empty() {
                    let mut table = txn.open_table(def)?;
                    let (checksum, bytes) =
                        table::append_delta(&mut table, store, meta.deltas, &s.ops)?;
                    meta.deltas += 1;
                    meta.delta_bytes += bytes;
                    meta.checksum = meta.checksum.wrapping_add(checksum);
                }
                (meta.items, meta.bytes, meta.written, meta.deleted) =
                    (s.items, s.bytes, s.written, s.deleted);
                staged = Some(s);
            }
        }
        let mut rewritten = None;
        if staged.is_none() {
            let current = if write.full {
                Vec::new()
            } else {
                table::read_store(store, &meta, &txn.open_table(def)?)?
            };
            let (records, written, deleted) = table::apply(&current, write);
            let out = table::write_pages(&txn, def, store, &records)?;
            (meta.pages, meta.deltas, meta.delta_bytes, meta.checksum) =
                (out.pages, 0, 0, out.checksum);
            (meta.items, meta.bytes, meta.written, meta.deleted) =
                (out.items, out.bytes, written, deleted);
            rewritten = Some(KeyIndex::of(records.into_iter()));
        }
        let sequence = self.sequence + 1;
        meta.committed_at = now_ns();
        meta.sequence = sequence;
        meta.full = write.full;
        meta.write_micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        {
            let mut table = txn.open_table(META)?;
            table.insert(key.as_slice(), encode_meta(&meta)?.as_slice())?;
            table.insert(KEY_SEQUENCE, encode_meta(&sequence)?.as_slice())?;
            table.insert(KEY_BOOT, encode_meta(&self.boot)?.as_slice())?;
        }
        txn.commit()?;
        self.sequence = sequence;
        match (staged, rewritten) {
            (Some(s), _) => index.commit(s),
            (None, Some(i)) => *index = i,
            (None, None) => {}
        }
        meta.write_micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        Ok(meta)
    }

    /// Compacts the file when it is larger than `max_bytes` (rewriting grows a redb file until
    /// compaction gives the free pages back). Returns the sizes before and after, if it ran.
    ///
    /// # Errors
    /// When redb refuses to compact.
    pub fn compact_if_larger(
        &mut self,
        max_bytes: u64,
    ) -> Result<Option<(u64, u64)>, PersistError> {
        let before = self.file_size();
        if before <= max_bytes {
            return Ok(None);
        }
        self.db.compact()?;
        Ok(Some((before, self.file_size())))
    }

    /// Reads one store's committed records and verifies them (what a store rebuilt after a crash
    /// restores from). An empty store when it has no snapshot yet.
    ///
    /// # Errors
    /// When the records cannot be read or do not match their metadata.
    pub fn load_store(&self, store: &'static str) -> Result<LoadedStore, PersistError> {
        let (store, def) = store_def(store)?;
        let read = self.db.begin_read()?;
        let meta = match read.open_table(META) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(LoadedStore::default()),
            Err(e) => return Err(e.into()),
        };
        let Some(bytes) = meta
            .get(meta_key(store).as_slice())?
            .map(|v| v.value().to_vec())
        else {
            return Ok(LoadedStore::default());
        };
        let store_meta: StoreMeta = decode_meta(&bytes)?;
        let records = read_table(&read, store, def, Some(&store_meta))?;
        Ok(LoadedStore {
            meta: store_meta,
            records,
        })
    }

    /// Reads back every store's records and verifies them against their metadata (for tests and
    /// `watchpost query persistence --verify`).
    ///
    /// # Errors
    /// When a record or its metadata does not match.
    pub fn verify_all(&self) -> Result<BTreeMap<&'static str, StoreMeta>, PersistError> {
        let read = self.db.begin_read()?;
        let meta = read.open_table(META)?;
        let mut out = BTreeMap::new();
        for store in STORES {
            let Some(bytes) = meta
                .get(meta_key(store).as_slice())?
                .map(|v| v.value().to_vec())
            else {
                continue;
            };
            let store_meta: StoreMeta = decode_meta(&bytes)?;
            let (_, def) = store_def(store)?;
            read_table(&read, store, def, Some(&store_meta))?;
            out.insert(store, store_meta);
        }
        Ok(out)
    }
}

/// Reads and verifies `store`'s table against `meta`; a table without metadata must be empty.
fn read_table(
    read: &redb::ReadTransaction,
    store: &'static str,
    def: table::Def,
    meta: Option<&StoreMeta>,
) -> Result<Vec<Encoded>, PersistError> {
    let table = match read.open_table(def) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => {
            return match meta {
                Some(m) if m.items > 0 || m.pages > 0 || m.deltas > 0 => {
                    Err(PersistError::Damaged {
                        store,
                        reason: format!("its table is missing ({} records expected)", m.items),
                    })
                }
                _ => Ok(Vec::new()),
            };
        }
        Err(e) => return Err(e.into()),
    };
    table::read_store(store, meta.unwrap_or(&StoreMeta::default()), &table)
}

/// Bytes a delta op adds (about: lengths take a byte or two).
fn op_size(op: &crate::pages::DeltaOp<'_>) -> usize {
    match op {
        crate::pages::DeltaOp::Upsert(k, v) => k.len() + v.len() + 4,
        crate::pages::DeltaOp::Delete(k) => k.len() + 2,
    }
}

fn encode_meta<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, PersistError> {
    postcard::to_stdvec(value).map_err(|e| PersistError::Codec {
        store: "meta",
        reason: e.to_string(),
    })
}

fn decode_meta<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, PersistError> {
    postcard::from_bytes(bytes).map_err(|e| PersistError::Codec {
        store: "meta",
        reason: e.to_string(),
    })
}

fn create_fresh(path: &Path) -> Result<Database, OpenError> {
    Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(path)
        .map_err(|e| OpenError::Create {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Takes `dir/watchpost.lock` exclusively, or says who holds it.
fn lock_dir(dir: &Path) -> Result<File, OpenError> {
    let path = dir.join(LOCK_NAME);
    let io = |source| OpenError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0).map_err(io)?;
            writeln!(file, "{}", std::process::id()).map_err(io)?;
            Ok(file)
        }
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
                .map_or_else(String::new, |pid| format!(" (pid {pid})"));
            Err(OpenError::DataDirInUse {
                dir: dir.to_path_buf(),
                holder,
            })
        }
        Err(fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

/// Renames `path` to `path.corrupt-<UTC timestamp>` (a suffix if taken), and returns where it
/// went and why.
pub fn move_aside(path: &Path, reason: &str) -> std::io::Result<Recovery> {
    let stamp = utc_stamp(SystemTime::now());
    let base = format!("{}.corrupt-{stamp}", path.display());
    let mut target = PathBuf::from(&base);
    let mut n = 1;
    while fs::symlink_metadata(&target).is_ok() {
        target = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    fs::rename(path, &target)?;
    Ok(Recovery {
        moved_to: target,
        reason: reason.to_owned(),
    })
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_764_300_000);
        assert_eq!(utc_stamp(t), "20251128T032000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc_stamp(leap), "20000229T000000Z");
    }
}
