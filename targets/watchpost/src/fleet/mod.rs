//! The fleet: what a gateway tells the operators' central systems and what it is told.
//!
//! # Layout
//! - [`identity`]: host name and boot id.
//! - [`record`]: the versioned detection record (JSON Schema in `schema/`).
//! - [`broker`]: MQTT connection settings shared by the publisher and the intel feed.
//! - [`intel`]: IP reputation pushed over MQTT into the `ip_reputation` store.
//! - [`metrics`]: the Prometheus exposition and its HTTP endpoint.
//! - [`start`]: starting and stopping all of it beside the daemon.
//!
//! The detection sinks (stdout, file, MQTT with its outbox) are in [`crate::sinks`].

pub mod broker;
pub mod identity;
pub mod intel;
pub mod metrics;
pub mod record;
pub mod start;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::sinks::SinkCounters;
use crate::sinks::mqtt::ConnectionCounters;
use crate::sinks::outbox::Outbox;

/// The fleet parts' counters and the outbox, for health, metrics and tests.
#[derive(Debug, Clone, Default)]
pub struct FleetState {
    /// Sink counters.
    pub sinks: Arc<SinkCounters>,
    /// The outbox, when the MQTT sink is on.
    pub outbox: Option<Arc<Outbox>>,
    /// The detection publisher's connection, when the MQTT sink is on.
    pub mqtt: Option<Arc<ConnectionCounters>>,
    /// The intel subscriber's connection, when the feed is on.
    pub intel_connection: Option<Arc<ConnectionCounters>>,
    /// The intel feed's counters, when it is on.
    pub intel: Option<Arc<intel::IntelCounters>>,
    /// The socket's `events --follow` streams.
    pub follow: Arc<crate::server::follow::FollowCounters>,
    /// Why the metrics endpoint is not served, when it is on but could not listen.
    pub metrics_error: Arc<std::sync::Mutex<Option<String>>>,
}

/// One entry of `query health`: (name, status, message).
pub type HealthEntry = (&'static str, &'static str, String);

impl FleetState {
    /// Health entries for the parts that are on: `sinks`, `mqtt` (with the outbox) and `intel`.
    pub fn health(&self) -> Vec<HealthEntry> {
        let mut out = Vec::new();
        let s = &self.sinks;
        let file_errors = s.file_errors.load(Ordering::Relaxed);
        let outbox_errors = s.outbox_errors.load(Ordering::Relaxed);
        if file_errors + outbox_errors > 0 {
            out.push((
                "sinks",
                "degraded",
                format!(
                    "{file_errors} detection-file writes and {outbox_errors} outbox commits failed"
                ),
            ));
        } else {
            out.push(("sinks", "healthy", String::new()));
        }
        if let (Some(outbox), Some(mqtt)) = (&self.outbox, &self.mqtt) {
            let o = outbox.stats();
            let connected = mqtt.connected.load(Ordering::Relaxed) == 1;
            let mut message = format!(
                "{} of {} outbox records waiting, {} dropped because the outbox was full",
                o.records, o.max_records, o.dropped
            );
            if !connected {
                let last = mqtt
                    .last_error
                    .lock()
                    .ok()
                    .and_then(|e| e.clone())
                    .unwrap_or_else(|| "not connected yet".to_owned());
                message = format!("broker unreachable ({last}); {message}");
            }
            let status = if connected && o.dropped == 0 {
                "healthy"
            } else {
                "degraded"
            };
            out.push(("mqtt", status, message));
        }
        if let Some(e) = self.metrics_error.lock().ok().and_then(|e| e.clone()) {
            out.push(("metrics", "degraded", e));
        }
        if let (Some(c), Some(conn)) = (&self.intel, &self.intel_connection) {
            let connected = conn.connected.load(Ordering::Relaxed) == 1;
            let message = format!(
                "{} messages applied, {} rejected, {} entries written",
                c.applied.load(Ordering::Relaxed),
                c.rejected_total(),
                c.entries_applied.load(Ordering::Relaxed)
            );
            out.push((
                "intel",
                if connected { "healthy" } else { "degraded" },
                message,
            ));
        }
        out
    }
}
