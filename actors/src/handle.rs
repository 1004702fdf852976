//! [`StoreHandle`]: what a detector holds to talk to one store. Cheap to clone; sends straight to
//! the store's actor (one hop), waits at most its timeout, never fails to exist. The store-specific
//! query methods are in each store's module (`impl StoreHandle<ProcessProtocol> { ... }`).

use std::sync::Arc;
use std::time::Duration;

use ractor::RpcReplyPort;
use watchpost_core::{DataStoreMetrics, HealthInfo, StoreError};

use crate::protocol::Protocol;
use crate::slot::{Lifecycle, StoreSlot, SupervisionStats};

/// A typed handle to one store. A handle of a store that is not registered, stopped, crashed or
/// restarting is a null store: every query answers `StoreUnhealthy` (counted as an error) and
/// its health is `Unhealthy`. The handle follows the store: once it is (re)started, the same
/// handle reaches it.
pub struct StoreHandle<P: Protocol> {
    pub(crate) slot: Arc<StoreSlot<P>>,
    pub(crate) timeout: Duration,
}

impl<P: Protocol> Clone for StoreHandle<P> {
    fn clone(&self) -> Self {
        StoreHandle {
            slot: self.slot.clone(),
            timeout: self.timeout,
        }
    }
}

impl<P: Protocol> std::fmt::Debug for StoreHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle")
            .field("store", &self.slot.name)
            .field("lifecycle", &self.slot.lifecycle())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<P: Protocol> StoreHandle<P> {
    pub(crate) fn new(slot: Arc<StoreSlot<P>>) -> Self {
        let timeout = slot.default_timeout();
        StoreHandle { slot, timeout }
    }

    /// The store's registered name (`"process"`, ...).
    pub fn name(&self) -> &'static str {
        self.slot.name
    }

    /// The same handle with another call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// This handle's call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the store's actor is up right now (no message sent).
    pub fn is_running(&self) -> bool {
        self.slot.lifecycle() == Lifecycle::Running
    }

    /// Where the store is in its life (no message sent).
    pub fn lifecycle(&self) -> Lifecycle {
        self.slot.lifecycle()
    }

    /// The store's health (see [`StoreSlot::health`]): `Unhealthy` for a null, stopped or
    /// restarting store, "degraded: …" after an intake overflow or a restart.
    pub async fn get_health(&self) -> HealthInfo {
        self.slot.health(self.timeout).await
    }

    /// The store's metrics, including the errors seen only on the handle side (calls that found
    /// no actor, timeouts).
    pub async fn get_metrics(&self) -> DataStoreMetrics {
        self.slot.metrics(self.timeout).await
    }

    /// Restarts, intake and handle-side counters (no message sent).
    pub fn supervision(&self) -> SupervisionStats {
        self.slot.supervision_stats()
    }

    /// Resolves when the store's intake next makes progress (a batch applied, rejected or
    /// dropped). Create it *before* reading [`Self::supervision`]'s counters: progress made in
    /// between still wakes it, so waiting for a count needs no polling.
    pub fn intake_progress(&self) -> tokio::sync::futures::Notified<'_> {
        self.slot.counters.progress.notified()
    }

    pub(crate) async fn call<R: Send + 'static>(
        &self,
        operation: &'static str,
        build: impl FnOnce(RpcReplyPort<R>) -> P::Query,
    ) -> Result<R, StoreError> {
        self.slot.call(operation, self.timeout, build).await
    }

    /// A query whose reply is itself a `Result`.
    pub(crate) async fn ask<R: Send + 'static>(
        &self,
        operation: &'static str,
        build: impl FnOnce(RpcReplyPort<Result<R, StoreError>>) -> P::Query,
    ) -> Result<R, StoreError> {
        self.call(operation, build).await?
    }

    /// Runs `visit` on the store's backend inside its actor, between two messages, and returns
    /// its answer: how the persistence layer copies records out in bounded chunks (keep each
    /// visit short: the store answers nothing else meanwhile). `InvalidArgument` when the
    /// backend is not a `B`; `StoreUnhealthy` when the store is down or does not answer in time.
    /// Not counted as a data request.
    pub async fn inspect<B: 'static, R: Send + 'static>(
        &self,
        operation: &'static str,
        visit: impl FnOnce(&mut B) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel::<Option<R>>();
        let sent = self.slot.current().is_some_and(|actor| {
            actor
                .send_message(crate::protocol::StoreMsg::Inspect(Box::new(
                    move |backend: &mut dyn std::any::Any| {
                        let answer = backend.downcast_mut::<B>().map(visit);
                        let _ = tx.send(answer);
                    },
                )))
                .is_ok()
        });
        if !sent {
            return Err(StoreError::unhealthy(self.slot.name, operation));
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(Some(answer))) => Ok(answer),
            Ok(Ok(None)) => Err(StoreError::new(
                self.slot.name,
                operation,
                watchpost_core::ErrorKind::InvalidArgument,
            )),
            _ => Err(StoreError::unhealthy(self.slot.name, operation)),
        }
    }

    /// Makes the store's actor panic (supervision tests).
    #[cfg(feature = "fault-injection")]
    pub fn inject_panic(&self) -> bool {
        self.slot.cast(crate::protocol::StoreMsg::Panic)
    }
}
