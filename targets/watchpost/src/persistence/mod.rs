//! Restart safety in the daemon: the snapshot file opened at start (a second daemon on the same
//! data directory refuses to start; a bad file is moved aside and the daemon starts fresh,
//! `persist` degraded in health), stores restored by their factories before the collectors
//! attach ([`restore`]), snapshots taken periodically, on demand and at shutdown ([`snapshot`]),
//! reputation writes written through ([`reputation`]), and what `query persistence` shows
//! ([`status`]).
//!
//! The store actors never touch the file: records are copied out of them in bounded chunks
//! through [`watchpost_actors::StoreHandle::inspect`] and written to redb on a blocking thread.

pub mod reputation;
pub mod restore;
pub mod snapshot;
pub mod status;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use watchpost_core::system_info::SystemInfo;
use watchpost_persist::codec::Encoded;
use watchpost_persist::{
    BootIdentity, LoadedSnapshot, OpenError, Opened, PersistFile, StoreMeta, StoreWrite,
    WriteDurability,
};

use crate::config::Config;
pub use status::{PersistStatus, StorePersistStatus};

/// Test-only: the boot id the daemon believes in instead of the kernel's (simulates a reboot).
pub const TEST_BOOT_ID_ENV: &str = "WATCHPOST_TEST_BOOT_ID";

/// The running boot: the kernel's boot id (or [`TEST_BOOT_ID_ENV`] when set, for tests) and
/// `btime`.
pub fn boot_identity(system: &SystemInfo) -> BootIdentity {
    let boot_id = std::env::var(TEST_BOOT_ID_ENV)
        .ok()
        .filter(|v| !v.is_empty() && v.len() <= 64)
        .or_else(BootIdentity::read_boot_id)
        .unwrap_or_default();
    BootIdentity {
        boot_id,
        btime: system.boot_time / 1_000_000_000,
    }
}

/// Per-store bookkeeping of the writer (held across a snapshot: one at a time).
#[derive(Debug, Default)]
pub(crate) struct WriterState {
    /// The store's change counter at its last committed snapshot.
    pub(crate) last_changes: HashMap<&'static str, u64>,
    /// Stores whose next snapshot must rewrite everything (a failed write, a lossy restore).
    pub(crate) force_full: HashSet<&'static str>,
    /// Restarts of each store seen at its last snapshot (a rebuilt store is rewritten whole).
    pub(crate) restarts_seen: HashMap<&'static str, u64>,
}

/// The snapshot file and everything about it.
pub struct Persistence {
    file: Mutex<Option<PersistFile>>,
    /// What the file held at start, taken store by store by the factories.
    loaded: Mutex<Option<LoadedSnapshot>>,
    status: Mutex<PersistStatus>,
    pub(crate) writer: tokio::sync::Mutex<WriterState>,
    max_file_bytes: u64,
    chunk_records: usize,
    reputation_durability: WriteDurability,
}

impl std::fmt::Debug for Persistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persistence").finish_non_exhaustive()
    }
}

impl Persistence {
    /// Opens the data directory's snapshot file. Only a second daemon on the same directory is
    /// an error; any other problem leaves persistence off and `persist` degraded, with the reason
    /// logged once.
    pub fn open(config: &Config, boot: BootIdentity) -> Result<Arc<Persistence>, OpenError> {
        let p = &config.persist;
        let durability = match p.reputation_durability {
            crate::config::DurabilityChoice::Immediate => WriteDurability::Immediate,
            crate::config::DurabilityChoice::Eventual => WriteDurability::Eventual,
        };
        let make = |file: Option<PersistFile>, status: PersistStatus, loaded| {
            Arc::new(Persistence {
                file: Mutex::new(file),
                loaded: Mutex::new(loaded),
                status: Mutex::new(status),
                writer: tokio::sync::Mutex::new(WriterState::default()),
                max_file_bytes: p.max_file_bytes,
                chunk_records: p.chunk_records,
                reputation_durability: durability,
            })
        };
        let dir = &config.daemon.data_dir;
        let path = dir.join(watchpost_persist::file::FILE_NAME);
        let mut status = PersistStatus {
            path: path.display().to_string(),
            ..PersistStatus::default()
        };
        if !p.enabled {
            return Ok(make(None, status, None));
        }
        let started = Instant::now();
        match PersistFile::open(dir, boot) {
            Ok(Opened {
                file,
                loaded,
                recovery,
            }) => {
                status.enabled = true;
                if let Some(r) = recovery {
                    tracing::warn!(
                        "snapshot file {} was moved aside to {} because {}; starting fresh",
                        path.display(),
                        r.moved_to.display(),
                        r.reason
                    );
                    status.degraded = Some(format!(
                        "the snapshot file was moved aside to {} because {}; started fresh",
                        r.moved_to.display(),
                        r.reason
                    ));
                    status.moved_aside = Some(r.moved_to.display().to_string());
                }
                if let Some(l) = &loaded {
                    status.restored_same_boot = l.same_boot;
                    status.restored_sequence = l.sequence;
                }
                status.sequence = file.sequence();
                status.file_bytes = file.file_size();
                status.restore_us = started.elapsed().as_micros() as u64;
                Ok(make(Some(file), status, loaded))
            }
            Err(e @ OpenError::DataDirInUse { .. }) => Err(e),
            Err(e) => {
                tracing::warn!("snapshots are off: {e}");
                status.degraded = Some(format!("snapshots are off: {e}"));
                Ok(make(None, status, None))
            }
        }
    }

    /// Whether snapshots are written.
    pub fn enabled(&self) -> bool {
        self.file.lock().is_ok_and(|f| f.is_some())
    }

    /// Most records copied out of a store per actor message.
    pub fn chunk_records(&self) -> usize {
        self.chunk_records.max(1)
    }

    /// The records a store's factory restores: what the file held at start (`attempt` 0, taken
    /// once), or the store's last committed snapshot (a rebuild after a crash). `None`: nothing.
    pub fn records_for(&self, store: &'static str, attempt: u64) -> Option<Vec<Encoded>> {
        if attempt == 0 {
            let mut loaded = self.loaded.lock().ok()?;
            return loaded.as_mut()?.stores.remove(store).map(|s| s.records);
        }
        let file = self.file.lock().ok()?;
        match file.as_ref()?.load_store(store) {
            Ok(s) => Some(s.records),
            Err(e) => {
                tracing::warn!(store, "rebuilding without the last snapshot: {e}");
                None
            }
        }
    }

    /// Records a restore's outcome; `lossy` asks for a full rewrite at the next snapshot.
    pub fn note_restore(&self, store: &'static str, restored: u64, dropped: u64, lossy: bool) {
        if let Ok(mut s) = self.status.lock() {
            let entry = s.stores.entry(store.to_owned()).or_default();
            entry.restored = restored;
            entry.restore_dropped = dropped;
        }
        if (lossy || dropped > 0)
            && let Ok(mut w) = self.writer.try_lock()
        {
            w.force_full.insert(store);
        }
    }

    /// Records how many processes were found ended after a restore.
    pub fn note_exited_while_down(&self, n: u64) {
        if let Ok(mut s) = self.status.lock() {
            s.exited_while_down = s.exited_while_down.saturating_add(n);
        }
    }

    /// The status now.
    pub fn status(&self) -> PersistStatus {
        let mut s = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        if let Ok(f) = self.file.lock()
            && let Some(f) = f.as_ref()
        {
            s.file_bytes = f.file_size();
            s.sequence = f.sequence();
        }
        s
    }

    /// Writes one store's snapshot on a blocking thread (one write transaction), compacts the
    /// file past its bound, and records the outcome.
    pub(crate) async fn write(
        self: &Arc<Self>,
        store: &'static str,
        write: StoreWrite,
        durability: WriteDurability,
        started: Instant,
    ) -> Result<StoreMeta, String> {
        let this = self.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut guard = this
                .file
                .lock()
                .map_err(|_| "snapshot file lock poisoned")?;
            let file = guard.as_mut().ok_or("persistence is off")?;
            let meta = file
                .write_store(store, &write, durability)
                .map_err(|e| e.to_string())?;
            let compacted = file
                .compact_if_larger(this.max_file_bytes)
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((meta, compacted.is_some()))
        })
        .await
        .map_err(|e| format!("snapshot writer stopped: {e}"))
        .and_then(|r| r.map_err(|e| e.to_string()));
        let mut s = self.status.lock().map_err(|_| "status lock poisoned")?;
        match outcome {
            Ok((meta, compacted)) => {
                let entry = s.stores.entry(store.to_owned()).or_default();
                entry.last_snapshot_at = meta.committed_at;
                entry.last_duration_us = started.elapsed().as_micros() as u64;
                entry.records = meta.items;
                entry.bytes = meta.bytes;
                entry.last_written = meta.written;
                entry.last_deleted = meta.deleted;
                entry.last_full = meta.full;
                entry.snapshots += 1;
                if compacted {
                    s.compactions += 1;
                }
                Ok(meta)
            }
            Err(e) => {
                s.stores.entry(store.to_owned()).or_default().failures += 1;
                s.failures += 1;
                s.last_error = Some(format!("{store}: {e}"));
                tracing::warn!(store, "snapshot failed: {e}");
                Err(e)
            }
        }
    }

    /// The durability of reputation write-through.
    pub fn reputation_durability(&self) -> WriteDurability {
        self.reputation_durability
    }
}

/// Per-store figures for `query metrics` (flattened as `persist.<store>.<figure>`).
pub fn metrics_lines(status: &PersistStatus) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    out.insert("persist.file_bytes".into(), status.file_bytes);
    out.insert("persist.sequence".into(), status.sequence);
    out.insert("persist.failures".into(), status.failures);
    out.insert("persist.compactions".into(), status.compactions);
    for (store, s) in &status.stores {
        out.insert(format!("persist.{store}.records"), s.records);
        out.insert(format!("persist.{store}.bytes"), s.bytes);
        out.insert(
            format!("persist.{store}.last_snapshot_at"),
            s.last_snapshot_at,
        );
        out.insert(
            format!("persist.{store}.last_duration_us"),
            s.last_duration_us,
        );
        out.insert(format!("persist.{store}.snapshots"), s.snapshots);
        out.insert(format!("persist.{store}.failures"), s.failures);
        out.insert(format!("persist.{store}.restored"), s.restored);
    }
    out
}

/// Whether `path` looks like a moved-aside snapshot (for tests and operators).
pub fn is_moved_aside(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("watchpost.redb.corrupt-"))
}
