//! `[container.runtimes]`: where the container runtimes listen and how hard the daemon may ask
//! them. Every key has a lower and an upper bound (checked at start, naming the key), because
//! each one bounds memory or time the daemon spends on a runtime it does not control.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Problem;

/// Docker Engine API sockets asked by default: podman's service, then Docker's.
pub const DEFAULT_DOCKER_SOCKETS: [&str; 2] = ["/run/podman/podman.sock", "/var/run/docker.sock"];
/// containerd sockets asked by default.
pub const DEFAULT_CONTAINERD_SOCKETS: [&str; 1] = ["/run/containerd/containerd.sock"];

/// Most sockets of one kind.
pub const MAX_SOCKETS: usize = 8;

/// The section; see `default.toml` for what each key means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimesSection {
    /// Docker Engine API sockets (Docker, or podman's `system service`).
    pub docker_sockets: Vec<PathBuf>,
    /// containerd gRPC sockets.
    pub containerd_sockets: Vec<PathBuf>,
    /// Longest one API call may take (connect, answer and body).
    pub request_timeout_ms: u64,
    /// API calls in flight at once, all runtimes together (event streams not counted).
    pub max_concurrent_requests: usize,
    /// Containers waiting to be described; more requests are refused and counted.
    pub queue: usize,
    /// Largest answer read from a runtime; a larger one is cut off unread and counted.
    pub max_response_bytes: usize,
    /// Largest single event read from a runtime's event stream.
    pub max_event_bytes: usize,
    /// How often every runtime's container list is read again (catches missed events).
    pub resync_interval_ms: u64,
    /// First wait before reconnecting to a runtime that failed; doubled after each failure.
    pub retry_initial_ms: u64,
    /// Longest wait between reconnection attempts.
    pub retry_max_ms: u64,
}

impl Default for RuntimesSection {
    fn default() -> Self {
        RuntimesSection {
            docker_sockets: DEFAULT_DOCKER_SOCKETS.iter().map(PathBuf::from).collect(),
            containerd_sockets: DEFAULT_CONTAINERD_SOCKETS
                .iter()
                .map(PathBuf::from)
                .collect(),
            request_timeout_ms: 2_000,
            max_concurrent_requests: 4,
            queue: 256,
            max_response_bytes: 4 << 20,
            max_event_bytes: 64 << 10,
            resync_interval_ms: 30_000,
            retry_initial_ms: 250,
            retry_max_ms: 30_000,
        }
    }
}

/// Whether `socket` is one of the default paths: a default socket that does not exist just
/// means that runtime is not installed; a configured one that does not exist is a problem.
pub fn is_default_socket(socket: &Path) -> bool {
    DEFAULT_DOCKER_SOCKETS
        .iter()
        .chain(DEFAULT_CONTAINERD_SOCKETS.iter())
        .any(|d| Path::new(d) == socket)
}

impl RuntimesSection {
    /// Every out-of-bounds value, named by its dotted key.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut bad = |key: &str, reason: String| {
            problems.push(Problem {
                key: format!("container.runtimes.{key}"),
                reason,
            })
        };
        let mut range = |key: &str, value: u64, min: u64, max: u64| {
            if value < min || value > max {
                bad(key, format!("must be between {min} and {max}"));
            }
        };
        range("request_timeout_ms", self.request_timeout_ms, 1, 60_000);
        range(
            "max_concurrent_requests",
            self.max_concurrent_requests as u64,
            1,
            64,
        );
        range("queue", self.queue as u64, 1, 65_536);
        range(
            "max_response_bytes",
            self.max_response_bytes as u64,
            64 << 10,
            64 << 20,
        );
        range(
            "max_event_bytes",
            self.max_event_bytes as u64,
            1 << 10,
            1 << 20,
        );
        range(
            "resync_interval_ms",
            self.resync_interval_ms,
            1_000,
            3_600_000,
        );
        range("retry_max_ms", self.retry_max_ms, 1, 600_000);
        range(
            "retry_initial_ms",
            self.retry_initial_ms,
            1,
            self.retry_max_ms.max(1),
        );
        for (key, sockets) in [
            ("docker_sockets", &self.docker_sockets),
            ("containerd_sockets", &self.containerd_sockets),
        ] {
            if sockets.len() > MAX_SOCKETS {
                bad(key, format!("lists more than {MAX_SOCKETS} sockets"));
            }
            for s in sockets {
                if !s.is_absolute() {
                    bad(key, format!("{} is not an absolute path", s.display()));
                } else if s.as_os_str().len() > 107 {
                    bad(
                        key,
                        format!(
                            "{} is longer than the 107 bytes a Unix socket path holds",
                            s.display()
                        ),
                    );
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_in_bounds_and_bounds_are_enforced() {
        assert!(RuntimesSection::default().problems().is_empty());
        let bad = RuntimesSection {
            request_timeout_ms: 0,
            max_concurrent_requests: 65,
            queue: 1 << 20,
            max_response_bytes: 100 << 20,
            max_event_bytes: 10,
            resync_interval_ms: 10,
            retry_initial_ms: 60_000,
            retry_max_ms: 1_000,
            docker_sockets: vec![PathBuf::from("relative.sock")],
            containerd_sockets: vec![PathBuf::from("/x"); 9],
        };
        let keys: Vec<String> = bad.problems().into_iter().map(|p| p.key).collect();
        for key in [
            "request_timeout_ms",
            "max_concurrent_requests",
            "queue",
            "max_response_bytes",
            "max_event_bytes",
            "resync_interval_ms",
            "retry_initial_ms",
            "docker_sockets",
            "containerd_sockets",
        ] {
            assert!(
                keys.contains(&format!("container.runtimes.{key}")),
                "{key} not refused: {keys:?}"
            );
        }
    }

    #[test]
    fn only_the_default_paths_are_optional() {
        assert!(is_default_socket(Path::new("/var/run/docker.sock")));
        assert!(is_default_socket(Path::new(
            "/run/containerd/containerd.sock"
        )));
        assert!(!is_default_socket(Path::new("/tmp/podman.sock")));
    }
}
