//! The detection record a fleet receives: one JSON object per detection, versioned by its
//! `schema` field and described by `schema/detection-v1.schema.json` (a test validates every
//! record the daemon emits against that file).
//!
//! A detector's [`DetectorOutput`] is enriched here with what a central collector needs to tell
//! gateways and events apart: the host's name and boot id, an RFC 3339 time, a record id unique
//! per (host, boot, daemon run, detection) for de-duplication after an at-least-once delivery,
//! the process's uid and a short ancestry summary from the process store, and the container (with
//! its pod) from the container store when the process runs in one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use watchpost_actors::Registry;
use watchpost_actors::detect::{DetectorOutput, OutputContainer, OutputValue, Severity};
use watchpost_core::EpochNanos;

use crate::fleet::identity::HostIdentity;

/// The value of every record's `schema` field; bumped when a field changes meaning or goes away
/// (adding an optional field is not a new version).
pub const SCHEMA_V1: &str = "watchpost.detection.v1";
/// The JSON Schema of [`SCHEMA_V1`] records, as shipped in the repository.
pub const SCHEMA_V1_JSON: &str = include_str!("../../schema/detection-v1.schema.json");
/// Most ancestry entries summarised in a record (the process itself first).
pub const ANCESTRY_DEPTH: i32 = 6;

/// The host a record comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPart {
    /// Host name (`uname -n`).
    pub name: String,
    /// This boot's id (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
}

/// One ancestor (or the process itself) in a record's ancestry summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AncestorPart {
    /// Entity id.
    pub entity_id: u32,
    /// Process id.
    pub pid: u32,
    /// `comm`.
    pub name: String,
    /// Executable path (empty when unknown).
    pub exe: String,
}

/// The process a detection is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessPart {
    /// Entity id (Tracee-compatible).
    pub entity_id: u32,
    /// Process id.
    pub pid: u32,
    /// Executable path.
    pub exe: String,
    /// Real uid; `null` when the process store no longer knows the process.
    pub uid: Option<u32>,
    /// `[self, parent, …]`, at most [`ANCESTRY_DEPTH`] entries; empty when unknown.
    pub ancestry: Vec<AncestorPart>,
}

/// A Kubernetes pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodPart {
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod UID.
    pub uid: String,
}

/// The container a process runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerPart {
    /// Full container id.
    pub id: String,
    /// Name (empty until a runtime enriched it).
    pub name: String,
    /// Image (empty until enriched).
    pub image: String,
    /// Image digest (empty until enriched).
    #[serde(default)]
    pub image_digest: String,
    /// Runtime (`docker`, `containerd`, `crio`, `podman`; empty when unknown).
    pub runtime: String,
    /// The pod, for Kubernetes containers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodPart>,
}

impl From<OutputContainer> for ContainerPart {
    /// The container as the detector engine described it with the container store.
    fn from(c: OutputContainer) -> Self {
        ContainerPart {
            id: c.id,
            name: c.name,
            image: c.image,
            image_digest: c.image_digest,
            runtime: c.runtime,
            pod: c.pod.map(|p| PodPart {
                name: p.name,
                namespace: p.namespace,
                uid: p.uid,
            }),
        }
    }
}

/// One detection, as every sink writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectionRecord {
    /// Always [`SCHEMA_V1`].
    pub schema: String,
    /// Unique per detection: `<boot id>-<daemon start, hex ns>-<sequence>`.
    pub id: String,
    /// When the event happened, RFC 3339 UTC with nanoseconds.
    pub time: String,
    /// Same, epoch nanoseconds (for sorting without parsing).
    pub time_ns: EpochNanos,
    /// Where.
    pub host: HostPart,
    /// Which detector.
    pub detector: String,
    /// How bad.
    pub severity: Severity,
    /// One line for humans.
    pub description: String,
    /// About which process.
    pub process: ProcessPart,
    /// Its container, when it runs in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerPart>,
    /// Detector-specific details.
    pub data: BTreeMap<String, OutputValue>,
}

/// `ns` since the epoch as RFC 3339 UTC with nanoseconds (`2026-12-01T10:00:00.123456789Z`).
pub fn rfc3339(ns: EpochNanos) -> String {
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

/// Turns detector outputs into records: numbers them and asks the stores for the rest.
#[derive(Debug)]
pub struct RecordMaker {
    host: HostPart,
    id_prefix: String,
    next: AtomicU64,
    registry: Registry,
}

impl RecordMaker {
    /// Records of `host`, from a daemon started at `started_at`, enriched from `registry`.
    pub fn new(host: &HostIdentity, started_at: EpochNanos, registry: Registry) -> Self {
        RecordMaker {
            host: HostPart {
                name: host.host_name.clone(),
                boot_id: host.boot_id.clone(),
            },
            id_prefix: format!("{}-{started_at:x}", host.boot_id),
            next: AtomicU64::new(1),
            registry,
        }
    }

    /// The record of `output`: the process's uid and ancestry from the process store, its
    /// container (and pod) as the detector engine described it. A store that does not answer leaves its
    /// part empty: a detection is never held back for enrichment.
    pub async fn make(&self, output: DetectorOutput) -> DetectionRecord {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let ancestry = self
            .registry
            .processes()
            .get_ancestry(output.entity_id, ANCESTRY_DEPTH)
            .await
            .unwrap_or_default();
        let uid = ancestry
            .first()
            .filter(|p| p.entity_id == output.entity_id)
            .map(|p| p.uid);
        // The engine named the container with the container store when it judged the event;
        // an ID without a description stays an ID.
        let container = match (output.container, output.container_id) {
            (Some(c), _) => Some(ContainerPart::from(c)),
            (None, Some(id)) => Some(ContainerPart::from(OutputContainer {
                id,
                ..OutputContainer::default()
            })),
            (None, None) => None,
        };
        DetectionRecord {
            schema: SCHEMA_V1.to_owned(),
            id: format!("{}-{seq}", self.id_prefix),
            time: rfc3339(output.time),
            time_ns: output.time,
            host: self.host.clone(),
            detector: output.detector,
            severity: output.severity,
            description: output.description,
            process: ProcessPart {
                entity_id: output.entity_id,
                pid: output.pid,
                exe: output.exe,
                uid,
                ancestry: ancestry
                    .into_iter()
                    .map(|p| AncestorPart {
                        entity_id: p.entity_id,
                        pid: p.pid,
                        name: p.name,
                        exe: p.exe,
                    })
                    .collect(),
            },
            container,
            data: output.data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_utc_with_nanoseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
    }
}
