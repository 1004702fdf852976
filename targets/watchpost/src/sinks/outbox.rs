//! The crash-safe outbox between the detectors and the MQTT broker: a redb file of its own
//! (`<data_dir>/outbox.redb`, apart from the persistence file), one table of records keyed by a
//! sequence number that only grows.
//!
//! # Invariants
//! 1. A record is appended in a write transaction committed with `Durability::Immediate` before
//!    [`Outbox::append`] returns: once the pipeline is told "accepted", a `kill -9` or a power
//!    cut cannot lose it.
//! 2. Keys grow with every append and survive restarts (`meta.next_key`), so reading in key order
//!    is delivery order, after a restart too.
//! 3. The outbox never holds more than `max_records`: an append that would pass the bound first
//!    removes the oldest records in the same transaction and adds them to `meta.dropped`
//!    (persisted, shown in health and metrics).
//! 4. A record is removed only after the broker acknowledged it ([`Outbox::remove`]). Removals
//!    are committed without fsync (`Durability::None`) and made durable by the next append or by
//!    [`Outbox::sync`]: a crash can only bring acknowledged records back (sent twice), never lose
//!    one. Delivery is therefore at-least-once; records carry an `id` to dedupe by.
//!
//! Memory: redb's page cache is capped at [`CACHE_BYTES`]; readers take at most a batch at a time.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};

/// Records, by key.
const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
/// `next_key`, `dropped`.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// redb page cache.
pub const CACHE_BYTES: usize = 4 << 20;
/// Largest record kept; larger ones are refused (counted), never stored.
pub const MAX_RECORD_BYTES: usize = 256 << 10;

/// Why the outbox failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// Opening or creating the file.
    #[error("opening the outbox {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: redb::DatabaseError,
    },
    /// A transaction failed.
    #[error("outbox {operation}: {message}")]
    Storage {
        /// What was being done.
        operation: &'static str,
        /// What redb said.
        message: String,
    },
}

fn storage(operation: &'static str) -> impl Fn(redb::Error) -> OutboxError {
    move |e| OutboxError::Storage {
        operation,
        message: e.to_string(),
    }
}

fn err<E: Into<redb::Error>>(operation: &'static str) -> impl Fn(E) -> OutboxError {
    move |e| storage(operation)(e.into())
}

/// What an append did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    /// Records stored.
    pub stored: u64,
    /// Oldest records dropped to make room.
    pub dropped: u64,
    /// Records refused for size.
    pub oversize: u64,
}

/// Counters and levels, for health and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Records held now.
    pub records: u64,
    /// The bound.
    pub max_records: u64,
    /// Records appended since start.
    pub appended: u64,
    /// Records removed after acknowledgement since start.
    pub acknowledged: u64,
    /// Oldest records dropped because the outbox was full, ever (persisted).
    pub dropped: u64,
    /// Records refused for size since start.
    pub oversize: u64,
    /// Bytes of the file.
    pub file_bytes: u64,
}

/// The outbox; see the module docs.
pub struct Outbox {
    db: Database,
    path: PathBuf,
    max_records: u64,
    /// The next key and how many records are held, changed only inside write transactions.
    state: Mutex<State>,
    appended: AtomicU64,
    acknowledged: AtomicU64,
    oversize: AtomicU64,
    notify: tokio::sync::Notify,
}

#[derive(Debug, Clone, Copy)]
struct State {
    next_key: u64,
    records: u64,
    dropped: u64,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("path", &self.path)
            .field("max_records", &self.max_records)
            .finish()
    }
}

impl Outbox {
    /// Opens (or creates) the outbox at `path`, holding at most `max_records`. A file that
    /// another process holds open is an error (redb's lock).
    pub fn open(path: &Path, max_records: u64) -> Result<Outbox, OutboxError> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|source| OutboxError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let mut tx = db.begin_write().map_err(err("open"))?;
        tx.set_quick_repair(true);
        let state = {
            let records = tx.open_table(RECORDS).map_err(err("open"))?;
            let meta = tx.open_table(META).map_err(err("open"))?;
            let held = records.len().map_err(err("open"))?;
            let last = records.last().map_err(err("open"))?.map(|(k, _)| k.value());
            let stored_next = meta
                .get("next_key")
                .map_err(err("open"))?
                .map(|v| v.value());
            let next_key = stored_next
                .unwrap_or(1)
                .max(last.map_or(1, |k| k.saturating_add(1)));
            let dropped = meta
                .get("dropped")
                .map_err(err("open"))?
                .map_or(0, |v| v.value());
            State {
                next_key,
                records: held,
                dropped,
            }
        };
        tx.commit().map_err(err("open"))?;
        let outbox = Outbox {
            db,
            path: path.to_path_buf(),
            max_records: max_records.max(1),
            state: Mutex::new(state),
            appended: AtomicU64::new(0),
            acknowledged: AtomicU64::new(0),
            oversize: AtomicU64::new(0),
            notify: tokio::sync::Notify::new(),
        };
        // A smaller bound than the file holds: trim now, counted as drops.
        if state.records > outbox.max_records {
            outbox.append::<&[u8]>(&[])?;
        }
        Ok(outbox)
    }

    /// Appends `records` in order, durably (invariant 1), dropping the oldest to stay within
    /// the bound (invariant 3). Blocks for one fsync: call it from a blocking context.
    pub fn append<R: AsRef<[u8]>>(&self, records: &[R]) -> Result<Appended, OutboxError> {
        let mut outcome = Appended::default();
        let fitting: Vec<&[u8]> = records
            .iter()
            .map(AsRef::as_ref)
            .filter(|r| {
                let fits = r.len() <= MAX_RECORD_BYTES;
                if !fits {
                    outcome.oversize += 1;
                }
                fits
            })
            .collect();
        // Only the newest `max_records` of one huge batch can ever be kept.
        let skip = (fitting.len() as u64).saturating_sub(self.max_records);
        let mut state = self.state.lock().map_err(|_| OutboxError::Storage {
            operation: "append",
            message: "state lock poisoned".to_owned(),
        })?;
        let mut next = *state;
        let mut tx = self.db.begin_write().map_err(err("append"))?;
        tx.set_durability(Durability::Immediate)
            .map_err(|e| OutboxError::Storage {
                operation: "append",
                message: e.to_string(),
            })?;
        tx.set_quick_repair(true);
        {
            let mut table = tx.open_table(RECORDS).map_err(err("append"))?;
            let kept = fitting.len() as u64 - skip;
            let excess = (next.records + kept).saturating_sub(self.max_records);
            for _ in 0..excess {
                if table.pop_first().map_err(err("append"))?.is_none() {
                    break;
                }
                next.records -= 1;
                outcome.dropped += 1;
            }
            outcome.dropped += skip;
            next.next_key += skip;
            for record in fitting.iter().skip(skip as usize) {
                table
                    .insert(next.next_key, *record)
                    .map_err(err("append"))?;
                next.next_key += 1;
                next.records += 1;
                outcome.stored += 1;
            }
            next.dropped += outcome.dropped;
            let mut meta = tx.open_table(META).map_err(err("append"))?;
            meta.insert("next_key", next.next_key)
                .map_err(err("append"))?;
            meta.insert("dropped", next.dropped)
                .map_err(err("append"))?;
        }
        tx.commit().map_err(err("append"))?;
        *state = next;
        drop(state);
        self.appended.fetch_add(outcome.stored, Ordering::Relaxed);
        self.oversize.fetch_add(outcome.oversize, Ordering::Relaxed);
        if outcome.stored > 0 {
            self.notify.notify_one();
        }
        Ok(outcome)
    }

    /// Up to `max` records with keys above `after` (all when `None`), in key order.
    pub fn read_after(
        &self,
        after: Option<u64>,
        max: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, OutboxError> {
        let tx = self.db.begin_read().map_err(err("read"))?;
        let table = tx.open_table(RECORDS).map_err(err("read"))?;
        let start = after.map_or(0, |k| k.saturating_add(1));
        let mut out = Vec::with_capacity(max.min(1024));
        for entry in table.range(start..).map_err(err("read"))?.take(max) {
            let (k, v) = entry.map_err(err("read"))?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Removes acknowledged records (invariant 4); `durable` fsyncs the removal too.
    pub fn remove(&self, keys: &[u64], durable: bool) -> Result<(), OutboxError> {
        if keys.is_empty() && !durable {
            return Ok(());
        }
        let mut state = self.state.lock().map_err(|_| OutboxError::Storage {
            operation: "remove",
            message: "state lock poisoned".to_owned(),
        })?;
        let mut tx = self.db.begin_write().map_err(err("remove"))?;
        tx.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })
        .map_err(|e| OutboxError::Storage {
            operation: "remove",
            message: e.to_string(),
        })?;
        tx.set_quick_repair(true);
        let mut removed = 0u64;
        {
            let mut table = tx.open_table(RECORDS).map_err(err("remove"))?;
            for key in keys {
                if table.remove(key).map_err(err("remove"))?.is_some() {
                    removed += 1;
                }
            }
        }
        tx.commit().map_err(err("remove"))?;
        state.records = state.records.saturating_sub(removed);
        self.acknowledged.fetch_add(removed, Ordering::Relaxed);
        Ok(())
    }

    /// Makes earlier removals durable.
    pub fn sync(&self) -> Result<(), OutboxError> {
        self.remove(&[], true)
    }

    /// Waits until an append stores something (or returns at once if one did since the last
    /// wait).
    pub async fn appended_signal(&self) {
        self.notify.notified().await;
    }

    /// Counters and levels now.
    pub fn stats(&self) -> OutboxStats {
        let state = self.state.lock().map(|s| *s).unwrap_or(State {
            next_key: 0,
            records: 0,
            dropped: 0,
        });
        OutboxStats {
            records: state.records,
            max_records: self.max_records,
            appended: self.appended.load(Ordering::Relaxed),
            acknowledged: self.acknowledged.load(Ordering::Relaxed),
            dropped: state.dropped,
            oversize: self.oversize.load(Ordering::Relaxed),
            file_bytes: std::fs::metadata(&self.path).map_or(0, |m| m.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wp-outbox-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("outbox.redb")
    }

    #[test]
    fn appends_in_order_and_survives_reopen() {
        let path = temp("order");
        {
            let o = Outbox::open(&path, 100).unwrap();
            o.append(&[b"a".as_slice(), b"b"]).unwrap();
            o.append(&[b"c".as_slice()]).unwrap();
            let got = o.read_after(None, 10).unwrap();
            assert_eq!(
                got.iter().map(|(_, v)| v.as_slice()).collect::<Vec<_>>(),
                [b"a", b"b", b"c"]
            );
            o.remove(&[got[0].0], false).unwrap();
        }
        let o = Outbox::open(&path, 100).unwrap();
        o.append(&[b"d".as_slice()]).unwrap();
        let got = o.read_after(None, 10).unwrap();
        let keys: Vec<u64> = got.iter().map(|(k, _)| *k).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        let values: Vec<&[u8]> = got.iter().map(|(_, v)| v.as_slice()).collect();
        // The removal was not durable and the process did not crash: it was kept by the clean
        // drop? No: a non-durable commit is persisted by the next durable one (the append).
        assert_eq!(values.last(), Some(&b"d".as_slice()));
        assert!(!values.contains(&b"a".as_slice()));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn full_outbox_drops_the_oldest_and_counts() {
        let path = temp("full");
        let o = Outbox::open(&path, 3).unwrap();
        for r in [b"1", b"2", b"3", b"4", b"5"] {
            o.append(&[r.as_slice()]).unwrap();
        }
        let got: Vec<Vec<u8>> = o
            .read_after(None, 10)
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(got, [b"3".to_vec(), b"4".to_vec(), b"5".to_vec()]);
        let s = o.stats();
        assert_eq!((s.records, s.dropped, s.appended), (3, 2, 5));
        let big = vec![0u8; MAX_RECORD_BYTES + 1];
        let a = o.append(&[big]).unwrap();
        assert_eq!((a.stored, a.oversize), (0, 1));
        // One batch larger than the bound keeps its newest records.
        let a = o.append(&[b"6".as_slice(), b"7", b"8", b"9"]).unwrap();
        assert_eq!((a.stored, a.dropped), (3, 4));
        let got: Vec<Vec<u8>> = o
            .read_after(None, 10)
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(got, [b"7".to_vec(), b"8".to_vec(), b"9".to_vec()]);
        drop(o);
        let o = Outbox::open(&path, 3).unwrap();
        assert_eq!(o.stats().dropped, 6);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
