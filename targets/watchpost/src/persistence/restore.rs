//! Store factories that restore: at registration from what the file held at start, after a crash
//! from the store's last committed snapshot (the `BuildContext` seam). The process tree is then
//! reconciled with `/proc` by exact key: processes that ended while nobody watched are marked
//! exited, with their exit time flagged unknown.

use std::collections::HashSet;
use std::sync::Arc;

use watchpost_actors::seed::random_seed;
use watchpost_actors::{BuildContext, BuildError, clock};
use watchpost_core::container::{ContainerRecord, ContainerTable, ContainerTableConfig};
use watchpost_core::dns::{DnsCache, DnsCacheConfig, DnsRecord};
use watchpost_core::error::store_names;
use watchpost_core::ip_reputation::{IpReputationConfig, IpReputationStore, ReputationRecord};
use watchpost_core::process::{ProcessKey, ProcessRecord, ProcessTable, ProcessTableConfig};
use watchpost_persist::codec;

use super::Persistence;
use crate::procfs::ProcReader;

/// The exact keys of the processes running now (zombies count as ended).
pub fn running_keys(reader: &ProcReader) -> HashSet<ProcessKey> {
    let Ok(pids) = reader.pids() else {
        return HashSet::new();
    };
    pids.into_iter()
        .filter_map(|pid| {
            let stat = reader.stat(pid).ok()?;
            (stat.state != b'Z' && stat.state != b'X')
                .then_some(ProcessKey::new(pid, stat.start_time))
        })
        .collect()
}

/// The process store's factory.
pub fn process_factory(
    persistence: Arc<Persistence>,
    config: ProcessTableConfig,
    reader: ProcReader,
) -> impl Fn(&BuildContext) -> Result<ProcessTable, BuildError> + Send + Sync + 'static {
    move |ctx| {
        let mut table = ProcessTable::new(ProcessTableConfig {
            hash_seed: random_seed(),
            ..config
        });
        let Some(entries) = persistence.records_for(store_names::PROCESS, ctx.attempt) else {
            return Ok(table);
        };
        let mut records: Vec<ProcessRecord<'_>> = entries
            .iter()
            .filter_map(|(_, v)| codec::decode_process(v).ok())
            .collect();
        let undecodable = entries.len() - records.len();
        records.sort_by_key(ProcessRecord::restore_order);
        let now = clock::now();
        let report = table.restore(records, now);
        let running = running_keys(&reader);
        let exited = table.mark_exited_while_away(now, |k| running.contains(&k));
        persistence.note_restore(
            store_names::PROCESS,
            report.held as u64,
            (report.evicted + report.rejected + undecodable) as u64,
            report.rejected + undecodable > 0,
        );
        persistence.note_exited_while_down(exited as u64);
        tracing::info!(
            restored = report.held,
            dropped = report.evicted + report.rejected + undecodable,
            exited_while_down = exited,
            attempt = ctx.attempt,
            "process tree restored from the snapshot file and reconciled with /proc"
        );
        Ok(table)
    }
}

/// The DNS store's factory.
pub fn dns_factory(
    persistence: Arc<Persistence>,
    config: DnsCacheConfig,
) -> impl Fn(&BuildContext) -> Result<DnsCache, BuildError> + Send + Sync + 'static {
    move |ctx| {
        let mut cache = DnsCache::new(DnsCacheConfig {
            hash_seed: random_seed(),
            ..config
        });
        let Some(entries) = persistence.records_for(store_names::DNS, ctx.attempt) else {
            return Ok(cache);
        };
        let mut records: Vec<DnsRecord<'_>> = entries
            .iter()
            .filter_map(|(_, v)| codec::decode_dns(v).ok())
            .collect();
        let undecodable = entries.len() - records.len();
        records.sort_by_key(DnsRecord::restore_order);
        let report = cache.restore(records, clock::now());
        persistence.note_restore(
            store_names::DNS,
            report.links as u64,
            (report.evicted + report.rejected + undecodable) as u64,
            false,
        );
        tracing::info!(
            names = report.names,
            records = report.links,
            expired = report.expired,
            "DNS answers restored from the snapshot file"
        );
        Ok(cache)
    }
}

/// The container store's factory.
pub fn container_factory(
    persistence: Arc<Persistence>,
    config: ContainerTableConfig,
) -> impl Fn(&BuildContext) -> Result<ContainerTable, BuildError> + Send + Sync + 'static {
    move |ctx| {
        let mut table = ContainerTable::new(ContainerTableConfig {
            hash_seed: random_seed(),
            ..config
        });
        let Some(entries) = persistence.records_for(store_names::CONTAINER, ctx.attempt) else {
            return Ok(table);
        };
        let mut records: Vec<ContainerRecord> = entries
            .iter()
            .filter_map(|(_, v)| codec::decode_container(v).ok())
            .collect();
        let undecodable = entries.len() - records.len();
        records.sort_by_key(ContainerRecord::restore_order);
        let report = table.restore(records, clock::now());
        persistence.note_restore(
            store_names::CONTAINER,
            report.held as u64,
            (report.evicted + report.rejected + undecodable) as u64,
            false,
        );
        Ok(table)
    }
}

/// The IP reputation store's factory.
pub fn reputation_factory(
    persistence: Arc<Persistence>,
    config: IpReputationConfig,
    priorities: Vec<(String, i32)>,
) -> impl Fn(&BuildContext) -> Result<IpReputationStore, BuildError> + Send + Sync + 'static {
    move |ctx| {
        let priorities: Vec<(&str, i32)> =
            priorities.iter().map(|(n, p)| (n.as_str(), *p)).collect();
        let mut store = IpReputationStore::new(
            IpReputationConfig {
                seed: random_seed(),
                ..config
            },
            &priorities,
        )
        .map_err(|e| BuildError::new(ctx.store, e.to_string()))?;
        let Some(entries) = persistence.records_for(store_names::IP_REPUTATION, ctx.attempt) else {
            return Ok(store);
        };
        let records: Vec<ReputationRecord<'_>> = entries
            .iter()
            .filter_map(|(_, v)| codec::decode_reputation(v).ok())
            .collect();
        let undecodable = entries.len() - records.len();
        let report = store.restore(records, clock::now());
        persistence.note_restore(
            store_names::IP_REPUTATION,
            report.held as u64,
            (report.refused + undecodable) as u64,
            report.refused + undecodable > 0,
        );
        tracing::info!(
            entries = report.held,
            refused = report.refused,
            "IP reputation restored from the snapshot file"
        );
        Ok(store)
    }
}
