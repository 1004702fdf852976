//! Which container runtime a container belongs to, named as the reference's filters name them.

use core::fmt;

/// A container runtime. The names ([`Runtime::as_str`]) are the strings the reference's
/// `ListContainers(WithRuntime(…))` filter uses: `"docker"`, `"containerd"`, `"crio"`,
/// `"podman"`, plus `"garden"` and `"unknown"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Runtime {
    /// Not known: a container-shaped cgroup (64 hex digits) with no runtime marker, or a container
    /// inserted without one. Enrichment may fill it in later.
    #[default]
    Unknown,
    /// Docker (dockerd/moby), including GitHub Actions job containers.
    Docker,
    /// containerd, through CRI or directly (`ctr`, `nerdctl`).
    Containerd,
    /// CRI-O.
    Crio,
    /// podman (libpod).
    Podman,
    /// Cloud Foundry Garden.
    Garden,
}

impl Runtime {
    /// Every runtime, in declaration order.
    pub const ALL: [Runtime; 6] = [
        Runtime::Unknown,
        Runtime::Docker,
        Runtime::Containerd,
        Runtime::Crio,
        Runtime::Podman,
        Runtime::Garden,
    ];

    /// Lowercase name, as the reference's filters and the CLI spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Runtime::Unknown => "unknown",
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::Crio => "crio",
            Runtime::Podman => "podman",
            Runtime::Garden => "garden",
        }
    }

    /// The runtime called `name` (exact, lowercase: what [`Runtime::as_str`] prints); `None` for
    /// any other string.
    pub fn from_name(name: &str) -> Option<Runtime> {
        Runtime::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in Runtime::ALL {
            assert_eq!(Runtime::from_name(r.as_str()), Some(r));
        }
        assert_eq!(Runtime::from_name("Docker"), None);
        assert_eq!(Runtime::from_name(""), None);
    }
}
