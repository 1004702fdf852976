//! Read-only lookups: the store's reads from `&self`, for readers of a shared copy (the actors'
//! published read view). They answer what the counted reads answer and count nothing: the
//! caller counts by the rule of [`crate::metrics`] (found: hit; `NotFound`: miss; an address
//! that does not parse: error) and learns whether sources disagreed
//! ([`ReputationLookup::conflict`], which the counted reads add to `conflicts_resolved`).

use super::{IpReputationStore, ReputationView, STORE, SourceNames};
use crate::error::StoreError;
use crate::ip_reputation::IpInput;

/// The answer of [`IpReputationStore::find_reputation`].
#[derive(Debug, Clone, Copy)]
pub struct ReputationLookup<'a> {
    /// The merged verdict; `NotFound` when no source holds the address, `InvalidArgument` when
    /// it is not an address (errors name `operation`).
    pub answer: Result<ReputationView<'a>, StoreError>,
    /// Whether more than one source holds the address (the conflict policy picked the answer).
    pub conflict: bool,
}

impl IpReputationStore {
    /// Read-only [`get_reputation`](IpReputationStore::get_reputation) (and the lookup behind
    /// `is_denied`, `is_allowed`, `check_ips`): the merged verdict on `ip`, counted nowhere;
    /// errors carry `operation`.
    pub fn find_reputation<Q: IpInput + ?Sized>(
        &self,
        ip: &Q,
        operation: &'static str,
    ) -> ReputationLookup<'_> {
        let Ok(ip) = ip.to_ip() else {
            return ReputationLookup {
                answer: Err(StoreError::invalid_argument(STORE, operation)),
                conflict: false,
            };
        };
        let table = &self.table;
        let (best, holders) = table.merged(ip);
        ReputationLookup {
            answer: best
                .map(|entry| ReputationView { table, entry })
                .ok_or(StoreError::not_found(STORE, operation)),
            conflict: holders > 1,
        }
    }

    /// Read-only [`list_sources`](IpReputationStore::list_sources): names of the sources holding
    /// data, in byte order, counted nowhere.
    pub fn sources(&self) -> SourceNames<'_> {
        SourceNames {
            table: &self.table,
            ids: self.table.by_name.iter(),
        }
    }
}
