//! Containers and their Kubernetes pods: the types every part of watchpost shares (IDs, runtimes,
//! the reference's `ContainerInfo` / `K8sPodInfo`) and, with `alloc`, the bounded
//! `ContainerTable` behind the container store.
//!
//! Finding a process's container from its cgroup path is [`crate::cgroup`]'s job; this module
//! holds what is known about the containers found.
//!
//! - [`id`]: [`ContainerId`], validated and bounded.
//! - [`runtime`]: [`Runtime`] and its names.
//! - [`pod`]: [`K8sPodInfo`] and the pod UID of kubelet cgroup paths.
//! - [`info`]: [`ContainerInfo`] and the borrowed [`ContainerUpdate`] that fills it in.
//! - `table` (feature `alloc`): `ContainerTable`.

pub mod id;
pub mod info;
pub mod pod;
pub mod record;
pub mod runtime;
#[cfg(feature = "alloc")]
pub mod table;

pub use id::{CONTAINER_ID_MAX_LEN, ContainerId, ContainerIdError};
pub use info::{
    CONTAINER_NAME_MAX_LEN, ContainerInfo, ContainerUpdate, ContainerUpdateError,
    IMAGE_DIGEST_MAX_LEN, IMAGE_MAX_LEN,
};
pub use pod::{
    K8sPodInfo, K8sPodUpdate, POD_NAME_MAX_LEN, POD_NAMESPACE_MAX_LEN, POD_UID_MAX_LEN, PodUid,
};
pub use record::ContainerRecord;
pub use runtime::Runtime;
#[cfg(feature = "alloc")]
pub use table::{
    ContainerFilter, ContainerRestoreReport, ContainerTable, ContainerTableConfig,
    ContainerTableStats, DEFAULT_CAPACITY, DEFAULT_REMOVAL_GRACE_NS, EvictionReason,
    MIN_ID_PREFIX_LEN, WriteOutcome, Written,
};
