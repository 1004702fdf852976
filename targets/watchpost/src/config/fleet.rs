//! The fleet's configuration sections: Prometheus exposition (`[metrics]`), detection sinks
//! (`[sinks.*]`), the MQTT broker connection (`[mqtt]`), the threat-intelligence feed
//! (`[intel]`) and the socket's detection stream (`[follow]`). Every number has an upper limit
//! (the `MAX_*` constants) checked at start and by `config --check`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Largest `sinks.file.max_bytes`.
pub const MAX_FILE_BYTES: u64 = 1 << 30;
/// Most rotated detection files kept.
pub const MAX_FILE_KEEP: u32 = 100;
/// Largest `sinks.mqtt.outbox_max_records` (at ~1 KiB a record, ~10 GiB of disk).
pub const MAX_OUTBOX_RECORDS: u64 = 10_000_000;
/// Most unacknowledged publishes in flight (MQTT packet ids are 16-bit).
pub const MAX_INFLIGHT: u16 = 4_096;
/// Largest `intel.max_message_bytes`.
pub const MAX_INTEL_MESSAGE_BYTES: usize = 64 << 20;
/// Most entries one intel message may carry.
pub const MAX_INTEL_ENTRIES: usize = 100_000;
/// Largest `follow.buffer_records`.
pub const MAX_FOLLOW_BUFFER: usize = 65_536;
/// Longest reconnect back-off and keep-alive accepted.
pub const MAX_INTERVAL_MS: u64 = 3_600_000;

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Whether `/metrics` is served.
    pub enabled: bool,
    /// Address and port (loopback by default: put a proxy in front to expose it).
    pub listen: SocketAddr,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// `[sinks.stdout]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StdoutSinkSection {
    /// JSON lines on stdout.
    pub enabled: bool,
}

impl Default for StdoutSinkSection {
    fn default() -> Self {
        StdoutSinkSection { enabled: true }
    }
}

/// `[sinks.file]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSinkSection {
    /// JSON lines appended to `path`.
    pub enabled: bool,
    /// The file (its directory must exist).
    pub path: PathBuf,
    /// Size past which the file is rotated (`path.1`, `path.2`, …).
    pub max_bytes: u64,
    /// Rotated files kept (0: the full file is deleted instead).
    pub keep: u32,
}

impl Default for FileSinkSection {
    fn default() -> Self {
        FileSinkSection {
            enabled: false,
            path: PathBuf::from("/var/log/watchpost/detections.jsonl"),
            max_bytes: 16 << 20,
            keep: 4,
        }
    }
}

/// `[sinks.mqtt]`: detections to the broker through the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttSinkSection {
    /// Publish detections.
    pub enabled: bool,
    /// Topics: `<prefix>/<host>/detections` and `<prefix>/<host>/status`.
    pub topic_prefix: String,
    /// Records the outbox (`<data_dir>/outbox.redb`) holds; when full the oldest are dropped.
    pub outbox_max_records: u64,
    /// Publishes waiting for their PUBACK at once.
    pub inflight: u16,
}

impl Default for MqttSinkSection {
    fn default() -> Self {
        MqttSinkSection {
            enabled: false,
            topic_prefix: "watchpost".to_owned(),
            outbox_max_records: 20_000,
            inflight: 256,
        }
    }
}

/// `[sinks]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinksSection {
    /// `[sinks.stdout]`
    pub stdout: StdoutSinkSection,
    /// `[sinks.file]`
    pub file: FileSinkSection,
    /// `[sinks.mqtt]`
    pub mqtt: MqttSinkSection,
}

/// `[mqtt]`: the broker, shared by the detection sink and the intel feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttSection {
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Client id; empty: `watchpost-<host name>` (the intel feed adds `-intel`).
    pub client_id: String,
    /// User name; empty: none.
    pub username: String,
    /// Password (with `username`); empty: none.
    pub password: String,
    /// TLS to the broker.
    pub tls: bool,
    /// CA certificates (PEM) the broker's certificate must chain to (required with `tls`).
    pub ca_file: PathBuf,
    /// Client certificate and key (PEM) for mutual TLS; both or neither.
    pub client_cert_file: PathBuf,
    /// The client certificate's key.
    pub client_key_file: PathBuf,
    /// MQTT keep-alive.
    pub keep_alive_secs: u64,
    /// First wait before reconnecting; doubles up to `reconnect_max_ms`.
    pub reconnect_min_ms: u64,
    /// Longest wait before reconnecting.
    pub reconnect_max_ms: u64,
}

impl Default for MqttSection {
    fn default() -> Self {
        MqttSection {
            host: "127.0.0.1".to_owned(),
            port: 1883,
            client_id: String::new(),
            username: String::new(),
            password: String::new(),
            tls: false,
            ca_file: PathBuf::new(),
            client_cert_file: PathBuf::new(),
            client_key_file: PathBuf::new(),
            keep_alive_secs: 30,
            reconnect_min_ms: 100,
            reconnect_max_ms: 5_000,
        }
    }
}

/// `[intel]`: IP reputation pushed over MQTT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntelSection {
    /// Subscribe and apply.
    pub enabled: bool,
    /// Topic prefix: each publisher writes to `<prefix>/<its source name>`.
    pub topic_prefix: String,
    /// Largest message accepted.
    pub max_message_bytes: usize,
    /// Most entries (plus removals) in one message.
    pub max_entries: usize,
}

impl Default for IntelSection {
    fn default() -> Self {
        IntelSection {
            enabled: false,
            topic_prefix: "watchpost/intel".to_owned(),
            max_message_bytes: 4 << 20,
            max_entries: 20_000,
        }
    }
}

/// `[follow]`: `watchpost query events --follow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FollowSection {
    /// Records buffered for followers; a follower further behind skips (and is told how many).
    pub buffer_records: usize,
}

impl Default for FollowSection {
    fn default() -> Self {
        FollowSection {
            buffer_records: 1_024,
        }
    }
}

/// Whether `text` is usable as MQTT topic levels without wildcards.
fn plain_topic(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 1024
        && !text.starts_with('/')
        && !text.ends_with('/')
        && !text.contains(['+', '#', '\0'])
}

/// Problems of the fleet sections, as (key, reason) pairs.
pub fn problems(c: &super::Config) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut bad = |key: &str, reason: String| out.push((key.to_owned(), reason));
    let range = |value: u64, min: u64, max: u64| -> Option<String> {
        (value < min || value > max).then(|| format!("must be between {min} and {max}"))
    };
    let f = &c.sinks.file;
    if let Some(r) = range(f.max_bytes, 4096, MAX_FILE_BYTES) {
        bad("sinks.file.max_bytes", r);
    }
    if let Some(r) = range(u64::from(f.keep), 0, u64::from(MAX_FILE_KEEP)) {
        bad("sinks.file.keep", r);
    }
    if f.enabled && (f.path.as_os_str().is_empty() || f.path.file_name().is_none()) {
        bad("sinks.file.path", "must name a file".to_owned());
    }
    let m = &c.sinks.mqtt;
    if let Some(r) = range(m.outbox_max_records, 1, MAX_OUTBOX_RECORDS) {
        bad("sinks.mqtt.outbox_max_records", r);
    }
    if let Some(r) = range(u64::from(m.inflight), 1, u64::from(MAX_INFLIGHT)) {
        bad("sinks.mqtt.inflight", r);
    }
    if !plain_topic(&m.topic_prefix) {
        bad(
            "sinks.mqtt.topic_prefix",
            "must be topic levels without wildcards or leading/trailing '/'".to_owned(),
        );
    }
    let q = &c.mqtt;
    let uses_broker = m.enabled || c.intel.enabled;
    if uses_broker && q.host.trim().is_empty() {
        bad("mqtt.host", "must not be empty".to_owned());
    }
    if q.port == 0 {
        bad("mqtt.port", "must not be 0".to_owned());
    }
    if q.client_id.len() > 128 {
        bad("mqtt.client_id", "must be at most 128 bytes".to_owned());
    }
    if !q.password.is_empty() && q.username.is_empty() {
        bad("mqtt.password", "needs mqtt.username".to_owned());
    }
    if q.tls && q.ca_file.as_os_str().is_empty() {
        bad(
            "mqtt.ca_file",
            "is required with mqtt.tls = true".to_owned(),
        );
    }
    if q.client_cert_file.as_os_str().is_empty() != q.client_key_file.as_os_str().is_empty() {
        bad(
            "mqtt.client_key_file",
            "give both mqtt.client_cert_file and mqtt.client_key_file, or neither".to_owned(),
        );
    }
    if let Some(r) = range(q.keep_alive_secs, 5, MAX_INTERVAL_MS / 1000) {
        bad("mqtt.keep_alive_secs", r);
    }
    if let Some(r) = range(q.reconnect_min_ms, 1, MAX_INTERVAL_MS) {
        bad("mqtt.reconnect_min_ms", r);
    }
    if let Some(r) = range(
        q.reconnect_max_ms,
        q.reconnect_min_ms.max(1),
        MAX_INTERVAL_MS,
    ) {
        bad("mqtt.reconnect_max_ms", r);
    }
    let i = &c.intel;
    if !plain_topic(&i.topic_prefix) {
        bad(
            "intel.topic_prefix",
            "must be topic levels without wildcards or leading/trailing '/'".to_owned(),
        );
    }
    if let Some(r) = range(
        i.max_message_bytes as u64,
        1024,
        MAX_INTEL_MESSAGE_BYTES as u64,
    ) {
        bad("intel.max_message_bytes", r);
    }
    if let Some(r) = range(i.max_entries as u64, 1, MAX_INTEL_ENTRIES as u64) {
        bad("intel.max_entries", r);
    }
    if let Some(r) = range(c.follow.buffer_records as u64, 1, MAX_FOLLOW_BUFFER as u64) {
        bad("follow.buffer_records", r);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    fn keys(text: &str) -> Vec<String> {
        match Config::from_toml(text, None) {
            Err(ConfigError::Invalid { problems, .. }) => {
                problems.into_iter().map(|p| p.key).collect()
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn every_fleet_number_has_limits_and_bad_values_name_their_key() {
        let found = keys(
            "[sinks.mqtt]\nenabled = true\noutbox_max_records = 0\ninflight = 5000\ntopic_prefix = \"a/#\"\n\
             [sinks.file]\nmax_bytes = 10\nkeep = 1000\n\
             [mqtt]\ntls = true\npassword = \"x\"\nkeep_alive_secs = 1\nreconnect_min_ms = 10\nreconnect_max_ms = 5\n\
             [intel]\nmax_message_bytes = 1000000000\nmax_entries = 0\n\
             [follow]\nbuffer_records = 100000\n",
        );
        for key in [
            "sinks.mqtt.outbox_max_records",
            "sinks.mqtt.inflight",
            "sinks.mqtt.topic_prefix",
            "sinks.file.max_bytes",
            "sinks.file.keep",
            "mqtt.ca_file",
            "mqtt.password",
            "mqtt.keep_alive_secs",
            "mqtt.reconnect_max_ms",
            "intel.max_message_bytes",
            "intel.max_entries",
            "follow.buffer_records",
        ] {
            assert!(
                found.iter().any(|k| k == key),
                "{key} not reported: {found:?}"
            );
        }
        let found = keys("[sinks.mqtt]\noutbox_max_records = 20000000\n");
        assert_eq!(found, ["sinks.mqtt.outbox_max_records"]);
        assert!(Config::from_toml("[metrics]\nlisten = \"nowhere\"\n", None).is_err());
        assert!(Config::from_toml("[daemon]\nlog_format = \"xml\"\n", None).is_err());
        let c = Config::from_toml(
            "[daemon]\nlog_format = \"json\"\n[metrics]\nenabled = false\n",
            None,
        )
        .unwrap();
        assert!(!c.metrics.enabled);
    }
}
