//! What detectors report: serialisable findings the daemon prints as JSON lines.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use watchpost_core::EpochNanos;

use crate::detect::event::Event;
use crate::stores::container::{ContainerInfo, PodInfo};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Suspicious.
    Medium,
    /// Likely an attack.
    High,
    /// Act now.
    Critical,
}

/// A value attached to a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OutputValue {
    /// Text.
    Text(String),
    /// A number.
    Number(u64),
    /// A list of texts (e.g. an ancestry chain).
    List(Vec<String>),
    /// A flag.
    Flag(bool),
}

impl From<&str> for OutputValue {
    fn from(s: &str) -> Self {
        OutputValue::Text(s.to_owned())
    }
}
impl From<String> for OutputValue {
    fn from(s: String) -> Self {
        OutputValue::Text(s)
    }
}
impl From<u64> for OutputValue {
    fn from(n: u64) -> Self {
        OutputValue::Number(n)
    }
}
impl From<u32> for OutputValue {
    fn from(n: u32) -> Self {
        OutputValue::Number(u64::from(n))
    }
}
impl From<bool> for OutputValue {
    fn from(b: bool) -> Self {
        OutputValue::Flag(b)
    }
}
impl From<Vec<String>> for OutputValue {
    fn from(v: Vec<String>) -> Self {
        OutputValue::List(v)
    }
}

/// The container a finding happened in, as the container store knew it when the finding was
/// reported (filled by the detector engine from the event's container ID).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OutputContainer {
    /// Full container ID.
    pub id: String,
    /// Whether the container store knew it (false: only the ID is known, from the cgroup).
    pub known: bool,
    /// Name (empty: unknown).
    pub name: String,
    /// Image (empty: unknown).
    pub image: String,
    /// Image digest (empty: unknown).
    pub image_digest: String,
    /// Runtime (empty: unknown).
    pub runtime: String,
    /// Kubernetes pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodInfo>,
}

impl From<ContainerInfo> for OutputContainer {
    fn from(c: ContainerInfo) -> Self {
        OutputContainer {
            id: c.id,
            known: true,
            name: c.name,
            image: c.image,
            image_digest: c.image_digest,
            runtime: c.runtime,
            pod: c.pod,
        }
    }
}

/// One finding of one detector about one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorOutput {
    /// The detector's name.
    pub detector: String,
    /// How bad.
    pub severity: Severity,
    /// One line for humans.
    pub description: String,
    /// When the event happened, epoch ns.
    pub time: EpochNanos,
    /// Entity ID of the process concerned.
    pub entity_id: u32,
    /// Its pid.
    pub pid: u32,
    /// Its executable.
    pub exe: String,
    /// Its container, if any.
    pub container_id: Option<String>,
    /// What the container store knows about that container (set by the engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<OutputContainer>,
    /// Detector-specific details.
    pub data: BTreeMap<String, OutputValue>,
}

impl DetectorOutput {
    /// A finding about `event`, without details yet.
    pub fn about(
        detector: &str,
        severity: Severity,
        description: impl Into<String>,
        event: &Event,
    ) -> Self {
        DetectorOutput {
            detector: detector.to_owned(),
            severity,
            description: description.into(),
            time: event.time,
            entity_id: event.entity_id,
            pid: event.pid,
            exe: event.exe.clone(),
            container_id: event.container_id.clone(),
            container: None,
            data: BTreeMap::new(),
        }
    }

    /// Adds a detail.
    pub fn with(mut self, key: &str, value: impl Into<OutputValue>) -> Self {
        self.data.insert(key.to_owned(), value.into());
        self
    }
}
