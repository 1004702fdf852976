//! Writable stores: stores that detectors register and own (the reference's
//! `RegisterWritableStore`), such as the IP reputation store.
//!
//! Ownership is enforced by types: registration returns the only [`WriteHandle`]; everybody else
//! gets a [`ReadHandle`] through `get_custom`, and a `ReadHandle` has no write method. The owner
//! may also bulk-feed writes through the store's bounded intake ([`WriteHandle::intake`]).

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo, StoreError};

use crate::handle::StoreHandle;
use crate::intake::IntakeSender;
use crate::protocol::{IntoCopies, Protocol, StoreBackend};
use crate::view::Reads;

/// A store detectors can register, own and write; everybody else reads it.
///
/// Reads run in the reader's task on the store's published copy (`&self`: count each one in
/// `reads` by the metrics rule, never in the store); writes run in the store's actor, twice
/// (once per copy of the read view, same `now`), so they must be deterministic; the second copy
/// is a `clone` of the first.
pub trait WritableStore: Clone + Send + Sync + 'static {
    /// A read request.
    type Read;
    /// The answer to a read request.
    type ReadReply;
    /// A write request.
    type Write: Send + 'static;
    /// The answer to a write request.
    type WriteReply: Send + 'static;
    /// What the store holds, for `metadata(name)`.
    const DESCRIPTION: &'static str;

    /// Answers a read, recording its outcome in `reads`.
    fn read(&self, request: Self::Read, reads: &mut Reads<'_>) -> Self::ReadReply;
    /// Performs a write.
    fn write(&mut self, request: &Self::Write, now: EpochNanos) -> Self::WriteReply;
    /// Whether a write's answer means it was accepted (for intake counters).
    fn accepted(reply: &Self::WriteReply) -> bool;
    /// Health as the store sees itself.
    fn health(&self, now: EpochNanos) -> HealthInfo;
    /// Metrics as the store counted them (its writes; the view counts reads).
    fn metrics(&self) -> DataStoreMetrics;
    /// Bytes the store reserved (the read view holds two copies). 0 if unknown.
    fn bytes_reserved(&self) -> usize {
        0
    }
}

/// The protocol of writable store `S`: writes as updates (single, or batches through the
/// intake); reads from the view.
pub struct WritableProtocol<S>(PhantomData<fn() -> S>);

impl<S: WritableStore> Protocol for WritableProtocol<S> {
    type Update = S::Write;
    type Applied = S::WriteReply;
    type Backend = S;

    fn accepted(applied: &S::WriteReply) -> bool {
        S::accepted(applied)
    }
}

impl<S: WritableStore> StoreBackend<WritableProtocol<S>> for S {
    fn apply_update(&mut self, update: &S::Write, now: EpochNanos) -> S::WriteReply {
        self.write(update, now)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn bytes_reserved(&self) -> usize {
        WritableStore::bytes_reserved(self)
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        WritableStore::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        WritableStore::metrics(self)
    }
}

impl<S: WritableStore> IntoCopies<WritableProtocol<S>> for S {
    fn into_copies(self) -> [Box<S>; 2] {
        [Box::new(self.clone()), Box::new(self)]
    }
}

/// Read-only access to writable store `S`: what `get_custom` hands to everybody but the owner.
pub type ReadHandle<S> = StoreHandle<WritableProtocol<S>>;

impl<S: WritableStore> StoreHandle<WritableProtocol<S>> {
    /// Answers a read request from the published copy; `operation` names it in errors
    /// (`"get_reputation"`).
    pub fn read_now(
        &self,
        operation: &'static str,
        request: S::Read,
    ) -> Result<S::ReadReply, StoreError> {
        self.read_view(operation, |store, reads| store.read(request, reads))
    }

    /// Answers a read request; `operation` names it in errors (`"get_reputation"`). Never waits
    /// (see [`Self::read_now`]); `async` for callers written against the message-based handle.
    pub async fn read_as(
        &self,
        operation: &'static str,
        request: S::Read,
    ) -> Result<S::ReadReply, StoreError> {
        self.read_now(operation, request)
    }

    /// Answers a read request (operation `"read"` in errors).
    pub async fn read(&self, request: S::Read) -> Result<S::ReadReply, StoreError> {
        self.read_now("read", request)
    }

    /// Borrowing access: runs `f` on the published copy, which must count what it asks in
    /// `reads` (the metrics rule). For detectors that need a field, not a copy of a record.
    pub fn with_store<R>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&S, &mut Reads<'_>) -> R,
    ) -> Result<R, StoreError> {
        self.read_view(operation, f)
    }
}

/// The owner's handle of writable store `S`: reads (it derefs to a [`ReadHandle`]) and writes.
/// Not `Clone`: the registrant holds the only one (share it behind an `Arc` if needed).
pub struct WriteHandle<S: WritableStore> {
    read: ReadHandle<S>,
    intake: IntakeSender<S::Write>,
}

impl<S: WritableStore> std::fmt::Debug for WriteHandle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteHandle")
            .field("store", &self.read.name())
            .finish()
    }
}

impl<S: WritableStore> WriteHandle<S> {
    pub(crate) fn new(
        slot: Arc<crate::slot::StoreSlot<WritableProtocol<S>>>,
        intake: IntakeSender<S::Write>,
    ) -> Self {
        WriteHandle {
            read: StoreHandle::new(slot),
            intake,
        }
    }

    /// Performs a write and waits for its answer; `operation` names it in errors.
    pub async fn write_as(
        &self,
        operation: &'static str,
        request: S::Write,
    ) -> Result<S::WriteReply, StoreError> {
        self.read.write_update(operation, request).await
    }

    /// Performs a write and waits for its answer.
    pub async fn write(&self, request: S::Write) -> Result<S::WriteReply, StoreError> {
        self.write_as("write", request).await
    }

    /// The same handle with another call timeout (for its reads and writes).
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.read = self.read.with_timeout(timeout);
        self
    }

    /// A read-only handle to give to others.
    pub fn reader(&self) -> ReadHandle<S> {
        self.read.clone()
    }

    /// The bounded intake for bulk writes (feeds): fire-and-forget batches.
    pub fn intake(&self) -> &IntakeSender<S::Write> {
        &self.intake
    }
}

impl<S: WritableStore> Deref for WriteHandle<S> {
    type Target = ReadHandle<S>;
    fn deref(&self) -> &ReadHandle<S> {
        &self.read
    }
}
