//! Threat intelligence in: IP reputation pushed over MQTT into the `ip_reputation` store.
//!
//! Each publisher owns one source and publishes on `<intel.topic_prefix>/<source>`: a retained
//! `full` message (its whole set; a gateway that connects gets it at once) and `update` or
//! `clear` messages after. The format (`watchpost.intel.v1`) is documented in
//! `targets/watchpost/README.md`. A message is checked whole — size, JSON shape, that the source
//! it names is the topic's, every address, status, severity, tag and metadata pair, repeated
//! addresses, the entry count — and then applied in one store write
//! ([`apply_feed`](watchpost_actors::stores::ip_reputation)), which is all-or-nothing; a message
//! that fails any check changes nothing and is counted by reason.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use rumqttc::{AsyncClient, ConnectReturnCode, Event, Packet, QoS};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use watchpost_core::ip_reputation::{IpReputation, ReputationStatus, parse_ip};
use watchpost_core::writable::validate_source_name;

use crate::config::fleet::{IntelSection, MqttSection};
use crate::fleet::broker::{self, Backoff};
use crate::fleet::identity::HostIdentity;
use crate::persistence::reputation::{ReputationFailure, ReputationWriter};
use crate::sinks::mqtt::ConnectionCounters;

/// The value of every message's `format` field.
pub const FORMAT_V1: &str = "watchpost.intel.v1";

/// Why a message was rejected (one counter each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Larger than `intel.max_message_bytes`.
    Oversized,
    /// Not JSON, or not this format's shape (unknown or missing fields, wrong types).
    Malformed,
    /// `format` is not [`FORMAT_V1`].
    Format,
    /// The source is invalid or not the topic's.
    Source,
    /// More entries plus removals than `intel.max_entries`.
    TooMany,
    /// An address that is not one.
    Address,
    /// A status other than allow, deny, suspicious.
    Status,
    /// A severity outside 1..=10.
    Severity,
    /// A tag or metadata pair out of bounds.
    Value,
    /// The same address twice.
    Duplicate,
    /// The store refused the write (full).
    Store,
    /// The store did not answer.
    Unavailable,
}

impl RejectReason {
    /// Every reason, in counter order.
    pub const ALL: [RejectReason; 12] = [
        RejectReason::Oversized,
        RejectReason::Malformed,
        RejectReason::Format,
        RejectReason::Source,
        RejectReason::TooMany,
        RejectReason::Address,
        RejectReason::Status,
        RejectReason::Severity,
        RejectReason::Value,
        RejectReason::Duplicate,
        RejectReason::Store,
        RejectReason::Unavailable,
    ];

    /// Label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::Oversized => "oversized",
            RejectReason::Malformed => "malformed",
            RejectReason::Format => "format",
            RejectReason::Source => "source",
            RejectReason::TooMany => "too_many",
            RejectReason::Address => "address",
            RejectReason::Status => "status",
            RejectReason::Severity => "severity",
            RejectReason::Value => "value",
            RejectReason::Duplicate => "duplicate",
            RejectReason::Store => "store",
            RejectReason::Unavailable => "unavailable",
        }
    }
}

/// A rejected message: why, and a sentence for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejected {
    /// The counter it goes to.
    pub reason: RejectReason,
    /// What was wrong.
    pub message: String,
}

fn reject(reason: RejectReason, message: impl Into<String>) -> Rejected {
    Rejected {
        reason,
        message: message.into(),
    }
}

/// Counters of the intel feed.
#[derive(Debug, Default)]
pub struct IntelCounters {
    /// Messages applied.
    pub applied: AtomicU64,
    /// Rejected messages, by [`RejectReason::ALL`] index.
    pub rejected: [AtomicU64; 12],
    /// Entries written by applied messages.
    pub entries_applied: AtomicU64,
    /// Entries removed by applied messages.
    pub entries_removed: AtomicU64,
}

impl IntelCounters {
    /// `(outcome, reason, count)` rows: `("applied", "", n)` then one per reject reason.
    pub fn messages_by_outcome(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut rows = vec![("applied", "none", self.applied.load(Ordering::Relaxed))];
        for (reason, c) in RejectReason::ALL.iter().zip(self.rejected.iter()) {
            rows.push(("rejected", reason.as_str(), c.load(Ordering::Relaxed)));
        }
        rows
    }

    /// Total rejected.
    pub fn rejected_total(&self) -> u64 {
        self.rejected
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    fn count(&self, reason: RejectReason) {
        if let Some(i) = RejectReason::ALL.iter().position(|r| *r == reason)
            && let Some(c) = self.rejected.get(i)
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What a message asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// The source's whole set (replaces what it held).
    Full,
    /// Entries to write and addresses to forget.
    Update,
    /// Forget everything of the source.
    Clear,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEntry {
    ip: String,
    status: String,
    severity: i64,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireMessage {
    format: String,
    source: String,
    kind: MessageKind,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    entries: Vec<WireEntry>,
    #[serde(default)]
    remove: Vec<String>,
}

/// A checked message, ready to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntelMessage {
    /// The source.
    pub source: String,
    /// What it asks.
    pub kind: MessageKind,
    /// Records to write.
    pub records: Vec<IpReputation>,
    /// Addresses to forget.
    pub remove: Vec<IpAddr>,
}

/// Checks a message published on source topic level `topic_source`; `now` is used as the
/// records' time when the message has no `time`.
pub fn parse_message(
    payload: &[u8],
    topic_source: &str,
    limits: &IntelSection,
    now_ns: u64,
) -> Result<IntelMessage, Rejected> {
    if payload.len() > limits.max_message_bytes {
        return Err(reject(
            RejectReason::Oversized,
            format!(
                "{} bytes, more than intel.max_message_bytes = {}",
                payload.len(),
                limits.max_message_bytes
            ),
        ));
    }
    let wire: WireMessage = serde_json::from_slice(payload).map_err(|e| {
        reject(
            RejectReason::Malformed,
            format!("not a {FORMAT_V1} message: {e}"),
        )
    })?;
    if wire.format != FORMAT_V1 {
        return Err(reject(
            RejectReason::Format,
            format!("format {:?}, expected {FORMAT_V1:?}", wire.format),
        ));
    }
    if let Err(e) = validate_source_name(&wire.source) {
        return Err(reject(RejectReason::Source, format!("source: {e}")));
    }
    if wire.source != topic_source {
        return Err(reject(
            RejectReason::Source,
            format!(
                "source {:?} published on the topic of source {topic_source:?}",
                wire.source
            ),
        ));
    }
    let count = wire.entries.len().saturating_add(wire.remove.len());
    if count > limits.max_entries {
        return Err(reject(
            RejectReason::TooMany,
            format!(
                "{count} entries, more than intel.max_entries = {}",
                limits.max_entries
            ),
        ));
    }
    match wire.kind {
        MessageKind::Clear if !wire.entries.is_empty() || !wire.remove.is_empty() => {
            return Err(reject(
                RejectReason::Malformed,
                "a clear message carries no entries",
            ));
        }
        MessageKind::Full if !wire.remove.is_empty() => {
            return Err(reject(
                RejectReason::Malformed,
                "a full message has no removals",
            ));
        }
        _ => {}
    }
    let time = match &wire.time {
        Some(text) => humantime::parse_rfc3339(text)
            .map_err(|e| reject(RejectReason::Malformed, format!("time {text:?}: {e}")))?
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0),
        None => now_ns,
    };
    let mut records = Vec::with_capacity(wire.entries.len());
    let mut seen = std::collections::HashSet::with_capacity(count);
    for (i, e) in wire.entries.iter().enumerate() {
        let ip = parse_ip(&e.ip).map_err(|err| {
            reject(
                RejectReason::Address,
                format!("entry {i}: {:?}: {err}", e.ip),
            )
        })?;
        if !seen.insert(ip) {
            return Err(reject(
                RejectReason::Duplicate,
                format!("entry {i}: {ip} appears twice"),
            ));
        }
        let status = match e.status.as_str() {
            "allow" => ReputationStatus::Allow,
            "deny" => ReputationStatus::Deny,
            "suspicious" => ReputationStatus::Suspicious,
            other => {
                return Err(reject(
                    RejectReason::Status,
                    format!("entry {i}: status {other:?} (allow, deny or suspicious)"),
                ));
            }
        };
        let severity = u8::try_from(e.severity)
            .ok()
            .filter(|s| (1..=10).contains(s))
            .ok_or_else(|| {
                reject(
                    RejectReason::Severity,
                    format!("entry {i}: severity {} (1 to 10)", e.severity),
                )
            })?;
        let mut record = IpReputation::new(&ip, status, severity, time)
            .map_err(|err| reject(RejectReason::Address, format!("entry {i}: {err}")))?;
        for tag in &e.tags {
            record
                .add_tag(tag)
                .map_err(|err| reject(RejectReason::Value, format!("entry {i}: tag: {err}")))?;
        }
        for (k, v) in &e.metadata {
            record.set_metadata(k, v).map_err(|err| {
                reject(RejectReason::Value, format!("entry {i}: metadata: {err}"))
            })?;
        }
        record
            .check()
            .map_err(|rule| reject(RejectReason::Value, format!("entry {i}: {rule}")))?;
        records.push(record);
    }
    let mut remove = Vec::with_capacity(wire.remove.len());
    for (i, text) in wire.remove.iter().enumerate() {
        let ip = parse_ip(text).map_err(|err| {
            reject(
                RejectReason::Address,
                format!("remove {i}: {text:?}: {err}"),
            )
        })?;
        if !seen.insert(ip) {
            return Err(reject(
                RejectReason::Duplicate,
                format!("remove {i}: {ip} appears twice"),
            ));
        }
        remove.push(ip);
    }
    Ok(IntelMessage {
        source: wire.source,
        kind: wire.kind,
        records,
        remove,
    })
}

/// Applies a checked message through the owner's handle.
pub async fn apply(
    store: &ReputationWriter,
    message: IntelMessage,
) -> Result<(usize, usize), Rejected> {
    let written = message.records.len();
    let (replace, records, remove) = match message.kind {
        MessageKind::Full => (true, message.records, Vec::new()),
        MessageKind::Update => (false, message.records, message.remove),
        MessageKind::Clear => (true, Vec::new(), Vec::new()),
    };
    let source = message.source;
    match store.apply_feed(&source, replace, records, remove).await {
        Ok(done) => Ok(done),
        // The store took it; only the snapshot file did not (the next snapshot retries).
        Err(ReputationFailure::NotPersisted(e)) => {
            tracing::warn!(%source, "intel message applied but not in the snapshot file: {e}");
            Ok((0, written))
        }
        Err(ReputationFailure::Store(e)) => Err(match e.rejection() {
            Some(rejection) => reject(
                RejectReason::Store,
                format!("the store refused it: {rejection:?}"),
            ),
            None => reject(
                RejectReason::Unavailable,
                format!("the store did not answer: {e}"),
            ),
        }),
    }
}

/// The subscriber task's parts.
pub struct IntelFeed {
    /// `[mqtt]`.
    pub broker: MqttSection,
    /// `[intel]`.
    pub intel: IntelSection,
    /// Who we are.
    pub host: HostIdentity,
    /// The store's owner handle.
    pub store: Arc<ReputationWriter>,
    /// Message counters.
    pub counters: Arc<IntelCounters>,
    /// Connection counters.
    pub connection: Arc<ConnectionCounters>,
}

impl IntelFeed {
    /// Subscribes and applies until `shutdown` turns true; reconnects with back-off.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let id = broker::client_id(&self.broker, &self.host, "-intel");
        let topic = format!("{}/+", self.intel.topic_prefix);
        let mut backoff = Backoff::new(&self.broker);
        // The client refuses packets past this; messages between the two limits are read and
        // counted as oversized, larger ones drop the connection (set the broker's
        // message_size_limit to keep them out).
        let packet_limit = self.intel.max_message_bytes.saturating_mul(2).max(64 << 10);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let options = match broker::options(&self.broker, id.clone(), None, packet_limit) {
                Ok(o) => o,
                Err(e) => {
                    tracing::error!("intel feed disabled: {e}");
                    return;
                }
            };
            let (client, mut eventloop) = AsyncClient::new(options, 16);
            // Few events in flight: each can carry a message of up to the packet limit.
            let (events_tx, mut events) = mpsc::channel(4);
            let poller = tokio::spawn(async move {
                loop {
                    let event = eventloop.poll().await;
                    let failed = event.is_err();
                    if events_tx.send(event).await.is_err() || failed {
                        break;
                    }
                }
            });
            let lost = loop {
                let event = tokio::select! {
                    e = events.recv() => e,
                    _ = shutdown.changed() => {
                        let _ = client.try_disconnect();
                        poller.abort();
                        return;
                    }
                };
                match event {
                    None => break "event loop ended".to_owned(),
                    Some(Err(e)) => break e.to_string(),
                    Some(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                        if ack.code != ConnectReturnCode::Success {
                            break format!("broker refused the connection: {:?}", ack.code);
                        }
                        backoff.reset();
                        self.connection.connected.store(1, Ordering::Relaxed);
                        self.connection.connections.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = client.try_subscribe(topic.clone(), QoS::AtLeastOnce) {
                            break format!("subscribing: {e}");
                        }
                        tracing::info!(topic = %topic, "intel feed subscribed");
                    }
                    Some(Ok(Event::Incoming(Packet::Publish(p)))) => {
                        self.handle(&p.topic, &p.payload).await;
                    }
                    Some(Ok(_)) => {}
                }
            };
            poller.abort();
            self.connection.failed_quietly(lost);
            let wait = backoff.next_wait();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn handle(&self, topic: &str, payload: &[u8]) {
        let source = topic.rsplit('/').next().unwrap_or("");
        let now = watchpost_actors::clock::now();
        let outcome = match parse_message(payload, source, &self.intel, now) {
            Ok(message) => apply(&self.store, message).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok((removed, written)) => {
                self.counters.applied.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .entries_applied
                    .fetch_add(written as u64, Ordering::Relaxed);
                self.counters
                    .entries_removed
                    .fetch_add(removed as u64, Ordering::Relaxed);
                tracing::debug!(topic, written, removed, "intel message applied");
            }
            Err(e) => {
                self.counters.count(e.reason);
                tracing::warn!(
                    topic,
                    reason = e.reason.as_str(),
                    "intel message rejected: {e}"
                );
            }
        }
    }
}

impl ConnectionCounters {
    /// A lost session, logged at debug level only (a broker outage logs once per attempt).
    pub fn failed_quietly(&self, error: String) {
        tracing::debug!(error = %error, "intel connection lost");
        self.connected.store(0, Ordering::Relaxed);
        self.connection_errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> IntelSection {
        IntelSection::default()
    }

    #[test]
    fn a_good_message_parses() {
        let m = parse_message(
            br#"{"format":"watchpost.intel.v1","source":"feed-a","kind":"update",
                "entries":[{"ip":"203.0.113.7","status":"deny","severity":8,"tags":["botnet"]}],
                "remove":["198.51.100.1"]}"#,
            "feed-a",
            &limits(),
            5,
        )
        .unwrap();
        assert_eq!(m.records.len(), 1);
        assert_eq!(m.records[0].severity, 8);
        assert_eq!(m.records[0].last_updated, 5);
        assert_eq!(m.remove.len(), 1);
    }

    #[test]
    fn bad_messages_name_their_reason() {
        let cases: [(&[u8], &str, RejectReason); 8] = [
            (b"{", "a", RejectReason::Malformed),
            (br#"{"format":"x","source":"a","kind":"full"}"#, "a", RejectReason::Format),
            (br#"{"format":"watchpost.intel.v1","source":"b","kind":"full"}"#, "a", RejectReason::Source),
            (
                br#"{"format":"watchpost.intel.v1","source":"a","kind":"full","entries":[{"ip":"1.2.3.4","status":"deny","severity":11}]}"#,
                "a",
                RejectReason::Severity,
            ),
            (
                br#"{"format":"watchpost.intel.v1","source":"a","kind":"full","entries":[{"ip":"1.2.3","status":"deny","severity":1}]}"#,
                "a",
                RejectReason::Address,
            ),
            (
                br#"{"format":"watchpost.intel.v1","source":"a","kind":"full","entries":[{"ip":"1.2.3.4","status":"meh","severity":1}]}"#,
                "a",
                RejectReason::Status,
            ),
            (
                br#"{"format":"watchpost.intel.v1","source":"a","kind":"full","entries":[{"ip":"1.2.3.4","status":"deny","severity":1},{"ip":"::ffff:1.2.3.4","status":"deny","severity":1}]}"#,
                "a",
                RejectReason::Duplicate,
            ),
            (
                br#"{"format":"watchpost.intel.v1","source":"a","kind":"clear","entries":[{"ip":"1.2.3.4","status":"deny","severity":1}]}"#,
                "a",
                RejectReason::Malformed,
            ),
        ];
        for (payload, source, reason) in cases {
            let e = parse_message(payload, source, &limits(), 0).unwrap_err();
            assert_eq!(
                e.reason,
                reason,
                "{}: {e}",
                String::from_utf8_lossy(payload)
            );
        }
        let small = IntelSection {
            max_message_bytes: 10,
            ..limits()
        };
        assert_eq!(
            parse_message(b"{\"format\":1234567}", "a", &small, 0)
                .unwrap_err()
                .reason,
            RejectReason::Oversized
        );
    }
}
