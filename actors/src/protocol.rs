//! What every store actor understands, and what every store must do to run behind one.
//!
//! Queries do not go through the actor: handles answer them from the store's published read
//! view ([`crate::view`]) in the caller's own task. The actor is the store's only writer: it
//! applies batches of updates from the intake and single writes to both copies of the view, and
//! answers health and metrics. One [`Protocol`] per kind of store fixes the update types and the
//! backend trait object a handle reads, so a handle's type does not depend on which backend
//! implementation is running behind it.

use ractor::RpcReplyPort;
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo};

/// The vocabulary of one kind of store.
pub trait Protocol: Send + Sync + 'static {
    /// Updates from collectors (batches through the bounded intake) and single writes.
    type Update: Send + 'static;
    /// What applying one update answers (`bool`: taken or refused, for core stores; the write's
    /// reply for writable stores).
    type Applied: Send + 'static;
    /// What a handle reads: the store behind the view, usually a trait object.
    type Backend: ?Sized + StoreBackend<Self>;

    /// Whether an update's answer means the store took it (for the intake's counters).
    fn accepted(applied: &Self::Applied) -> bool;
}

/// A closure the actor runs on each copy of a store ([`StoreMsg::Inspect`]); it receives the
/// store as `Any` and downcasts it.
pub type Visit = Box<dyn FnMut(&mut dyn std::any::Any) + Send>;

/// A message to a store actor.
pub enum StoreMsg<P: Protocol> {
    /// Batches drained from the intake in one go; the reply says how many updates applied.
    Apply {
        /// The batches, in arrival order.
        batches: Vec<Vec<P::Update>>,
        /// Where the outcome goes.
        reply: RpcReplyPort<ApplyReport>,
    },
    /// One update whose own answer the sender waits for (a writable store's owner writes).
    Write {
        /// The update.
        update: P::Update,
        /// Its answer.
        reply: RpcReplyPort<P::Applied>,
    },
    /// Runs a closure on the store as a write, between two messages: on both copies (snapshots
    /// copy records out this way, a bounded chunk per message, and clear change marks). The
    /// closure receives the store as `Any` and downcasts it; see [`crate::StoreHandle::inspect`].
    Inspect(Visit),
    /// Current health of the backend.
    Health(RpcReplyPort<HealthInfo>),
    /// Current metrics of the backend (its writes; the view adds the reads).
    Metrics(RpcReplyPort<DataStoreMetrics>),
    /// Panic inside the actor (supervision tests only).
    #[cfg(feature = "fault-injection")]
    Panic,
    /// Panic in the middle of the next intake message, after applying this many of its updates
    /// to the unpublished copy (read-path tests only).
    #[cfg(feature = "fault-injection")]
    PanicMidBatch(usize),
}

/// What a batch of updates did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Updates the store took.
    pub applied: u64,
    /// Updates the store refused (malformed, stale…); counted by the store's own stats too.
    pub rejected: u64,
}

/// The writer's side of a store behind an actor: applies updates (twice: once to each copy of
/// the read view, with the same `now`, so the copies stay equal: it must be deterministic),
/// folds in what readers recorded, reports health and metrics.
///
/// Implemented once per protocol by a blanket impl over the store's typed backend trait (for
/// example every [`crate::stores::process::ProcessBackend`] is a
/// `StoreBackend<ProcessProtocol>`).
pub trait StoreBackend<P: Protocol + ?Sized>: Send + Sync + 'static {
    /// Applies one update.
    fn apply_update(&mut self, update: &P::Update, now: EpochNanos) -> P::Applied;
    /// Called once after each intake message, when all of its batches are applied: upkeep that
    /// should follow writes without running per update (purging expired entries). Nothing by
    /// default.
    fn after_apply(&mut self, _now: EpochNanos) {}
    /// How many recency marks readers may leave (one per record slot), for stores whose
    /// eviction follows reads; 0 (the default) for the others.
    fn read_mark_slots(&self) -> usize {
        0
    }
    /// Refreshes the recency of what readers read, oldest first: `(slot, id)` as they marked it
    /// ([`crate::view::Reads::mark`]). Nothing by default.
    fn apply_read_marks(&mut self, _marks: &[(u32, u32)]) {}
    /// Bytes this copy reserved (the read view holds two).
    fn bytes_reserved(&self) -> usize {
        0
    }
    /// Makes this copy equal to `other` (the other copy of the same store, as `Any`) in place,
    /// without allocating, if the store can: the writer does this instead of replaying a long
    /// run of updates. `false` (the default) if it cannot; the writer then replays.
    fn copy_from_any(&mut self, _other: &dyn std::any::Any) -> bool {
        false
    }
    /// The store itself, to downcast to its concrete type (snapshots, inspection).
    fn as_any(&self) -> &dyn std::any::Any;
    /// The store itself, mutably (see [`StoreMsg::Inspect`]).
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
    /// Health as the store sees itself.
    fn health(&self, now: EpochNanos) -> HealthInfo;
    /// Metrics as the store counted them (writes; reads are counted by the view).
    fn metrics(&self) -> DataStoreMetrics;
}

/// Turns a freshly built store into the two copies of its read view.
pub trait IntoCopies<P: Protocol>: Send + 'static {
    /// Two equal copies (the second a clone of the first, so they hash and evict alike).
    fn into_copies(self) -> [Box<P::Backend>; 2];
}

/// A reply port, answered and forgotten: a caller that gave up (timeout) dropped its receiver,
/// which is not the store's problem.
pub(crate) fn answer<T>(port: RpcReplyPort<T>, value: T) {
    let _ = port.send(value);
}
