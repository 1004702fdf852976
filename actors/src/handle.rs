//! [`StoreHandle`]: what a detector holds to talk to one store. Cheap to clone; never fails to
//! exist. Queries are answered from the store's published read view in the caller's own task
//! (no message, no waiting); writes, health and metrics go to the store's actor (one hop, at most
//! the handle's timeout). The store-specific query methods are in each store's module
//! (`impl StoreHandle<ProcessProtocol> { ... }`).

use std::sync::Arc;
use std::time::Duration;

use watchpost_core::{DataStoreMetrics, HealthInfo, StoreError};

use crate::protocol::{Protocol, StoreMsg};
use crate::slot::{Lifecycle, StoreSlot, SupervisionStats};
use crate::view::{Reads, ViewBytes, ViewStats};

/// A typed handle to one store. A handle of a store that is not registered, stopped or failed
/// is a null store: every query answers `StoreUnhealthy` at once (counted as an error) and its
/// health is `Unhealthy`. A restarting store answers queries from its last published copy
/// (its health shows the restart). The handle follows the store: once it is (re)started, the
/// same handle reaches it.
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

    /// Runs `f` on the store's published copy (see [`StoreSlot::read`]); `operation` names the
    /// query in a `StoreUnhealthy` error.
    #[inline]
    pub(crate) fn read_view<R>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&P::Backend, &mut Reads<'_>) -> R,
    ) -> Result<R, StoreError> {
        self.slot.read(operation, f)
    }

    /// Reads the store's published copy in the caller's task without counting a query: for
    /// snapshots and inspection, which iterate records (each store's backend trait has the
    /// iterators; `as_any` reaches the concrete store). `f` runs while the copy is pinned: keep
    /// it short or chunk the work over several calls (the writer's next publish waits for it,
    /// never other readers; between two calls the copy may change). `StoreUnhealthy` when no
    /// copy is published.
    pub fn inspect_view<R>(&self, f: impl FnOnce(&P::Backend) -> R) -> Result<R, StoreError> {
        self.slot.read("inspect", |store, _| f(store))
    }

    /// Runs `visit` on the store inside its actor, as a write: on the unpublished copy (whose
    /// answer is returned), which is then published, then on the other copy, so it may change
    /// the store (persistence clears change marks this way) and must be deterministic (same
    /// effect on both copies; hence `Fn`). How the persistence layer copies records out in
    /// bounded chunks, one chunk per call (keep each visit short: the store applies nothing else
    /// meanwhile; queries are not held up). `InvalidArgument` when the backend is not a `B`;
    /// `StoreUnhealthy` when the store is down or does not answer within the handle's timeout.
    /// Not counted as a data request.
    pub async fn inspect<B: 'static, R: Send + 'static>(
        &self,
        operation: &'static str,
        visit: impl Fn(&mut B) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel::<Option<R>>();
        let mut tx = Some(tx);
        let sent = self.slot.current().is_some_and(|actor| {
            actor
                .send_message(StoreMsg::Inspect(Box::new(
                    move |store: &mut dyn std::any::Any| {
                        let answer = store.downcast_mut::<B>().map(&visit);
                        // The first copy answers; the second only repeats the effect.
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(answer);
                        }
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

    /// Memory of the store's read view: both copies, recency marks, reader records (all
    /// reserved when the store was built). Zeros for a store with no published copy.
    pub fn view_bytes(&self) -> ViewBytes {
        use crate::protocol::StoreBackend;
        self.slot.view.bytes(|store| store.bytes_reserved())
    }

    /// What the store's view writer did: publishes, waits for readers, deferred catch-ups (no
    /// message sent).
    pub fn view_stats(&self) -> ViewStats {
        self.slot.view.stats()
    }

    /// Sends one update to the store's actor and waits for its answer.
    pub(crate) async fn write_update(
        &self,
        operation: &'static str,
        update: P::Update,
    ) -> Result<P::Applied, StoreError> {
        self.slot
            .call(operation, self.timeout, |reply| StoreMsg::Write {
                update,
                reply,
            })
            .await
    }

    /// Makes the store's actor panic (supervision tests).
    #[cfg(feature = "fault-injection")]
    pub fn inject_panic(&self) -> bool {
        self.slot.cast(StoreMsg::Panic)
    }

    /// Makes the store's actor panic in the middle of its next intake message, after applying
    /// `after` of its updates to the unpublished copy (read-path tests).
    #[cfg(feature = "fault-injection")]
    pub fn inject_panic_mid_batch(&self, after: usize) -> bool {
        self.slot.cast(StoreMsg::PanicMidBatch(after))
    }
}
