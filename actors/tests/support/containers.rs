//! A minimal container table for tests, behind the container store's backend trait, until the
//! core container table lands (it then replaces this in the tests).

#![allow(dead_code)]

use std::collections::BTreeMap;

use watchpost_actors::stores::container::{
    ContainerBackend, ContainerFilter, ContainerInfo, ContainerUpdate,
};
use watchpost_core::metrics::StoreMetrics;
use watchpost_core::{DataStoreMetrics, EpochNanos, ErrorKind, HealthInfo, StoreError};

#[derive(Debug, Default)]
pub struct TestContainers {
    by_id: BTreeMap<String, ContainerInfo>,
    metrics: StoreMetrics,
}

impl ContainerBackend for TestContainers {
    fn get_container(&mut self, id: &str, now: EpochNanos) -> Result<ContainerInfo, StoreError> {
        let mut found = self
            .by_id
            .range(id.to_owned()..)
            .take_while(|(k, _)| k.starts_with(id));
        let first = found.next().map(|(_, c)| c.clone());
        if found.next().is_some() {
            self.metrics.error(now);
            return Err(StoreError::new(
                "container",
                "get_container",
                ErrorKind::InvalidArgument,
            ));
        }
        self.metrics.lookup(first.is_some(), now);
        first.ok_or(StoreError::not_found("container", "get_container"))
    }

    fn get_container_by_name(
        &mut self,
        name: &str,
        now: EpochNanos,
    ) -> Result<ContainerInfo, StoreError> {
        let found = self.by_id.values().find(|c| c.name == name).cloned();
        self.metrics.lookup(found.is_some(), now);
        found.ok_or(StoreError::not_found("container", "get_container_by_name"))
    }

    fn list_containers(
        &mut self,
        filter: &ContainerFilter,
        now: EpochNanos,
    ) -> Result<Vec<ContainerInfo>, StoreError> {
        self.metrics.success(now);
        Ok(self
            .by_id
            .values()
            .filter(|c| filter.matches(c))
            .cloned()
            .collect())
    }

    fn apply(&mut self, update: ContainerUpdate, _now: EpochNanos) -> bool {
        match update {
            ContainerUpdate::Upsert(c) => {
                self.by_id.insert(c.id.clone(), c);
                true
            }
            ContainerUpdate::Remove { id, .. } => self.by_id.remove(&id).is_some(),
        }
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        HealthInfo::healthy(now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        self.metrics.snapshot(self.by_id.len())
    }
}
