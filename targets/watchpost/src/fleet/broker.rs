//! The MQTT connection settings both fleet clients use (the detection publisher and the intel
//! subscriber): client id, credentials, TLS and keep-alive from `[mqtt]`, and the reconnect
//! back-off.

use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};

use crate::config::fleet::MqttSection;
use crate::fleet::identity::HostIdentity;

/// Why the broker settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BrokerConfigError {
    /// A TLS file could not be read.
    #[error("reading {key} {path}: {source}")]
    TlsFile {
        /// The configuration key.
        key: &'static str,
        /// The file.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// The client id for a connection: `[mqtt] client_id` (or `watchpost-<host>`) plus `suffix`.
pub fn client_id(section: &MqttSection, host: &HostIdentity, suffix: &str) -> String {
    let base = if section.client_id.is_empty() {
        format!("watchpost-{}", host.topic_level())
    } else {
        section.client_id.clone()
    };
    format!("{base}{suffix}")
}

/// The options of one connection. `will`: a retained last-will message `(topic, payload)`.
pub fn options(
    section: &MqttSection,
    client_id: String,
    will: Option<(String, &'static str)>,
    max_incoming_bytes: usize,
) -> Result<MqttOptions, BrokerConfigError> {
    let mut o = MqttOptions::new(client_id, section.host.clone(), section.port);
    o.set_keep_alive(Duration::from_secs(section.keep_alive_secs));
    // A new session on every connection: what is not acknowledged is re-sent from the outbox,
    // and subscriptions are renewed (retained intel arrives again).
    o.set_clean_session(true);
    o.set_max_packet_size(max_incoming_bytes, 1 << 20);
    if !section.username.is_empty() {
        o.set_credentials(section.username.clone(), section.password.clone());
    }
    if let Some((topic, payload)) = will {
        o.set_last_will(LastWill::new(topic, payload, QoS::AtLeastOnce, true));
    }
    if section.tls {
        let read = |key: &'static str, path: &std::path::Path| {
            std::fs::read(path).map_err(|source| BrokerConfigError::TlsFile {
                key,
                path: path.display().to_string(),
                source,
            })
        };
        let ca = read("mqtt.ca_file", &section.ca_file)?;
        let client_auth = if section.client_cert_file.as_os_str().is_empty() {
            None
        } else {
            Some((
                read("mqtt.client_cert_file", &section.client_cert_file)?,
                read("mqtt.client_key_file", &section.client_key_file)?,
            ))
        };
        // rustls needs a process-wide crypto provider; a second install is a harmless no-op.
        // ring, not aws-lc-rs: aws-lc-rs needs cmake and minutes of C build on a gateway's
        // toolchain. (Deprecated only for lacking post-quantum key exchange.)
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
        o.set_transport(Transport::Tls(TlsConfiguration::Simple {
            ca,
            alpn: None,
            client_auth,
        }));
    }
    Ok(o)
}

/// Doubling back-off between reconnects, from `min` to `max`, reset by a successful connection.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// From `[mqtt] reconnect_min_ms` / `reconnect_max_ms`.
    pub fn new(section: &MqttSection) -> Backoff {
        let min = Duration::from_millis(section.reconnect_min_ms.max(1));
        Backoff {
            min,
            max: Duration::from_millis(section.reconnect_max_ms).max(min),
            next: min,
        }
    }

    /// The wait before the next attempt (and doubles the one after).
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// Connected: the next failure waits `min` again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}
