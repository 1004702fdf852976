//! The core [`ContainerTable`] behind the actors' container store: converts the actors' owned
//! updates and filters to the core's borrowed ones, and the core's records to owned replies.
//!
//! (The actors crate has adapters for the other core stores; this one lives here until it has
//! one for the container table too.)
//!
//! An `Upsert` carrying only what a cgroup path tells (ID, runtime, perhaps a pod UID; no name,
//! image, digest or start time) is a discovery and goes to [`ContainerTable::observe`], which
//! never overwrites what a runtime's API filled in. Anything richer goes to
//! [`ContainerTable::upsert`], with empty strings meaning "not known" (left as stored).

use watchpost_actors::stores::container::{
    ContainerBackend, ContainerFilter, ContainerInfo, ContainerUpdate, PodInfo,
};
use watchpost_core::cgroup::CgroupContainer;
use watchpost_core::container::{
    self as core_container, ContainerId, ContainerTable, ContainerTableConfig, K8sPodUpdate,
    PodUid, Runtime,
};
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo, StoreError};

/// The container table as a container store backend.
pub struct CoreContainers {
    table: ContainerTable,
}

impl std::fmt::Debug for CoreContainers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreContainers")
            .field("len", &self.table.len())
            .field("capacity", &self.table.capacity())
            .finish()
    }
}

impl CoreContainers {
    /// An empty table of `config`'s size.
    pub fn new(config: ContainerTableConfig) -> Self {
        CoreContainers {
            table: ContainerTable::new(config),
        }
    }

    /// The table.
    pub fn table(&self) -> &ContainerTable {
        &self.table
    }
}

/// The owned reply for a core record.
pub fn to_owned_info(info: &core_container::ContainerInfo) -> ContainerInfo {
    ContainerInfo {
        id: info.id.as_str().to_owned(),
        name: info.name.as_str().to_owned(),
        image: info.image.as_str().to_owned(),
        image_digest: info.image_digest.as_str().to_owned(),
        runtime: info.runtime.as_str().to_owned(),
        start_time: info.start_time,
        pod: info.pod.as_ref().map(|p| PodInfo {
            name: p.name.as_str().to_owned(),
            uid: p.uid.as_str().to_owned(),
            namespace: p.namespace.as_str().to_owned(),
            sandbox: p.sandbox,
        }),
    }
}

/// Whether `info` says no more than a cgroup path can.
fn is_discovery(info: &ContainerInfo) -> bool {
    info.name.is_empty()
        && info.image.is_empty()
        && info.image_digest.is_empty()
        && info.start_time == 0
        && info
            .pod
            .as_ref()
            .is_none_or(|p| p.name.is_empty() && p.namespace.is_empty() && !p.sandbox)
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

impl CoreContainers {
    fn observe(&mut self, info: &ContainerInfo, now: EpochNanos) -> bool {
        let Ok(id) = ContainerId::new(&info.id) else {
            return false;
        };
        let found = CgroupContainer {
            runtime: Runtime::from_name(&info.runtime).unwrap_or(Runtime::Unknown),
            id,
            pod_uid: info.pod.as_ref().and_then(|p| PodUid::new(&p.uid)),
            is_container_root: true,
        };
        self.table.observe(&found, now).is_ok()
    }

    fn upsert(&mut self, info: &ContainerInfo, now: EpochNanos) -> bool {
        let mut update = core_container::ContainerUpdate::new(&info.id);
        update.runtime = Runtime::from_name(&info.runtime).filter(|r| *r != Runtime::Unknown);
        update.name = non_empty(&info.name);
        update.image = non_empty(&info.image);
        update.image_digest = non_empty(&info.image_digest);
        update.start_time = (info.start_time != 0).then_some(info.start_time);
        update.pod = info.pod.as_ref().map(|p| K8sPodUpdate {
            name: &p.name,
            uid: &p.uid,
            namespace: &p.namespace,
            sandbox: p.sandbox,
        });
        self.table.upsert(&update, now).is_ok()
    }
}

impl ContainerBackend for CoreContainers {
    fn get_container(&mut self, id: &str, now: EpochNanos) -> Result<ContainerInfo, StoreError> {
        self.table.get_container(id, now).map(to_owned_info)
    }

    fn get_container_by_name(
        &mut self,
        name: &str,
        now: EpochNanos,
    ) -> Result<ContainerInfo, StoreError> {
        self.table
            .get_container_by_name(name, now)
            .map(to_owned_info)
    }

    fn list_containers(
        &mut self,
        filter: &ContainerFilter,
        now: EpochNanos,
    ) -> Result<Vec<ContainerInfo>, StoreError> {
        let runtime = match filter.runtime.as_deref() {
            None => None,
            Some(name) => match Runtime::from_name(name) {
                Some(r) => Some(r),
                // No container has a runtime by that name: an empty list, counted as a request.
                None => {
                    let _ = self
                        .table
                        .list_containers(&core_container::ContainerFilter::all(), now)
                        .count();
                    return Ok(Vec::new());
                }
            },
        };
        let core_filter = core_container::ContainerFilter {
            name: filter.name.as_deref(),
            image: filter.image.as_deref(),
            runtime,
        };
        Ok(self
            .table
            .list_containers(&core_filter, now)
            .map(to_owned_info)
            .collect())
    }

    fn apply(&mut self, update: ContainerUpdate, now: EpochNanos) -> bool {
        match update {
            ContainerUpdate::Upsert(info) if is_discovery(&info) => self.observe(&info, now),
            ContainerUpdate::Upsert(info) => self.upsert(&info, now),
            ContainerUpdate::Remove { id, removed_at } => {
                let at = if removed_at == 0 {
                    now
                } else {
                    removed_at.min(now)
                };
                self.table.mark_removed(&id, at).unwrap_or(false)
            }
        }
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        self.table.health(now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        self.table.metrics()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const NOW: EpochNanos = 1_700_000_000_000_000_000;

    fn discovered(id: &str) -> ContainerInfo {
        ContainerInfo {
            id: id.to_owned(),
            runtime: "docker".into(),
            ..Default::default()
        }
    }

    #[test]
    fn discovery_never_overwrites_enrichment() {
        let mut c = CoreContainers::new(ContainerTableConfig::default());
        assert!(c.apply(ContainerUpdate::Upsert(discovered(ID)), NOW));
        let enriched = ContainerInfo {
            name: "web".into(),
            image: "nginx:1".into(),
            ..discovered(ID)
        };
        assert!(c.apply(ContainerUpdate::Upsert(enriched), NOW + 1));
        assert!(c.apply(ContainerUpdate::Upsert(discovered(ID)), NOW + 2));
        let got = c.get_container(&ID[..12], NOW + 3).unwrap();
        assert_eq!(
            (got.name.as_str(), got.image.as_str(), got.runtime.as_str()),
            ("web", "nginx:1", "docker")
        );
        assert_eq!(c.get_container_by_name("web", NOW + 3).unwrap().id, ID);
    }

    #[test]
    fn filters_and_removal() {
        let mut c = CoreContainers::new(ContainerTableConfig::default());
        let other = ID.replace('0', "f");
        c.apply(ContainerUpdate::Upsert(discovered(ID)), NOW);
        c.apply(
            ContainerUpdate::Upsert(ContainerInfo {
                runtime: "podman".into(),
                ..discovered(&other)
            }),
            NOW,
        );
        let all = c.list_containers(&ContainerFilter::all(), NOW).unwrap();
        assert_eq!(all.len(), 2);
        let podman = c
            .list_containers(&ContainerFilter::all().with_runtime("podman"), NOW)
            .unwrap();
        assert_eq!(podman.len(), 1);
        assert_eq!(podman[0].id, other);
        assert!(
            c.list_containers(&ContainerFilter::all().with_runtime("lxc"), NOW)
                .unwrap()
                .is_empty()
        );
        assert!(c.apply(
            ContainerUpdate::Remove {
                id: other.clone(),
                removed_at: NOW
            },
            NOW
        ));
        // Removed: no longer listed, still gettable during the grace.
        assert_eq!(
            c.list_containers(&ContainerFilter::all(), NOW)
                .unwrap()
                .len(),
            1
        );
        assert!(c.get_container(&other, NOW + 1).is_ok());
        assert!(!c.apply(ContainerUpdate::Upsert(discovered("not an id!")), NOW));
    }
}
