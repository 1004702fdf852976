//! What every store actor understands: its typed queries, batches of updates from the intake,
//! health and metrics requests. One [`Protocol`] per kind of store fixes the message types, so a
//! handle's type does not depend on which backend implementation is running behind it.

use ractor::RpcReplyPort;
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo};

/// The message vocabulary of one kind of store.
pub trait Protocol: Send + Sync + 'static {
    /// Typed queries; each variant carries its own reply port.
    type Query: Send + 'static;
    /// Updates from collectors, delivered in batches through the bounded intake.
    type Update: Send + 'static;
}

/// A closure run on a store's backend inside its actor ([`StoreMsg::Inspect`]).
pub type Visit = Box<dyn FnOnce(&mut dyn std::any::Any) + Send>;

/// A message to a store actor.
pub enum StoreMsg<P: Protocol> {
    /// A query from a handle.
    Query(P::Query),
    /// Batches drained from the intake in one go; the reply says how many updates applied.
    Apply {
        /// The batches, in arrival order.
        batches: Vec<Vec<P::Update>>,
        /// Where the outcome goes.
        reply: RpcReplyPort<ApplyReport>,
    },
    /// Current health of the backend.
    Health(RpcReplyPort<HealthInfo>),
    /// Current metrics of the backend.
    Metrics(RpcReplyPort<DataStoreMetrics>),
    /// Runs a closure on the backend, between two messages (snapshots copy records out this
    /// way, a bounded chunk per message, so queries keep flowing). The closure receives the
    /// backend as `Any` and downcasts it; see [`crate::StoreHandle::inspect`].
    Inspect(Visit),
    /// Panic inside the actor (supervision tests only).
    #[cfg(feature = "fault-injection")]
    Panic,
}

/// What a batch of updates did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Updates the store took.
    pub applied: u64,
    /// Updates the store refused (malformed, stale…); counted by the store's own stats too.
    pub rejected: u64,
}

/// A store implementation behind an actor: answers queries (each reply goes through the port
/// inside the query), applies updates, reports health and metrics.
///
/// Implemented once per protocol by a blanket impl over the store's typed backend trait (for
/// example every [`crate::stores::process::ProcessBackend`] is a `StoreBackend<ProcessProtocol>`).
pub trait StoreBackend<P: Protocol>: Send + 'static {
    /// Answers `query` through the reply port it carries.
    fn handle_query(&mut self, query: P::Query, now: EpochNanos);
    /// Applies one update; `false` if the store refused it.
    fn apply_update(&mut self, update: P::Update, now: EpochNanos) -> bool;
    /// Called once after each intake message, when all of its batches are applied: upkeep that
    /// should follow writes without running per update (purging expired entries). Nothing by
    /// default.
    fn after_apply(&mut self, _now: EpochNanos) {}
    /// Health as the store sees itself.
    fn health(&self, now: EpochNanos) -> HealthInfo;
    /// Metrics as the store counted them.
    fn metrics(&self) -> DataStoreMetrics;
}

/// A query's reply port, answered and forgotten: a caller that gave up (timeout) dropped its
/// receiver, which is not the store's problem.
pub(crate) fn answer<T>(port: RpcReplyPort<T>, value: T) {
    let _ = port.send(value);
}
