//! The core [`ContainerTable`] as a [`ContainerBackend`]: owned updates become the core's
//! borrowed [`CoreUpdate`]s (validated there: an over-long field or a malformed ID is refused
//! and counted, never cut); reads are the core's read-only lookups; [`to_info`] makes the owned
//! [`ContainerInfo`] of a borrowed record.
//!
//! Removed containers past their grace are purged after every intake message (and on
//! [`ContainerUpdate::PurgeExpired`]); queries never see them either way, purging only frees
//! their slots and keeps `item_count` honest.

use watchpost_core::container::{
    self as core_container, ContainerTable, ContainerTableConfig, ContainerTableStats,
    ContainerUpdate as CoreUpdate, K8sPodUpdate, Runtime,
};
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo, StoreError};

use crate::seed::random_seed;
use crate::stores::container::{
    ContainerBackend, ContainerEnrichment, ContainerFilter, ContainerInfo, ContainerUpdate, PodInfo,
};
use crate::supervision::{BuildContext, BuildError};

/// The owned copy of a core container record.
pub fn to_info(info: &core_container::ContainerInfo) -> ContainerInfo {
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

/// A factory for the container store: a [`ContainerTable`] sized by `config`, with a fresh
/// random hash seed on every build (the seed in `config` is ignored).
pub fn container_table_factory(
    config: ContainerTableConfig,
) -> impl Fn(&BuildContext) -> Result<ContainerTable, BuildError> + Send + Sync + 'static {
    move |_| {
        Ok(ContainerTable::new(ContainerTableConfig {
            hash_seed: random_seed(),
            ..config
        }))
    }
}

/// The runtime named `name`; the empty name is `unknown` (a record that never had one).
fn runtime_named(name: &str) -> Option<Runtime> {
    if name.is_empty() {
        Some(Runtime::Unknown)
    } else {
        Runtime::from_name(name)
    }
}

fn pod_update(pod: &PodInfo) -> K8sPodUpdate<'_> {
    K8sPodUpdate {
        name: &pod.name,
        uid: &pod.uid,
        namespace: &pod.namespace,
        sandbox: pod.sandbox,
    }
}

/// Every field of `info`, replacing what is stored (no pod clears the stored pod).
fn full_update(info: &ContainerInfo) -> Option<CoreUpdate<'_>> {
    let mut update = CoreUpdate::new(&info.id)
        .runtime(runtime_named(&info.runtime)?)
        .name(&info.name)
        .image(&info.image)
        .image_digest(&info.image_digest)
        .start_time(info.start_time);
    update.pod = Some(info.pod.as_ref().map(pod_update).unwrap_or_default());
    Some(update)
}

/// Only the fields `e` knows.
fn partial_update(e: &ContainerEnrichment) -> Option<CoreUpdate<'_>> {
    let runtime = match e.runtime.as_deref() {
        Some(name) => Some(runtime_named(name)?),
        None => None,
    };
    Some(CoreUpdate {
        id: &e.id,
        runtime,
        name: e.name.as_deref(),
        image: e.image.as_deref(),
        image_digest: e.image_digest.as_deref(),
        start_time: e.start_time,
        pod: e.pod.as_ref().map(pod_update),
    })
}

impl ContainerBackend for ContainerTable {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn find_container(
        &self,
        id: &str,
        now: EpochNanos,
    ) -> Result<&core_container::ContainerInfo, StoreError> {
        ContainerTable::find_container(self, id, now)
    }

    fn find_container_by_name(
        &self,
        name: &str,
        now: EpochNanos,
    ) -> Result<&core_container::ContainerInfo, StoreError> {
        ContainerTable::find_container_by_name(self, name, now)
    }

    fn for_each_container(
        &self,
        filter: &ContainerFilter,
        f: &mut dyn FnMut(&core_container::ContainerInfo),
    ) {
        // A runtime name no container can have matches nothing.
        let runtime = filter.runtime.as_deref().map(Runtime::from_name);
        if matches!(runtime, Some(None)) {
            return;
        }
        let core_filter = core_container::ContainerFilter {
            name: filter.name.as_deref(),
            image: filter.image.as_deref(),
            runtime: runtime.flatten(),
        };
        self.containers(&core_filter).for_each(f);
    }

    fn apply(&mut self, update: &ContainerUpdate, now: EpochNanos) -> bool {
        match update {
            ContainerUpdate::Upsert(info) => match full_update(info) {
                Some(u) => self.upsert(&u, now).is_ok(),
                None => false,
            },
            ContainerUpdate::Enrich(e) => match partial_update(e) {
                Some(u) => self.upsert(&u, now).is_ok(),
                None => false,
            },
            ContainerUpdate::Observe(found) => self.observe(found, now).is_ok(),
            ContainerUpdate::Remove { id, removed_at } => {
                let at = if *removed_at == 0 {
                    now
                } else {
                    (*removed_at).min(now)
                };
                // Unknown or already removed is not a refusal: removal is idempotent.
                self.mark_removed(id, at).is_ok()
            }
            ContainerUpdate::PurgeExpired => {
                self.purge_expired(now);
                true
            }
        }
    }

    fn after_apply(&mut self, now: EpochNanos) {
        self.purge_expired(now);
    }

    fn stats(&self) -> Option<ContainerTableStats> {
        Some(ContainerTable::stats(self))
    }

    fn bytes_reserved(&self) -> usize {
        ContainerTable::bytes_reserved(self)
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        ContainerTable::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        ContainerTable::metrics(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn table() -> ContainerTable {
        ContainerTable::new(ContainerTableConfig {
            capacity: 8,
            ..Default::default()
        })
    }

    #[test]
    fn upsert_replaces_every_field_and_enrich_only_the_given_ones() {
        let mut t = table();
        let full = ContainerInfo {
            id: ID.into(),
            name: "web".into(),
            image: "nginx:1".into(),
            runtime: "docker".into(),
            start_time: 5,
            pod: Some(PodInfo {
                name: "p".into(),
                uid: "u".into(),
                namespace: "ns".into(),
                sandbox: false,
            }),
            ..Default::default()
        };
        assert!(t.apply(&ContainerUpdate::Upsert(full.clone()), 10));
        assert_eq!(t.find_container(ID, 10).map(to_info), Ok(full));
        assert!(t.apply(
            &ContainerUpdate::Enrich(ContainerEnrichment::new(ID).image("nginx:2")),
            11
        ));
        let got = to_info(t.find_container(ID, 11).unwrap());
        assert_eq!((got.name.as_str(), got.image.as_str()), ("web", "nginx:2"));
        assert!(got.pod.is_some());
        let bare = ContainerInfo {
            id: ID.into(),
            ..Default::default()
        };
        assert!(t.apply(&ContainerUpdate::Upsert(bare), 12));
        let got = to_info(t.find_container(ID, 12).unwrap());
        assert_eq!((got.name.as_str(), got.runtime.as_str()), ("", "unknown"));
        assert_eq!(got.pod, None);
    }

    #[test]
    fn unknown_runtime_names_and_bad_ids_are_refused_and_counted() {
        let mut t = table();
        let bad_runtime = ContainerInfo {
            id: ID.into(),
            runtime: "Docker".into(),
            ..Default::default()
        };
        assert!(!t.apply(&ContainerUpdate::Upsert(bad_runtime), 1));
        assert!(!t.apply(
            &ContainerUpdate::Enrich(ContainerEnrichment::new("bad id").name("x")),
            1
        ));
        assert!(!t.apply(
            &ContainerUpdate::Enrich(ContainerEnrichment::new(ID).name("x".repeat(129))),
            1
        ));
        assert_eq!(t.len(), 0);
        assert_eq!(
            ContainerTable::stats(&t).rejected,
            2,
            "bad ID and over-long name"
        );
    }

    #[test]
    fn deleted_cgroup_lines_are_not_observed() {
        let v2 = format!("0::/system.slice/docker-{ID}.scope\n");
        let Some(ContainerUpdate::Observe(found)) = ContainerUpdate::observe_proc_cgroup(&v2)
        else {
            panic!("a docker scope is a container")
        };
        assert_eq!(found.id.as_str(), ID);
        assert_eq!(found.runtime, Runtime::Docker);
        let deleted = format!("0::/system.slice/docker-{ID}.scope (deleted)\n");
        assert_eq!(ContainerUpdate::observe_proc_cgroup(&deleted), None);
        let v1_then_v2 = format!("12:cpu:/docker/{ID}\n0::/init.scope\n");
        assert!(matches!(
            ContainerUpdate::observe_proc_cgroup(&v1_then_v2),
            Some(ContainerUpdate::Observe(c)) if c.id.as_str() == ID
        ));
        assert_eq!(
            ContainerUpdate::observe_proc_cgroup("0::/user.slice\n"),
            None
        );
    }
}
