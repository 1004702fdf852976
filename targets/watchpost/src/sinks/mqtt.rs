//! The MQTT sink: publishes the outbox's records, in key order, QoS 1, to
//! `<prefix>/<host>/detections`, and removes each from the outbox once the broker's PUBACK for it
//! arrived. `<prefix>/<host>/status` holds `online` (retained) while connected; the connection's
//! last will sets it to `offline`.
//!
//! One connection is one session (clean session): when it is lost the client is dropped, and the
//! next session starts again from the oldest record still in the outbox. Records that were sent
//! but not acknowledged are therefore sent again — at-least-once, in order, dedupe by record id.
//!
//! rumqttc numbers publishes itself; it reports each one's packet id (`Outgoing::Publish`) in the
//! order the requests were handed to it, which is how a PUBACK is traced back to an outbox key.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, ConnectReturnCode, Event, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, watch};

use crate::config::fleet::{MqttSection, MqttSinkSection};
use crate::fleet::broker::{self, Backoff};
use crate::fleet::identity::HostIdentity;
use crate::sinks::blocking;
use crate::sinks::outbox::Outbox;

/// Connection counters of an MQTT client, for health and metrics.
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    /// 1 while connected (CONNACK received).
    pub connected: AtomicU64,
    /// Successful connections.
    pub connections: AtomicU64,
    /// Connection attempts or sessions that failed.
    pub connection_errors: AtomicU64,
    /// Publishes handed to the broker (re-sends included).
    pub published: AtomicU64,
    /// PUBACKs for outbox records.
    pub acknowledged: AtomicU64,
    /// The last connection error.
    pub last_error: Mutex<Option<String>>,
}

impl ConnectionCounters {
    fn failed(&self, error: String) {
        self.connected.store(0, Ordering::Relaxed);
        self.connection_errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(error);
        }
    }
}

/// The topics of a host.
#[derive(Debug, Clone)]
pub struct HostTopics {
    /// Detections.
    pub detections: String,
    /// `online` / `offline`.
    pub status: String,
}

impl HostTopics {
    /// `<prefix>/<host>/detections` and `<prefix>/<host>/status`.
    pub fn new(prefix: &str, host: &HostIdentity) -> HostTopics {
        let level = host.topic_level();
        HostTopics {
            detections: format!("{prefix}/{level}/detections"),
            status: format!("{prefix}/{level}/status"),
        }
    }
}

/// The publisher task's parts.
#[derive(Debug)]
pub struct MqttPublisher {
    /// Where records wait.
    pub outbox: Arc<Outbox>,
    /// `[mqtt]`.
    pub broker: MqttSection,
    /// `[sinks.mqtt]`.
    pub sink: MqttSinkSection,
    /// Who we are.
    pub host: HostIdentity,
    /// Counters.
    pub counters: Arc<ConnectionCounters>,
}

enum SessionEnd {
    Shutdown,
    Lost,
}

/// How many acknowledged keys are removed from the outbox in one transaction at most.
const ACK_BATCH: usize = 512;
/// How often acknowledgements are flushed and the outbox is looked at without a signal.
const TICK: Duration = Duration::from_millis(10);
/// How often removals are made durable when nothing else fsyncs the outbox.
const SYNC_EVERY: Duration = Duration::from_secs(1);

impl MqttPublisher {
    /// Publishes until `shutdown` turns true; then says `offline` and disconnects.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let topics = HostTopics::new(&self.sink.topic_prefix, &self.host);
        let id = broker::client_id(&self.broker, &self.host, "");
        let mut backoff = Backoff::new(&self.broker);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let options = match broker::options(
                &self.broker,
                id.clone(),
                Some((topics.status.clone(), "offline")),
                64 << 10,
            ) {
                Ok(o) => o,
                Err(e) => {
                    tracing::error!("MQTT sink disabled: {e}");
                    self.counters.failed(e.to_string());
                    return;
                }
            };
            let inflight = usize::from(self.sink.inflight);
            let mut options = options;
            options.set_inflight(self.sink.inflight);
            options.set_request_channel_capacity(inflight + 8);
            let (client, mut eventloop) = AsyncClient::new(options, inflight + 8);
            // The event loop runs in its own task (its poll is not meant to be cancelled);
            // events come back through a bounded channel.
            let (events_tx, mut events) = mpsc::channel(1024);
            let poller = tokio::spawn(async move {
                loop {
                    let event = eventloop.poll().await;
                    let failed = event.is_err();
                    if events_tx.send(event).await.is_err() || failed {
                        break;
                    }
                }
            });
            let end = self
                .session(&client, &topics, &mut events, &mut shutdown, &mut backoff)
                .await;
            match end {
                SessionEnd::Shutdown => {
                    let _ = client.try_publish(&topics.status, QoS::AtLeastOnce, true, "offline");
                    let _ = client.try_disconnect();
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(Ok(_)) = events.recv().await {}
                    })
                    .await;
                    poller.abort();
                    if let Err(e) = blocking(|| self.outbox.sync()) {
                        tracing::warn!("outbox sync at shutdown: {e}");
                    }
                    break;
                }
                SessionEnd::Lost => {
                    poller.abort();
                    let wait = backoff.next_wait();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    async fn session(
        &self,
        client: &AsyncClient,
        topics: &HostTopics,
        events: &mut mpsc::Receiver<Result<Event, rumqttc::ConnectionError>>,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
    ) -> SessionEnd {
        let inflight = usize::from(self.sink.inflight);
        let mut connected = false;
        // Publishes handed to rumqttc, waiting for their packet id (None: the status message).
        let mut order: VecDeque<Option<u64>> = VecDeque::new();
        let mut by_packet: HashMap<u16, Option<u64>> = HashMap::new();
        let mut cursor: Option<u64> = None;
        let mut in_flight = 0usize;
        let mut acked: Vec<u64> = Vec::with_capacity(ACK_BATCH);
        let mut last_sync = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if connected && in_flight < inflight {
                match blocking(|| self.outbox.read_after(cursor, inflight - in_flight)) {
                    Ok(batch) => {
                        for (key, payload) in batch {
                            if client
                                .try_publish(&topics.detections, QoS::AtLeastOnce, false, payload)
                                .is_err()
                            {
                                break;
                            }
                            order.push_back(Some(key));
                            cursor = Some(key);
                            in_flight += 1;
                            self.counters.published.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => tracing::warn!("reading the outbox: {e}"),
                }
            }
            let mut flush = acked.len() >= ACK_BATCH;
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    self.flush_acks(&mut acked, &mut last_sync);
                    return SessionEnd::Shutdown;
                }
                event = events.recv() => match event {
                    None => {
                        self.flush_acks(&mut acked, &mut last_sync);
                        return SessionEnd::Lost;
                    }
                    Some(Err(e)) => {
                        self.flush_acks(&mut acked, &mut last_sync);
                        if connected {
                            tracing::warn!(error = %e, "MQTT connection lost; detections wait in the outbox");
                        } else {
                            tracing::debug!(error = %e, "MQTT connection attempt failed");
                        }
                        self.counters.failed(e.to_string());
                        return SessionEnd::Lost;
                    }
                    Some(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                        if ack.code != ConnectReturnCode::Success {
                            self.counters.failed(format!("broker refused the connection: {:?}", ack.code));
                            return SessionEnd::Lost;
                        }
                        connected = true;
                        backoff.reset();
                        self.counters.connected.store(1, Ordering::Relaxed);
                        self.counters.connections.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(topic = %topics.detections, "MQTT connected: publishing detections");
                        if client.try_publish(&topics.status, QoS::AtLeastOnce, true, "online").is_ok() {
                            order.push_back(None);
                        }
                    }
                    Some(Ok(Event::Outgoing(Outgoing::Publish(packet)))) => {
                        if let Some(slot) = order.pop_front() {
                            by_packet.insert(packet, slot);
                        }
                    }
                    Some(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                        if let Some(Some(key)) = by_packet.remove(&ack.pkid) {
                            acked.push(key);
                            in_flight = in_flight.saturating_sub(1);
                            self.counters.acknowledged.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some(Ok(_)) => {}
                },
                _ = self.outbox.appended_signal(), if connected && in_flight < inflight => {}
                _ = tick.tick() => flush = true,
            }
            if flush && !acked.is_empty() {
                self.flush_acks(&mut acked, &mut last_sync);
            }
        }
    }

    fn flush_acks(&self, acked: &mut Vec<u64>, last_sync: &mut Instant) {
        if acked.is_empty() {
            return;
        }
        let durable = last_sync.elapsed() >= SYNC_EVERY;
        match blocking(|| self.outbox.remove(acked, durable)) {
            Ok(()) => {
                if durable {
                    *last_sync = Instant::now();
                }
            }
            Err(e) => tracing::warn!("removing acknowledged records from the outbox: {e}"),
        }
        acked.clear();
    }
}
