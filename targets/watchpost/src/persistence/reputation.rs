//! The IP reputation store's write path, written through: a batch the store accepted is in the
//! snapshot file before the caller is told so (with `persist.reputation_durability =
//! "immediate"`, on disk: a verdict accepted is a verdict kept, even across a power cut).
//!
//! [`ReputationWriter`] is the one write path: the socket commands use it, and so should any
//! other feed (it is cheap to share behind an `Arc`). Writes are serialized with each other and
//! with snapshots, so the file receives them in the order the store applied them.

use std::sync::Arc;

use watchpost_actors::StoreError;
use watchpost_actors::stores::ip_reputation::{IpQuery, IpReputationOwner, ReputationWriteError};
use watchpost_core::ip_reputation::{
    IpInput, IpReputation, IpReputationStore, ReputationRecord, normalize_ip,
};
use watchpost_persist::StoreWrite;
use watchpost_persist::codec;

use super::Persistence;
use super::snapshot::REPUTATION_STORE;

/// Why a reputation write was not (fully) done.
#[derive(Debug, thiserror::Error)]
pub enum ReputationFailure {
    /// The store refused it or did not answer: nothing changed.
    #[error("{0}")]
    Store(#[from] ReputationWriteError),
    /// The store applied it but the snapshot file did not take it: it holds until the next
    /// snapshot succeeds, and would be lost by a crash before that.
    #[error("applied but not persisted: {0}")]
    NotPersisted(String),
}

/// The owner's write path of the IP reputation store, with write-through to the file.
#[derive(Debug)]
pub struct ReputationWriter {
    owner: IpReputationOwner,
    persistence: Arc<Persistence>,
}

impl ReputationWriter {
    /// The write path over `owner` (the registrant's handle) and `persistence`.
    pub fn new(owner: IpReputationOwner, persistence: Arc<Persistence>) -> Self {
        ReputationWriter { owner, persistence }
    }

    /// The owner's handle (reads, and writes that need no persistence).
    pub fn owner(&self) -> &IpReputationOwner {
        &self.owner
    }

    /// Writes all of `records` for `source`, or none (the store's all-or-nothing rule), then the
    /// accepted records to the file. Returns how many were written.
    pub async fn write_batch(
        &self,
        source: &str,
        records: Vec<IpReputation>,
    ) -> Result<usize, ReputationFailure> {
        let mut state = self.persistence.writer.lock().await;
        let encoded: Vec<_> = records
            .iter()
            .filter_map(|r| {
                let mut reputation = r.clone();
                reputation.ip = normalize_ip(reputation.ip);
                codec::encode_reputation(&ReputationRecord { source, reputation }).ok()
            })
            .collect();
        let n = records.len();
        self.owner.write_batch(source, records).await?;
        self.persist(
            &mut state,
            StoreWrite {
                upserts: encoded,
                ..StoreWrite::default()
            },
        )
        .await?;
        Ok(n)
    }

    /// Applies a feed message of `source` whole or not at all (the store's
    /// [`apply_feed`](IpReputationOwner::apply_feed)): with `replace`, everything `source` said
    /// before is forgotten first; `remove` lists addresses it no longer judges. Then the same
    /// change goes to the file. Answers (entries removed, records written).
    pub async fn apply_feed(
        &self,
        source: &str,
        replace: bool,
        records: Vec<IpReputation>,
        remove: Vec<std::net::IpAddr>,
    ) -> Result<(usize, usize), ReputationFailure> {
        let mut state = self.persistence.writer.lock().await;
        let upserts: Vec<_> = records
            .iter()
            .filter_map(|r| {
                let mut reputation = r.clone();
                reputation.ip = normalize_ip(reputation.ip);
                codec::encode_reputation(&ReputationRecord { source, reputation }).ok()
            })
            .collect();
        let deletes = remove
            .iter()
            .map(|ip| codec::reputation_key(source, *ip))
            .collect();
        let delete_ranges = if replace {
            vec![codec::reputation_source_range(source)]
        } else {
            Vec::new()
        };
        let done = self
            .owner
            .apply_feed(source, replace, records, remove)
            .await?;
        self.persist(
            &mut state,
            StoreWrite {
                upserts,
                deletes,
                delete_ranges,
                ..StoreWrite::default()
            },
        )
        .await?;
        Ok(done)
    }

    /// Forgets what `source` said about `ip`; whether there was something.
    pub async fn delete(&self, source: &str, ip: &str) -> Result<bool, ReputationFailure> {
        let mut state = self.persistence.writer.lock().await;
        let found = self.owner.delete(source, IpQuery::from(ip)).await?;
        if found && let Ok(addr) = ip.to_ip() {
            self.persist(
                &mut state,
                StoreWrite {
                    deletes: vec![codec::reputation_key(source, addr)],
                    ..StoreWrite::default()
                },
            )
            .await?;
        }
        Ok(found)
    }

    /// Forgets everything `source` said; how many entries.
    pub async fn clear(&self, source: &str) -> Result<usize, ReputationFailure> {
        let mut state = self.persistence.writer.lock().await;
        let n = self.owner.clear(source).await?;
        if n > 0 {
            self.persist(
                &mut state,
                StoreWrite {
                    delete_ranges: vec![codec::reputation_source_range(source)],
                    ..StoreWrite::default()
                },
            )
            .await?;
        }
        Ok(n)
    }

    async fn persist(
        &self,
        state: &mut super::WriterState,
        write: StoreWrite,
    ) -> Result<(), ReputationFailure> {
        if !self.persistence.enabled() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let durability = self.persistence.reputation_durability();
        match self
            .persistence
            .write(REPUTATION_STORE, write, durability, started)
            .await
        {
            Ok(_) => {
                // The file now equals the store: the periodic snapshot need not rewrite it.
                let changes: Result<u64, StoreError> = self
                    .owner
                    .inspect("snapshot", |s: &mut IpReputationStore| s.changes())
                    .await;
                if let Ok(c) = changes {
                    state.last_changes.insert(REPUTATION_STORE, c);
                }
                Ok(())
            }
            Err(e) => {
                state.force_full.insert(REPUTATION_STORE);
                Err(ReputationFailure::NotPersisted(e))
            }
        }
    }
}
