//! Kubernetes pods as the container store sees them: the reference's `K8sPodInfo`, with bounded
//! strings, and the pod UID as it appears in kubelet cgroup paths.

use core::fmt;

/// Longest pod name: a Kubernetes object name is a DNS subdomain (RFC 1123), at most 253 bytes.
pub const POD_NAME_MAX_LEN: usize = 253;
/// Longest pod namespace: a DNS label (RFC 1123), at most 63 bytes.
pub const POD_NAMESPACE_MAX_LEN: usize = 63;
/// Longest pod UID: a dashed UUID (36 bytes). Static pods use a 32-hex-digit hash instead.
pub const POD_UID_MAX_LEN: usize = 36;

/// A pod UID taken from a kubelet cgroup path, valid by construction: either a dashed UUID
/// (`8-4-4-4-12` lowercase hex) or, for static (mirror) pods, 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PodUid(
    /// Invariant: a dashed lowercase UUID or 32 lowercase hex digits.
    heapless::String<POD_UID_MAX_LEN>,
);

impl PodUid {
    /// Parses the cgroupfs spelling (`pod<uid>` without the `pod`): dashes as in the API.
    pub fn new(uid: &str) -> Option<PodUid> {
        let static_pod_hash = uid.len() == 32 && super::id::is_lower_hex(uid);
        if !is_uuid(uid) && !static_pod_hash {
            return None;
        }
        let mut s = heapless::String::new();
        s.push_str(uid).ok()?;
        Some(PodUid(s))
    }

    /// Parses the systemd spelling, where the UUID's dashes are written as underscores
    /// (`kubepods-besteffort-pod<b13213a6_d47e_…>.slice`), and returns the dashed form.
    pub fn from_systemd(uid: &str) -> Option<PodUid> {
        if uid.len() > POD_UID_MAX_LEN || uid.contains('-') {
            return None;
        }
        let mut dashed = heapless::String::<POD_UID_MAX_LEN>::new();
        for c in uid.chars() {
            dashed.push(if c == '_' { '-' } else { c }).ok()?;
        }
        PodUid::new(&dashed)
    }

    /// The UID as text, dashed.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for PodUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `s` is a dashed UUID in lowercase hex.
fn is_uuid(s: &str) -> bool {
    let mut groups = s.split('-');
    for len in [8usize, 4, 4, 4, 12] {
        match groups.next() {
            Some(g) if g.len() == len && super::id::is_lower_hex(g) => {}
            _ => return false,
        }
    }
    groups.next().is_none()
}

/// The reference's `K8sPodInfo`: the pod a container belongs to. A container has one only when
/// the pod's name or UID is known (the reference's rule).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct K8sPodInfo {
    /// Pod name (`io.kubernetes.pod.name`); may be empty when only the UID is known.
    pub name: heapless::String<POD_NAME_MAX_LEN>,
    /// Pod UID (`io.kubernetes.pod.uid` or the kubelet cgroup path); may be empty.
    pub uid: heapless::String<POD_UID_MAX_LEN>,
    /// Pod namespace (`io.kubernetes.pod.namespace`); may be empty.
    pub namespace: heapless::String<POD_NAMESPACE_MAX_LEN>,
    /// Whether this container is the pod's sandbox (pause/infra) container.
    pub sandbox: bool,
}

/// Pod fields to store with a container, borrowed from the caller (see
/// [`ContainerUpdate`](super::ContainerUpdate)). Over-long fields are rejected, never cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct K8sPodUpdate<'a> {
    /// Pod name, at most [`POD_NAME_MAX_LEN`] bytes.
    pub name: &'a str,
    /// Pod UID, at most [`POD_UID_MAX_LEN`] bytes.
    pub uid: &'a str,
    /// Pod namespace, at most [`POD_NAMESPACE_MAX_LEN`] bytes.
    pub namespace: &'a str,
    /// Whether the container is the pod's sandbox.
    pub sandbox: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_spellings() {
        let dashed = "b13213a6-d47e-4bd1-bc00-f175d1ad3b6e";
        assert_eq!(
            PodUid::new(dashed).as_ref().map(PodUid::as_str),
            Some(dashed)
        );
        assert_eq!(
            PodUid::from_systemd("b13213a6_d47e_4bd1_bc00_f175d1ad3b6e")
                .as_ref()
                .map(PodUid::as_str),
            Some(dashed)
        );
        // Static pods: a 32-hex-digit config hash.
        assert!(PodUid::new("3b4c2b7d8f1e2a5c6d7e8f9a0b1c2d3e").is_some());
        assert!(PodUid::from_systemd("3b4c2b7d8f1e2a5c6d7e8f9a0b1c2d3e").is_some());
        // The systemd spelling never contains dashes; the cgroupfs one never underscores.
        assert!(PodUid::from_systemd(dashed).is_none());
        assert!(PodUid::new("b13213a6_d47e_4bd1_bc00_f175d1ad3b6e").is_none());
        assert!(PodUid::new("123").is_none());
        assert!(PodUid::new("B13213A6-D47E-4BD1-BC00-F175D1AD3B6E").is_none());
        assert!(PodUid::new("").is_none());
    }
}
