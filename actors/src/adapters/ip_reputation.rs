//! The core [`IpReputationStore`] as a [`WritableStore`]: requests become calls on the store,
//! borrowed views become owned [`Verdict`]s inside the actor. The store keeps its own rules
//! (source names, all-or-nothing batches, reject when full, deterministic conflict policy).

use watchpost_core::ip_reputation::{IpReputationConfig, IpReputationStore, ReputationView};
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo};

use crate::seed::random_seed;
use crate::stores::ip_reputation::{
    IpReputationAnswer, IpReputationRead, IpReputationWrite, IpReputationWritten, Verdict,
};
use crate::supervision::{BuildContext, BuildError};
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

impl WritableStore for IpReputationStore {
    type Read = IpReputationRead;
    type ReadReply = IpReputationAnswer;
    type Write = IpReputationWrite;
    type WriteReply = Result<IpReputationWritten, watchpost_core::writable::WriteError>;
    const DESCRIPTION: &'static str =
        "IP reputation: verdicts written by feeds and detectors, merged per address";

    fn read(&mut self, request: IpReputationRead, now: EpochNanos) -> IpReputationAnswer {
        match request {
            IpReputationRead::GetReputation(ip) => IpReputationAnswer::Verdict(Box::new(
                self.get_reputation(&ip, now).map(|v| to_verdict(&v)),
            )),
            IpReputationRead::IsDenied(ip) => IpReputationAnswer::Flag(self.is_denied(&ip, now)),
            IpReputationRead::IsAllowed(ip) => IpReputationAnswer::Flag(self.is_allowed(&ip, now)),
            IpReputationRead::CheckIps(ips) => IpReputationAnswer::Verdicts(
                self.check_ips(&ips, now)
                    .map(|(_, answer)| answer.map(|v| to_verdict(&v)))
                    .collect(),
            ),
            IpReputationRead::ListSources => {
                IpReputationAnswer::Sources(self.list_sources(now).map(str::to_owned).collect())
            }
        }
    }

    fn write(&mut self, request: IpReputationWrite, now: EpochNanos) -> Self::WriteReply {
        match request {
            IpReputationWrite::Write { source, record } => {
                IpReputationStore::write(self, &source, &record, now)
                    .map(|()| IpReputationWritten::Written)
            }
            IpReputationWrite::WriteBatch { source, records } => {
                IpReputationStore::write_batch(self, &source, &records, now)
                    .map(|()| IpReputationWritten::BatchWritten(records.len()))
            }
            IpReputationWrite::Delete { source, ip } => {
                IpReputationStore::delete(self, &source, &ip, now).map(IpReputationWritten::Deleted)
            }
            IpReputationWrite::Clear { source } => {
                IpReputationStore::clear(self, &source, now).map(IpReputationWritten::Cleared)
            }
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
}
