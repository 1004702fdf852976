//! The core [`IpReputationStore`] as a [`WritableStore`]: writes become calls on the store (in its
//! actor), reads its read-only lookups (in the reader's task), borrowed views owned [`Verdict`]s
//! when the caller wants a copy. The store keeps its own rules
//! (source names, all-or-nothing batches, reject when full, deterministic conflict policy).

use watchpost_core::ip_reputation::{
    IpInput, IpReputationConfig, IpReputationStore, ReputationStatus, ReputationView, normalize_ip,
};
use watchpost_core::writable::{Rejection, WriteError};
use watchpost_core::{DataStoreMetrics, EpochNanos, ErrorKind, HealthInfo, StoreError};

use crate::seed::random_seed;
use crate::stores::ip_reputation::{
    IpReputationAnswer, IpReputationRead, IpReputationWrite, IpReputationWritten, Verdict,
};
use crate::supervision::{BuildContext, BuildError};
use crate::view::Reads;
use crate::writable::WritableStore;

/// The owned copy of a verdict.
pub fn to_verdict(view: &ReputationView<'_>) -> Verdict {
    Verdict {
        source: view.source().to_owned(),
        priority: view.priority(),
        record: view.to_record(),
    }
}

/// A factory for the IP reputation store: sized and with the policy of `config`, source
/// priorities `priorities`, and a fresh random hash seed on every build (the seed in `config` is
/// ignored). A rebuild after a crash starts empty: the owner (or a persistence layer wrapping
/// this factory) writes its data again.
pub fn ip_reputation_factory(
    config: IpReputationConfig,
    priorities: Vec<(String, i32)>,
) -> impl Fn(&BuildContext) -> Result<IpReputationStore, BuildError> + Send + Sync + 'static {
    move |ctx| {
        let priorities: Vec<(&str, i32)> =
            priorities.iter().map(|(n, p)| (n.as_str(), *p)).collect();
        IpReputationStore::new(
            IpReputationConfig {
                seed: random_seed(),
                ..config
            },
            &priorities,
        )
        .map_err(|e| {
            BuildError::new(
                ctx.store,
                format!("{e}: sizes out of range, or a priority source name invalid or repeated"),
            )
        })
    }
}

/// [`IpReputationWrite::ApplyFeed`]: everything or nothing. What `source` holds is copied first;
/// the message is checked for repeated addresses across all its records (each chunk is checked by
/// the store itself); then removals and chunked batch writes are applied, and if the store refuses
/// a chunk, `source` is cleared and its copy written back, so the store is as before.
fn apply_feed(
    store: &mut IpReputationStore,
    source: &str,
    replace: bool,
    records: &[watchpost_core::ip_reputation::IpReputation],
    remove: &[std::net::IpAddr],
    now: EpochNanos,
) -> Result<IpReputationWritten, WriteError> {
    const OP: &str = "apply_feed";
    let store_name = watchpost_core::error::store_names::IP_REPUTATION;
    let mut seen = std::collections::HashSet::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        if !seen.insert(normalize_ip(r.ip)) {
            return Err(WriteError::new(
                store_name,
                OP,
                Rejection::DuplicateKey,
                Some(i),
            ));
        }
    }
    let before: Vec<_> = store
        .entries()
        .filter(|v| v.source() == source)
        .map(|v| v.to_record())
        .collect();
    let chunk = store.max_batch().max(1);
    let mut removed = 0usize;
    let applied = (|| {
        if replace {
            removed += IpReputationStore::clear(store, source, now)?;
        } else {
            for ip in remove {
                removed += usize::from(IpReputationStore::delete(store, source, ip, now)?);
            }
        }
        for part in records.chunks(chunk) {
            IpReputationStore::write_batch(store, source, part, now)?;
        }
        Ok::<(), WriteError>(())
    })();
    match applied {
        Ok(()) => Ok(IpReputationWritten::FeedApplied {
            removed,
            written: records.len(),
        }),
        Err(e) => {
            // Back to what the source held: it fitted before, and nothing else changed since.
            let _ = IpReputationStore::clear(store, source, now);
            for part in before.chunks(chunk) {
                if IpReputationStore::write_batch(store, source, part, now).is_err() {
                    tracing::error!(
                        source,
                        "apply_feed: restoring the source's previous records failed"
                    );
                }
            }
            Err(e)
        }
    }
}

impl WritableStore for IpReputationStore {
    type Read = IpReputationRead;
    type ReadReply = IpReputationAnswer;
    type Write = IpReputationWrite;
    type WriteReply = Result<IpReputationWritten, watchpost_core::writable::WriteError>;
    const DESCRIPTION: &'static str =
        "IP reputation: verdicts written by feeds and detectors, merged per address";

    fn read(&self, request: IpReputationRead, reads: &mut Reads<'_>) -> IpReputationAnswer {
        match request {
            IpReputationRead::GetReputation(ip) => IpReputationAnswer::Verdict(Box::new(
                verdict(self, reads, &ip, "get_reputation").map(|v| to_verdict(&v)),
            )),
            IpReputationRead::IsDenied(ip) => IpReputationAnswer::Flag(has_status(
                self,
                reads,
                &ip,
                ReputationStatus::Deny,
                "is_denied",
            )),
            IpReputationRead::IsAllowed(ip) => IpReputationAnswer::Flag(has_status(
                self,
                reads,
                &ip,
                ReputationStatus::Allow,
                "is_allowed",
            )),
            IpReputationRead::CheckIps(ips) => IpReputationAnswer::Verdicts(
                ips.iter()
                    .map(|ip| verdict(self, reads, ip, "check_ips").map(|v| to_verdict(&v)))
                    .collect(),
            ),
            IpReputationRead::ListSources => {
                reads.success();
                IpReputationAnswer::Sources(self.sources().map(str::to_owned).collect())
            }
        }
    }

    fn write(&mut self, request: &IpReputationWrite, now: EpochNanos) -> Self::WriteReply {
        match request {
            IpReputationWrite::Write { source, record } => {
                IpReputationStore::write(self, source, record, now)
                    .map(|()| IpReputationWritten::Written)
            }
            IpReputationWrite::WriteBatch { source, records } => {
                IpReputationStore::write_batch(self, source, records, now)
                    .map(|()| IpReputationWritten::BatchWritten(records.len()))
            }
            IpReputationWrite::Delete { source, ip } => {
                IpReputationStore::delete(self, source, ip, now).map(IpReputationWritten::Deleted)
            }
            IpReputationWrite::Clear { source } => {
                IpReputationStore::clear(self, source, now).map(IpReputationWritten::Cleared)
            }
            IpReputationWrite::ApplyFeed {
                source,
                replace,
                records,
                remove,
            } => apply_feed(self, source, *replace, records, remove, now),
        }
    }

    fn accepted(reply: &Self::WriteReply) -> bool {
        reply.is_ok()
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        IpReputationStore::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        IpReputationStore::metrics(self)
    }

    fn bytes_reserved(&self) -> usize {
        IpReputationStore::bytes_reserved(self)
    }
}

/// Which store-specific read counter counts lookups where sources disagreed.
pub(crate) const CONFLICTS_RESOLVED: usize = 0;

/// The merged verdict on `ip`, counted in `reads` (hit, miss, or error for a bad address; a
/// conflict between sources in the store-specific counter).
pub fn verdict<'s, Q: IpInput + ?Sized>(
    store: &'s IpReputationStore,
    reads: &mut Reads<'_>,
    ip: &Q,
    operation: &'static str,
) -> Result<ReputationView<'s>, StoreError> {
    let found = store.find_reputation(ip, operation);
    if found.conflict {
        reads.extra(CONFLICTS_RESOLVED);
    }
    reads.count(&found.answer);
    found.answer
}

/// Whether the merged verdict on `ip` is `status` (`false` if no source holds it), counted.
pub fn has_status<Q: IpInput + ?Sized>(
    store: &IpReputationStore,
    reads: &mut Reads<'_>,
    ip: &Q,
    status: ReputationStatus,
    operation: &'static str,
) -> Result<bool, StoreError> {
    match verdict(store, reads, ip, operation) {
        Ok(v) => Ok(v.status() == status),
        Err(e) if e.is(ErrorKind::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}
