//! The container store: owned container and pod records, filters, updates, the backend trait and
//! the handle's queries (`registry.containers().get_container(id)`), answered from the store's
//! published read view.

use serde::{Deserialize, Serialize};
use watchpost_core::cgroup::{CgroupContainer, cgroup_lines, parse_cgroup_path};
use watchpost_core::container::{ContainerInfo as CoreContainer, ContainerTableStats};
use watchpost_core::{DataStoreMetrics, EpochNanos, ErrorKind, HealthInfo, StoreError};

use crate::adapters::container::to_info;
use crate::handle::StoreHandle;
use crate::protocol::{IntoCopies, Protocol, StoreBackend};

/// Kubernetes pod of a container (the reference's `K8sPodInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PodInfo {
    /// Pod name.
    pub name: String,
    /// Pod UID.
    pub uid: String,
    /// Pod namespace.
    pub namespace: String,
    /// Whether this container is the pod's sandbox.
    pub sandbox: bool,
}

/// One container, owned (the reference's `ContainerInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// Full container ID (64 hex digits for Docker-style runtimes).
    pub id: String,
    /// Name (empty until enriched).
    pub name: String,
    /// Image (empty until enriched).
    pub image: String,
    /// Image digest.
    pub image_digest: String,
    /// Runtime: `docker`, `containerd`, `crio`, `podman`.
    pub runtime: String,
    /// Start time, epoch ns (0: unknown).
    pub start_time: EpochNanos,
    /// Pod, for Kubernetes containers.
    pub pod: Option<PodInfo>,
}

/// Exact-match filter for `list_containers`; unset fields do not filter (AND of the set ones).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerFilter {
    /// Container name.
    pub name: Option<String>,
    /// Image name.
    pub image: Option<String>,
    /// Runtime.
    pub runtime: Option<String>,
}

impl ContainerFilter {
    /// No filtering.
    pub fn all() -> Self {
        Self::default()
    }
    /// Also require this name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Also require this image.
    pub fn with_image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }
    /// Also require this runtime.
    pub fn with_runtime(mut self, runtime: impl Into<String>) -> Self {
        self.runtime = Some(runtime.into());
        self
    }
    /// Whether `c` passes.
    pub fn matches(&self, c: &ContainerInfo) -> bool {
        self.name.as_ref().is_none_or(|n| *n == c.name)
            && self.image.as_ref().is_none_or(|i| *i == c.image)
            && self.runtime.as_ref().is_none_or(|r| *r == c.runtime)
    }
}

/// What a runtime's API says about a container, field by field: `None` keeps what the store
/// holds, `Some` replaces it (so enrichment from a second source never erases the first's).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerEnrichment {
    /// Full container ID.
    pub id: String,
    /// Runtime name (`docker`, `containerd`, `crio`, `podman`, `garden`, `unknown`).
    pub runtime: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Image.
    pub image: Option<String>,
    /// Image digest.
    pub image_digest: Option<String>,
    /// Start time, epoch ns.
    pub start_time: Option<EpochNanos>,
    /// Pod; a pod with neither name nor UID clears the stored one.
    pub pod: Option<PodInfo>,
}

impl ContainerEnrichment {
    /// Nothing known yet about container `id`.
    pub fn new(id: impl Into<String>) -> Self {
        ContainerEnrichment {
            id: id.into(),
            ..Default::default()
        }
    }
    /// With the runtime.
    pub fn runtime(mut self, runtime: impl Into<String>) -> Self {
        self.runtime = Some(runtime.into());
        self
    }
    /// With the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// With the image.
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }
    /// With the image digest.
    pub fn image_digest(mut self, digest: impl Into<String>) -> Self {
        self.image_digest = Some(digest.into());
        self
    }
    /// With the start time.
    pub fn start_time(mut self, start_time: EpochNanos) -> Self {
        self.start_time = Some(start_time);
        self
    }
    /// With the pod.
    pub fn pod(mut self, pod: PodInfo) -> Self {
        self.pod = Some(pod);
        self
    }
}

/// What collectors feed the container store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerUpdate {
    /// A container's full record, e.g. from a runtime listing at start-up: every field replaces
    /// what the store held (an empty runtime means `unknown`; an unknown runtime name is refused).
    Upsert(ContainerInfo),
    /// A cgroup path named a container (see [`ContainerUpdate::observe_proc_cgroup`]): inserts it
    /// with its ID, runtime and pod UID, or fills in only what is still unknown on the stored
    /// record (discovery never overwrites enrichment). Revives a removed container still in its
    /// grace (a restarted container keeps its ID).
    Observe(CgroupContainer),
    /// A runtime described a container: the `Some` fields replace the stored ones.
    Enrich(ContainerEnrichment),
    /// The runtime reported the container gone at `removed_at` (epoch ns; 0: when the store
    /// applies it; a time in the future counts as now). It stays gettable by ID and name during
    /// the table's removal grace, but is no longer listed.
    Remove {
        /// Full container ID.
        id: String,
        /// When it went away.
        removed_at: EpochNanos,
    },
    /// Frees removed containers past their grace now (the store also does so after every
    /// intake message; this is for a timer when no other updates flow).
    PurgeExpired,
}

impl ContainerUpdate {
    /// The `Observe` update for the contents of a `/proc/<pid>/cgroup` file, if it places the
    /// process in a container: the unified (v2) line is preferred, then the first v1 line naming
    /// one. Lines the kernel marked ` (deleted)` are skipped: a process that outlived its cgroup
    /// belongs to a removed container, and observing it would revive that container.
    pub fn observe_proc_cgroup(contents: &str) -> Option<ContainerUpdate> {
        let mut first_v1 = None;
        for line in cgroup_lines(contents).flatten() {
            if line.deleted {
                continue;
            }
            let Some(found) = parse_cgroup_path(line.path) else {
                continue;
            };
            if line.is_unified() {
                return Some(ContainerUpdate::Observe(found));
            }
            first_v1.get_or_insert(found);
        }
        first_v1.map(ContainerUpdate::Observe)
    }
}

/// The container store protocol.
pub struct ContainerProtocol;

impl Protocol for ContainerProtocol {
    type Update = ContainerUpdate;
    type Applied = bool;
    type Backend = dyn ContainerBackend;

    fn accepted(applied: &bool) -> bool {
        *applied
    }
}

/// What a container table must do to run behind the container store: read-only lookups from
/// `&self` (answers borrow the published copy) and deterministic updates (applied to both
/// copies). Implemented for the core `ContainerTable` in [`crate::adapters`].
pub trait ContainerBackend: Send + Sync + 'static {
    /// By full ID or unique prefix (`NotFound`; a malformed query or an ambiguous or short
    /// prefix is `InvalidArgument`). Counts nothing.
    fn find_container(&self, id: &str, now: EpochNanos) -> Result<&CoreContainer, StoreError>;
    /// By name (`NotFound`; an empty or over-long name is `InvalidArgument`).
    fn find_container_by_name(
        &self,
        name: &str,
        now: EpochNanos,
    ) -> Result<&CoreContainer, StoreError>;
    /// Calls `f` on every live container passing `filter`, least recently written first.
    fn for_each_container(&self, filter: &ContainerFilter, f: &mut dyn FnMut(&CoreContainer));
    /// Applies one update; `false` if refused.
    fn apply(&mut self, update: &ContainerUpdate, now: EpochNanos) -> bool;
    /// Upkeep after each intake message (purging removed containers past their grace).
    /// Nothing by default.
    fn after_apply(&mut self, _now: EpochNanos) {}
    /// The table's own counters; `None` (answered `NotImplemented`) if it keeps none.
    fn stats(&self) -> Option<ContainerTableStats> {
        None
    }
    /// Bytes reserved.
    fn bytes_reserved(&self) -> usize {
        0
    }
    /// The store itself, to downcast to its concrete type (snapshots, inspection).
    fn as_any(&self) -> &dyn std::any::Any;
    /// The store itself, mutably.
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
    /// Health.
    fn health(&self, now: EpochNanos) -> HealthInfo;
    /// Metrics (writes; the view counts reads).
    fn metrics(&self) -> DataStoreMetrics;
}

impl<T: ContainerBackend + ?Sized> StoreBackend<ContainerProtocol> for T {
    fn apply_update(&mut self, update: &ContainerUpdate, now: EpochNanos) -> bool {
        self.apply(update, now)
    }

    fn after_apply(&mut self, now: EpochNanos) {
        ContainerBackend::after_apply(self, now)
    }

    fn bytes_reserved(&self) -> usize {
        ContainerBackend::bytes_reserved(self)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        ContainerBackend::as_any(self)
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        ContainerBackend::as_any_mut(self)
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        ContainerBackend::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        ContainerBackend::metrics(self)
    }
}

impl<T: ContainerBackend + Clone> IntoCopies<ContainerProtocol> for T {
    fn into_copies(self) -> [Box<dyn ContainerBackend>; 2] {
        [Box::new(self.clone()), Box::new(self)]
    }
}

/// Handle to the container store (`registry.containers()`).
pub type ContainerHandle = StoreHandle<ContainerProtocol>;

/// Queries answer from the store's published copy in the caller's task; `with_*` lend the
/// borrowed record to a closure (no copy). Each counts in the store's metrics.
impl StoreHandle<ContainerProtocol> {
    /// Runs `f` on the container with this full ID or unique ID prefix.
    pub fn with_container<R>(
        &self,
        id_or_prefix: &str,
        f: impl FnOnce(&CoreContainer) -> R,
    ) -> Result<R, StoreError> {
        self.read_view("get_container", |store, reads| {
            let found = store.find_container(id_or_prefix, reads.now());
            reads.count(&found);
            found.map(f)
        })?
    }

    /// The container with this full ID or unique ID prefix.
    pub async fn get_container(&self, id_or_prefix: &str) -> Result<ContainerInfo, StoreError> {
        self.with_container(id_or_prefix, to_info)
    }

    /// Many containers, one answer per ID in order, from one published copy.
    pub async fn get_containers(
        &self,
        ids: &[&str],
    ) -> Result<Vec<Result<ContainerInfo, StoreError>>, StoreError> {
        self.read_view("get_containers", |store, reads| {
            ids.iter()
                .map(|id| {
                    let found = store.find_container(id, reads.now());
                    reads.count(&found);
                    found.map(to_info)
                })
                .collect()
        })
    }

    /// The container named `name`.
    pub async fn get_container_by_name(&self, name: &str) -> Result<ContainerInfo, StoreError> {
        self.read_view("get_container_by_name", |store, reads| {
            let found = store.find_container_by_name(name, reads.now());
            reads.count(&found);
            found.map(to_info)
        })?
    }

    /// The table's own counters (evictions, removals, rejected updates); `NotImplemented` for a
    /// backend that keeps none. Not counted as a request in the metrics.
    pub async fn container_stats(&self) -> Result<ContainerTableStats, StoreError> {
        self.inspect_view(|store| store.stats())?
            .ok_or(StoreError::new(
                watchpost_core::error::store_names::CONTAINER,
                "get_stats",
                ErrorKind::NotImplemented,
            ))
    }

    /// Live containers passing `filter` (empty if none; never `NotFound`).
    pub async fn list_containers(
        &self,
        filter: ContainerFilter,
    ) -> Result<Vec<ContainerInfo>, StoreError> {
        self.read_view("list_containers", |store, reads| {
            reads.success();
            let mut out = Vec::new();
            store.for_each_container(&filter, &mut |c| out.push(to_info(c)));
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_is_an_and_of_the_set_fields() {
        let c = ContainerInfo {
            name: "web".into(),
            image: "nginx:1".into(),
            runtime: "docker".into(),
            ..Default::default()
        };
        assert!(ContainerFilter::all().matches(&c));
        assert!(
            ContainerFilter::all()
                .with_name("web")
                .with_runtime("docker")
                .matches(&c)
        );
        assert!(
            !ContainerFilter::all()
                .with_name("web")
                .with_image("redis")
                .matches(&c)
        );
    }
}
