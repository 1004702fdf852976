//! The reference's `ContainerInfo` with bounded strings, and the borrowed update that fills it in.
//!
//! A container is usually seen twice: first its ID and runtime from a cgroup path, later its
//! metadata from the runtime's API. [`ContainerUpdate`] carries only the fields a source knows
//! (`None` = keep what is stored), so the second source enriches the first instead of erasing it.
//!
//! Bounds (over-long input is rejected with an error naming the field, never cut):
//! - name: [`CONTAINER_NAME_MAX_LEN`] = 128 bytes. Kubernetes container names are DNS labels (63);
//!   Docker and podman names are user-chosen and in practice short.
//! - image: [`IMAGE_MAX_LEN`] = 512 bytes: a full `registry/repository:tag@sha256:digest` reference
//!   at distribution's limits (255-byte name, 128-byte tag, 71-byte digest) fits.
//! - image digest: [`IMAGE_DIGEST_MAX_LEN`] = 135 bytes, `sha512:` and 128 hex digits.
//! - pod fields: see [`pod`](super::pod).

use core::fmt;

use super::id::{ContainerId, ContainerIdError};
use super::pod::{
    K8sPodInfo, K8sPodUpdate, POD_NAME_MAX_LEN, POD_NAMESPACE_MAX_LEN, POD_UID_MAX_LEN,
};
use super::runtime::Runtime;
use crate::time::EpochNanos;

/// Longest container name kept.
pub const CONTAINER_NAME_MAX_LEN: usize = 128;
/// Longest image reference kept.
pub const IMAGE_MAX_LEN: usize = 512;
/// Longest image digest kept (`sha512:` + 128 hex digits).
pub const IMAGE_DIGEST_MAX_LEN: usize = 135;

/// The reference's `ContainerInfo`: what the store knows about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ContainerInfo {
    /// Full container ID.
    pub id: ContainerId,
    /// Container name (Docker's without the leading `/`); empty until enriched.
    pub name: heapless::String<CONTAINER_NAME_MAX_LEN>,
    /// Image reference as the runtime reports it; empty until enriched.
    pub image: heapless::String<IMAGE_MAX_LEN>,
    /// Image digest (`sha256:…`); empty when unknown.
    pub image_digest: heapless::String<IMAGE_DIGEST_MAX_LEN>,
    /// Runtime that runs the container.
    pub runtime: Runtime,
    /// Start time, epoch nanoseconds; 0 when unknown.
    pub start_time: EpochNanos,
    /// Kubernetes pod, present only when the pod's name or UID is known.
    pub pod: Option<K8sPodInfo>,
}

impl ContainerInfo {
    /// A container known only by its ID and runtime.
    pub fn new(id: ContainerId, runtime: Runtime) -> Self {
        ContainerInfo {
            id,
            name: heapless::String::new(),
            image: heapless::String::new(),
            image_digest: heapless::String::new(),
            runtime,
            start_time: 0,
            pod: None,
        }
    }

    /// Builds the record `update` describes, as if nothing were stored yet.
    pub fn from_update(update: &ContainerUpdate<'_>) -> Result<Self, ContainerUpdateError> {
        let id = ContainerId::new(update.id).map_err(ContainerUpdateError::Id)?;
        let mut info = ContainerInfo::new(id, Runtime::Unknown);
        info.apply(update)?;
        Ok(info)
    }

    /// Merges `update` into this record: every `Some` field replaces the stored one, `None` keeps
    /// it. All-or-nothing: on error nothing changed. The ID is not compared (the caller looked the
    /// record up by it).
    pub fn apply(&mut self, update: &ContainerUpdate<'_>) -> Result<(), ContainerUpdateError> {
        update.validate()?;
        // Validated: the copies below cannot fail.
        if let Some(name) = update.name {
            self.name = copy_bounded(name).ok_or(ContainerUpdateError::NameTooLong)?;
        }
        if let Some(image) = update.image {
            self.image = copy_bounded(image).ok_or(ContainerUpdateError::ImageTooLong)?;
        }
        if let Some(digest) = update.image_digest {
            self.image_digest =
                copy_bounded(digest).ok_or(ContainerUpdateError::ImageDigestTooLong)?;
        }
        if let Some(runtime) = update.runtime {
            self.runtime = runtime;
        }
        if let Some(start) = update.start_time {
            self.start_time = start;
        }
        if let Some(pod) = update.pod {
            self.pod = pod_info(&pod)?;
        }
        Ok(())
    }
}

/// The stored pod for `pod`: `None` when neither its name nor its UID is known.
fn pod_info(pod: &K8sPodUpdate<'_>) -> Result<Option<K8sPodInfo>, ContainerUpdateError> {
    if pod.name.is_empty() && pod.uid.is_empty() {
        return Ok(None);
    }
    Ok(Some(K8sPodInfo {
        name: copy_bounded(pod.name).ok_or(ContainerUpdateError::PodNameTooLong)?,
        uid: copy_bounded(pod.uid).ok_or(ContainerUpdateError::PodUidTooLong)?,
        namespace: copy_bounded(pod.namespace).ok_or(ContainerUpdateError::PodNamespaceTooLong)?,
        sandbox: pod.sandbox,
    }))
}

/// `s` as a bounded string, or `None` if it does not fit.
pub(crate) fn copy_bounded<const N: usize>(s: &str) -> Option<heapless::String<N>> {
    let mut out = heapless::String::new();
    out.push_str(s).ok()?;
    Some(out)
}

/// What a source knows about a container, borrowed. `None` fields are left as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerUpdate<'a> {
    /// Full container ID (required; see [`ContainerId`] for the grammar).
    pub id: &'a str,
    /// Runtime, if known.
    pub runtime: Option<Runtime>,
    /// Name, if known (at most [`CONTAINER_NAME_MAX_LEN`] bytes).
    pub name: Option<&'a str>,
    /// Image reference, if known (at most [`IMAGE_MAX_LEN`] bytes).
    pub image: Option<&'a str>,
    /// Image digest, if known (at most [`IMAGE_DIGEST_MAX_LEN`] bytes).
    pub image_digest: Option<&'a str>,
    /// Start time in epoch nanoseconds, if known.
    pub start_time: Option<EpochNanos>,
    /// Pod, if known. Replaces the stored pod; with an empty name and UID it clears it.
    pub pod: Option<K8sPodUpdate<'a>>,
}

impl<'a> ContainerUpdate<'a> {
    /// An update that only names the container.
    pub const fn new(id: &'a str) -> Self {
        ContainerUpdate {
            id,
            runtime: None,
            name: None,
            image: None,
            image_digest: None,
            start_time: None,
            pod: None,
        }
    }

    /// With the runtime.
    pub const fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// With the name.
    pub const fn name(mut self, name: &'a str) -> Self {
        self.name = Some(name);
        self
    }

    /// With the image reference.
    pub const fn image(mut self, image: &'a str) -> Self {
        self.image = Some(image);
        self
    }

    /// With the image digest.
    pub const fn image_digest(mut self, digest: &'a str) -> Self {
        self.image_digest = Some(digest);
        self
    }

    /// With the start time.
    pub const fn start_time(mut self, start_time: EpochNanos) -> Self {
        self.start_time = Some(start_time);
        self
    }

    /// With the pod.
    pub const fn pod(mut self, pod: K8sPodUpdate<'a>) -> Self {
        self.pod = Some(pod);
        self
    }

    /// Checks every field against its bound (and the ID against its grammar) without storing.
    pub fn validate(&self) -> Result<(), ContainerUpdateError> {
        super::id::check_identifier(self.id).map_err(ContainerUpdateError::Id)?;
        let too_long = |s: Option<&str>, max: usize| s.is_some_and(|s| s.len() > max);
        if too_long(self.name, CONTAINER_NAME_MAX_LEN) {
            return Err(ContainerUpdateError::NameTooLong);
        }
        if too_long(self.image, IMAGE_MAX_LEN) {
            return Err(ContainerUpdateError::ImageTooLong);
        }
        if too_long(self.image_digest, IMAGE_DIGEST_MAX_LEN) {
            return Err(ContainerUpdateError::ImageDigestTooLong);
        }
        if let Some(pod) = &self.pod {
            if pod.name.len() > POD_NAME_MAX_LEN {
                return Err(ContainerUpdateError::PodNameTooLong);
            }
            if pod.uid.len() > POD_UID_MAX_LEN {
                return Err(ContainerUpdateError::PodUidTooLong);
            }
            if pod.namespace.len() > POD_NAMESPACE_MAX_LEN {
                return Err(ContainerUpdateError::PodNamespaceTooLong);
            }
        }
        Ok(())
    }
}

/// Which field of a [`ContainerUpdate`] is unacceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ContainerUpdateError {
    /// The ID is not a container ID.
    Id(ContainerIdError),
    /// Name longer than [`CONTAINER_NAME_MAX_LEN`].
    NameTooLong,
    /// Image longer than [`IMAGE_MAX_LEN`].
    ImageTooLong,
    /// Digest longer than [`IMAGE_DIGEST_MAX_LEN`].
    ImageDigestTooLong,
    /// Pod name longer than [`POD_NAME_MAX_LEN`].
    PodNameTooLong,
    /// Pod UID longer than [`POD_UID_MAX_LEN`].
    PodUidTooLong,
    /// Pod namespace longer than [`POD_NAMESPACE_MAX_LEN`].
    PodNamespaceTooLong,
}

impl fmt::Display for ContainerUpdateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerUpdateError::Id(e) => write!(f, "{e}"),
            ContainerUpdateError::NameTooLong => {
                f.write_str("container name longer than 128 bytes")
            }
            ContainerUpdateError::ImageTooLong => f.write_str("image longer than 512 bytes"),
            ContainerUpdateError::ImageDigestTooLong => {
                f.write_str("image digest longer than 135 bytes")
            }
            ContainerUpdateError::PodNameTooLong => f.write_str("pod name longer than 253 bytes"),
            ContainerUpdateError::PodUidTooLong => f.write_str("pod uid longer than 36 bytes"),
            ContainerUpdateError::PodNamespaceTooLong => {
                f.write_str("pod namespace longer than 63 bytes")
            }
        }
    }
}

impl core::error::Error for ContainerUpdateError {}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn none_fields_keep_what_is_stored() {
        let first = ContainerUpdate::new(ID).runtime(Runtime::Docker);
        let mut info = ContainerInfo::from_update(&first).unwrap_or_else(|_| unreachable!());
        let second = ContainerUpdate::new(ID).name("web").image("nginx:1");
        assert_eq!(info.apply(&second), Ok(()));
        assert_eq!(info.runtime, Runtime::Docker);
        assert_eq!(info.name.as_str(), "web");
        assert_eq!(info.image.as_str(), "nginx:1");
        assert_eq!(info.start_time, 0);
        assert_eq!(info.pod, None);
    }

    #[test]
    fn an_error_changes_nothing() {
        let mut info = ContainerInfo::new(
            ContainerId::new(ID).unwrap_or_else(|_| unreachable!()),
            Runtime::Crio,
        );
        let long = [b'x'; POD_NAMESPACE_MAX_LEN + 1];
        let long = core::str::from_utf8(&long).unwrap_or_default();
        let bad = ContainerUpdate::new(ID).name("web").pod(K8sPodUpdate {
            name: "p",
            uid: "",
            namespace: long,
            sandbox: false,
        });
        assert_eq!(
            info.apply(&bad),
            Err(ContainerUpdateError::PodNamespaceTooLong)
        );
        assert_eq!(info.name.as_str(), "");
    }

    #[test]
    fn pod_needs_a_name_or_uid() {
        let mut info = ContainerInfo::new(
            ContainerId::new(ID).unwrap_or_else(|_| unreachable!()),
            Runtime::Crio,
        );
        let only_ns = K8sPodUpdate {
            namespace: "default",
            ..K8sPodUpdate::default()
        };
        assert_eq!(info.apply(&ContainerUpdate::new(ID).pod(only_ns)), Ok(()));
        assert_eq!(info.pod, None);
        let with_uid = K8sPodUpdate {
            uid: "u",
            ..only_ns
        };
        assert_eq!(info.apply(&ContainerUpdate::new(ID).pod(with_uid)), Ok(()));
        assert_eq!(
            info.pod.as_ref().map(|p| p.namespace.as_str()),
            Some("default")
        );
    }
}
