//! The place a store lives, shared by the registry (which fills and empties it) and every handle:
//! the store's actor (its only writer, reached for writes, health and metrics) and its published
//! read view (which handles read without a message). Handles hold the slot, never the actor, so
//! a handle taken before a store registered or before it restarted keeps working once the store
//! is back; while it restarts, reads keep answering from its last published copy.
//!
//! The slot also keeps the counters only the handle side can see: calls that found no actor,
//! calls that timed out, restarts, intake overflow. They survive restarts and are merged into the
//! store's health and metrics.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use ractor::{ActorRef, RpcReplyPort};
use tokio::sync::{Notify, oneshot};
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo, HealthStatus, StoreError};

use crate::clock::now;
use crate::protocol::{Protocol, StoreMsg};
use crate::view::{EXTRA_COUNTERS, Reads, ViewCell};

/// Where a store is in its life, as handles see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Nothing registered under this name: a null store.
    NotRegistered = 0,
    /// The actor is up and answering.
    Running = 1,
    /// The actor panicked; the supervisor is rebuilding it.
    Restarting = 2,
    /// Stopped on purpose (shutdown).
    Stopped = 3,
    /// The supervisor gave up restarting it (restart limit reached or its factory keeps failing).
    Failed = 4,
}

impl Lifecycle {
    fn from_u8(v: u8) -> Lifecycle {
        match v {
            1 => Lifecycle::Running,
            2 => Lifecycle::Restarting,
            3 => Lifecycle::Stopped,
            4 => Lifecycle::Failed,
            _ => Lifecycle::NotRegistered,
        }
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::NotRegistered => "not registered",
            Lifecycle::Running => "running",
            Lifecycle::Restarting => "restarting",
            Lifecycle::Stopped => "stopped",
            Lifecycle::Failed => "failed",
        }
    }
}

/// How long after an incident (restart, intake overflow) a store reports itself degraded.
pub const DEFAULT_DEGRADED_WINDOW: Duration = Duration::from_secs(60);

/// Counters kept on the handle side of a store; they survive restarts.
#[derive(Debug, Default)]
pub(crate) struct SlotCounters {
    /// Calls answered `StoreUnhealthy` because no actor was there (null store, restarting,
    /// stopped, crashed while the call was in flight).
    pub unavailable: AtomicU64,
    /// Calls that got no answer within their timeout.
    pub timeouts: AtomicU64,
    /// Last time any call went through this slot (epoch ns).
    pub last_access: AtomicU64,
    /// Times the supervisor rebuilt the actor.
    pub restarts: AtomicU64,
    /// When the last restart happened (epoch ns, 0: never).
    pub last_restart_at: AtomicU64,
    /// Batches refused because the intake queue was full (or too large).
    pub overflow_batches: AtomicU64,
    /// Updates inside those batches.
    pub overflow_updates: AtomicU64,
    /// When the last overflow happened (epoch ns, 0: never).
    pub last_overflow_at: AtomicU64,
    /// Updates accepted into the queue but lost (store crashed while applying, or gone).
    pub dropped_updates: AtomicU64,
    /// Updates the store applied.
    pub applied_updates: AtomicU64,
    /// Updates the store refused.
    pub rejected_updates: AtomicU64,
    /// Woken whenever the intake made progress (a batch applied, rejected or dropped), so a
    /// producer can wait for its updates without polling.
    pub progress: tokio::sync::Notify,
    /// Times the intake's drain task panicked and was started again.
    pub drain_restarts: AtomicU64,
    /// Fault injection: the drain task panics at its next batch.
    #[cfg(feature = "fault-injection")]
    pub drain_panic: std::sync::atomic::AtomicBool,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Everything known about a store beyond the reference's health and metrics.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SupervisionStats {
    /// Where the store is in its life.
    pub lifecycle: Lifecycle,
    /// Times the supervisor rebuilt the store after a panic.
    pub restarts: u64,
    /// When the last restart happened (epoch ns, 0: never).
    pub last_restart_at: EpochNanos,
    /// Why the store last went down, if it did.
    pub last_failure: Option<String>,
    /// Calls answered `StoreUnhealthy` because no actor was there.
    pub unavailable_calls: u64,
    /// Calls that timed out.
    pub timed_out_calls: u64,
    /// Intake: batches refused because the queue was full.
    pub intake_overflow_batches: u64,
    /// Intake: updates inside refused batches.
    pub intake_overflow_updates: u64,
    /// Intake: updates accepted but lost (store crashed while applying them, or went away).
    pub intake_dropped_updates: u64,
    /// Intake: updates applied.
    pub intake_applied_updates: u64,
    /// Intake: updates the store refused.
    pub intake_rejected_updates: u64,
    /// Intake: times its drain task panicked and was started again (the batches it held are
    /// counted as dropped).
    #[serde(default)]
    pub intake_drain_restarts: u64,
}

/// The shared home of one store's actor.
pub(crate) struct StoreSlot<P: Protocol> {
    /// The name the store is registered under (leaked once per name, see [`crate::names`]).
    pub name: &'static str,
    actor: ArcSwapOption<ActorRef<StoreMsg<P>>>,
    /// The store's two copies; the actor writes them, handles read the published one.
    pub view: ViewCell<P::Backend>,
    lifecycle: AtomicU8,
    /// Why the store last went down.
    last_failure: Mutex<Option<String>>,
    /// Woken whenever an actor is installed (the intake waits on it during a restart).
    installed: Notify,
    /// Default call timeout of handles on this slot, ns.
    timeout_ns: AtomicU64,
    /// How long incidents keep the store reported as degraded, ns.
    degraded_window_ns: AtomicU64,
    pub counters: SlotCounters,
}

impl<P: Protocol> StoreSlot<P> {
    /// An empty slot: a null store until something registers.
    pub fn new(name: &'static str, timeout: Duration) -> Self {
        StoreSlot {
            name,
            actor: ArcSwapOption::empty(),
            view: ViewCell::new(),
            lifecycle: AtomicU8::new(Lifecycle::NotRegistered as u8),
            last_failure: Mutex::new(None),
            installed: Notify::new(),
            timeout_ns: AtomicU64::new(duration_ns(timeout)),
            degraded_window_ns: AtomicU64::new(duration_ns(DEFAULT_DEGRADED_WINDOW)),
            counters: SlotCounters::default(),
        }
    }

    pub fn set_timeouts(&self, call_timeout: Duration, degraded_window: Duration) {
        self.timeout_ns
            .store(duration_ns(call_timeout), Ordering::Relaxed);
        self.degraded_window_ns
            .store(duration_ns(degraded_window), Ordering::Relaxed);
    }

    pub fn default_timeout(&self) -> Duration {
        Duration::from_nanos(self.timeout_ns.load(Ordering::Relaxed))
    }

    pub fn lifecycle(&self) -> Lifecycle {
        Lifecycle::from_u8(self.lifecycle.load(Ordering::Acquire))
    }

    /// Puts a freshly spawned actor in the slot; calls reach it from now on.
    pub fn install(&self, actor: ActorRef<StoreMsg<P>>) {
        self.actor.store(Some(std::sync::Arc::new(actor)));
        self.lifecycle
            .store(Lifecycle::Running as u8, Ordering::Release);
        self.installed.notify_waiters();
    }

    /// Empties the slot: from now on writes answer `StoreUnhealthy` at once. A restarting store
    /// keeps its last published copy for readers; a stopped or failed one is removed (its
    /// memory freed) and reads answer `StoreUnhealthy` too.
    pub fn vacate(&self, lifecycle: Lifecycle, reason: Option<String>) {
        self.actor.store(None);
        self.lifecycle.store(lifecycle as u8, Ordering::Release);
        if lifecycle != Lifecycle::Restarting {
            let mut w = self.view.writer();
            *w.back() = None;
            w.publish();
            *w.back() = None;
        }
        if let Some(reason) = reason {
            *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
        }
        self.installed.notify_waiters();
    }

    pub fn record_restart(&self) {
        bump(&self.counters.restarts);
        self.counters
            .last_restart_at
            .store(now(), Ordering::Relaxed);
    }

    /// The current actor, if any.
    pub fn current(&self) -> Option<std::sync::Arc<ActorRef<StoreMsg<P>>>> {
        self.actor.load_full()
    }

    /// Waits until an actor is installed or the slot settles in a state without one, at most
    /// `limit`. Returns the actor if there is one afterwards.
    pub async fn wait_for_actor(
        &self,
        limit: Duration,
    ) -> Option<std::sync::Arc<ActorRef<StoreMsg<P>>>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.installed.notified();
            if let Some(actor) = self.current() {
                return Some(actor);
            }
            if self.lifecycle() != Lifecycle::Restarting {
                return None;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.current();
            }
        }
    }

    fn unavailable(&self, operation: &'static str) -> StoreError {
        bump(&self.counters.unavailable);
        StoreError::unhealthy(self.name, operation)
    }

    fn touch(&self) {
        self.counters
            .last_access
            .fetch_max(now(), Ordering::Relaxed);
    }

    /// Answers a query from the published read view, in the caller's task: no message, no
    /// waiting. A store that is not registered, stopped or failed (or that never published)
    /// answers `StoreUnhealthy`, counted as an error; a restarting one answers from its last
    /// published copy.
    #[inline]
    pub fn read<R>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&P::Backend, &mut Reads<'_>) -> R,
    ) -> Result<R, StoreError> {
        if !matches!(self.lifecycle(), Lifecycle::Running | Lifecycle::Restarting) {
            self.touch();
            return Err(self.unavailable(operation));
        }
        match self.view.read(f) {
            Some(answer) => Ok(answer),
            None => {
                self.touch();
                Err(self.unavailable(operation))
            }
        }
    }

    /// Sends a message built around a fresh reply port (a write) and waits at most `timeout` for
    /// the answer. No actor, an actor that dies before answering, or no answer in time:
    /// `StoreUnhealthy`, counted as an error of this store.
    pub async fn call<R: Send + 'static>(
        &self,
        operation: &'static str,
        timeout: Duration,
        build: impl FnOnce(RpcReplyPort<R>) -> StoreMsg<P>,
    ) -> Result<R, StoreError> {
        let (tx, rx) = oneshot::channel();
        {
            let guard = self.actor.load();
            let Some(actor) = guard.as_deref() else {
                self.touch();
                return Err(self.unavailable(operation));
            };
            if actor.send_message(build(tx.into())).is_err() {
                self.touch();
                return Err(self.unavailable(operation));
            }
        }
        self.finish(operation, timeout, rx).await
    }

    /// Sends a control message (health, metrics, apply) and waits for its answer like
    /// [`StoreSlot::call`], without counting it as a data request.
    pub async fn control<R: Send + 'static>(
        &self,
        timeout: Duration,
        build: impl FnOnce(RpcReplyPort<R>) -> StoreMsg<P>,
    ) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        let actor = self.current()?;
        actor.send_message(build(tx.into())).ok()?;
        drop(actor);
        tokio::time::timeout(timeout, rx).await.ok()?.ok()
    }

    async fn finish<R>(
        &self,
        operation: &'static str,
        timeout: Duration,
        rx: oneshot::Receiver<R>,
    ) -> Result<R, StoreError> {
        let outcome = tokio::time::timeout(timeout, rx).await;
        match outcome {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_dropped)) => {
                self.touch();
                Err(self.unavailable(operation))
            }
            Err(_elapsed) => {
                self.touch();
                bump(&self.counters.timeouts);
                Err(StoreError::unhealthy(self.name, operation))
            }
        }
    }

    /// Sends a message without waiting (panic injection).
    #[cfg(feature = "fault-injection")]
    pub fn cast(&self, msg: StoreMsg<P>) -> bool {
        self.current().is_some_and(|a| a.send_message(msg).is_ok())
    }

    fn degraded_since(&self, at: EpochNanos, now: EpochNanos) -> bool {
        at != 0 && now.saturating_sub(at) <= self.degraded_window_ns.load(Ordering::Relaxed)
    }

    /// Health: the backend's, or why there is no backend; an intake overflow or a restart
    /// within the degraded window makes a healthy store "degraded" (the reference's Unhealthy).
    pub async fn health(&self, timeout: Duration) -> HealthInfo {
        let t = now();
        let lifecycle = self.lifecycle();
        let base = match lifecycle {
            Lifecycle::Running => match self.control(timeout, StoreMsg::Health).await {
                Some(health) => health,
                None => HealthInfo::unhealthy(
                    &format!("no answer within {} ms", timeout.as_millis()),
                    t,
                ),
            },
            Lifecycle::NotRegistered => {
                HealthInfo::unhealthy(&format!("null store: {} not registered", self.name), t)
            }
            other => {
                let reason = self.last_failure();
                let restarts = self.counters.restarts.load(Ordering::Relaxed);
                let message = match reason {
                    Some(r) => format!("{} (restarts: {restarts}): {r}", other.as_str()),
                    None => format!("{} (restarts: {restarts})", other.as_str()),
                };
                HealthInfo::unhealthy(&message, t)
            }
        };
        if base.status != HealthStatus::Healthy {
            return base;
        }
        let c = &self.counters;
        let overflow_at = c.last_overflow_at.load(Ordering::Relaxed);
        if self.degraded_since(overflow_at, t) {
            let n = c.overflow_updates.load(Ordering::Relaxed);
            return HealthInfo::unhealthy(&format!("degraded: intake overflow {n}"), t);
        }
        let restart_at = c.last_restart_at.load(Ordering::Relaxed);
        if self.degraded_since(restart_at, t) {
            let n = c.restarts.load(Ordering::Relaxed);
            return HealthInfo::unhealthy(&format!("degraded: restarted {n} times"), t);
        }
        base
    }

    /// Metrics: the backend's counters (its writes), the reads its view counted, plus the
    /// errors only the handle side saw (no store, timeouts). A null or crashed store reports
    /// item count 0, its reads so far and its handle-side errors.
    pub async fn metrics(&self, timeout: Duration) -> DataStoreMetrics {
        let mut m = if self.lifecycle() == Lifecycle::Running {
            self.control(timeout, StoreMsg::Metrics)
                .await
                .unwrap_or_default()
        } else {
            DataStoreMetrics::default()
        };
        let (reads, _) = self.view.read_counts();
        m.success_count = m.success_count.saturating_add(reads.success_count);
        m.error_count = m.error_count.saturating_add(reads.error_count);
        m.cache_hits = m.cache_hits.saturating_add(reads.cache_hits);
        m.cache_misses = m.cache_misses.saturating_add(reads.cache_misses);
        m.last_access = m.last_access.max(reads.last_access);
        let c = &self.counters;
        m.error_count = m
            .error_count
            .saturating_add(c.unavailable.load(Ordering::Relaxed))
            .saturating_add(c.timeouts.load(Ordering::Relaxed));
        m.last_access = m.last_access.max(c.last_access.load(Ordering::Relaxed));
        m
    }

    /// The store-specific counters its readers kept (see each store's `*_stats`).
    pub fn read_extras(&self) -> [u64; EXTRA_COUNTERS] {
        self.view.read_counts().1
    }

    pub fn last_failure(&self) -> Option<String> {
        self.last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn supervision_stats(&self) -> SupervisionStats {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SupervisionStats {
            lifecycle: self.lifecycle(),
            restarts: load(&c.restarts),
            last_restart_at: load(&c.last_restart_at),
            last_failure: self.last_failure(),
            unavailable_calls: load(&c.unavailable),
            timed_out_calls: load(&c.timeouts),
            intake_overflow_batches: load(&c.overflow_batches),
            intake_overflow_updates: load(&c.overflow_updates),
            intake_dropped_updates: load(&c.dropped_updates),
            intake_applied_updates: load(&c.applied_updates),
            intake_rejected_updates: load(&c.rejected_updates),
            intake_drain_restarts: load(&c.drain_restarts),
        }
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The parts of a slot the registry and `get_custom` need without knowing the protocol.
pub(crate) trait SlotView: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn lifecycle(&self) -> Lifecycle;
    fn health_boxed(
        &self,
        timeout: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = HealthInfo> + Send + '_>>;
    fn metrics_boxed(
        &self,
        timeout: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = DataStoreMetrics> + Send + '_>>;
    fn supervision_stats(&self) -> SupervisionStats;
    fn default_timeout(&self) -> Duration;
    fn set_timeouts(&self, call_timeout: Duration, degraded_window: Duration);
    fn vacate(&self, lifecycle: Lifecycle, reason: Option<String>);
    fn record_restart(&self);
    fn as_any(self: std::sync::Arc<Self>) -> std::sync::Arc<dyn std::any::Any + Send + Sync>;
}

impl<P: Protocol> SlotView for StoreSlot<P> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn lifecycle(&self) -> Lifecycle {
        StoreSlot::lifecycle(self)
    }
    fn health_boxed(
        &self,
        timeout: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = HealthInfo> + Send + '_>> {
        Box::pin(self.health(timeout))
    }
    fn metrics_boxed(
        &self,
        timeout: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = DataStoreMetrics> + Send + '_>> {
        Box::pin(self.metrics(timeout))
    }
    fn supervision_stats(&self) -> SupervisionStats {
        StoreSlot::supervision_stats(self)
    }
    fn default_timeout(&self) -> Duration {
        StoreSlot::default_timeout(self)
    }
    fn set_timeouts(&self, call_timeout: Duration, degraded_window: Duration) {
        StoreSlot::set_timeouts(self, call_timeout, degraded_window)
    }
    fn vacate(&self, lifecycle: Lifecycle, reason: Option<String>) {
        StoreSlot::vacate(self, lifecycle, reason)
    }
    fn record_restart(&self) {
        StoreSlot::record_restart(self)
    }
    fn as_any(self: std::sync::Arc<Self>) -> std::sync::Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}
